"""HandoverLog: the single source of truth for conversations, their state and transcript."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlite_utils import Database

from bot.handover.messages import MessageLog
from bot.handover.records import BUSY_MS, NO_LIMIT, PRIORITY, STATES, Conversation, HandoverError, _columns, _conversation, utcnow
from bot.handover.schema import migrate
from bot.settings import is_postgres_url


class HandoverLog(MessageLog):
    """Conversations, messages and the audit trail in one SQLite file (WAL)."""

    def __init__(self, db: Database, clock: Callable[[], str] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.backend: str = getattr(db, "backend", "sqlite")  # "sqlite" or "postgresql"
        self.url: str | None = getattr(db, "url", None)
        migrate(db)
        self._key = self._pseudonym_key()

    @classmethod
    def open(cls, path: Path | str, pseudonym_key: str = "", clock: Callable[[], str] = utcnow,
             busy_ms: int = BUSY_MS) -> "HandoverLog":
        """Open (and create or migrate) the log at `path`; ":memory:" for tests; a postgresql:// URL for PostgreSQL.

        `busy_ms` bounds how long a write waits for another process's write lock: the service's
        event loop must never freeze behind it (a write that meets the lock fails with "database
        is locked"; the dispatcher retries it off the loop, and an emergency is answered anyway).
        """
        if is_postgres_url(path):
            from bot.handover.pg import PgDatabase  # (psycopg: the service's environment only, not the NLU side's)

            log = cls(PgDatabase(str(path)), clock)  # type: ignore[arg-type]  # (the same interface: bot/handover/pg.py)
            if pseudonym_key:
                log._key = pseudonym_key.encode()
            return log
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # autocommit at the driver level: sqlite-utils' atomic() opens every transaction itself
        connection = sqlite3.connect(str(path), timeout=max(busy_ms, 10_000) / 1000, isolation_level=None,
                                     check_same_thread=False)
        db = Database(connection)
        if not memory:
            db.enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA secure_delete = ON")  # deleted texts are overwritten in the file, not just unlinked
        log = cls(db, clock)  # (creating and migrating the file may wait for a lock as long as it takes)
        db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        if pseudonym_key:
            log._key = pseudonym_key.encode()
        return log

    def close(self) -> None:
        """Close the database connection."""
        self.db.conn.close()

    # -- settings kept in the database -------------------------------------------------

    def get_value(self, key: str, default: str | None = None) -> str | None:
        """A value from the key-value table (channel offsets and the like)."""
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_value(self, key: str, value: str) -> None:
        """Store a value in the key-value table."""
        self.db.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value])

    def _pseudonym_key(self) -> bytes:
        """The key pseudonyms are made with; the first start makes it (instances starting at once: the first one's)."""
        self.db.execute("INSERT INTO kv (key, value) VALUES ('pseudonym_key', ?) ON CONFLICT(key) DO NOTHING",
                        [secrets.token_hex(32)])
        return str(self.get_value("pseudonym_key")).encode()

    def pseudonym(self, channel: str, user_id: str) -> str:
        """A stable pseudonymous citizen id; raw platform ids never leave the log."""
        digest = hmac.new(self._key, f"{channel}:{user_id}".encode(), hashlib.sha256).hexdigest()
        return f"{channel[:2]}-{digest[:10]}"

    # -- transactions --------------------------------------------------------------------

    def transaction(self) -> Any:
        """A context manager: everything inside commits together or not at all (nests)."""
        return self.db.atomic()

    def _rows(self, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        """Rows of a SELECT as dicts, read lazily (plain SQL: sqlite-utils' query() wraps each read in a savepoint)."""
        cursor = self.db.conn.execute(sql, args)
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row)) for row in cursor)

    def _select(self, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """All rows of a SELECT as dicts."""
        return list(self._rows(sql, args))

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """INSERT one row with plain SQL; its id."""
        names = _columns(table, row)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        return self.db.execute(sql, [row[n] for n in names]).lastrowid

    def _update(self, table: str, row_id: int, fields: dict[str, Any]) -> None:
        """UPDATE one row by id with plain SQL."""
        names = _columns(table, fields)
        sql = f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
        self.db.execute(sql, [*(fields[n] for n in names), row_id])

    def audit(self, actor: str, event: str, conversation_id: int | None = None, **detail: Any) -> int:
        """Append to the audit trail: who did what to which conversation, when; the entry's id."""
        return self._insert("events", {"at": self.clock(), "actor": actor, "action": event, "conversation_id": conversation_id,
                                "detail": json.dumps(detail, ensure_ascii=False)})

    # -- conversations -------------------------------------------------------------------

    def conversation(self, conversation_id: int) -> Conversation:
        """The conversation with this id."""
        rows = self._select("SELECT * FROM conversations WHERE id = ?", [conversation_id])
        if not rows:
            raise HandoverError(f"no conversation {conversation_id}")
        return _conversation(rows[0])

    def find_conversation(self, channel: str, chat_id: str) -> Conversation | None:
        """The conversation of a chat, if there is one."""
        rows = self._select("SELECT * FROM conversations WHERE channel = ? AND chat_id = ?", [channel, str(chat_id)])
        return _conversation(rows[0]) if rows else None

    def conversations(self, states: tuple[str, ...] = STATES, limit: int | None = 200, offset: int = 0,
                      priority: tuple[int, int] = (0, 99)) -> list[Conversation]:
        """Conversations in the given states and priority range: highest priority first, then longest waiting.

        `limit` None means all of them (the inbox lists every open escalation).
        """
        marks = ",".join("?" * len(states))
        rows = self._select(
            f"SELECT * FROM conversations WHERE state IN ({marks}) AND priority BETWEEN ? AND ? "
            "ORDER BY priority DESC, COALESCE(queued_at, last_inbound_at, created_at) ASC, id ASC LIMIT ? OFFSET ?",
            [*states, *priority, NO_LIMIT if limit is None else limit, max(0, offset)],
        )
        return [_conversation(r) for r in rows]

    def count_conversations(self, states: tuple[str, ...] = STATES, priority: tuple[int, int] = (0, 99)) -> int:
        """How many conversations are in the given states and priority range (the true count, never capped)."""
        marks = ",".join("?" * len(states))
        return self.db.execute(
            f"SELECT COUNT(*) FROM conversations WHERE state IN ({marks}) AND priority BETWEEN ? AND ?", [*states, *priority]
        ).fetchone()[0]

    def recently_updated(self, states: tuple[str, ...], limit: int = 30) -> list[Conversation]:
        """The `limit` conversations in `states` that changed last, newest first (however many there are)."""
        marks = ",".join("?" * len(states))
        rows = self._select(
            f"SELECT * FROM conversations WHERE state IN ({marks}) ORDER BY updated_at DESC, id DESC LIMIT ?", [*states, limit]
        )
        return [_conversation(r) for r in rows]

    def update_conversation(self, conversation_id: int, **fields: Any) -> Conversation:
        """Change fields of a conversation (meta is merged, not replaced)."""
        if "meta" in fields:
            merged = {**self.conversation(conversation_id).meta, **fields["meta"]}
            fields["meta"] = json.dumps(merged, ensure_ascii=False)
        fields["updated_at"] = self.clock()
        self._update("conversations", conversation_id, fields)
        return self.conversation(conversation_id)

    def queue(self, conversation_id: int, action: str, reason: str) -> Conversation:
        """Put a conversation in the officers' queue (an escalation raises its priority).

        While officers have the chat, its reason changes only with a higher priority: an
        escalation's reason is never replaced by a later, lesser one (nor by a second one).
        """
        conv = self.conversation(conversation_id)
        current = conv.priority if conv.with_officer else 0
        priority = max(current, PRIORITY[action])
        if conv.with_officer and conv.reason and PRIORITY[action] <= current:
            reason = conv.reason
        now = self.clock()
        if conv.state == "claimed":
            return self.update_conversation(conversation_id, priority=priority, reason=reason)
        fields = {"state": "queued", "priority": priority, "reason": reason, "closed_at": None}
        if conv.state != "queued":
            fields["queued_at"] = now
        self.audit("bot", "queue", conversation_id, action=action, reason=reason)
        return self.update_conversation(conversation_id, **fields)
