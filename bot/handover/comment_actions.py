"""Actions on comments: replies, hides, unhides and deletes, planned here and performed by the executor.

Meta allows one private reply per comment, within 7 days of the comment: a partial unique index
(migration _v6) and `plan` keep it so. Evidence is captured before any hide or delete is planned.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.handover.comment_moderation import CommentModeration
from bot.handover.comment_rows import (ACTION_KINDS, PRIVATE_WINDOW, Comment, CommentAction, CommentError, chunks, marks,
                                      private_too_long, utc_time)


class CommentActions(CommentModeration):
    """Planning actions and recording what the executor did (a part of `Comments`)."""

    def private_window_open(self, comment: Comment, now: str | datetime | None = None) -> bool:
        """True while a private reply is allowed: 7 days after the comment was written."""
        at = utc_time(now) if now is not None else utc_time(self.log.clock())
        try:
            return at - utc_time(comment.created_at) < PRIVATE_WINDOW
        except ValueError:
            return False

    def has_private_reply(self, comment_id: int) -> bool:
        """True when a private reply is planned or sent for this comment."""
        return self.db.execute("SELECT 1 FROM comment_actions WHERE comment_id = ? AND kind = 'private_reply' "
                               "AND status != 'failed'", [comment_id]).fetchone() is not None

    def private_reply_in_flight(self, channel: str, text: str, since: str) -> bool:
        """True when a private reply with this text is being sent, or was sent (or may have been) since `since`.

        Its echo can come before the executor writes the DM message: it is the bot's, not an officer's in the app.
        """
        row = self.db.execute(
            "SELECT 1 FROM comment_actions a JOIN comments c ON c.id = a.comment_id WHERE a.kind = 'private_reply' "
            "AND c.channel = ? AND a.text = ? AND (a.status = 'sending' OR (a.status IN ('sent', 'unknown') "
            "AND COALESCE(a.done_at, a.created_at) >= ?)) LIMIT 1", [channel, text.strip(), since]).fetchone()
        return row is not None

    def private_possible(self, comment: Comment, text: str) -> bool:
        """True when `plan` would take a private reply with this text now (window, author, none before, length)."""
        return (not comment.own and not comment.removed_at and not comment.deleted and comment.author_id is not None
                and bool(text.strip()) and self.private_window_open(comment) and not self.has_private_reply(comment.id)
                and private_too_long(comment.channel, text.strip()) is None)

    def acted_on(self, comment_id: int) -> bool:
        """True once anything was planned or done on this comment (by the bot or an officer), or it was handled."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM comment_actions WHERE comment_id = ? AND status != 'failed'),"
            " (SELECT handled_by FROM comments WHERE id = ?)", [comment_id, comment_id]).fetchone()
        return bool(row[0]) or row[1] is not None

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
            too_long = private_too_long(c.channel, text)
            if too_long:
                raise CommentError(too_long)
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

    def record_action(self, comment_id: int, kind: str, text: str, status: str, platform_id: str | None = None,
                      error: str | None = None, priority: int = 0) -> int:
        """Record an action the bot already took without its row (an emergency answered while the database was locked)."""
        if kind not in ACTION_KINDS:
            raise CommentError(f"Unbekannte Aktion: {kind}")
        done = status in ("sent", "failed", "unknown")
        with self.log.transaction():
            action_id = self._insert("comment_actions", {
                "comment_id": comment_id, "kind": kind, "text": text, "status": status, "priority": priority,
                "officer": None, "attempts": 1 if done else 0, "error": error, "platform_id": platform_id,
                "created_at": self.log.clock(), "done_at": self.log.clock() if status == "sent" else None})
            self.log.audit("bot", f"comment_{kind}", None, comment_id=comment_id, action_id=action_id, from_memory=True)
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

    def actions_by_comment(self, comment_ids: list[int]) -> dict[int, list[CommentAction]]:
        """The actions of many comments in one query: comment id -> its actions, oldest first."""
        out: dict[int, list[CommentAction]] = {i: [] for i in comment_ids}
        for chunk in chunks(comment_ids):
            for r in self.log._select(f"SELECT * FROM comment_actions WHERE comment_id IN ({marks(chunk)}) ORDER BY id", chunk):
                out[r["comment_id"]].append(CommentAction(**r))
        return out

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
