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


def _v3(db: Database) -> None:
    """Reply templates (Textbausteine) officers write and edit in the inbox."""  # owner: templates (issue 15)
    from bot.handover.textblocks import starter_textblocks  # the starters live with the feature's code

    db["textblocks"].create(
        {"id": int, "name": str, "language": str, "title": str, "text": str, "intents": str,
         "created_at": str, "created_by": str, "updated_at": str, "updated_by": str},
        pk="id",
        not_null={"name", "language", "title", "text", "created_at", "created_by", "updated_at", "updated_by"},
        defaults={"intents": "[]"},
    )
    db["textblocks"].create_index(["language", "name"], unique=True)
    db["textblocks"].insert_all(starter_textblocks())


def _v4(db: Database) -> None:
    """Full-text search over messages (FTS5), kept in step with messages by triggers."""  # owner: search (issue 15)
    # External content: the index holds only tokens, the text stays in `messages`. The bot's own
    # canned replies are left out (they would match every search); citizens' and officers' words go in.
    # Deleting a message (privacy deletion, retention) deletes its index entry in the same transaction.
    # (So never run FTS5's 'rebuild': it would index the bot's replies too; the INSERT below builds it.)
    db.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2', prefix='3')"
    )
    db.execute(
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.author != 'bot' BEGIN "
        "INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute(
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.author != 'bot' BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    db.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, author ON messages BEGIN "
        "INSERT INTO messages_fts (messages_fts, rowid, text) SELECT 'delete', old.id, old.text WHERE old.author != 'bot'; "
        "INSERT INTO messages_fts (rowid, text) SELECT new.id, new.text WHERE new.author != 'bot'; END"
    )
    db.execute("INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE author != 'bot'")
    db["messages"].create_index(["created_at"], if_not_exists=True)  # date ranges (search, dashboard)
    db["conversations"].create_index(["updated_at"], if_not_exists=True)  # the queue's "recently updated" without a sort


def _v5(db: Database) -> None:
    """Accounts and the shift: roles, assignment to a named colleague, presence."""  # owner: accounts (issue 15)
    db["officers"].add_column("role", str, not_null_default="officer")  # "officer" or "admin"
    db.execute("UPDATE officers SET role = 'admin' WHERE id = (SELECT MIN(id) FROM officers WHERE active = 1)")  # the first active account
    # assignment lives in conversations.officer/state (claimed) and meta.assigned_by; presence is in memory


def _v6(db: Database) -> None:
    """Comments under posts: posts, comments, the actions taken on them, moderation evidence."""  # owner: comments (issue 14)
    db["posts"].create(
        {"id": int, "channel": str, "platform_id": str, "permalink": str, "caption": str, "created_at": str},
        pk="id",
        not_null={"channel", "platform_id", "created_at"},
    )
    db["posts"].create_index(["channel", "platform_id"], unique=True)
    db["comments"].create(
        {
            "id": int, "channel": str, "platform_id": str, "post_id": int, "parent_platform_id": str,
            "author_id": str, "author": str, "author_name": str, "text": str, "kind": str,
            "created_at": str, "received_at": str, "edited_at": str, "removed_at": str, "own": int,
            "status": str, "intent": str, "confidence": float, "action": str, "policy": str, "need": int,
            "hidden": int, "deleted": int, "conversation_id": int, "handled_by": str, "handled_at": str,
            "meta": str,
        },
        pk="id",
        foreign_keys=[("post_id", "posts", "id")],
        not_null={"channel", "platform_id", "post_id", "author", "created_at", "received_at", "status"},
        defaults={"text": "", "kind": "text", "own": 0, "status": "new", "need": 9, "hidden": 0, "deleted": 0,
                  "author_name": "", "meta": "{}"},
    )
    db["comments"].create_index(["channel", "platform_id"], unique=True)
    db["comments"].create_index(["post_id", "need", "created_at"])
    db["comments"].create_index(["need", "created_at"])
    db["comments"].create_index(["status"])
    db["comments"].create_index(["channel", "author"])
    db["comments"].create_index(["conversation_id"])
    db["comment_actions"].create(
        {
            "id": int, "comment_id": int, "kind": str, "text": str, "status": str, "priority": int,
            "officer": str, "attempts": int, "error": str, "platform_id": str, "created_at": str, "done_at": str,
        },
        pk="id",
        foreign_keys=[("comment_id", "comments", "id")],
        not_null={"comment_id", "kind", "status", "created_at"},
        defaults={"text": "", "status": "pending", "priority": 5, "attempts": 0},
    )
    db.execute(
        "CREATE UNIQUE INDEX idx_comment_actions_private ON comment_actions (comment_id)"
        " WHERE kind = 'private_reply' AND status != 'failed'"
    )
    db["comment_actions"].create_index(["status", "priority", "id"])
    db["comment_actions"].create_index(["comment_id"])
    db["comment_actions"].create_index(["platform_id"])
    db["evidence"].create(
        {
            "id": int, "comment_id": int, "channel": str, "post_platform_id": str, "permalink": str,
            "post_caption": str, "comment_platform_id": str, "author": str, "author_name": str, "text": str,
            "comment_created_at": str, "captured_at": str, "captured_by": str, "complaint": int,
            "released_at": str, "released_by": str,
        },
        pk="id",
        foreign_keys=[("comment_id", "comments", "id")],
        not_null={"comment_id", "channel", "captured_at", "captured_by"},
        defaults={"complaint": 0},
    )
    db["evidence"].create_index(["comment_id"])


def _v7(db: Database) -> None:
    """The dashboard's figures per hour, kept in step with the log by triggers (bot/handover/stats_waits.py)."""  # owner: dashboard (issue 15)
    from bot.handover.stats_waits import install  # (local import: stats_waits.py knows the tables of _v7, stats_tables.py those of _v8)

    install(db)


def _v8(db: Database) -> None:
    """Dashboard: per-day figures and comments under posts in the statistics."""  # owner: dashboard (issue 15)
    from bot.handover.stats_tables import install  # per-day tables and their triggers replace stats_hourly

    install(db)


def _v9(db: Database) -> None:
    """Search: comments under posts in the full-text index."""  # owner: search (issue 15)
    # As messages_fts (_v4): external content, the words only. Citizens' comments go in; the page's own
    # comments and the bot's public replies (own = 1) do not. A privacy deletion, retention or an emptied
    # comment (kept evidence: the comment row is scrubbed) removes the entry in the same transaction.
    db.execute(
        "CREATE VIRTUAL TABLE comments_fts USING fts5(text, content='comments', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2', prefix='3')"
    )
    db.execute(
        "CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments WHEN new.own = 0 BEGIN "
        "INSERT INTO comments_fts (rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute(
        "CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments WHEN old.own = 0 BEGIN "
        "INSERT INTO comments_fts (comments_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    db.execute(
        "CREATE TRIGGER comments_fts_update AFTER UPDATE OF text, own ON comments BEGIN "
        "INSERT INTO comments_fts (comments_fts, rowid, text) SELECT 'delete', old.id, old.text WHERE old.own = 0; "
        "INSERT INTO comments_fts (rowid, text) SELECT new.id, new.text WHERE new.own = 0; END"
    )
    db.execute("INSERT INTO comments_fts (rowid, text) SELECT id, text FROM comments WHERE own = 0")
    db["comments"].create_index(["created_at"], if_not_exists=True)  # date ranges in search
    db["comments"].create_index(["author"], if_not_exists=True)  # the pseudonym filter across channels


MIGRATIONS: list[Callable[[Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9]


def _seed(db: Database) -> None:
    """What a new PostgreSQL log starts with (SQLite's migrations insert the same)."""
    from bot.handover.textblocks import starter_textblocks

    db["textblocks"].insert_all(starter_textblocks())


def migrate(db: Database) -> int:
    """Apply the migrations the database has not seen yet; return the new version."""
    if getattr(db, "backend", "sqlite") == "postgresql":
        return db.migrate(_seed)  # type: ignore[attr-defined]  # (bot/handover/pg.py: its own schema files)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS[version:], version + 1):
        with db.atomic():
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
