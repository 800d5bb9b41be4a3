"""The dashboard's (and the search's) worker: one thread with its own connection to the log, off the event loop.

The log is in WAL mode: this connection reads a consistent snapshot while the service writes, and a
slow dashboard never holds up a citizen's message. One thread only: dashboard requests take turns
(the service's two cores stay free for the bot). An in-memory log (tests) is read through its own
connection instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from aiohttp import web
from sqlite_utils import Database

from bot.handover.store import HandoverLog

T = TypeVar("T")
BUSY_MS = 10_000  # only a change of TIMEZONE writes (the per-day tables are rebuilt once)


class StatsReader:
    """Runs `work(db, ...)` in the dashboard's thread, with a connection opened there on first use."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats")
        self._db: Database | None = None

    def _connection(self, log: HandoverLog) -> Database:
        if self._db is None and log.url:  # PostgreSQL: a connection of this thread's own (READ COMMITTED)
            from bot.handover.pg import PgDatabase

            self._db = PgDatabase(log.url, lock_timeout_ms=BUSY_MS, application_name="streife-stats")  # type: ignore[assignment]
            self._db.id_tables = log.db.id_tables  # type: ignore[attr-defined]
        if self._db is None:
            path = next((row[2] for row in log.db.execute("PRAGMA database_list") if row[1] == "main"), "")
            if not path:  # ":memory:" cannot be opened twice
                return log.db
            connection = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            self._db = Database(connection)
        return self._db

    async def run(self, log: HandoverLog, work: Callable[..., T], *args: Any) -> T:
        """`work(db, *args)` in the dashboard's thread; the event loop goes on meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: work(self._connection(log), *args))

    def close(self) -> None:
        """Let a running request finish, then close the connection."""
        self.executor.shutdown(wait=True)
        if self._db is not None:
            self._db.conn.close()
            self._db = None


class ReadOnlyLog:
    """The reading half of a HandoverLog over the worker's own connection (for search in the worker's thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.backend = getattr(db, "backend", "sqlite")

    _rows = HandoverLog._rows
    _select = HandoverLog._select


READER = web.AppKey("stats_reader", StatsReader)


def add_reader(app: web.Application) -> None:
    """Give the app its dashboard worker, closed with the app (create_app's lifecycle closes it first, before the log)."""
    reader = app[READER] = StatsReader()

    async def close(_: web.Application) -> None:
        reader.close()

    app.on_cleanup.append(close)
