"""Emergencies answered while the database was locked: their records are written later.

A database another process has locked must not delay an emergency. The dispatcher answers such
an emergency from memory at once (UnwrittenAnswers, a part of bot/dispatcher.py's Dispatcher)
and the recovery loop (bot/recovery.py) writes its records when the database takes them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.channels.base import SendError
from bot.handover import Conversation, Inbound, Message
from bot.decision import Decision

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

log = logging.getLogger("bot.dispatcher")
HELD_S = 60.0  # another instance's "held in memory" counts this long after its last word (it repeats it each round)


@dataclass
class Unwritten:
    """An emergency answered while its records could not be written; the recovery loop writes them later."""

    channel: str
    chat_id: str
    inbound: Inbound | None  # not stored yet (the database was locked when it came) ...
    message_id: int | None  # ... or stored, but its decision could not be written
    decision: Decision
    replies: list[tuple[str, dict[str, Any]]]
    queue_action: str | None
    results: list[tuple[str, str | None]] = field(default_factory=list)  # per reply: (sent | pending | failed, id or error)
    sent: asyncio.Event = field(default_factory=asyncio.Event)  # every reply was tried

    @property
    def key(self) -> tuple[str, str] | None:
        """(channel, platform id) of the citizen's message, for dropping a redelivery."""
        if self.inbound is None or self.inbound.platform_id is None:
            return None
        return self.channel, str(self.inbound.platform_id)


class UnwrittenAnswers:
    """The dispatcher's part for emergencies whose records wait for the database.

    With several instances (bot/cluster.py), what one keeps in memory (an answered emergency whose
    decision is not written yet, a sent reply whose "sent" mark is not) looks undecided or unsent to
    the others in the database. The instance says so over the cluster each round until it is
    written, and the others leave those ids alone: no second 110 reply, no reply sent twice.
    """

    def announce_held(self: "Dispatcher") -> None:
        """Tell the other instances which stored messages and replies this one holds in memory."""
        held_in = [u.message_id for u in self.unwritten if u.message_id is not None]
        held_out = list(self.unrecorded_sent)
        if held_in or held_out:
            self.cluster.send({"kind": "held", "in": held_in, "out": held_out})

    def on_cluster_message(self: "Dispatcher", message: dict[str, Any]) -> None:
        """Cluster receiver: remember what another instance holds in memory."""
        if message.get("kind") != "held":
            return
        until = time.monotonic() + HELD_S
        for direction in ("in", "out"):
            for ident in message.get(direction) or ():
                if isinstance(ident, int):
                    self.held_elsewhere[(direction, ident)] = until

    def held_by_another(self: "Dispatcher", direction: str, message_id: int) -> bool:
        """True while another instance holds this message's records in memory."""
        until = self.held_elsewhere.get((direction, message_id))
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self.held_elsewhere[(direction, message_id)]
        return False

    async def _answer_unstored(self: "Dispatcher", inbound: Inbound) -> Unwritten:
        """Decide on an emergency that could not be stored (database locked) and answer it from memory."""
        try:
            conv = self.log.find_conversation(inbound.channel, inbound.chat_id)  # reading works while another process writes
        except sqlite3.OperationalError:  # (PostgreSQL unreachable: reading fails too; the records say the rest later)
            conv = None
        now = self.log.clock()
        decision = await self.triage.decide(inbound.text, self._context(conv, inbound.at or now), button=inbound.button)
        if conv is None:
            conv = Conversation(0, inbound.channel, str(inbound.chat_id), self.log.pseudonym(inbound.channel, str(inbound.user_id)),
                                decision.language, "bot", 0, None, None, now, now, None, None, None, now, {})
        log.error("database locked: emergency in %s chat %s answered from memory; its records follow", inbound.channel, conv.citizen)
        replies = [(decision.reply, {"escalate": True})] if decision.escalated else []
        item = Unwritten(inbound.channel, str(inbound.chat_id), inbound, None, decision, replies,
                         decision.action if decision.action in ("escalate", "handover") else None)
        self._register(item, dataclasses.replace(conv, last_inbound_at=now))
        return item

    def _register(self: "Dispatcher", item: Unwritten, conv: Conversation) -> None:
        """Keep an answered emergency for the recovery loop and send its replies in the background."""
        self.unwritten.append(item)
        self.announce_held()
        task = asyncio.ensure_future(self._send_unwritten(item, conv))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_unwritten(self: "Dispatcher", item: Unwritten, conv: Conversation) -> None:
        """Send an emergency's replies without their records (they are written later)."""
        try:
            sender = self.senders.get(item.channel)
            for text, meta in item.replies:
                now = self.log.clock()
                msg = Message(-next(self._provisional), conv.id, item.channel, "out", "bot", text, "text", None, None, None,
                              None, "pending", None, item.message_id, 0, None, now, None, meta)
                if sender is None:
                    item.results.append(("pending", f"no sender for {item.channel}"))
                    continue
                try:
                    item.results.append(("sent", await sender.send(conv, msg)))
                except SendError as err:
                    item.results.append(("failed" if err.final else "pending", str(err)))
                except Exception as err:  # (a sender that needs the database for a long text) it is sent again later
                    log.exception("sending an emergency reply without its record failed")
                    item.results.append(("pending", str(err)))
        finally:
            item.sent.set()
            self.recovery.wake()

    def write_unwritten(self: "Dispatcher", item: Unwritten) -> bool:
        """Write an answered emergency's records (one transaction); False while the database still refuses."""
        with self.log.transaction():
            if item.message_id is None:
                assert item.inbound is not None
                stored = self.log.record_inbound(item.inbound)
                if stored is None:  # stored meanwhile: nothing of ours to add
                    return True
                item.message_id = stored.message.id
            msg = self.log.message(item.message_id)
            conv = self.log.conversation(msg.conversation_id)
            if msg.status != "received":
                return True
            ids = self._record(msg, conv, item.decision, item.replies, item.queue_action, None)
            for message_id, (status, value) in zip(ids, item.results):
                if status == "sent":
                    self.log.mark_sent(message_id, value)
                else:
                    self.log.mark_failed(message_id, value or "", final=status == "failed")
        return True

    async def announce_written(self: "Dispatcher", item: Unwritten) -> None:
        """Tell the inbox and the alerts about an emergency whose records were just written."""
        assert item.message_id is not None
        msg = self.log.message(item.message_id)
        conv = self.log.conversation(msg.conversation_id)
        from bot.dispatcher import Event  # (the dispatcher imports this module)

        await self.emit(Event("message", conv, msg, item.decision))
        if item.queue_action:
            await self.emit(Event("escalated" if item.decision.escalated else "queued", conv, msg, item.decision))

    def unwritten_view(self: "Dispatcher", channel: str, chat_id: str) -> list[dict[str, Any]]:
        """What the web chat shows of its answered emergencies until their records are written."""
        shown: list[dict[str, Any]] = []
        for item in self.unwritten:
            if (item.channel, item.chat_id) != (channel, str(chat_id)):
                continue
            if item.inbound is not None:
                shown.append({"id": 0, "author": "citizen", "text": item.inbound.text, "buttons": []})
            shown += [{"id": 0, "author": "bot", "text": text, "buttons": meta.get("buttons") or []} for text, meta in item.replies]
        return shown
