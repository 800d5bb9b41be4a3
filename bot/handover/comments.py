"""Comments under posts (issue 14): posts, comments, the actions planned on them, moderation evidence.

One class, `Comments`, over the handover log's database (tables from migration _v6). Inbound stores
comments here before the webhook's 200; the executor performs the planned actions; the inbox reads it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.handover.store import HandoverLog

ACTION_KINDS = ("public_reply", "private_reply", "hide", "unhide", "delete")
POLICIES = ("escalate", "faq", "abuse", "invite", "list", "none")
NEED = {"emergency": 0, "question": 1, "abuse": 2, "listed": 3, "nothing": 9}
PRIVATE_WINDOW = timedelta(days=7)  # Meta: one private reply per comment, within 7 days of the comment
CAPTION_MAX = 200


class CommentError(ValueError):
    """An action that cannot be taken on a comment; the message is German text for officers."""


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


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "id"]


def _comment(row: dict[str, Any]) -> Comment:
    return Comment(**{**row, "meta": json.loads(row["meta"] or "{}")})


def _time(value: str | datetime) -> datetime:
    """An ISO 8601 string or datetime as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = value.strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 (Python 3.10 wants +00:00)
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Comments:
    """Posts, comments, comment actions and evidence in the handover log's database."""

    def __init__(self, log: HandoverLog) -> None:
        self.log = log
        self.db = log.db

    # -- plain SQL helpers ---------------------------------------------------------------

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        names = list(row)
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        return self.db.execute(sql, [row[n] for n in names]).lastrowid

    def _set(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        sql = f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in values)} WHERE id = ?"
        self.db.execute(sql, [*values.values(), row_id])

    def _comments(self, where: str, args: list[Any], tail: str = "") -> list[Comment]:
        return [_comment(r) for r in self.log._select(f"SELECT * FROM comments WHERE {where} {tail}", args)]

    # -- posts and comments --------------------------------------------------------------

    def _post_id(self, c: IncomingComment) -> int:
        caption = (c.caption or "")[:CAPTION_MAX] or None
        row = self.db.execute("SELECT id, permalink, caption FROM posts WHERE channel = ? AND platform_id = ?",
                              [c.channel, c.post_platform_id]).fetchone()
        if row is None:
            return self._insert("posts", {"channel": c.channel, "platform_id": c.post_platform_id, "permalink": c.permalink,
                                          "caption": caption, "created_at": self.log.clock()})
        if (c.permalink and not row[1]) or (caption and not row[2]):
            self._set("posts", row[0], {"permalink": row[1] or c.permalink, "caption": row[2] or caption})
        return row[0]

    def record(self, c: IncomingComment) -> Comment | None:
        """Store a comment (and its post); None when the platform delivered it before."""
        now = self.log.clock()
        with self.log.transaction():
            if self.by_platform(c.channel, c.platform_id) is not None:
                return None
            own = 1 if c.own else 0
            comment_id = self._insert("comments", {
                "channel": c.channel, "platform_id": str(c.platform_id), "post_id": self._post_id(c),
                "parent_platform_id": c.parent_platform_id, "author_id": c.author_id,
                "author": self.log.pseudonym(c.channel, str(c.author_id)), "author_name": c.author_name or "",
                "text": c.text, "kind": c.kind, "created_at": c.created_at or now, "received_at": now, "own": own,
                "status": "decided" if own else "new", "policy": "none" if own else None,
                "need": NEED["nothing"], "meta": json.dumps(c.meta or {}, ensure_ascii=False),
            })
        return self.get(comment_id)

    def acted_on(self, comment_id: int) -> bool:
        """True once anything was planned or done on this comment (by the bot or an officer), or it was handled."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM comment_actions WHERE comment_id = ? AND status != 'failed'),"
            " (SELECT handled_by FROM comments WHERE id = ?)", [comment_id, comment_id]).fetchone()
        return bool(row[0]) or row[1] is not None

    def record_edit(self, channel: str, platform_id: str, text: str, kind: str = "text",
                    at: str | None = None) -> Comment | None:
        """A comment's new text (the old one kept in meta.edits); None if unknown.

        A comment nothing was done on yet goes back to "new" (it is triaged again); one the bot or an
        officer acted on keeps its decision (the caller may still escalate an edit into an emergency).
        """
        c = self.by_platform(channel, platform_id)
        if c is None:
            return None
        if text == c.text:
            return c
        meta = {**c.meta, "edits": [*c.meta.get("edits", []), {"text": c.text, "at": c.edited_at or c.created_at}]}
        values: dict[str, Any] = {"text": text, "kind": kind, "edited_at": at or self.log.clock(),
                                  "meta": json.dumps(meta, ensure_ascii=False)}
        if not c.own and not c.removed_at and not self.acted_on(c.id):
            values["status"] = "new"
        with self.log.transaction():
            self._set("comments", c.id, values)
        return self.get(c.id)

    def record_removed(self, channel: str, platform_id: str, at: str | None = None) -> Comment | None:
        """The comment was deleted on the platform: nothing more is sent for it; None if unknown."""
        c = self.by_platform(channel, platform_id)
        if c is None:
            return None
        with self.log.transaction():
            values: dict[str, Any] = {"removed_at": at or self.log.clock()}
            if c.status == "new":
                values.update(status="decided", policy="none", need=NEED["nothing"])
            self._set("comments", c.id, values)
            self.db.execute("UPDATE comment_actions SET status = 'failed', error = ? WHERE comment_id = ? AND status = 'pending'",
                            ["Der Kommentar wurde gelöscht.", c.id])
        return self.get(c.id)

    def record_hidden(self, channel: str, platform_id: str, hidden: bool) -> Comment | None:
        """The comment was hidden or unhidden on the platform (by the page in Meta's apps, or our own action)."""
        c = self.by_platform(channel, platform_id)
        if c is None:
            return None
        self._set("comments", c.id, {"hidden": 1 if hidden else 0})
        return self.get(c.id)

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

    def is_bot_reply(self, channel: str, platform_id: str) -> bool:
        """True when this platform comment id is a public reply the executor sent (the bot's own comment)."""
        return self.db.execute(
            "SELECT 1 FROM comment_actions a JOIN comments c ON c.id = a.comment_id "
            "WHERE a.platform_id = ? AND a.kind = 'public_reply' AND c.channel = ? LIMIT 1",
            [str(platform_id), channel]).fetchone() is not None

    def post(self, post_id: int) -> Post:
        """The post with this id."""
        rows = self.log._select("SELECT * FROM posts WHERE id = ?", [post_id])
        if not rows:
            raise CommentError(f"Beitrag {post_id} gibt es nicht.")
        return Post(**rows[0])

    def undecided(self) -> list[Comment]:
        """Comments stored but not yet triaged (also after a crash), oldest first."""
        return self._comments("status = 'new' AND own = 0", [], "ORDER BY id")

    def decide(self, comment_id: int, intent: str | None, confidence: float | None, action: str | None,
               policy: str, need: int) -> None:
        """Store the triage and the policy rule applied; the comment counts as decided."""
        if policy not in POLICIES:
            raise CommentError(f"Unbekannte Regel: {policy}")
        self._set("comments", comment_id, {"intent": intent, "confidence": confidence, "action": action,
                                           "policy": policy, "need": need, "status": "decided"})

    # -- actions -------------------------------------------------------------------------

    def private_window_open(self, comment: Comment, now: str | datetime | None = None) -> bool:
        """True while a private reply is allowed: 7 days after the comment was written."""
        at = _time(now) if now is not None else _time(self.log.clock())
        try:
            return at - _time(comment.created_at) < PRIVATE_WINDOW
        except ValueError:
            return False

    def has_private_reply(self, comment_id: int) -> bool:
        """True when a private reply is planned or sent for this comment."""
        return self.db.execute("SELECT 1 FROM comment_actions WHERE comment_id = ? AND kind = 'private_reply' "
                               "AND status != 'failed'", [comment_id]).fetchone() is not None

    def plan(self, comment_id: int, kind: str, text: str = "", officer: str | None = None, priority: int = 5) -> int:
        """Queue an action for the executor; its id. Raises CommentError (German) when it is not allowed.

        A hide or delete first captures the evidence. A hide, unhide or delete already pending is not
        planned twice (its id is returned).
        """
        if kind not in ACTION_KINDS:
            raise CommentError(f"Unbekannte Aktion: {kind}")
        c = self.get(comment_id)
        text = (text or "").strip()
        if c.removed_at or c.deleted:
            raise CommentError("Der Kommentar wurde gelöscht.")
        if kind in ("public_reply", "private_reply") and not text:
            raise CommentError("Bitte schreib einen Text.")
        if kind in ("public_reply", "private_reply") and c.author_id is None and not c.own:
            raise CommentError("Die Daten dieser Person wurden gelöscht: eine Antwort ist nicht mehr möglich.")
        if kind == "private_reply":
            if c.own:
                raise CommentError("Das ist ein eigener Kommentar.")
            if self.has_private_reply(comment_id):
                raise CommentError("Auf diesen Kommentar wurde schon privat geantwortet.")
            if not self.private_window_open(c):
                raise CommentError("Älter als 7 Tage: eine private Antwort ist nicht mehr möglich.")
        actor = officer or "bot"
        with self.log.transaction():
            if kind in ("hide", "unhide", "delete"):
                pending = self.db.execute("SELECT id FROM comment_actions WHERE comment_id = ? AND kind = ? AND status = 'pending'",
                                          [comment_id, kind]).fetchone()
                if pending:
                    return pending[0]
            if kind in ("hide", "delete") and not self.evidence(comment_id):
                self.capture_evidence(comment_id, actor)
            try:
                action_id = self._insert("comment_actions", {
                    "comment_id": comment_id, "kind": kind, "text": text, "status": "pending", "priority": priority,
                    "officer": officer, "attempts": 0, "created_at": self.log.clock()})
            except sqlite3.IntegrityError as err:
                raise CommentError("Auf diesen Kommentar wurde schon privat geantwortet.") from err
            if officer:
                self._set("comments", comment_id, {"handled_by": officer, "handled_at": self.log.clock()})
            self.log.audit(actor, f"comment_{kind}", c.conversation_id, comment_id=comment_id, action_id=action_id)
        return action_id

    def action(self, action_id: int) -> CommentAction:
        """The action with this id."""
        rows = self.log._select("SELECT * FROM comment_actions WHERE id = ?", [action_id])
        if not rows:
            raise CommentError(f"Aktion {action_id} gibt es nicht.")
        return CommentAction(**rows[0])

    def actions(self, comment_id: int) -> list[CommentAction]:
        """Every action planned on a comment, oldest first."""
        return [CommentAction(**r) for r in self.log._select(
            "SELECT * FROM comment_actions WHERE comment_id = ? ORDER BY id", [comment_id])]

    def due_actions(self, limit: int = 50) -> list[CommentAction]:
        """Pending actions, emergencies (lowest priority number) first, then oldest."""
        return [CommentAction(**r) for r in self.log._select(
            "SELECT * FROM comment_actions WHERE status = 'pending' ORDER BY priority, id LIMIT ?", [limit])]

    def action_sent(self, action_id: int, platform_id: str | None = None) -> None:
        """The executor performed an action; a hide, unhide or delete also changes the comment's flags."""
        a = self.action(action_id)
        with self.log.transaction():
            self._set("comment_actions", action_id, {"status": "sent", "platform_id": platform_id, "error": None,
                                                     "done_at": self.log.clock()})
            flag = {"hide": ("hidden", 1), "unhide": ("hidden", 0), "delete": ("deleted", 1)}.get(a.kind)
            if flag:
                self._set("comments", a.comment_id, {flag[0]: flag[1]})

    def action_failed(self, action_id: int, error: str, final: bool) -> None:
        """An action failed; it is tried again unless `final`."""
        self.db.execute("UPDATE comment_actions SET attempts = attempts + 1, error = ?, status = ? WHERE id = ?",
                        [error[:500], "failed" if final else "pending", action_id])

    # -- evidence ------------------------------------------------------------------------

    def evidence(self, comment_id: int) -> list[Evidence]:
        """The evidence captured for a comment, oldest first."""
        return [Evidence(**r) for r in self.log._select("SELECT * FROM evidence WHERE comment_id = ? ORDER BY id", [comment_id])]

    def evidence_for(self, comment_id: int) -> list[Evidence]:
        """The evidence captured for a comment, newest first (released ones included)."""
        return self.evidence(comment_id)[::-1]

    def evidence_item(self, evidence_id: int) -> Evidence:
        """One piece of evidence by id."""
        rows = self.log._select("SELECT * FROM evidence WHERE id = ?", [evidence_id])
        if not rows:
            raise CommentError(f"Beweis {evidence_id} gibt es nicht.")
        return Evidence(**rows[0])

    def capture_evidence(self, comment_id: int, by: str) -> Evidence:
        """Snapshot the comment (text, author, time, permalink, post); the existing one if the text is unchanged."""
        c = self.get(comment_id)
        kept = [e for e in self.evidence(comment_id) if e.text == c.text]
        if kept:
            return kept[-1]
        p = self.post(c.post_id)
        with self.log.transaction():
            evidence_id = self._insert("evidence", {
                "comment_id": c.id, "channel": c.channel, "post_platform_id": p.platform_id, "permalink": p.permalink,
                "post_caption": p.caption, "comment_platform_id": c.platform_id, "author": c.author,
                "author_name": c.author_name, "text": c.text, "comment_created_at": c.created_at,
                "captured_at": self.log.clock(), "captured_by": by, "complaint": 0})
            self.log.audit(by, "comment_evidence", c.conversation_id, comment_id=c.id, evidence_id=evidence_id)
        return self.evidence_item(evidence_id)

    def mark_complaint(self, comment_id: int, by: str) -> Evidence:
        """Mark the comment's evidence for a criminal complaint: kept past retention until released."""
        e = self.capture_evidence(comment_id, by)
        with self.log.transaction():
            self._set("evidence", e.id, {"complaint": 1, "released_at": None, "released_by": None})
            self.log.audit(by, "comment_complaint", None, comment_id=comment_id, evidence_id=e.id)
        return self.evidence_item(e.id)

    def release(self, evidence_id: int, by: str) -> Evidence:
        """Release evidence kept for a complaint: the retention job may purge it again."""
        e = self.evidence_item(evidence_id)
        with self.log.transaction():
            self._set("evidence", evidence_id, {"released_at": self.log.clock(), "released_by": by})
            self.log.audit(by, "comment_release", None, comment_id=e.comment_id, evidence_id=evidence_id)
        return self.evidence_item(evidence_id)

    # -- views ---------------------------------------------------------------------------

    def list(self, post_id: int | None = None, need: int | None = None, limit: int = 50, offset: int = 0) -> list[Comment]:
        """Comments sorted by need (emergencies first), then newest; optionally of one post or one need."""
        where, args = ["1"], []
        if post_id is not None:
            where.append("post_id = ?")
            args.append(post_id)
        if need is not None:
            where.append("need = ?")
            args.append(need)
        return self._comments(" AND ".join(where), [*args, limit, max(0, offset)],
                              "ORDER BY need, created_at DESC, id DESC LIMIT ? OFFSET ?")

    def posts_overview(self) -> list[tuple[Post, dict[str, int]]]:
        """Every post with its comment counts (total, new, per need, hidden), the post with the most urgent first."""
        rows = self.log._select(
            "SELECT p.*, COUNT(c.id) AS total, SUM(c.status = 'new') AS new, SUM(c.need = 0) AS emergency,"
            " SUM(c.need = 1) AS question, SUM(c.need = 2) AS abuse, SUM(c.need = 3) AS listed,"
            " SUM(c.hidden) AS hidden, MIN(c.need) AS top, MAX(c.created_at) AS last"
            " FROM posts p LEFT JOIN comments c ON c.post_id = p.id GROUP BY p.id"
            " ORDER BY COALESCE(top, 9), last DESC, p.id DESC")
        out = []
        for r in rows:
            post = Post(**{k: r[k] for k in ("id", "channel", "platform_id", "permalink", "caption", "created_at")})
            counts = {k: int(r[k] or 0) for k in ("total", "new", "emergency", "question", "abuse", "listed", "hidden")}
            out.append((post, counts))
        return out

    def author_count(self, channel: str, author: str) -> int:
        """How many of this pseudonym's comments were abuse (repeat authors are shown to officers)."""
        return self.db.execute("SELECT COUNT(*) FROM comments WHERE channel = ? AND author = ? AND policy = 'abuse'",
                               [channel, author]).fetchone()[0]

    def link_conversation(self, comment_id: int, conversation_id: int) -> None:
        """The DM conversation this comment's private reply opened."""
        self._set("comments", comment_id, {"conversation_id": conversation_id})

    def for_conversation(self, conversation_id: int) -> list[Comment]:
        """The comments linked to a DM conversation, oldest first."""
        return self._comments("conversation_id = ?", [conversation_id], "ORDER BY id")

    def replied_to(self, channel: str, reply_platform_id: str) -> Comment | None:
        """The comment a public reply of ours (by its platform id) answered."""
        row = self.db.execute(
            "SELECT a.comment_id FROM comment_actions a JOIN comments c ON c.id = a.comment_id "
            "WHERE a.platform_id = ? AND a.kind = 'public_reply' AND c.channel = ? LIMIT 1",
            [str(reply_platform_id), channel]).fetchone()
        return self.get(row[0]) if row else None

    def thread_private_reply(self, comment: Comment) -> bool:
        """True when this author already got a private reply on the comment this one answers (up the thread)."""
        seen: set[str] = set()
        parent = comment.parent_platform_id
        while parent and parent not in seen:
            seen.add(parent)
            p = self.by_platform(comment.channel, parent) or self.replied_to(comment.channel, parent)
            if p is None:
                return False
            if p.author == comment.author and self.has_private_reply(p.id):
                return True
            parent = p.parent_platform_id
        return False
