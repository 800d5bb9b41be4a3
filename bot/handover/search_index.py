"""Deleted rows out of the search indexes' file: FTS5 keeps a deleted entry's words until its segments merge.

The service must not stop for the rewrite (about 0.6 s for a million messages): `forget_deleted_soon`
runs FTS5's incremental merge in small steps with the event loop free in between; the CLI and tests
without an event loop rewrite at once (`forget_deleted`).

PostgreSQL: a deleted row leaves every query and search with its transaction, but its folded words
stay in the GIN index's file (GIN keeps a key once stored; VACUUM only empties its list) and its text
in the table's pages. So the rewrite there is `REINDEX INDEX CONCURRENTLY` of the two search indexes
(the words leave the index file; reads and writes go on meanwhile), then a VACUUM of the tables a
deletion touches (their space is reused), on a connection of its own in a thread: the event loop
never waits. What it cannot do: overwrite the old row's bytes in the table's pages (SQLite's
secure_delete does). They go when PostgreSQL reuses the space, or at once with VACUUM FULL or
pg_repack in a maintenance window; the write-ahead log and backups keep them until they rotate.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any, Callable
from weakref import WeakKeyDictionary

from bot.handover.records import is_busy
from bot.handover.store import HandoverLog

logger = logging.getLogger(__name__)
FTS_TABLES = ("messages_fts", "comments_fts")
PG_INDEXES = ("idx_messages_search", "idx_comments_search")  # PostgreSQL (pg_features.sql)
VACUUMED = ("messages", "comments", "comment_actions", "evidence", "notes", "events", "conversations")
MERGE_PAGES = 64  # index pages one step of the incremental rewrite writes (a few milliseconds)


def pg_rewrite(url: str) -> None:
    """PostgreSQL: the search indexes built again without deleted words, then VACUUM (no lock stops reads or writes)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="streife-rewrite") as conn:
        conn.execute(f"SET lock_timeout = {int(RETRY_BUSY_S * 1000)}")  # (it waits for older transactions to end)
        for index in PG_INDEXES:
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}_ccnew")  # (left invalid by an interrupted run)
            conn.execute(f"REINDEX INDEX CONCURRENTLY {index}")
        conn.execute(f"VACUUM {', '.join(VACUUMED)}")


def forget_deleted(log: HandoverLog) -> None:
    """Rewrite the search indexes without the entries of deleted rows, at once (FTS5 keeps them until its segments merge).

    With secure_delete on, the old segments' pages are overwritten: a deleted message's words leave
    the file too, not only the search. About 0.6 s for an index of a million messages (bench/officers_day.py):
    for the CLI. The service uses `forget_deleted_soon` (small steps between other work).
    The entries are already out of the search; when another process holds the write lock, the next
    deletion or retention run rewrites the index.
    """
    if log.backend == "postgresql":
        if log.db.in_transaction:  # (the rebuild would wait for this very transaction)
            logger.warning("search index not rewritten: called inside a transaction; the next deletion or retention run does it")
            return
        pg_rewrite(log.url or "")
        return
    try:
        for table in FTS_TABLES:
            log.db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
    except sqlite3.OperationalError as err:
        if not is_busy(err):
            raise
        logger.warning("search index not rewritten after a deletion (database busy); the next deletion or retention run does it")


def merge_step(log: HandoverLog, table: str, pages: int) -> bool:
    """One step of FTS5's incremental merge (a negative `pages` starts merging every segment into one); True if it did work."""
    before = log.db.conn.total_changes
    log.db.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)", [pages])
    return log.db.conn.total_changes - before >= 2  # (FTS5's documented test for "work was done")


RETRY_BUSY_S = 60.0  # a rewrite stopped by another process's write lock is tried again this much later


async def forget_deleted_steps(log: HandoverLog, pages: int | None = None) -> int:
    """As `forget_deleted`, in steps of about `pages` index pages with the event loop free in between; the steps taken.

    Stopped by another process's write lock, it is tried again RETRY_BUSY_S later (deleted words must leave the file).
    """
    pages, steps = pages or MERGE_PAGES, 0
    if log.backend == "postgresql":
        try:
            await asyncio.to_thread(pg_rewrite, log.url or "")
        except Exception as err:  # (the rows are out of every search already; the next deletion or retention run redoes it)
            logger.warning("search index rewrite after a deletion failed: %s", str(err)[:200])
        return 1
    try:
        for table in FTS_TABLES:
            work = merge_step(log, table, -pages)
            while work:
                steps += 1
                await asyncio.sleep(0)
                work = merge_step(log, table, pages)
    except sqlite3.OperationalError as err:
        if not is_busy(err):
            raise
        logger.warning("search index rewrite stopped (database busy); tried again in %.0f s", RETRY_BUSY_S)
        asyncio.get_running_loop().call_later(RETRY_BUSY_S, forget_deleted_soon, log)
    except sqlite3.ProgrammingError:  # the service closed the log while shutting down: the next run finishes it
        logger.info("search index rewrite stopped: the handover log was closed")
    return steps


_RUNS: WeakKeyDictionary[HandoverLog, asyncio.Task[None]] = WeakKeyDictionary()
_AGAIN: WeakKeyDictionary[HandoverLog, bool] = WeakKeyDictionary()


async def _forget_runs(log: HandoverLog, then: Callable[[HandoverLog], Any] | None) -> None:
    while True:
        _AGAIN[log] = False
        await forget_deleted_steps(log)
        try:
            if then is not None:
                then(log)
        except sqlite3.ProgrammingError:  # closed while shutting down
            return
        if not _AGAIN.get(log):
            return


async def stop_rewrite(log: HandoverLog) -> None:
    """Cancel the log's background rewrite, if one runs, before the log closes (the next deletion or retention run redoes it)."""
    task = _RUNS.get(log)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task])  # (a step is one statement: it stops between two)


def forget_deleted_soon(log: HandoverLog, then: Callable[[HandoverLog], Any] | None = None) -> asyncio.Task[None] | None:
    """Rewrite the indexes without deleted entries: in steps in the background on a running event loop, else at once.

    `then(log)` runs after the rewrite (the WAL checkpoint, so the old pages leave the file). Deletions
    while a rewrite runs make it run once more (never two at a time). The task, or None when done at once.
    PostgreSQL: `pg_rewrite` in a thread (the GIN indexes keep a deleted row's words until rebuilt).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        forget_deleted(log)
        if then is not None:
            then(log)
        return None
    running = _RUNS.get(log)
    if running is not None and not running.done():
        _AGAIN[log] = True
        return running
    task = asyncio.get_running_loop().create_task(_forget_runs(log, then))
    _RUNS[log] = task
    return task
