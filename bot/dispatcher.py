"""The flow of one message: dedupe, log, triage, hand over, send (DESIGN.md)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from bot.channels.base import SendError, Sender
from bot.handover import Conversation, HandoverLog, Inbound, Message
from bot.triage import Context, Decision, Triage

log = logging.getLogger(__name__)

FLOOD_MESSAGES = 8  # more than this many messages from one chat (FLOOD_MESSAGES setting) ...
FLOOD_SECONDS = 30  # ... within this many seconds: one calm note, then quiet (emergencies excepted)


@dataclass(frozen=True)
class Event:
    """Something officers' screens and alerts care about."""

    kind: str  # message | queued | escalated | sent | officer
    conversation: Conversation
    message: Message | None = None
    decision: Decision | None = None


Listener = Callable[[Event], Awaitable[None] | None]


class Dispatcher:
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
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, inbound: Inbound) -> list[Message] | None:
        """Store, decide and answer one message; None when it was a duplicate."""
        stored = self.receive(inbound)
        if stored is None:
            return None
        return await self.process_and_deliver(stored.id)

    def receive(self, inbound: Inbound) -> Message | None:
        """Write the message to the log first (so a crash loses nothing); None for a duplicate."""
        stored = self.log.record_inbound(inbound)
        if stored is None:
            log.info("duplicate %s message %s dropped", inbound.channel, inbound.platform_id)
            return None
        return stored.message

    async def process_and_deliver(self, message_id: int) -> list[Message]:
        """Decide on a stored message and send the replies, in order per conversation."""
        conversation_id = self.log.message(message_id).conversation_id
        async with self._locks[conversation_id]:
            outbound = await self.process(message_id)
            return await self.deliver(outbound)

    async def process(self, message_id: int) -> list[int]:
        """Triage a stored inbound message; store the decision and the replies together."""
        msg = self.log.message(message_id)
        if msg.status != "received":
            return []
        conv = self.log.conversation(msg.conversation_id)
        replied_before = self.log.has_bot_reply(conv.id)
        pause_start = (datetime.fromisoformat(msg.created_at) - self.disclosure_pause).isoformat(timespec="milliseconds")
        context = Context(
            recent_actions=self.log.recent_actions(conv.id),
            first_contact=not self.log.has_bot_reply(conv.id, since=pause_start),  # first contact or a long pause
            language=conv.language if replied_before else None,
        )
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
        ids: list[int] = []
        with self.log.transaction():
            self.log.record_decision(msg.id, decision.intent or None, decision.confidence if decision.intent else None, decision.action)
            if decision.text:
                self.log.update_conversation(conv.id, language=decision.language)
            for text, meta in replies:
                ids.append(self.log.add_outbound(conv.id, text, "bot", reply_to=msg.id, meta=meta))
            if queue_action:
                conv = self.log.queue(conv.id, queue_action, decision.intent or queue_action)
            if flooding == "note":
                self.log.update_conversation(conv.id, meta={"flood_noted_at": msg.created_at})
        conv = self.log.conversation(conv.id)
        await self.emit(Event("message", conv, self.log.message(msg.id), decision))
        if queue_action:
            await self.emit(Event("escalated" if decision.escalated else "queued", conv, self.log.message(msg.id), decision))
        return ids

    def _flooding(self, conv: Conversation, msg: Message) -> str | None:
        """None normally; "note" for the first message past the flood limit; "quiet" after that."""
        since = (datetime.fromisoformat(msg.created_at) - timedelta(seconds=FLOOD_SECONDS)).isoformat(timespec="milliseconds")
        count = self.log.count_inbound_since(conv.id, since)
        if count <= self.flood_messages:
            return None
        noted = conv.meta.get("flood_noted_at")
        return "quiet" if noted and noted >= since else "note"

    async def deliver(self, outbound_ids: list[int]) -> list[Message]:
        """Send stored replies through their conversation's channel; failures stay pending."""
        sent = []
        for message_id in outbound_ids:
            msg = self.log.message(message_id)
            if msg.status != "pending":
                continue
            conv = self.log.conversation(msg.conversation_id)
            sender = self.senders.get(conv.channel)
            if sender is None:
                log.error("no sender for channel %s; message %s stays pending", conv.channel, msg.id)
                continue
            try:
                platform_id = await sender.send(conv, msg)
            except SendError as err:
                self.log.mark_failed(msg.id, str(err), final=err.final)
                log.warning("sending message %s to %s failed: %s", msg.id, conv.citizen, err)
                continue
            self.log.mark_sent(msg.id, platform_id)
            sent.append(self.log.message(msg.id))
            await self.emit(Event("sent", conv, sent[-1]))
        return sent

    async def recover(self) -> int:
        """After a restart: decide on stored but undecided messages and resend what is pending."""
        count = 0
        for msg in self.log.unprocessed_inbound():
            await self.process_and_deliver(msg.id)
            count += 1
        pending = [m.id for m in self.log.pending_outbound()]
        await self.deliver(pending)
        return count + len(pending)

    async def emit(self, event: Event) -> None:
        """Tell the listeners (inbox live view, alerts, metrics); a failing listener never stops a reply."""
        for listener in list(self.listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken screen must never stop a reply
                log.exception("event listener failed for %s", event.kind)

