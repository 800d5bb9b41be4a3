"""MessageLog: the handover log's messages in and out (a mixin of HandoverLog)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Iterator

from sqlite_utils import Database

from bot.handover.records import Conversation, HandoverError, Inbound, Message, StoredInbound, _message


class MessageLog:
    """Citizens' messages, the bot's decisions on them and the replies to send (HandoverLog provides the rest)."""

    # provided by HandoverLog (bot/handover/store.py)
    db: Database
    clock: Callable[[], str]
    transaction: Callable[[], Any]
    _rows: Callable[..., Iterator[dict[str, Any]]]
    _select: Callable[..., list[dict[str, Any]]]
    _insert: Callable[[str, dict[str, Any]], int]
    _update: Callable[[str, int, dict[str, Any]], None]
    audit: Callable[..., int]
    pseudonym: Callable[[str, str], str]
    conversation: Callable[[int], Conversation]
    find_conversation: Callable[[str, str], Conversation | None]

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
