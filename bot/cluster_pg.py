"""Several instances on one PostgreSQL database: leadership, conversation locks and NOTIFY (bot/cluster.py).

Two connections of its own (autocommit), never the store's: one holds the leader's session-level
advisory lock, takes the conversations' advisory locks and sends NOTIFY; the other LISTENs.
Non-leaders try the leader lock every second; the leader checks its connection every second and,
when it is gone, cancels its leader jobs at once and carries on as a follower. PostgreSQL ends a
dead session's locks when its socket closes; keepalives and tcp_user_timeout on both sides make
a half-dead peer count as dead within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from typing import Any, AsyncIterator

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bot.cluster import Cluster

log = logging.getLogger(__name__)

CHANNEL = "streife_live"
LEADER_KEY = 0x7374726569666531  # "streife1": the leader's lock (bigint key space)
CONVERSATION_NS = 0x53545246  # "STRF": namespace of the conversation locks (int4, int4 key space)
TICK_S = 1.0  # leadership tried / checked this often
QUERY_TIMEOUT_S = 3.0  # a check that takes longer counts as a lost connection
LISTEN_CHECK_S = 5.0  # the LISTEN connection is checked this often when quiet
LOCK_POLL_S = (0.002, 0.05)  # first and longest pause between two tries of a conversation lock
URGENT_GIVE_UP_S = 0.5  # ... for an emergency: then it goes on under the local lock alone
LOCK_GIVE_UP_S = 5.0  # a conversation lock not takeable for this long because the database is unreachable: error
MAX_PAYLOAD = 7900  # NOTIFY takes < 8000 bytes
OUTBOX = 1000
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3,
             "tcp_user_timeout": 5000, "connect_timeout": 3}  # the client notices a dead server
SERVER_KEEPALIVE = ("-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3"
                    " -c tcp_user_timeout=5000")  # the server notices a dead instance (and frees its locks)


def conninfo(url: str, role: str, instance_id: str) -> str:
    """The URL with keepalives on both sides and an application name that says who and what."""
    params = conninfo_to_dict(url)
    params.update({k: v for k, v in KEEPALIVE.items() if k not in params})
    params["options"] = " ".join(filter(None, [str(params.get("options") or ""), SERVER_KEEPALIVE]))
    params["application_name"] = f"streife {role} {instance_id}"[:63]
    return psycopg.conninfo.make_conninfo(**params)


class PgCluster(Cluster):
    """One of several instances sharing a PostgreSQL database."""

    backend = "postgresql"

    def __init__(self, url: str, instance_id: str | None = None, tick_s: float = TICK_S) -> None:
        super().__init__(instance_id)
        self.url = url
        self.tick_s = tick_s
        self.conn: psycopg.AsyncConnection[Any] | None = None  # leadership, locks, NOTIFY
        self.listen_conn: psycopg.AsyncConnection[Any] | None = None
        self.listening = False
        self.reconnects = 0  # LISTEN connections re-established
        self.sent = self.dropped = 0
        self._outbox: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- connections -------------------------------------------------------------------------

    async def _connect(self, role: str) -> psycopg.AsyncConnection[Any]:
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(conninfo(self.url, role, self.instance_id), autocommit=True), QUERY_TIMEOUT_S + 1)

    async def _value(self, conn: psycopg.AsyncConnection[Any], sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row, within QUERY_TIMEOUT_S."""
        async def run() -> Any:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
            return row[0] if row else None
        return await asyncio.wait_for(run(), QUERY_TIMEOUT_S)

    async def _drop_conn(self, conn: psycopg.AsyncConnection[Any] | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- leadership ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """One round: connect if needed; lead if the lock is free; as the leader, check the connection."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = await self._connect("leader")
            if self.is_leader:
                await self._value(self.conn, "SELECT 1")
            elif await self._value(self.conn, "SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,)):
                self._set_leader(True)
        except (psycopg.Error, OSError, asyncio.TimeoutError) as err:
            self._lost(err)

    def _lost(self, err: BaseException) -> None:
        """The connection is gone (or hangs): stop leading at once; the next round reconnects as a follower."""
        was = self.is_leader
        self._set_leader(False)
        conn, self.conn = self.conn, None
        if conn is not None:
            asyncio.ensure_future(self._drop_conn(conn))
        log.warning("cluster connection lost (%s: %s)%s", type(err).__name__, err,
                    "; leader jobs stopped" if was else "")

    async def _lead_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.tick_s)
            await self.tick()

    # -- conversation locks ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def conversation_lock(self, conversation_id: int, urgent: bool = False) -> AsyncIterator[None]:
        """The local asyncio lock, then the conversation's advisory lock in PostgreSQL (polled, never blocking).

        `urgent` (an emergency): when the lock connection is gone, go on with the local lock after
        URGENT_GIVE_UP_S instead of failing after LOCK_GIVE_UP_S: the 110 reply never waits for it.
        """
        async with self.local_locks[conversation_id]:
            key = conversation_id & 0x7FFFFFFF
            conn = await self._take(key, URGENT_GIVE_UP_S if urgent else LOCK_GIVE_UP_S)
            try:
                yield
            finally:
                if conn is not None:
                    await asyncio.shield(self._release(conn, key))

    async def _take(self, key: int, give_up_s: float = LOCK_GIVE_UP_S) -> psycopg.AsyncConnection[Any] | None:
        loop = asyncio.get_running_loop()
        pause, started, problem = LOCK_POLL_S[0], loop.time(), "not connected"
        while True:
            conn = self.conn
            if conn is not None and not conn.closed:
                attempt = asyncio.ensure_future(self._value(conn, "SELECT pg_try_advisory_lock(%s, %s)", (CONVERSATION_NS, key)))
                try:
                    if await asyncio.shield(attempt):
                        return conn
                except asyncio.CancelledError:  # got it just as we were cancelled? then give it back
                    attempt.add_done_callback(lambda t, c=conn: self._give_back(t, c, key))
                    raise
                except (psycopg.Error, OSError, asyncio.TimeoutError) as err:
                    problem = f"{type(err).__name__}: {err}"
                else:
                    problem = ""
            if problem and loop.time() - started > give_up_s:
                if give_up_s < LOCK_GIVE_UP_S:
                    log.warning("conversation lock %s unavailable (%s): an emergency goes on under this instance's lock", key, problem)
                    return None
                raise sqlite3.OperationalError(f"database is busy: conversation lock unavailable ({problem})")
            await asyncio.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_S[1])

    def _give_back(self, attempt: asyncio.Future[Any], conn: psycopg.AsyncConnection[Any], key: int) -> None:
        if not attempt.cancelled() and attempt.exception() is None and attempt.result():
            asyncio.ensure_future(self._release(conn, key))

    async def _release(self, conn: psycopg.AsyncConnection[Any], key: int) -> None:
        try:
            if not await self._value(conn, "SELECT pg_advisory_unlock(%s, %s)", (CONVERSATION_NS, key)):
                log.warning("conversation lock %s was no longer held (connection replaced)", key)
        except (psycopg.Error, OSError, asyncio.TimeoutError) as err:  # the session is gone, and its locks with it
            log.info("conversation lock %s not released explicitly (%s)", key, err)

    # -- NOTIFY / LISTEN ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the other instances (NOTIFY, in order); dropped when too big or the queue is full."""
        if self._outbox is None or self._closing:
            return
        payload = json.dumps({**message, "i": self.instance_id}, separators=(",", ":"), ensure_ascii=False)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("cluster message of %d bytes not sent (NOTIFY takes < 8000)", len(payload.encode()))
            self.dropped += 1
            return
        if self._outbox.full():
            self._outbox.get_nowait()
            self.dropped += 1
        self._outbox.put_nowait(payload)

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 100:  # what piled up meanwhile: one round trip, in order
                batch.append(self._outbox.get_nowait())
            conn = self.conn
            try:
                if conn is None or conn.closed:
                    raise psycopg.OperationalError("not connected")
                await self._value(conn, "SELECT count(pg_notify(%s, p)) FROM unnest(%s::text[]) WITH ORDINALITY AS t(p, n)",
                                  (CHANNEL, batch))
                self.sent += len(batch)
            except (psycopg.Error, OSError, asyncio.TimeoutError) as err:
                self.dropped += len(batch)  # the others' pages refetch when they reconnect or every 30 s
                log.info("live updates not sent to the other instances (%s)", err)

    async def _listen_loop(self) -> None:
        connected_before = False
        while not self._closing:
            conn = None
            try:
                conn = self.listen_conn = await self._connect("listen")
                await conn.execute(f"LISTEN {CHANNEL}")
                self.listening = True
                if connected_before:  # notifications were missed meanwhile: pages refetch
                    self.reconnects += 1
                    self.receive({"kind": "reconnected"})
                connected_before = True
                while True:
                    async for notify in conn.notifies(timeout=LISTEN_CHECK_S):
                        self._notified(notify.payload)
                    await self._value(conn, "SELECT 1")  # quiet: is the connection still there?
            except (psycopg.Error, OSError, asyncio.TimeoutError) as err:
                if self.listening:
                    log.warning("LISTEN connection lost (%s); reconnecting", err)
                self.listening = False
                await self._drop_conn(conn)
                await asyncio.sleep(self.tick_s)

    def _notified(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("i") != self.instance_id:
            self.receive(message)

    # -- life ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, try to lead once now, LISTEN, then keep leading/following, listening and sending in the background."""
        if self._tasks:
            return
        self._outbox = asyncio.Queue(OUTBOX)
        await self.tick()
        for name, loop in (("lead", self._lead_loop), ("listen", self._listen_loop), ("notify", self._send_loop)):
            self._tasks.append(asyncio.create_task(loop(), name=f"cluster {name}"))
        started = asyncio.get_running_loop().time()
        while not self.listening and asyncio.get_running_loop().time() - started < QUERY_TIMEOUT_S:
            await asyncio.sleep(0.01)  # pages opened from now on hear the other instances

    async def close(self) -> None:
        """Stop the leader jobs, the loops, and close both connections (the leader lock goes with its session)."""
        self._closing = True
        await super().close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._drop_conn(self.conn)
        await self._drop_conn(self.listen_conn)
        self.conn = self.listen_conn = None
        self.listening = False

    def status(self) -> dict[str, Any]:
        """For /healthz."""
        return {**super().status(), "connected": self.conn is not None and not self.conn.closed,
                "listening": self.listening}
