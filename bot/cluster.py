"""One instance or several: who leads, per-conversation locks across instances, messages between instances.

With SQLite (DATABASE_URL empty) there is one instance: `SingleNode` leads from the start, its
conversation locks are asyncio locks and there is nobody to tell anything. With PostgreSQL,
`PgCluster` (bot/cluster_pg.py) holds a session-level advisory lock on its own connection while it
leads, takes each conversation's lock in PostgreSQL too, and sends live updates to the other
instances with NOTIFY. Leader-only work is registered with `lead(name, factory)`: the factory's
task runs while this instance leads and is cancelled the moment it stops leading (fencing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from typing import Any, AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

Receiver = Callable[[dict[str, Any]], None]


def make_instance_id() -> str:
    """hostname-pid-random: unique per process, readable in logs and /healthz."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LeaderJob:
    """Work that runs only on the leader: started when this instance leads, cancelled when it stops."""

    def __init__(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.factory = factory
        self.task: asyncio.Task[Any] | None = None
        self.runs = 0  # how often it was started

    @property
    def running(self) -> bool:
        """True while its task runs."""
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        """Start the task (unless it runs)."""
        if self.running:
            return
        self.runs += 1
        self.task = asyncio.ensure_future(self.factory())
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("leader job %s ended with an error", self.name, exc_info=task.exception())

    def cancel(self) -> asyncio.Task[Any] | None:
        """Cancel the task at once (fencing); the task, to await if wanted."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
        return task

    async def stop(self) -> None:
        """Cancel and wait for the task to end."""
        task = self.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Cluster:
    """What the service needs to know about its peers; this base is the single-instance behaviour."""

    backend = "sqlite"

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or make_instance_id()
        self.is_leader = False
        self.leader_since: float | None = None  # monotonic time this instance became the leader
        self.local_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.jobs: list[LeaderJob] = []
        self.receivers: list[Receiver] = []  # told about other instances' messages (and {"kind": "reconnected"})
        self.on_leader: list[Callable[[bool], None]] = []  # told when leadership is won (True) or lost (False)

    # -- leadership ---------------------------------------------------------------------------

    def lead(self, name: str, factory: Callable[[], Awaitable[Any]]) -> LeaderJob:
        """Run `factory()` whenever this instance leads (now, if it does); cancelled when it stops leading."""
        job = LeaderJob(name, factory)
        self.jobs.append(job)
        if self.is_leader:
            job.start()
        return job

    async def drop(self, job: LeaderJob) -> None:
        """Stop a leader job for good (shutdown of its owner)."""
        if job in self.jobs:
            self.jobs.remove(job)
        await job.stop()

    def _set_leader(self, leader: bool) -> None:
        """Start every leader job, or cancel them all at once (fencing: before anything else happens)."""
        if leader == self.is_leader:
            return
        self.is_leader = leader
        self.leader_since = time.monotonic() if leader else None
        if leader:
            log.warning("instance %s is the leader now", self.instance_id)
        else:
            log.warning("instance %s is no longer the leader", self.instance_id)
        for job in list(self.jobs):
            job.start() if leader else job.cancel()
        for callback in list(self.on_leader):
            try:
                callback(leader)
            except Exception:
                log.exception("leadership callback failed")

    async def wait_leader(self, poll_s: float = 0.05) -> None:
        """Return once this instance leads (tests, benches)."""
        while not self.is_leader:
            await asyncio.sleep(poll_s)

    # -- locks and messages --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def conversation_lock(self, conversation_id: int, urgent: bool = False) -> AsyncIterator[None]:
        """Held while a conversation's messages are decided or sent: one task at a time, in order."""
        async with self.local_locks[conversation_id]:
            yield

    def send(self, message: dict[str, Any]) -> None:
        """Tell the other instances (nobody here)."""

    def receive(self, message: dict[str, Any]) -> None:
        """Hand another instance's message to the receivers; a failing receiver never stops the others."""
        for receiver in list(self.receivers):
            try:
                receiver(message)
            except Exception:
                log.exception("cluster message receiver failed")

    # -- life ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin taking part (the single node leads at once)."""

    async def close(self) -> None:
        """Stop every leader job and leave."""
        self.is_leader = False
        for job in list(self.jobs):
            await job.stop()

    def status(self) -> dict[str, Any]:
        """For /healthz."""
        return {"instance": self.instance_id, "leader": self.is_leader, "backend": self.backend}


class SingleNode(Cluster):
    """SQLite: one instance, the leader from the start; locks are asyncio locks; nothing to send."""

    def __init__(self, instance_id: str | None = None) -> None:
        super().__init__(instance_id)
        self.is_leader = True
        self.leader_since = time.monotonic()

    async def start(self) -> None:
        """Start jobs registered before a loop ran (lead() starts them at once otherwise)."""
        for job in self.jobs:
            job.start()


def for_database(database_url: str, instance_id: str | None = None) -> Cluster:
    """SingleNode for SQLite (an empty DATABASE_URL), PgCluster for a postgresql:// URL."""
    if not database_url:
        return SingleNode(instance_id)
    from bot.cluster_pg import PgCluster  # psycopg only where PostgreSQL is used

    return PgCluster(database_url, instance_id)
