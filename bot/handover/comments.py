"""Comments under posts (issue 14): posts, comments, the actions planned on them, moderation evidence.

One class, `Comments`, over the handover log's database (tables from migration _v6). Inbound stores
comments here before the webhook's 200; the executor performs the planned actions; the inbox reads it.
Its parts: the rows and plain SQL (comment_rows.py), evidence and the abuse review
(comment_moderation.py), actions and their states (comment_actions.py); this module records comments
and their changes and lists them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bot.handover.comment_actions import CommentActions
from bot.handover.comment_rows import (ACTION_KINDS, CAPTION_MAX, NEED, POLICIES, PRIVATE_WINDOW, Comment, CommentAction,
                                       CommentError, Evidence, IncomingComment, Post)

__all__ = ["ACTION_KINDS", "CAPTION_MAX", "NEED", "POLICIES", "PRIVATE_WINDOW", "Comment", "CommentAction", "CommentError",
           "Comments", "Evidence", "IncomingComment", "Post"]


class Comments(CommentActions):
    """Posts, comments, comment actions and evidence in the handover log's database."""

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

    def is_bot_reply(self, channel: str, platform_id: str) -> bool:
        """True when this platform comment id is a public reply the executor sent (the bot's own comment)."""
        return self.db.execute(
            "SELECT 1 FROM comment_actions a JOIN comments c ON c.id = a.comment_id "
            "WHERE a.platform_id = ? AND a.kind = 'public_reply' AND c.channel = ? LIMIT 1",
            [str(platform_id), channel]).fetchone() is not None

    def undecided(self) -> list[Comment]:
        """Comments stored but not yet triaged (also after a crash), oldest first."""
        return self._comments("status = 'new' AND own = 0", [], "ORDER BY id")

    def count_undecided(self) -> int:
        """How many comments wait for their triage (one COUNT, for the list's notice)."""
        return self.db.execute("SELECT COUNT(*) FROM comments WHERE status = 'new' AND own = 0").fetchone()[0]

    def decide(self, comment_id: int, intent: str | None, confidence: float | None, action: str | None,
               policy: str, need: int) -> None:
        """Store the triage and the policy rule applied; the comment counts as decided."""
        if policy not in POLICIES:
            raise CommentError(f"Unbekannte Regel: {policy}")
        self._set("comments", comment_id, {"intent": intent, "confidence": confidence, "action": action,
                                           "policy": policy, "need": need, "status": "decided"})

    # -- views ---------------------------------------------------------------------------

    def list(self, post_id: int | None = None, need: int | None = None, limit: int = 50, offset: int = 0) -> list[Comment]:
        """Comments sorted by need (emergencies first), then newest; optionally of one post or one need."""
        where, args = ["1 = 1"], []
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
            "SELECT p.*, COUNT(c.id) AS total, COUNT(CASE WHEN c.status = 'new' THEN 1 END) AS new,"
            " COUNT(CASE WHEN c.need = 0 THEN 1 END) AS emergency, COUNT(CASE WHEN c.need = 1 THEN 1 END) AS question,"
            " COUNT(CASE WHEN c.need = 2 THEN 1 END) AS abuse, COUNT(CASE WHEN c.need = 3 THEN 1 END) AS listed,"
            " SUM(c.hidden) AS hidden, MIN(c.need) AS top, MAX(c.created_at) AS last"
            " FROM posts p LEFT JOIN comments c ON c.post_id = p.id GROUP BY p.id"
            " ORDER BY COALESCE(MIN(c.need), 9), COALESCE(MAX(c.created_at), '') DESC, p.id DESC")
        out = []
        for r in rows:
            post = Post(**{k: r[k] for k in ("id", "channel", "platform_id", "permalink", "caption", "created_at")})
            counts = {k: int(r[k] or 0) for k in ("total", "new", "emergency", "question", "abuse", "listed", "hidden")}
            out.append((post, counts))
        return out

    def link_conversation(self, comment_id: int, conversation_id: int) -> None:
        """The DM conversation this comment's private reply opened."""
        self._set("comments", comment_id, {"conversation_id": conversation_id})

    def open_dm(self, c: Comment, recipient: str, text: str, officer: str | None, message_id: str | None) -> int:
        """A private reply opened a DM (chat_id = recipient): find or create it, put the reply in it, link both; its id."""
        conv = self.log.find_conversation(c.channel, recipient)
        if conv is None:
            now = self.log.clock()
            try:
                with self.log.transaction():
                    self.log._insert("conversations", {
                        "channel": c.channel, "chat_id": recipient, "citizen": self.log.pseudonym(c.channel, recipient),
                        "state": "bot", "created_at": now, "updated_at": now, "meta": '{"source": "comment"}'})
            except sqlite3.IntegrityError:  # the person wrote a DM at the same moment
                pass
            conv = self.log.find_conversation(c.channel, recipient)
        assert conv is not None
        message = self.log.add_outbound(conv.id, text, "officer" if officer else "bot", officer=officer,
                                        meta={"via": "private_reply", "comment_id": c.id})
        self.log.mark_sent(message, message_id)
        self.link_conversation(c.id, conv.id)
        return conv.id

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
