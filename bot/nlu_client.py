"""Ask the NLU workers (nlu/worker.py, another process and Python) for parses, with a deadline.

The service never imports Rasa. It sends each text to the ready worker with the fewest parses in
flight and waits at most `deadline` seconds; past that, or with no worker ready, the answer is None
and triage decides without the model. A connection is opened lazily on the running event loop and
opened again after the worker was restarted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlu.parse import Parse

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    loop: asyncio.AbstractEventLoop
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    greeted: asyncio.Event = field(default_factory=asyncio.Event)  # the worker's first status line arrived


class WorkerLink:
    """One worker's socket: its connection, its last status and the parses in flight."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self.status: dict[str, Any] = {}
        self._conn: _Connection | None = None
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None

    @property
    def in_flight(self) -> int:
        """Parses sent and not yet answered."""
        return len(self._conn.waiting) if self._conn is not None else 0

    @property
    def ready(self) -> bool:
        """The worker said its model is loaded (and the connection is up)."""
        conn = self._conn
        return bool(self.status.get("loaded")) and conn is not None and not conn.writer.is_closing()

    async def connect(self) -> _Connection:
        """The connection on this event loop, opened if needed; OSError when the worker is not there."""
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn is not None and conn.loop is loop and not conn.writer.is_closing():
            return conn
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=MAX_LINE)
        conn = _Connection(reader, writer, loop)
        conn.task = loop.create_task(self._read(conn))
        self._conn = conn
        try:  # the worker greets with its status at once: know it before the first parse
            await asyncio.wait_for(conn.greeted.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            log.warning("NLU worker %s did not say its status within 1 s", self.socket_path.name)
        return conn

    async def _read(self, conn: _Connection) -> None:
        try:
            while line := await conn.reader.readline():
                try:
                    body = json.loads(line)
                except ValueError:
                    log.warning("NLU worker %s sent a line that is not JSON", self.socket_path.name)
                    continue
                if body.get("event") == "status" or "status" in body:
                    self.status = body.get("status") or {}
                    conn.greeted.set()
                future = conn.waiting.pop(body.get("id"), None) if body.get("id") is not None else None
                if future is not None and not future.done():
                    future.set_result(body)
        except (ConnectionError, ValueError) as err:
            log.warning("NLU worker %s connection lost: %s", self.socket_path.name, err)
        finally:
            conn.writer.close()
            for future in conn.waiting.values():
                if not future.done():
                    future.set_result({"error": "worker gone"})
            conn.waiting.clear()
            if self._conn is conn:
                self.status = {}

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer (the caller bounds the wait)."""
        conn = await self.connect()
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = conn.loop.create_future()
        conn.waiting[rid] = future
        try:
            conn.writer.write(json.dumps({"id": rid, **body}, ensure_ascii=False).encode("utf-8") + b"\n")
            return await future
        finally:
            conn.waiting.pop(rid, None)

    async def close(self) -> None:
        """Close the connection (the worker keeps running)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.writer.close()
            if conn.task is not None and conn.loop is asyncio.get_running_loop():
                conn.task.cancel()
                await asyncio.gather(conn.task, return_exceptions=True)


class NluClient:
    """Parses through a set of workers; None when no answer comes within the deadline."""

    def __init__(self, socket_paths: list[Path], deadline: float = 2.0) -> None:
        self.links = [WorkerLink(p) for p in socket_paths]
        self.deadline = deadline
        self.deadline_misses = 0

    @property
    def ready(self) -> bool:
        """At least one worker has a model loaded."""
        return any(link.ready for link in self.links)

    async def refresh(self) -> None:
        """Connect to every worker that is up (and so learn its status)."""
        for link in self.links:
            try:
                await asyncio.wait_for(link.connect(), timeout=1.0)
            except (OSError, asyncio.TimeoutError):
                continue

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until a worker has its model loaded (or every worker gave up on it), at most `timeout` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            await self.refresh()
            failed = all(link.status.get("error") and not link.status.get("loading") for link in self.links)
            if self.ready or failed or loop.time() >= end:
                return self.ready
            await asyncio.sleep(min(0.1, max(0.0, end - loop.time())))

    async def parse(self, text: str, urgent: bool = False) -> Parse | None:
        """The model's reading of `text`, or None: no worker ready, a worker error, or past the deadline."""
        if not self.ready:
            await self.refresh()
        ready = [link for link in self.links if link.ready]
        if not ready:
            return None
        link = min(ready, key=lambda item: item.in_flight)
        try:
            body = await asyncio.wait_for(link.request({"op": "parse", "text": text, "urgent": urgent}), self.deadline)
        except asyncio.TimeoutError:
            self.deadline_misses += 1
            log.warning("NLU parse missed its %.1f s deadline; decided without the model", self.deadline)
            return None
        except OSError as err:
            log.warning("NLU worker %s unreachable: %s", link.socket_path.name, err)
            return None
        if "parse" not in body:
            log.warning("NLU worker %s: %s", link.socket_path.name, body.get("error"))
            return None
        try:
            return Parse.from_json(body["parse"])
        except ValueError as err:
            log.error("NLU worker %s: %s", link.socket_path.name, err)
            return None

    def status(self) -> dict[str, Any]:
        """For /healthz: the serving model and each worker's state."""
        statuses = [link.status for link in self.links]
        loaded = [s for s in statuses if s.get("loaded")]
        return {
            "mode": "nlu" if loaded else "safety_net",
            "model_version": loaded[0].get("model") if loaded else None,
            "model_loading": any(s.get("loading") for s in statuses) or not statuses,
            "model_error": next((s.get("error") for s in statuses if s.get("error")), None),
            "model_rejected": next((s.get("rejected") for s in statuses if s.get("rejected")), None),
            "workers": len(self.links),
            "workers_ready": len(loaded),
            "deadline_misses": self.deadline_misses,
        }

    async def close(self) -> None:
        """Close every connection."""
        for link in self.links:
            await link.close()
