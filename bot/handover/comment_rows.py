"""Rows of the comment tables (migration _v6) and the base that reads and writes them (issue 14).

The dataclasses are what the comment store hands out; `CommentBase` holds the plain SQL helpers the
store's parts (bot/handover/comments.py, comment_actions.py, comment_moderation.py) share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.handover.store import HandoverLog

ACTION_KINDS = ("public_reply", "private_reply", "hide", "unhide", "delete")
POLICIES = ("escalate", "faq", "abuse", "invite", "list", "none")
NEED = {"emergency": 0, "question": 1, "abuse": 2, "listed": 3, "nothing": 9}
PRIVATE_WINDOW = timedelta(days=7)  # Meta: one private reply per comment, within 7 days of the comment
PRIVATE_TEXT_MAX = {"instagram": 1000, "messenger": 2000}  # one message only: a private reply cannot be split
CAPTION_MAX = 200


class CommentError(ValueError):
    """An action that cannot be taken on a comment; the message is German text for officers."""


def chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    """Values in pieces small enough for one `IN (...)` (SQLite's variable limit)."""
    return [values[i:i + size] for i in range(0, len(values), size)]


def marks(values: list[Any]) -> str:
    """The `?, ?, ...` for an `IN (...)` of these values."""
    return ", ".join("?" * len(values))


def private_text_max(channel: str) -> int:
    """How many characters a private reply may have on this channel (Meta sends it as one message)."""
    return PRIVATE_TEXT_MAX.get(channel, min(PRIVATE_TEXT_MAX.values()))


def private_too_long(channel: str, text: str) -> str | None:
    """The German refusal for a private reply longer than the channel allows, or None."""
    limit = private_text_max(channel)
    if len(text) <= limit:
        return None
    label = {"instagram": "Instagram", "messenger": "Facebook"}.get(channel, channel)
    return (f"Die private Antwort ist zu lang: {label} erlaubt höchstens {limit} Zeichen in einer Nachricht, "
            f"deine hat {len(text)}. Bitte kürzen.")


@dataclass(frozen=True)
class IncomingComment:
    """A comment as the webhook parser hands it over (platform ids, not yet pseudonymised)."""

    channel: str  # "instagram" | "messenger" (the Facebook Page)
    platform_id: str  # the comment id
    post_platform_id: str  # the media id / post id
    author_id: str
    text: str = ""
    author_name: str = ""
    kind: str = "text"  # text | media | mention_only | emoji_only
    parent_platform_id: str | None = None
    created_at: str | None = None  # ISO 8601 UTC
    permalink: str | None = None
    caption: str | None = None
    own: bool = False
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Post:
    """A post (Instagram media or Facebook Page post) that has comments."""

    id: int
    channel: str
    platform_id: str
    permalink: str | None
    caption: str | None
    created_at: str


@dataclass(frozen=True)
class Comment:
    """One comment, with the bot's reading of it and what was done."""

    id: int
    channel: str
    platform_id: str
    post_id: int
    parent_platform_id: str | None
    author_id: str | None
    author: str
    author_name: str
    text: str
    kind: str
    created_at: str
    received_at: str
    edited_at: str | None
    removed_at: str | None
    own: int
    status: str
    intent: str | None
    confidence: float | None
    action: str | None
    policy: str | None
    need: int
    hidden: int
    deleted: int
    conversation_id: int | None
    handled_by: str | None
    handled_at: str | None
    meta: dict[str, Any]

    @property
    def reviewed(self) -> dict[str, Any] | None:
        """Who marked this abusive comment as seen and done, and when (None: still to review)."""
        value = self.meta.get("reviewed")
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class CommentAction:
    """A reply, hide, unhide or delete, planned by the bot or an officer and done by the executor."""

    id: int
    comment_id: int
    kind: str
    text: str
    status: str
    priority: int
    officer: str | None
    attempts: int
    error: str | None
    platform_id: str | None
    created_at: str
    done_at: str | None


@dataclass(frozen=True)
class Evidence:
    """A snapshot of a comment taken before it is hidden or deleted (kept past retention if complaint = 1)."""

    id: int
    comment_id: int
    channel: str
    post_platform_id: str | None
    permalink: str | None
    post_caption: str | None
    comment_platform_id: str | None
    author: str | None
    author_name: str | None
    text: str | None
    comment_created_at: str | None
    captured_at: str
    captured_by: str
    complaint: int
    released_at: str | None
    released_by: str | None

    @property
    def kept(self) -> bool:
        """True while marked for a criminal complaint and not released: retention does not purge it."""
        return bool(self.complaint) and self.released_at is None


def _comment(row: dict[str, Any]) -> Comment:
    return Comment(**{**row, "meta": json.loads(row["meta"] or "{}")})


def utc_time(value: str | datetime) -> datetime:
    """An ISO 8601 string or datetime as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = value.strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 (Python 3.10 wants +00:00)
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class CommentBase:
    """The handover log's database and the plain SQL the comment store's parts share."""

    def __init__(self, log: HandoverLog) -> None:
        self.log = log
        self.db = log.db

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        names = list(row)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        return self.db.execute(sql, [row[n] for n in names]).lastrowid

    def _set(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        sql = f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in values)} WHERE id = ?"
        self.db.execute(sql, [*values.values(), row_id])

    def _comments(self, where: str, args: list[Any], tail: str = "") -> list[Comment]:
        return [_comment(r) for r in self.log._select(f"SELECT * FROM comments WHERE {where} {tail}", args)]

    def get(self, comment_id: int) -> Comment:
        """The comment with this id."""
        rows = self._comments("id = ?", [comment_id])
        if not rows:
            raise CommentError(f"Kommentar {comment_id} gibt es nicht.")
        return rows[0]

    def by_platform(self, channel: str, platform_id: str) -> Comment | None:
        """The comment with this platform id, if stored."""
        rows = self._comments("channel = ? AND platform_id = ?", [channel, str(platform_id)])
        return rows[0] if rows else None

    def posts(self, post_ids: list[int]) -> dict[int, Post]:
        """Many posts in one query, by id (ids without a post are left out)."""
        out: dict[int, Post] = {}
        for chunk in chunks(sorted(set(post_ids))):
            for r in self.log._select(f"SELECT * FROM posts WHERE id IN ({marks(chunk)})", chunk):
                out[r["id"]] = Post(**r)
        return out

    def post(self, post_id: int) -> Post:
        """The post with this id."""
        rows = self.log._select("SELECT * FROM posts WHERE id = ?", [post_id])
        if not rows:
            raise CommentError(f"Beitrag {post_id} gibt es nicht.")
        return Post(**rows[0])
