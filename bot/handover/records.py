"""Handover records: conversations, messages, their row converters and the log's constants."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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
