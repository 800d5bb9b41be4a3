"""What the comment executor does after a Graph request, and after a crash: sent, retried, failed or "unknown".

A mixin of CommentExecutor (bot/channels/comment_executor.py), which holds the state these methods share:
the store, its handover log, the Graph client, the event hub and the retry bookkeeping.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bot.channels.graph_comments import CommentApiError, GraphComments
from bot.channels.meta_send import LABELS
from bot.handover import HandoverLog
from bot.handover.comments import Comment, CommentAction, Comments
from bot.web.live import INBOX, EventHub

log = logging.getLogger("bot.channels.comment_executor")

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)  # after the n-th transient failure
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
MAX_WAIT_S = 900.0  # a rate limit's "come back in N minutes" is capped to this
UNKNOWN_PRIVATE = ("Unklar, ob die private Antwort angekommen ist: {label} hat nicht geantwortet{why}. Sie wird nicht "
                   "noch einmal gesendet, denn Meta erlaubt nur eine. Bitte im Postfach der App nachsehen.")


class CommentOutcomes:
    """Settles an action after its request (or a crash): sent, pending with a back-off, failed, or "unknown"."""

    store: Comments
    log: HandoverLog
    client: GraphComments
    hub: EventHub | None
    retry_delays: tuple[float, ...]
    _not_before: dict[int, float]
    _verify: set[int]
    _stuck: dict[int, str]

    def recover(self) -> int:
        """Actions a crash left "sending": private replies become "unknown", the rest pending again."""
        rows = self.log._select("SELECT id, kind FROM comment_actions WHERE status = 'sending'")
        for row in rows:
            self._resolve(row["id"], row["kind"], " (Neustart während des Sendens)")
        if rows:
            log.warning("comment actions found in flight after a restart: %d", len(rows))
        return len(rows)

    def _resolve(self, action_id: int, kind: str, why: str) -> None:
        """An action that may have reached Meta but is not saved as sent: a private reply "unknown", the rest pending."""
        if kind == "private_reply":
            self._unknown(action_id, why)
            return
        if kind == "public_reply":
            self._verify.add(action_id)  # look under the comment before sending it again
        self.log.db.execute("UPDATE comment_actions SET status = 'pending' WHERE id = ? AND status = 'sending'", [action_id])

    def _unstick(self) -> None:
        """Resolve actions whose result could not be saved after the send; kept for the next pass if that fails too."""
        for action_id, kind in list(self._stuck.items()):
            try:
                self._resolve(action_id, kind, " (Ergebnis nach dem Senden nicht gespeichert)")
                comment = self.store.get(self.store.action(action_id).comment_id)
                self._publish(comment, self.store.action(action_id), "unknown" if kind == "private_reply" else "pending")
            except Exception:
                log.exception("comment action %d: still cannot save its state", action_id)
                continue
            self._stuck.pop(action_id, None)

    def _failed_call(self, action: CommentAction, c: Comment, err: CommentApiError) -> bool:
        if err.reason == "gone":
            if action.kind == "delete":  # what we wanted: it is gone
                self.store.action_sent(action.id, None)
                self._publish(c, action, "sent")
                return True
            self._fail(action, c, err.officer_text, final=True)
            self.store.record_removed(c.channel, c.platform_id)
            return True
        if err.maybe_sent and action.kind == "private_reply":
            self._unknown(action.id, "")
            self._publish(c, action, "unknown")
            return True
        if err.maybe_sent and action.kind == "public_reply":
            self._verify.add(action.id)
        attempts = action.attempts + 1
        if err.final or attempts >= MAX_ATTEMPTS:
            text = err.officer_text if err.final else f"Nach {attempts} Versuchen aufgegeben. {err.officer_text}"
            return self._fail(action, c, text.replace(" Wird automatisch erneut versucht.", ""), final=True)
        self.store.action_failed(action.id, err.officer_text, final=False)
        self._backoff(action.id, attempts, err.retry_after)
        self._publish(c, action, "pending")
        return False

    def _fail(self, action: CommentAction, c: Comment, text: str, final: bool) -> bool:
        self.store.action_failed(action.id, text, final=final)
        self._not_before.pop(action.id, None)
        self._verify.discard(action.id)
        log.warning("comment action %d (%s) failed for good: %s", action.id, action.kind, text)
        self._publish(c, action, "failed")
        return True

    def _unknown(self, action_id: int, why: str) -> None:
        """A private reply that may have arrived: blocked for good (the partial unique index counts it)."""
        label = LABELS.get(self.store.get(self.store.action(action_id).comment_id).channel, "Meta")
        self.log.db.execute("UPDATE comment_actions SET status = 'unknown', attempts = attempts + 1, error = ? WHERE id = ?",
                            [UNKNOWN_PRIVATE.format(label=label, why=why), action_id])

    def _backoff(self, action_id: int, attempts: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after else self.retry_delays[min(attempts, len(self.retry_delays)) - 1]
        self._not_before[action_id] = time.monotonic() + min(delay, MAX_WAIT_S)

    async def _found_reply(self, action: CommentAction, c: Comment) -> bool:
        """After a lost answer: our public reply is already under the comment? Then it counts as sent."""
        try:
            replies = await self.client.replies(c.channel, c.platform_id)
        except CommentApiError as err:
            if err.reason == "gone":
                return self._fail(action, c, err.officer_text, final=True)
            return False  # cannot tell: send (a visible double beats a missing 110 reply)
        mine = [r for r in replies if r["text"] == action.text]
        if not mine:
            self._verify.discard(action.id)
            return False
        self.store.action_sent(action.id, mine[-1]["id"])
        self._verify.discard(action.id)
        self._publish(c, action, "sent")
        return True

    def _link_dm(self, action: CommentAction, c: Comment, recipient: str, message_id: str | None) -> None:
        """The private reply opened a DM: its conversation gets the reply, and both are linked."""
        self.store.open_dm(c, recipient, action.text, action.officer, message_id)

    def _publish(self, c: Comment, action: CommentAction, status: str) -> None:
        if self.hub is not None:
            data: dict[str, Any] = {"kind": "comment", "comment_id": c.id, "need": c.need, "action": action.kind, "status": status}
            self.hub.publish(INBOX, data)
