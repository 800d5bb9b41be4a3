"""One recovery loop for every channel: what was stored but not decided, sent, or written is finished without a restart.

A message whose second write failed (disk full, a lock held by another process) stays undecided;
a reply the platform did not take stays pending; an emergency answered while the database was
locked waits in memory for its records (bot/dispatcher.py, Unwritten). Each round, escalations
first: write those records, decide undecided messages, send pending replies (in order per chat,
under the dispatcher's lock of the conversation), each with its own backoff. After a start,
ordinary messages wait until the model is back or its deadline passed (the emergencies do not).
With several instances (PostgreSQL) every instance writes back its own memory, and only the leader
(bot/cluster.py) runs the database-wide rounds; the conversation locks keep it from deciding or
sending what another instance is handling.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Awaitable

from bot.handover import Message
from bot.handover.records import is_busy

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

log = logging.getLogger(__name__)

TICK_S = 1.0  # a round at least this often (sooner when a write or send failed)
UNDECIDED_GRACE_S = 5.0  # a stored message is left this long to the task that stored it
FIRST_TRY_GRACE_S = 30.0  # a reply never tried is left this long to whoever stored it
DELAY_S = (5.0, 300.0)  # backoff of ordinary retries: first delay, longest delay (doubling in between)
URGENT_DELAY_S = (1.0, 30.0)  # the same for escalations
MAX_ATTEMPTS = 8  # a reply is given up after this many failed sends ...
GIVE_UP_AGE_S = 600.0  # ... once it is also this old (the officers see it as not sent)


def backoff(attempts: int, urgent: bool = False) -> float:
    """Seconds to wait after the `attempts`-th failure."""
    first, longest = URGENT_DELAY_S if urgent else DELAY_S
    return min(first * 2 ** max(0, attempts - 1), longest)


def age_s(message: Message) -> float:
    """How long ago a message was stored (its platform time for some channels)."""
    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(message.created_at)).total_seconds()
    except (TypeError, ValueError):
        return float("inf")


class Recovery:
    """The loop, and single rounds of it (at start-up and in tests)."""

    def __init__(self, dispatcher: "Dispatcher", tick_s: float = TICK_S) -> None:
        self.dispatcher = dispatcher
        self.tick_s = tick_s
        self.rounds = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._hold: asyncio.Future[object] | None = None
        self._catch_up = False  # the hold just ended: decide everything held back, now
        self._inbound_due: dict[int, tuple[int, float]] = {}  # message id -> (failures, next try)
        self._write_due = (0, 0.0)  # (failures, next try) of the records waiting in memory
        self._no_sender: set[str] = set()

    @property
    def holding(self) -> bool:
        """True while ordinary undecided messages wait for the model (after a start)."""
        return self._hold is not None and not self._hold.done()

    def wake(self) -> None:
        """Run a round soon (a write or a send just failed)."""
        if self._wake is not None:
            self._wake.set()

    def start(self, hold: Awaitable[object] | None = None) -> asyncio.Task[None]:
        """Run the loop in the background; until `hold` is done only escalations are decided."""
        self._wake = asyncio.Event()
        if hold is not None:
            self._hold = asyncio.ensure_future(hold)
            self._hold.add_done_callback(self._released)
        self._task = asyncio.create_task(self._loop(), name="recovery")
        self.dispatcher.cluster.on_leader.append(self._leadership)
        return self._task

    def _released(self, _: object) -> None:
        self._catch_up = True
        self.wake()

    def _leadership(self, leader: bool) -> None:
        """This instance took over: what the last leader left is due now (grace times and backoff aside)."""
        if leader:
            self._released(None)

    async def stop(self) -> None:
        """End the loop (what is left stays stored for the next start)."""
        if self._leadership in self.dispatcher.cluster.on_leader:
            self.dispatcher.cluster.on_leader.remove(self._leadership)
        for task in (self._task, self._hold):
            if task is not None:
                task.cancel()
        for task in (self._task, self._hold):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _loop(self) -> None:
        assert self._wake is not None
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                catch_up, self._catch_up = self._catch_up, False
                try:
                    await self.run_once(everything_due=catch_up)
                except Exception:  # never let the loop die; the next round tries again
                    log.exception("recovery round failed")
        finally:
            if self._hold is not None:
                self._hold.cancel()

    async def run_once(self, everything_due: bool = False, hold_ordinary: bool | None = None) -> int:
        """One round, escalations first; `everything_due` ignores grace times and backoff. Returns how much it handled."""
        self.rounds += 1
        hold = self.holding if hold_ordinary is None else hold_ordinary
        handled = await self._write_back(everything_due)  # this instance's memory: on every instance
        if not self.dispatcher.cluster.is_leader:  # the database-wide rounds run on the leader only
            return handled
        handled += await self._decide(everything_due, hold)
        handled += await self._send(everything_due)
        return handled

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- records the database refused ----------------------------------------------------------

    async def _write_back(self, everything_due: bool) -> int:
        """Write answered emergencies' records, then delivery marks, that wait in memory."""
        d = self.dispatcher
        failures, due = self._write_due
        if not (d.unwritten or d.unrecorded_sent) or (not everything_due and self._now() < due):
            return 0
        done = 0
        try:
            for item in list(d.unwritten):
                if not item.sent.is_set():
                    continue
                d.write_unwritten(item)
                d.unwritten.remove(item)
                done += 1
                log.info("records of an emergency answered from memory written (%s)", item.channel)
                await d.announce_written(item)
            for message_id, platform_id in list(d.unrecorded_sent.items()):
                d.log.mark_sent(message_id, platform_id)
                del d.unrecorded_sent[message_id]
                done += 1
        except sqlite3.OperationalError as err:
            d.announce_held()  # (the other instances leave these alone meanwhile)
            failures += 1
            wait = 0.2 if is_busy(err) else min(2.0 ** failures, 30.0)
            self._write_due = (failures, self._now() + wait)
            log.warning("records waiting in memory not written yet (%s); next try in %.1f s", err, wait)
            return done
        self._write_due = (0, 0.0)
        return done

    # -- undecided messages ---------------------------------------------------------------------

    async def _decide(self, everything_due: bool, hold: bool) -> int:
        """Decide on stored messages nobody is deciding on: escalations first, the rest unless held."""
        d = self.dispatcher
        waiting = {u.message_id for u in d.unwritten}
        urgent: list[Message] = []
        ordinary: list[Message] = []
        for msg in d.log.unprocessed_inbound():
            if msg.id in d.deciding or msg.id in waiting:
                continue
            if not everything_due and (age_s(msg) < UNDECIDED_GRACE_S or self._inbound_due.get(msg.id, (0, 0.0))[1] > self._now()):
                continue
            (urgent if d.urgent(msg.text, msg.meta.get("button")) else ordinary).append(msg)
        done = 0
        for msg in urgent + ([] if hold else ordinary):
            try:
                await d.process_and_deliver(msg.id)
            except Exception as err:  # the database still refuses, or a channel broke: later, with backoff
                failures = self._inbound_due.get(msg.id, (0, 0.0))[0] + 1
                wait = backoff(failures, urgent=msg in urgent)
                self._inbound_due[msg.id] = (failures, self._now() + wait)
                log.warning("deciding %s message %s failed (%s); next try in %.0f s", msg.channel, msg.id, err, wait)
                continue
            self._inbound_due.pop(msg.id, None)
            done += 1
        return done

    # -- pending replies ------------------------------------------------------------------------

    async def _send(self, everything_due: bool) -> int:
        """Send pending replies, conversations with an escalation first, each conversation's in order."""
        d = self.dispatcher
        by_conversation: dict[int, list[Message]] = {}
        for msg in d.log.pending_outbound():
            if msg.channel not in d.senders:  # (a channel switched off: its replies wait for it)
                if msg.channel not in self._no_sender:
                    self._no_sender.add(msg.channel)
                    log.warning("replies for %s wait: that channel is not configured", msg.channel)
                continue
            if msg.id not in d.sending and msg.id not in d.unrecorded_sent:
                by_conversation.setdefault(msg.conversation_id, []).append(msg)
        plans = []
        for conversation_id, messages in by_conversation.items():
            messages = [m for m in messages if not self._give_up(m)]
            if not messages:
                continue
            urgent = any(m.meta.get("escalate") for m in messages)
            if everything_due or self._due(messages[0], urgent):
                plans.append((not urgent, messages[0].id, [m.id for m in messages]))
        done = 0
        for _, _, ids in sorted(plans):
            try:
                done += len(await d.deliver(ids))
            except Exception as err:  # e.g. the database refuses the delivery mark: the next round
                log.warning("resending %d replies failed: %s", len(ids), err)
        return done

    def _due(self, msg: Message, urgent: bool) -> bool:
        """A reply's turn: never tried and left alone long enough, or its backoff after the last failure is over."""
        if msg.attempts == 0:
            return urgent or age_s(msg) >= FIRST_TRY_GRACE_S
        failed = self.dispatcher.failed_at.get(msg.id)
        return failed is None or self._now() >= failed + backoff(msg.attempts, urgent)

    def _give_up(self, msg: Message) -> bool:
        """Mark a reply failed for good after MAX_ATTEMPTS sends and GIVE_UP_AGE_S (the officers see it)."""
        if msg.attempts < MAX_ATTEMPTS or age_s(msg) < GIVE_UP_AGE_S:
            return False
        try:
            self.dispatcher.log.mark_failed(msg.id, f"Aufgegeben nach {msg.attempts} Versuchen. {msg.error or ''}".strip(), final=True)
        except sqlite3.OperationalError:
            return True  # next round
        self.dispatcher.failed_at.pop(msg.id, None)
        log.warning("gave up sending %s message %s after %d attempts", msg.channel, msg.id, msg.attempts)
        return True
