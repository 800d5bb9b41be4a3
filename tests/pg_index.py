"""Helpers for the search tests on both backends: what the index holds for a word, and the index's bytes on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.handover import HandoverLog

POSTGRES = os.environ.get("STREIFE_TEST_BACKEND", "sqlite") == "postgresql"
SQLITE_ONLY = pytest.mark.skipif(POSTGRES, reason="SQLite's file, FTS5 or migrations (tests/test_pg_features.py covers PostgreSQL)")
INDEXES = {"messages_fts": ("messages", "author != 'bot'"), "comments_fts": ("comments", "own = 0")}


def indexed(log: HandoverLog, table: str, word: str) -> int:
    """Rows the search index itself holds for a word (FTS5's table, or a search through PostgreSQL's GIN index)."""
    if log.backend == "sqlite":
        return log.db.execute(f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ?", [f'"{word}"']).fetchone()[0]
    rows, where = INDEXES[table]
    return log.db.execute(f"SELECT COUNT(*) FROM {rows} WHERE {where} AND public.streife_tsv(text) @@ ?::tsquery",
                          [f"'{word}'"]).fetchone()[0]


def stored(path: Path, url: str | None) -> bytes:
    """What the database keeps on disk: SQLite's file and WAL, or PostgreSQL's search index files (after a checkpoint)."""
    if url is None:
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data = Path(conn.execute("SHOW data_directory").fetchone()[0])
        files = [conn.execute("SELECT pg_relation_filepath(%s)", [name]).fetchone()[0]
                 for name in ("idx_messages_search", "idx_comments_search")]
    return b"".join((data / f).read_bytes() for f in files)
