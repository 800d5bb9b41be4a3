"""Comments coming in: stored before the webhook's 200, then triaged and planned by the comment policy.

The same `Triage` as for messages decides (no conversation context); data/comment_policy.yml turns
the decision into actions (public reply, private reply, hide), which are `plan`ned in the comment
store and carried out by the executor (bot/channels/comment_executor.py, kicked after planning).
"""

from __future__ import annotations

import asyncio
import html
import logging
import sqlite3
from dataclasses import replace
from typing import Any

from bot.channels.comment_unwritten import CommentsFromMemory
from bot.channels.meta_comments import CommentChange
from bot.comment_policy import NO_ACTION, CommentPolicy, Outcome
from bot.handover.comments import Comment, CommentError, Comments, IncomingComment
from bot.responses import base_language
from bot.text import clean
from bot.decision import Context, Decision
from bot.triage import Triage

log = logging.getLogger(__name__)

PRIORITY = {"escalate": 0, "abuse": 1}  # anything else: 5
QUIET_KINDS = ("emoji_only", "mention_only")  # nothing to read unless the safety net fires


class CommentInbound:
    """Stores comments and their changes, triages them, and plans what the policy asks for."""

    def __init__(self, store: Comments, triage: Triage, policy: CommentPolicy, hub: Any = None, alerts: Any = None,
                 base_url: str = "") -> None:
        self.store = store
        self.triage = triage
        self.policy = policy
        self.hub = hub  # bot.web.live.EventHub (the inbox's live updates), if running
        self.alerts = alerts  # bot.alerts.OfficerAlerts, if configured
        self.executor: Any = None  # set by the outbound wiring: `await executor.kick()` after planning
        self.base_url = base_url
        self._tasks: set[asyncio.Task[Any]] = set()
        self.deciding: set[int] = set()  # comment ids being triaged right now (a redelivery must not triage twice)
        self.memory = CommentsFromMemory(self)  # emergencies answered while another process locks the database

    # -- before the 200 ----------------------------------------------------------------

    def accept(self, comments: list[IncomingComment], changes: list[CommentChange]) -> list[tuple[str, int]]:
        """Store new comments (duplicates dropped) and apply changes; (what to do, comment id) for the background."""
        work: list[tuple[str, int]] = []
        for incoming in comments:
            if self.memory.holds(incoming):
                continue  # answered from memory already; its records are on their way
            if not incoming.own and self.store.is_bot_reply(incoming.channel, incoming.platform_id):
                incoming = replace(incoming, own=True)
            try:
                stored = self.store.record(incoming)
            except sqlite3.OperationalError as err:  # locked by another process: an emergency is answered anyway
                if not self.memory.urgent(incoming, err):
                    raise  # the webhook answers 503, Meta delivers it again
                self.memory.answer(incoming)
                continue
            if stored is None:
                log.info("duplicate %s comment dropped", incoming.channel)
                known = self.store.by_platform(incoming.channel, incoming.platform_id)
                if known is not None and known.status == "new" and not known.own and known.id not in self.deciding:
                    work.append(("triage", known.id))  # stored before, but its first delivery ended in a 503
            elif not stored.own:
                work.append(("triage", stored.id))
        for change in changes:
            work += self._change(change)
        return work

    def _change(self, change: CommentChange) -> list[tuple[str, int]]:
        if change.verb == "remove":
            self.store.record_removed(change.channel, change.platform_id, change.at)
            c = self.store.by_platform(change.channel, change.platform_id)
            return [("publish", c.id)] if c else []
        if change.verb in ("hide", "unhide"):
            c = self.store.record_hidden(change.channel, change.platform_id, change.verb == "hide")
            return [("publish", c.id)] if c else []
        c = self.store.record_edit(change.channel, change.platform_id, change.text, change.kind, change.at)
        if c is None or c.own or c.removed_at:
            return []
        return [("triage", c.id)] if c.status == "new" else [("edited", c.id)]

    # -- in the background -------------------------------------------------------------

    async def run(self, work: list[tuple[str, int]]) -> None:
        """Do the work `accept` returned, in order."""
        for what, comment_id in work:
            try:
                if what == "triage":
                    await self.process(comment_id)
                elif what == "edited":
                    await self.process_edit(comment_id)
                else:
                    self._publish(self.store.get(comment_id))
            except Exception:  # one broken comment must not stop the others
                log.exception("comment %s: %s failed", comment_id, what)

    async def recover(self) -> int:
        """Triage comments stored but never decided (after a crash); how many."""
        pending = self.store.undecided()
        await self.run([("triage", c.id) for c in pending])
        return len(pending)

    async def _decide(self, c: Comment) -> Decision | None:
        """The triage of a comment; None when there is nothing to read (media, emoji or @names only)."""
        text = clean(c.text)
        if c.kind == "media" or not text:
            return None
        if c.kind in QUIET_KINDS and self.triage.safety_net.check(text) is None:
            return None
        return await self.triage.decide(text, Context(first_contact=True))  # a private reply opens a DM: say it is a bot

    def _outcome(self, c: Comment, decision: Decision | None) -> Outcome:
        if decision is None:
            return self.policy.outcome(None, None) if c.kind == "media" else NO_ACTION
        return self.policy.outcome(decision.intent, decision.action, decision.language)

    async def process(self, comment_id: int) -> None:
        """Triage a new comment and plan the policy's actions."""
        if comment_id in self.deciding:
            return
        self.deciding.add(comment_id)
        try:
            await self._process(comment_id)
        finally:
            self.deciding.discard(comment_id)

    async def _process(self, comment_id: int) -> None:
        c = self.store.get(comment_id)
        if c.status != "new" or c.own or c.removed_at:
            return
        decision = await self._decide(c)
        outcome = self._outcome(c, decision)
        c = self.store.get(comment_id)  # (removed or decided meanwhile?)
        if c.status != "new" or c.removed_at:
            return
        with self.store.log.transaction():
            self.store.decide(c.id, decision.intent if decision else None, decision.confidence if decision else None,
                              decision.action if decision else None, outcome.policy, outcome.need)
            self._plan(c, outcome, decision)
        await self._after(self.store.get(c.id), outcome)

    async def process_edit(self, comment_id: int) -> None:
        """A comment the bot or an officer acted on was edited: only an edit into an emergency changes anything."""
        c = self.store.get(comment_id)
        decision = await self._decide(c)
        if c.policy == "escalate" or decision is None or decision.action != "escalate":
            self._publish(c)
            return
        outcome = self._outcome(c, decision)
        with self.store.log.transaction():
            self.store.decide(c.id, decision.intent, decision.confidence, decision.action, outcome.policy, outcome.need)
            self._plan(c, outcome, decision)
        await self._after(self.store.get(c.id), outcome)

    def _plan(self, c: Comment, outcome: Outcome, decision: Decision | None) -> list[int]:
        """Plan the outcome's actions (hide first: evidence is captured before it); the action ids."""
        priority = PRIORITY.get(outcome.policy, 5)
        planned: list[int] = []
        steps: list[tuple[str, str]] = []
        if outcome.hide:
            steps.append(("hide", ""))
        private = self.private_text(outcome, decision)
        if private and (self.store.has_private_reply(c.id) or self.store.thread_private_reply(c)):
            self._link_thread(c)  # the citizen has a DM with us already: no second private reply
            private = ""
        if private and not self.store.private_possible(c, private):
            private = ""
        public = outcome.public_reply if private else outcome.public_alone  # never "we sent you a message" falsely
        if public:
            steps.append(("public_reply", public))
        if private:
            steps.append(("private_reply", private))
        for kind, text in steps:
            try:
                planned.append(self.store.plan(c.id, kind, text, None, priority))
            except CommentError as err:  # too old, removed, answered privately before: the inbox shows it
                log.info("comment %s: %s not planned (%s)", c.id, kind, err)
        return planned

    def private_text(self, outcome: Outcome, decision: Decision | None) -> str:
        """The private reply's text for this outcome (with the bot disclosure), or empty."""
        if not outcome.private_reply or decision is None:
            return ""
        if outcome.private_reply.startswith("from:"):
            return decision.reply  # the full escalation text or the FAQ answer, with the bot disclosure
        responses = self.triage.responses
        language = base_language(decision.language)
        text = responses._render({language: outcome.private_reply}, language, {})
        return responses.system_text("disclosure", language) + "\n\n" + text

    def _link_thread(self, c: Comment) -> None:
        """Link a reply in a thread to the DM its earlier comment opened."""
        parent = c.parent_platform_id
        while parent:
            p = self.store.by_platform(c.channel, parent) or self.store.replied_to(c.channel, parent)
            if p is None:
                return
            if p.conversation_id is not None:
                self.store.link_conversation(c.id, p.conversation_id)
                return
            parent = p.parent_platform_id

    async def _after(self, c: Comment, outcome: Outcome) -> None:
        """Tell the inbox, alert officers on an emergency, wake the executor."""
        self._publish(c, escalated=outcome.rule == "escalation")
        if outcome.alert and self.alerts is not None and getattr(self.alerts, "enabled", False):
            self.spawn(self.alerts.send(self.alert_text(c.channel, c.author, c.intent, c.text, c.id), urgent=True))
        if self.executor is not None:
            await self.executor.kick()

    async def written(self, comment_id: int, outcome: Outcome | None) -> None:
        """The records of a comment answered from memory were written: tell the inbox (or triage it as usual)."""
        if outcome is None:
            await self.process(comment_id)
            return
        c = self.store.get(comment_id)
        self._publish(c, escalated=outcome.rule == "escalation")
        if self.executor is not None:
            await self.executor.kick()  # a reply Meta refused for a while is retried by the executor

    def spawn(self, coro: Any) -> None:
        """Run in the background; kept until done."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def alert_text(self, channel: str, author: str, intent: str | None, text: str, comment_id: int | None) -> str:
        """The officers' alert for an emergency comment (Telegram HTML), shaped like an emergency DM's."""
        from bot.alerts import quote_citizen  # (bot.alerts imports the dispatcher)

        esc = lambda value: html.escape(str(value), quote=False)  # noqa: E731
        lines = ["🚨 NOTFALL in einem Kommentar",
                 f"Kanal: {'Instagram' if channel == 'instagram' else 'Facebook'} · Bürger: {esc(author)} · "
                 f"Grund: {esc(intent or 'emergency')}",
                 "Der Bot antwortet öffentlich und privat mit der 110."]
        if getattr(getattr(self.alerts, "settings", None), "alert_include_text", False) and text:
            lines += ["Wortlaut der Person (ungeprüft, Links darin nicht öffnen):", quote_citizen(text)]
        lines.append(f"Im Posteingang: {esc(self.base_url)}/inbox/kommentare" + (f"/{comment_id}" if comment_id else ""))
        return "\n".join(lines)

    def _publish(self, c: Comment, escalated: bool = False) -> None:
        """Tell the inbox pages; `escalated` (an emergency just recognised) raises the alarm on every inbox page."""
        if self.hub is not None:
            from bot.web.live import INBOX  # (bot.web imports the channels)

            data: dict[str, Any] = {"kind": "comment", "comment_id": c.id, "need": c.need}
            if escalated:
                data["escalated"] = True
            self.hub.publish(INBOX, data)
