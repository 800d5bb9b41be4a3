"""Moderation of comments: evidence kept before a hide or delete, complaints, and the abuse review.

German police practice: hide abuse rather than delete it, and keep the evidence (text, author, time,
permalink, post) first. Evidence marked for a criminal complaint is kept past retention until an
officer releases it. An officer marks a hidden abusive comment as seen and done ("reviewed"): it
leaves "to review" (need 2) for "nothing to do" (need 9); undoing it puts it back.
"""

from __future__ import annotations

import json

from bot.handover.comment_rows import NEED, Comment, CommentBase, CommentError, Evidence, chunks, marks

NOT_ABUSE = "Nur Beleidigungen und Hass werden als geprüft markiert."
ALREADY_REVIEWED = "Dieser Kommentar ist schon als gesehen markiert."
NOT_REVIEWED = "Dieser Kommentar ist nicht als gesehen markiert."


class CommentModeration(CommentBase):
    """Evidence, complaints and the abuse review (a part of `Comments`)."""

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

    def evidence_by_comment(self, comment_ids: list[int]) -> dict[int, list[Evidence]]:
        """The evidence of many comments in one query: comment id -> its evidence, oldest first."""
        out: dict[int, list[Evidence]] = {i: [] for i in comment_ids}
        for chunk in chunks(comment_ids):
            for r in self.log._select(f"SELECT * FROM evidence WHERE comment_id IN ({marks(chunk)}) ORDER BY id", chunk):
                out[r["comment_id"]].append(Evidence(**r))
        return out

    def author_counts(self, authors: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """`author_count` for many (channel, pseudonym) pairs in one query; pairs without abuse count 0."""
        out = {pair: 0 for pair in authors}
        names = sorted({author for _, author in authors})
        for chunk in chunks(names):
            for channel, author, n in self.db.execute(
                    f"SELECT channel, author, COUNT(*) FROM comments WHERE policy = 'abuse' AND author IN ({marks(chunk)}) "
                    "GROUP BY channel, author", chunk):
                if (channel, author) in out:
                    out[(channel, author)] = n
        return out

    def author_count(self, channel: str, author: str) -> int:
        """How many of this pseudonym's comments were abuse (repeat authors are shown to officers)."""
        return self.db.execute("SELECT COUNT(*) FROM comments WHERE channel = ? AND author = ? AND policy = 'abuse'",
                               [channel, author]).fetchone()[0]

    # -- the abuse review ------------------------------------------------------------------

    def mark_reviewed(self, comment_id: int, by: str) -> Comment:
        """An officer saw an abusive comment and is done with it: it leaves "to review" (audited)."""
        c = self.get(comment_id)
        if c.policy != "abuse":
            raise CommentError(NOT_ABUSE)
        if c.reviewed is not None:
            raise CommentError(ALREADY_REVIEWED)
        at = self.log.clock()
        meta = {**c.meta, "reviewed": {"by": by, "at": at, "need": c.need}}
        with self.log.transaction():
            self._set("comments", c.id, {"need": NEED["nothing"], "handled_by": by, "handled_at": at,
                                         "meta": json.dumps(meta, ensure_ascii=False)})
            self.log.audit(by, "comment_reviewed", c.conversation_id, comment_id=c.id)
        return self.get(c.id)

    def undo_reviewed(self, comment_id: int, by: str) -> Comment:
        """Put a comment marked as seen back under "to review" (audited)."""
        c = self.get(comment_id)
        reviewed = c.reviewed
        if reviewed is None:
            raise CommentError(NOT_REVIEWED)
        meta = {k: v for k, v in c.meta.items() if k != "reviewed"}
        need = reviewed.get("need") if reviewed.get("need") in NEED.values() else NEED["abuse"]
        with self.log.transaction():  # (an edit into an emergency meanwhile keeps its rank)
            self._set("comments", c.id, {"need": need if c.need == NEED["nothing"] else c.need,
                                         "meta": json.dumps(meta, ensure_ascii=False)})
            self.log.audit(by, "comment_review_undone", c.conversation_id, comment_id=c.id)
        return self.get(c.id)
