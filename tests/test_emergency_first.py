"""Emergencies first in every queue where replies wait: an emergency reply overtakes 100 queued ordinary ones.

End to end against the fake Bot API on 127.0.0.1 with Telegram's rate limit set low (20 messages a
second), and the priority gate the Telegram channel and the Meta senders wait at.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.channels.priority import PriorityGate
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot

EMERGENCY = "Hilfe, hier ist ein Einbrecher im Haus!"
ORDINARY = 100


async def test_an_emergency_reply_overtakes_100_queued_ordinary_replies(tmp_path: Path, triage_no_model: Triage) -> None:
    fake = await FakeBotApi().start()
    try:
        async with running_bot(bot_settings(tmp_path, fake, TELEGRAM_MAX_RATE="10"), triage_no_model):
            await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=10)
            for chat in range(1000, 1000 + ORDINARY):
                fake.text(chat, "/help")
            await fake.wait_for(lambda: fake.sent(), timeout=10)  # the ordinary replies are on their way (a burst of 10 first)
            sent_before = len(fake.sent())
            fake.text(999, EMERGENCY)
            came = time.monotonic()
            await fake.wait_for(lambda: fake.sent(999), timeout=10)
            answered = time.monotonic() - came
            chats = [int(p["chat_id"]) for p in fake.sent()]
    finally:
        await fake.stop()
    position = chats.index(999)
    assert "110" in fake.sent(999)[0]["plain"]
    assert ORDINARY - sent_before >= 85  # this many ordinary replies were waiting when it came ...
    assert position <= sent_before + 2, (position, sent_before)  # ... and it went out before (almost) all of them
    assert answered < 1.0, answered  # 90 ordinary replies at 10 a second would take 9 s


async def test_the_priority_gate_lets_an_urgent_caller_in_before_100_waiting_ones() -> None:
    gate = PriorityGate(2)
    order: list[str] = []

    async def one(name: str, urgent: bool = False) -> None:
        async with gate.slot(urgent):
            order.append(name)
            await asyncio.sleep(0.001)

    waiting = [asyncio.create_task(one(f"o{n}")) for n in range(100)]
    await asyncio.sleep(0)  # they all queue up behind the first two
    urgent = asyncio.create_task(one("urgent", urgent=True))
    await asyncio.gather(*waiting, urgent)
    assert order.index("urgent") <= 3 and len(order) == 101 and gate.active == 0
    await gate.acquire()
    await gate.acquire()  # full
    gave_up = asyncio.create_task(gate.acquire(urgent=True))
    later = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gave_up.cancel()  # a caller that gives up while waiting does not keep a place
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(later, 1)
    gate.release()
    gate.release()
    assert gate.active == 0 and gate.waiting == 0
