"""Emergency comments that meet a database locked by another process: answered from memory, recorded later.

As for DMs (bot/unwritten.py): while another process holds the write lock, a comment the safety net
reads as an emergency is not left to Meta's redelivery (a 503 would bring it back "immediately, then
with decreasing frequency" - minutes, not seconds). The webhook answers 200, the public and the
private 110 reply go out at once through the Graph API, the officers are alerted, and the records
(the comment, its decision, both actions with Meta's answers, the DM link) are written as soon as
the database takes them; a redelivery meanwhile is dropped. Any other comment still gets the 503.
What a crash before the write loses is the same as for DMs: the records, never the replies.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.channels.graph_comments import CommentApiError
from bot.comment_policy import Outcome
from bot.handover.comments import IncomingComment
from bot.handover.records import is_busy
from bot.text import clean
from bot.decision import Context, Decision

if TYPE_CHECKING:
    from bot.channels.comment_inbound import CommentInbound

log = logging.getLogger(__name__)

WRITE_EVERY_S = 0.2  # how often the records are tried while the database is still locked


@dataclass
class UnwrittenComment:
    """An emergency comment answered from memory; its records wait for the database."""

    incoming: IncomingComment
    decision: Decision | None = None
    outcome: Outcome | None = None
    results: list[dict[str, Any]] = field(default_factory=list)  # per action: kind, text, status, platform_id, ...

    @property
    def key(self) -> tuple[str, str]:
        return self.incoming.channel, str(self.incoming.platform_id)


class CommentsFromMemory:
    """The comment inbound's part for emergencies that arrive while the database is locked."""

    def __init__(self, inbound: "CommentInbound") -> None:
        self.inbound = inbound
        self.waiting: dict[tuple[str, str], UnwrittenComment] = {}

    def holds(self, incoming: IncomingComment) -> bool:
        """True for a comment answered from memory whose records are not written yet (a redelivery is dropped)."""
        return (incoming.channel, str(incoming.platform_id)) in self.waiting

    def urgent(self, incoming: IncomingComment, err: Exception) -> bool:
        """True when a comment the locked database refused is an emergency to answer from memory now."""
        text = clean(incoming.text or "")
        return (is_busy(err) and not incoming.own and bool(text)
                and self.inbound.triage.safety_net.check(text) is not None)

    def answer(self, incoming: IncomingComment) -> None:
        """Answer an emergency comment from memory in the background; its records follow."""
        item = UnwrittenComment(incoming)
        self.waiting[item.key] = item
        log.error("database locked: emergency %s comment answered from memory; its records follow", incoming.channel)
        self.inbound.spawn(self._run(item))

    async def _run(self, item: UnwrittenComment) -> None:
        try:
            await self._send(item)
        except Exception:  # the records are written anyway: the executor and the officers take over
            log.exception("answering an emergency comment from memory failed")
        while True:
            try:
                comment_id = self.write(item)
                break
            except Exception as err:
                if not is_busy(err):
                    log.exception("the records of an emergency comment could not be written; trying again")
                await asyncio.sleep(WRITE_EVERY_S)
        self.waiting.pop(item.key, None)
        if comment_id is not None:
            await self.inbound.written(comment_id, item.outcome if item.results else None)

    async def _send(self, item: UnwrittenComment) -> None:
        """Decide (no database needed) and send the public and the private reply the policy asks for."""
        inbound, c = self.inbound, item.incoming
        item.decision = await inbound.triage.decide(clean(c.text), Context(first_contact=True))
        item.outcome = inbound.policy.outcome(item.decision.intent, item.decision.action, item.decision.language)
        client = getattr(inbound.executor, "client", None)
        if item.outcome.policy != "escalate" or client is None or not client.configured(c.channel):
            return  # recorded later and triaged as usual
        if item.outcome.alert and inbound.alerts is not None and getattr(inbound.alerts, "enabled", False):
            author = inbound.store.log.pseudonym(c.channel, str(c.author_id))  # (no database needed)
            inbound.spawn(inbound.alerts.send(inbound.alert_text(c.channel, author, item.decision.intent, c.text, None), urgent=True))
        steps = [("public_reply", item.outcome.public_reply), ("private_reply", inbound.private_text(item.outcome, item.decision))]
        for kind, text in steps:
            if not text:
                continue
            result: dict[str, Any] = {"kind": kind, "text": text, "status": "sent", "platform_id": None, "recipient": None,
                                      "error": None}
            try:
                if kind == "public_reply":
                    result["platform_id"] = await client.reply_public(c.channel, c.platform_id, text) or None
                else:
                    result["recipient"], result["platform_id"] = await client.reply_private(c.channel, c.platform_id, text)
            except CommentApiError as err:
                unknown = err.maybe_sent and kind == "private_reply"
                result.update(status="unknown" if unknown else "failed" if err.final else "pending", error=err.officer_text)
            item.results.append(result)

    def write(self, item: UnwrittenComment) -> int | None:
        """Write the comment, its decision and what was sent (one transaction); the comment's id."""
        store, d, outcome = self.inbound.store, item.decision, item.outcome
        with store.log.transaction():
            stored = store.record(item.incoming)
            if stored is None:  # stored meanwhile by another way: it has its own records
                return None
            if not item.results or d is None or outcome is None:
                return stored.id  # triaged as usual once written
            store.decide(stored.id, d.intent, d.confidence, d.action, outcome.policy, outcome.need)
            for r in item.results:
                store.record_action(stored.id, r["kind"], r["text"], r["status"], r["platform_id"], r["error"])
                if r["kind"] == "private_reply" and r["status"] == "sent" and r["recipient"]:
                    store.open_dm(store.get(stored.id), r["recipient"], r["text"], None, r["platform_id"])
        return stored.id
