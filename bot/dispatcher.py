"""The flow of one message: dedupe, log, triage, hand over, send (DESIGN.md).

The handover log is written first, so a crash loses nothing. A database another process has
locked must neither freeze the event loop nor delay an emergency: writes that meet the lock are
retried off the loop (asyncio sleeps between tries), and an emergency whose records cannot be
written is answered from memory at once; bot/recovery.py writes its records when the database
takes them again (Unwritten below). Whatever stays undecided or unsent is retried by that one
recovery loop, for every channel.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, AsyncContextManager, Awaitable, Callable, TypeVar

from bot.channels.base import SendError, Sender
from bot.cluster import Cluster, SingleNode
from bot.danger_check import Checked
from bot.handover import Conversation, HandoverLog, Inbound, Message
from bot.handover.records import is_busy
from bot.safety_net import ESCALATION_INTENTS
from bot.text import clean
from bot.decision import Context, Decision
from bot.triage import Triage
from bot.unwritten import Unwritten, UnwrittenAnswers

if TYPE_CHECKING:
    from bot.recovery import Recovery

log = logging.getLogger(__name__)

FLOOD_MESSAGES = 8  # more than this many messages from one chat (FLOOD_MESSAGES setting) ...
FLOOD_SECONDS = 30  # ... within this many seconds: one calm note, then quiet (emergencies excepted)
WRITE_WAIT_S = 2.0  # how long an ordinary message waits (off the loop) for another process's write lock
T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """Something officers' screens and alerts care about."""

    kind: str  # message | queued | escalated | sent | officer
    conversation: Conversation
    message: Message | None = None
    decision: Decision | None = None


Listener = Callable[[Event], Awaitable[None] | None]


class Dispatcher(UnwrittenAnswers):
    """Takes citizens' messages from any channel through triage and the handover log."""

    def __init__(
        self, handover: HandoverLog, triage: Triage, senders: dict[str, Sender] | None = None,
        disclosure_pause_hours: float = 24.0, flood_messages: int = FLOOD_MESSAGES,
    ) -> None:
        self.log = handover
        self.flood_messages = flood_messages
        self.disclosure_pause = timedelta(hours=disclosure_pause_hours)  # silence after which the bot says again it is a bot
        self.triage = triage
        self.senders: dict[str, Sender] = dict(senders or {})
        self.listeners: list[Listener] = []
        self.cluster: Cluster = SingleNode()  # PgCluster with PostgreSQL (bot/web/app.py): locks across instances, the leader
        self.unwritten: list[Unwritten] = []  # answered emergencies whose records wait for the database
        self.held_elsewhere: dict[tuple[str, int], float] = {}  # ("in"|"out", id) another instance holds in memory -> until
        self.unrecorded_sent: dict[int, str | None] = {}  # sent replies whose "sent" mark waits for the database
        self.failed_at: dict[int, float] = {}  # outbound id -> when its last send failed (the recovery loop backs off)
        self.sending: set[int] = set()  # outbound ids being sent right now
        self.deciding: set[int] = set()  # inbound ids being decided right now
        self._provisional = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        from bot.recovery import Recovery  # (it drives this class)

        self.recovery: Recovery = Recovery(self)

    @property
    def _locks(self) -> dict[int, asyncio.Lock]:
        """This instance's asyncio lock per conversation (the first half of conversation_lock)."""
        return self.cluster.local_locks

    def conversation_lock(self, conversation_id: int, urgent: bool = False) -> AsyncContextManager[None]:
        """One task on one instance at a time decides or sends a conversation's messages, in order."""
        return self.cluster.conversation_lock(conversation_id, urgent)

    # -- taking a message in ----------------------------------------------------------------

    async def handle(self, inbound: Inbound) -> list[Message] | None:
        """Store, decide and answer one message; None when it was a duplicate."""
        taken = await self.take(inbound)
        if taken is None:
            return None
        if isinstance(taken, Unwritten):
            await taken.sent.wait()
            return []
        return await self.process_and_deliver(taken.id)

    def receive(self, inbound: Inbound) -> Message | None:
        """Write the message to the log first (so a crash loses nothing); None for a duplicate."""
        stored = self.log.record_inbound(inbound)
        if stored is None:
            log.info("duplicate %s message dropped (%s)", inbound.channel, self.log.pseudonym(inbound.channel, str(inbound.user_id)))
            return None
        return stored.message

    async def take(self, inbound: Inbound) -> Message | Unwritten | None:
        """Store a message; None for a duplicate. While another process locks the database an
        emergency is answered from memory at once (an Unwritten comes back), anything else waits
        up to WRITE_WAIT_S off the loop and then raises (the channel answers 503, the sender retries)."""
        if inbound.platform_id is not None and any(u.key == (inbound.channel, str(inbound.platform_id)) for u in self.unwritten):
            return None  # answered from memory already; its record is on its way
        try:
            return self.receive(inbound)
        except sqlite3.OperationalError as err:
            if not is_busy(err):
                raise  # read-only, disk full: refused (503), the platform delivers again
            if self.urgent(inbound.text, inbound.button):
                return await self._answer_unstored(inbound)
        return await self.written(lambda: self.receive(inbound))

    def urgent(self, text: str | None, button: str | None = None) -> bool:
        """True when the safety net fires (or an emergency button was pressed): no model needed to know."""
        return button in ESCALATION_INTENTS or bool(text and self.triage.safety_net.check(clean(text)) is not None)

    async def written(self, write: Callable[[], T], wait_s: float = WRITE_WAIT_S) -> T:
        """Run a write; while the database is locked by another process, try again off the loop for up to `wait_s`."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + wait_s, 0.01
        while True:
            try:
                return write()
            except sqlite3.OperationalError as err:
                if not is_busy(err) or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    # -- deciding -------------------------------------------------------------------------------

    async def process_and_deliver(self, message_id: int) -> list[Message]:
        """Decide on a stored message and send the replies, in order per conversation.

        Under the conversation's lock, the chat's earlier messages nobody decided yet (their instance
        died between storing and deciding) are decided first, and its earlier replies still pending
        (on the wire when an instance died) are sent first: a citizen never gets an answer before the
        answer to what they wrote earlier. An emergency goes first all the same; the rest follows it.
        """
        msg = self.log.message(message_id)
        urgent = self.urgent(msg.text, msg.meta.get("button"))
        self.deciding.add(message_id)
        try:
            async with self.conversation_lock(msg.conversation_id, urgent):
                if urgent:
                    sent = await self._deliver(await self.process(message_id))
                    return sent + await self._catch_up(msg.conversation_id, message_id)
                await self._catch_up(msg.conversation_id, message_id)
                return await self._deliver(await self.process(message_id))
        finally:
            self.deciding.discard(message_id)

    async def _catch_up(self, conversation_id: int, message_id: int) -> list[Message]:
        """Decide the chat's undecided messages before `message_id`, then send its pending replies, oldest first."""
        for earlier in self.log.undecided_before(conversation_id, message_id):
            if earlier.id not in self.deciding:
                await self.process(earlier.id)
        retrying = self.failed_at  # (a reply whose send just failed here waits for the recovery loop's backoff)
        return await self._deliver([i for i in self.log.pending_outbound_ids(conversation_id) if i not in retrying])

    def _context(self, conv: Conversation | None, created_at: str) -> Context:
        if conv is None:
            return Context(first_contact=True)
        replied_before = self.log.has_bot_reply(conv.id)
        pause_start = (datetime.fromisoformat(created_at) - self.disclosure_pause).isoformat(timespec="milliseconds")
        return Context(
            recent_actions=self.log.recent_actions(conv.id),
            first_contact=not self.log.has_bot_reply(conv.id, since=pause_start),  # first contact or a long pause
            language=conv.language if replied_before else None,
            checked=Checked.from_meta(conv.meta.get("checked")),
        )

    async def process(self, message_id: int) -> list[int]:
        """Triage a stored inbound message; store the decision and the replies together."""
        msg = self.log.message(message_id)
        if msg.status != "received" or any(u.message_id == msg.id for u in self.unwritten) or self.held_by_another("in", msg.id):
            return []
        conv = self.log.conversation(msg.conversation_id)
        context = self._context(conv, msg.created_at)
        if msg.text or msg.kind in ("text", "button"):
            decision = await self.triage.decide(msg.text, context, button=msg.meta.get("button"))
        else:
            decision = self.triage.media(msg.kind, context)
        flooding = self._flooding(conv, msg)
        replies: list[tuple[str, dict[str, Any]]] = []
        queue_action = decision.action if decision.action in ("escalate", "handover") else None
        if decision.escalated:
            replies.append((decision.reply, {"escalate": True}))
        elif flooding == "note":
            replies.append((self.triage.responses.system_text("flood", decision.language), {}))
        elif not conv.with_officer and flooding is None:
            replies.append((decision.reply, {"buttons": [list(b) for b in decision.buttons]} if decision.buttons else {}))
        try:
            if decision.escalated:  # an emergency never waits for a lock: one try, then it is answered from memory
                ids = self._record(msg, conv, decision, replies, queue_action, flooding)
            else:
                ids = await self.written(lambda: self._record(msg, conv, decision, replies, queue_action, flooding))
        except sqlite3.OperationalError as err:
            if not decision.escalated:
                log.error("decision on %s message %s not stored (%s); the recovery loop tries again", msg.channel, msg.id, err)
                raise
            log.error("emergency in %s chat %s answered; its records wait for the database (%s)", msg.channel, conv.citizen, err)
            item = Unwritten(msg.channel, conv.chat_id, None, msg.id, decision, replies, queue_action)
            self._register(item, conv)
            return []
        conv = self.log.conversation(conv.id)
        await self.emit(Event("message", conv, self.log.message(msg.id), decision))
        if queue_action:
            await self.emit(Event("escalated" if decision.escalated else "queued", conv, self.log.message(msg.id), decision))
        return ids

    def _record(self, msg: Message, conv: Conversation, decision: Decision, replies: list[tuple[str, dict[str, Any]]],
                queue_action: str | None, flooding: str | None) -> list[int]:
        """Store a decision and its replies (pending) in one transaction; the replies' ids."""
        ids: list[int] = []
        with self.log.transaction():
            self.log.record_decision(msg.id, decision.intent or None, decision.confidence if decision.intent else None, decision.action)
            if decision.text:
                self.log.update_conversation(conv.id, language=decision.language)
            if decision.checked is not None:  # what "in danger?" asked about, for the citizen's answer
                self.log.update_conversation(conv.id, meta={"checked": decision.checked.as_meta()})
            for text, meta in replies:
                ids.append(self.log.add_outbound(conv.id, text, "bot", reply_to=msg.id, meta=meta))
            if queue_action:
                self.log.queue(conv.id, queue_action, decision.intent or queue_action)
            if flooding == "note":
                self.log.update_conversation(conv.id, meta={"flood_noted_at": msg.created_at})
        return ids

    def _flooding(self, conv: Conversation, msg: Message) -> str | None:
        """None normally; "note" for the first message past the flood limit; "quiet" after that."""
        since = (datetime.fromisoformat(msg.created_at) - timedelta(seconds=FLOOD_SECONDS)).isoformat(timespec="milliseconds")
        count = self.log.count_inbound_since(conv.id, since)
        if count <= self.flood_messages:
            return None
        noted = conv.meta.get("flood_noted_at")
        return "quiet" if noted and noted >= since else "note"

    # -- sending --------------------------------------------------------------------------------

    async def deliver(self, outbound_ids: list[int]) -> list[Message]:
        """Send stored replies through their conversation's channel, in order per conversation; failures stay pending."""
        by_conversation: dict[int, list[int]] = {}
        for message_id in outbound_ids:
            by_conversation.setdefault(self.log.message(message_id).conversation_id, []).append(message_id)
        sent: list[Message] = []
        for conversation_id, ids in by_conversation.items():
            async with self.conversation_lock(conversation_id):
                sent += await self._deliver(ids)
        return sent

    async def _deliver(self, outbound_ids: list[int]) -> list[Message]:
        """Send stored replies (the conversation's lock is held)."""
        sent = []
        for message_id in outbound_ids:
            if message_id in self.sending or message_id in self.unrecorded_sent or self.held_by_another("out", message_id):
                continue
            msg = self.log.message(message_id)
            if msg.status != "pending":
                continue
            conv = self.log.conversation(msg.conversation_id)
            sender = self.senders.get(conv.channel)
            if sender is None:
                log.error("no sender for channel %s; message %s stays pending", conv.channel, msg.id)
                continue
            self.sending.add(msg.id)
            try:
                platform_id = await sender.send(conv, msg)
            except SendError as err:
                self._failed(msg, conv, err)
                continue
            finally:
                self.sending.discard(msg.id)
            if not self._mark_sent(msg.id, platform_id):
                continue
            sent.append(self.log.message(msg.id))
            await self.emit(Event("sent", conv, sent[-1]))
        return sent

    def _failed(self, msg: Message, conv: Conversation, err: SendError) -> None:
        """Record a failed send; the recovery loop tries again later unless it was final."""
        log.warning("sending message %s to %s failed: %s", msg.id, conv.citizen, err)
        self.failed_at[msg.id] = asyncio.get_running_loop().time()
        try:
            self.log.mark_failed(msg.id, str(err), final=err.final)
        except sqlite3.OperationalError as db_err:
            log.error("could not record the failed send of message %s (%s); it stays pending", msg.id, db_err)

    def _mark_sent(self, message_id: int, platform_id: str | None) -> bool:
        """Record a delivery; if the database refuses, keep it in memory (never send twice) for the recovery loop."""
        self.failed_at.pop(message_id, None)
        try:
            self.log.mark_sent(message_id, platform_id)
            return True
        except sqlite3.OperationalError as err:
            self.unrecorded_sent[message_id] = platform_id
            self.announce_held()
            log.error("message %s was sent but could not be recorded (%s); recorded later", message_id, err)
            self.recovery.wake()
            return False

    async def recover(self) -> int:
        """Decide on stored but undecided messages and send what is pending, now (escalations first)."""
        return await self.recovery.run_once(everything_due=True)

    async def emit(self, event: Event) -> None:
        """Tell the listeners (inbox live view, alerts, metrics); a failing listener never stops a reply."""
        for listener in list(self.listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken screen must never stop a reply
                log.exception("event listener failed for %s", event.kind)
