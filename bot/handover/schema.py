"""Versioned migrations of the handover log (PRAGMA user_version counts them)."""

from __future__ import annotations

from typing import Callable

from sqlite_utils import Database


def _v1(db: Database) -> None:
    db["conversations"].create(
        {
            "id": int, "channel": str, "chat_id": str, "citizen": str, "language": str,
            "state": str, "priority": int, "reason": str, "officer": str,
            "created_at": str, "updated_at": str, "queued_at": str, "claimed_at": str,
            "closed_at": str, "last_inbound_at": str, "meta": str,
        },
        pk="id",
        not_null={"channel", "chat_id", "citizen", "state", "created_at", "updated_at"},
        defaults={"state": "bot", "priority": 0, "language": "de", "meta": "{}"},
    )
    db["conversations"].create_index(["channel", "chat_id"], unique=True)
    db["conversations"].create_index(["state", "priority", "queued_at"])
    db["conversations"].create_index(["citizen"])
    db["messages"].create(
        {
            "id": int, "conversation_id": int, "channel": str, "direction": str, "author": str,
            "text": str, "kind": str, "platform_id": str, "intent": str, "confidence": float,
            "action": str, "status": str, "officer": str, "reply_to": int, "attempts": int,
            "error": str, "created_at": str, "sent_at": str, "meta": str,
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "channel", "direction", "author", "status", "created_at"},
        defaults={"text": "", "kind": "text", "attempts": 0, "meta": "{}"},
    )
    db.execute(
        "CREATE UNIQUE INDEX idx_messages_platform ON messages (channel, direction, platform_id)"
        " WHERE platform_id IS NOT NULL"
    )
    db["messages"].create_index(["conversation_id", "id"])
    db["messages"].create_index(["status", "direction"])
    db["events"].create(
        {"id": int, "at": str, "actor": str, "action": str, "conversation_id": int, "detail": str},
        pk="id",
        not_null={"at", "actor", "action"},
        defaults={"detail": "{}"},
    )
    db["events"].create_index(["conversation_id"])
    db["officers"].create(
        {"id": int, "name": str, "password_hash": str, "created_at": str, "failed_logins": int,
         "locked_until": str, "active": int},
        pk="id",
        not_null={"name", "password_hash", "created_at"},
        defaults={"failed_logins": 0, "active": 1},
    )
    db["officers"].create_index(["name"], unique=True)
    db["kv"].create({"key": str, "value": str}, pk="key")


def _v2(db: Database) -> None:
    """Officer sessions for the inbox and officers' internal notes (never sent to citizens)."""
    db["sessions"].create(
        {"token_hash": str, "officer": str, "csrf": str, "created_at": str, "expires_at": str},
        pk="token_hash",
        not_null={"officer", "csrf", "created_at", "expires_at"},
    )
    db["sessions"].create_index(["officer"])
    db["notes"].create(
        {"id": int, "conversation_id": int, "officer": str, "text": str, "created_at": str},
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "officer", "text", "created_at"},
    )
    db["notes"].create_index(["conversation_id", "id"])
    db["events"].create_index(["at"])


MIGRATIONS: list[Callable[[Database], None]] = [_v1, _v2]


def migrate(db: Database) -> int:
    """Apply the migrations the database has not seen yet; return the new version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS[version:], version + 1):
        with db.atomic():
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
