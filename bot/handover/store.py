"""HandoverLog: the single source of truth for conversations, their state and transcript."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlite_utils import Database

from bot.handover.schema import migrate
from bot.settings import is_postgres_url

STATES = ("bot", "queued", "claimed", "closed")
PRIORITY = {"escalate": 2, "handover": 1}
BUSY_MS = 20  # how long a write on the event loop waits for another process's lock; the dispatcher retries off the loop
CLI_BUSY_MS = 10_000  # commands may wait
NO_LIMIT = 2**62  # "LIMIT ?" for all rows (SQLite's -1 means that, PostgreSQL refuses it)


def is_busy(err: BaseException) -> bool:
    """True for a database that is busy for a moment and clears by itself: SQLite's "database is locked" (another
    connection holds the write lock); PostgreSQL's lock timeouts and a lost connection (bot/handover/pg.py)."""
    return isinstance(err, sqlite3.OperationalError) and ("locked" in str(err) or "busy" in str(err))


class HandoverError(ValueError):
    """A request the handover log cannot carry out (unknown conversation, wrong state)."""


def utcnow() -> str:
    """Now as an ISO 8601 UTC string with milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Inbound:
    """A message from a citizen, as a channel hands it over."""

    channel: str
    chat_id: str
    user_id: str
    text: str = ""
    kind: str = "text"  # text | photo | video | voice | sticker | document | location | contact | button | ...
    platform_id: str | None = None
    at: str | None = None
    button: str | None = None  # intent of a pressed topic button
    meta: dict[str, Any] | None = None
    source: str | None = None  # the client's network (web chat): stored only as a pseudonym, to group floods


@dataclass(frozen=True)
class Conversation:
    """One citizen's chat on one channel."""

    id: int
    channel: str
    chat_id: str
    citizen: str
    language: str
    state: str
    priority: int
    reason: str | None
    officer: str | None
    created_at: str
    updated_at: str
    queued_at: str | None
    claimed_at: str | None
    closed_at: str | None
    last_inbound_at: str | None
    meta: dict[str, Any]

    @property
    def with_officer(self) -> bool:
        """True while an officer has the chat (queued or claimed): the bot keeps quiet."""
        return self.state in ("queued", "claimed")


@dataclass(frozen=True)
class Message:
    """One message in or out, with the bot's reading of it."""

    id: int
    conversation_id: int
    channel: str
    direction: str
    author: str
    text: str
    kind: str
    platform_id: str | None
    intent: str | None
    confidence: float | None
    action: str | None
    status: str
    officer: str | None
    reply_to: int | None
    attempts: int
    error: str | None
    created_at: str
    sent_at: str | None
    meta: dict[str, Any]


@dataclass(frozen=True)
class StoredInbound:
    """An inbound message after it was written to the log."""

    message: Message
    conversation: Conversation
    first_contact: bool


# Columns the hot path writes with plain SQL (sqlite-utils' insert/update re-read the table
# structure on every call: about 100 statements per message). Names are checked against these.
COLUMNS = {
    "conversations": frozenset(Conversation.__dataclass_fields__) - {"id"},
    "messages": frozenset(Message.__dataclass_fields__) - {"id"},
    "events": frozenset({"at", "actor", "action", "conversation_id", "detail"}),
}


def _columns(table: str, names: Any) -> list[str]:
    unknown = set(names) - COLUMNS[table]
    if unknown:
        raise HandoverError(f"unknown columns for {table}: {', '.join(sorted(unknown))}")
    return list(names)


def _conversation(row: dict[str, Any]) -> Conversation:
    return Conversation(**{**row, "meta": json.loads(row["meta"] or "{}")})


def _message(row: dict[str, Any]) -> Message:
    return Message(**{**row, "meta": json.loads(row["meta"] or "{}")})


class HandoverLog:
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

    # -- messages ------------------------------------------------------------------------

    def record_inbound(self, msg: Inbound) -> StoredInbound | None:
        """Write a citizen's message; None when the platform delivered it before.

        Another instance may store the same delivery or the chat's first message at the same moment
        (PostgreSQL): the unique indexes refuse the second one, and the second try finds the first.
        """
        try:
            return self._record_inbound(msg)
        except sqlite3.IntegrityError:
            return self._record_inbound(msg)

    def _record_inbound(self, msg: Inbound) -> StoredInbound | None:
        now = self.clock()
        with self.transaction():
            if msg.platform_id is not None and self.db.execute(
                "SELECT 1 FROM messages WHERE channel = ? AND direction = 'in' AND platform_id = ?",
                [msg.channel, str(msg.platform_id)],
            ).fetchone():
                return None
            conv = self.find_conversation(msg.channel, msg.chat_id)
            first_contact = conv is None
            if conv is None:
                conv_meta = {"source": self.pseudonym("source", msg.source)} if msg.source else {}
                conv_id = self._insert(
                    "conversations",
                    {"channel": msg.channel, "chat_id": str(msg.chat_id), "citizen": self.pseudonym(msg.channel, str(msg.user_id)),
                     "state": "bot", "created_at": now, "updated_at": now, "last_inbound_at": now,
                     "meta": json.dumps(conv_meta)},
                )
            else:
                conv_id = conv.id
                self._update("conversations", conv_id, {"last_inbound_at": now, "updated_at": now})
            meta = dict(msg.meta or {})
            if msg.button:
                meta["button"] = msg.button
            message_id = self._insert(
                "messages",
                {"conversation_id": conv_id, "channel": msg.channel, "direction": "in", "author": "citizen",
                 "text": msg.text, "kind": msg.kind, "platform_id": None if msg.platform_id is None else str(msg.platform_id),
                 "status": "received", "created_at": msg.at or now, "meta": json.dumps(meta, ensure_ascii=False)},
            )
        return StoredInbound(self.message(message_id), self.conversation(conv_id), first_contact)

    def message(self, message_id: int) -> Message:
        """The message with this id."""
        rows = self._select("SELECT * FROM messages WHERE id = ?", [message_id])
        if not rows:
            raise HandoverError(f"no message {message_id}")
        return _message(rows[0])

    def transcript(self, conversation_id: int) -> list[Message]:
        """Every message of a conversation, oldest first."""
        rows = self._select("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", [conversation_id])
        return [_message(r) for r in rows]

    def recent_actions(self, conversation_id: int, limit: int = 3) -> tuple[str, ...]:
        """The bot's last actions on this citizen's messages since the chat was last handed back, oldest first."""
        conv = self.conversation(conversation_id)
        rows = self.db.execute(
            "SELECT action FROM messages WHERE conversation_id = ? AND direction = 'in' AND action IS NOT NULL "
            "AND created_at >= ? ORDER BY id DESC LIMIT ?",
            [conversation_id, conv.closed_at or "", limit],
        ).fetchall()
        return tuple(r[0] for r in reversed(rows))

    def has_bot_reply(self, conversation_id: int, since: str | None = None) -> bool:
        """True once the bot has written to this citizen (at or after `since`, if given): the disclosure was given."""
        return self.db.execute(
            "SELECT 1 FROM messages WHERE conversation_id = ? AND direction = 'out' AND author = 'bot' "
            "AND created_at >= ? LIMIT 1",
            [conversation_id, since or ""],
        ).fetchone() is not None

    def count_inbound_since(self, conversation_id: int, since: str) -> int:
        """How many messages the citizen sent since `since`."""
        return self.db.execute(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = ? AND direction = 'in' AND created_at >= ?",
            [conversation_id, since],
        ).fetchone()[0]

    def record_decision(self, message_id: int, intent: str | None, confidence: float | None, action: str | None) -> None:
        """Store what the bot made of an inbound message; it counts as processed."""
        self._update("messages", message_id, {"intent": intent, "confidence": confidence, "action": action, "status": "processed"})

    def relabel(self, message_id: int, intent: str, officer: str) -> None:
        """An officer names the intent a citizen's message really had (for the trainers' review)."""
        msg = self.message(message_id)
        if msg.direction != "in":
            raise HandoverError(f"message {message_id} is not from a citizen")
        meta = {**msg.meta, "relabel": intent, "relabelled_by": officer}
        with self.transaction():
            self._update("messages", message_id, {"meta": json.dumps(meta, ensure_ascii=False)})
            self.audit(officer, "relabel", msg.conversation_id, message_id=message_id, intent=intent, was=msg.intent)

    def add_outbound(
        self,
        conversation_id: int,
        text: str,
        author: str = "bot",
        reply_to: int | None = None,
        officer: str | None = None,
        meta: dict[str, Any] | None = None,
        kind: str = "text",
    ) -> int:
        """Queue a message to the citizen (status pending until the channel confirms it)."""
        conv = self.conversation(conversation_id)
        return self._insert(
            "messages",
            {"conversation_id": conversation_id, "channel": conv.channel, "direction": "out", "author": author,
             "text": text, "kind": kind, "status": "pending", "officer": officer, "reply_to": reply_to,
             "created_at": self.clock(), "meta": json.dumps(meta or {}, ensure_ascii=False)},
        )

    def mark_sent(self, message_id: int, platform_id: str | None = None) -> None:
        """The channel delivered an outbound message."""
        self._update("messages", message_id, {"status": "sent", "sent_at": self.clock(), "platform_id": platform_id, "error": None})

    def mark_failed(self, message_id: int, error: str, final: bool = False) -> None:
        """A send failed; it is tried again unless `final`."""
        self.db.execute(
            "UPDATE messages SET attempts = attempts + 1, error = ?, status = ? WHERE id = ?",
            [error[:500], "failed" if final else "pending", message_id],
        )

    def unprocessed_inbound(self) -> list[Message]:
        """Inbound messages stored but not yet decided on (after a crash), oldest first."""
        return [_message(r) for r in self._select("SELECT * FROM messages WHERE direction = 'in' AND status = 'received' ORDER BY id")]

    def undecided_before(self, conversation_id: int, message_id: int) -> list[Message]:
        """A conversation's inbound messages before `message_id` that were stored but not decided, oldest first."""
        return [_message(r) for r in self._select(
            "SELECT * FROM messages WHERE conversation_id = ? AND direction = 'in' AND status = 'received' AND id < ?"
            " ORDER BY id", [conversation_id, message_id])]

    def pending_outbound_ids(self, conversation_id: int) -> list[int]:
        """A conversation's replies not yet delivered, oldest first."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM messages WHERE conversation_id = ? AND direction = 'out' AND status = 'pending' ORDER BY id",
            [conversation_id]).fetchall()]

    def pending_outbound(self, channel: str | None = None) -> list[Message]:
        """Outbound messages not yet delivered, oldest first."""
        sql = "SELECT * FROM messages WHERE direction = 'out' AND status = 'pending'"
        args: list[Any] = []
        if channel:
            sql += " AND channel = ?"
            args.append(channel)
        return [_message(r) for r in self._select(sql + " ORDER BY id", args)]

    def iter_messages(self, sql_where: str = "1 = 1", args: list[Any] | None = None) -> Iterator[Message]:
        """Messages matching a WHERE clause, oldest first (for exports and reviews)."""
        for row in self._rows(f"SELECT * FROM messages WHERE {sql_where} ORDER BY id", args or []):  # an export may walk the whole log
            yield _message(row)
