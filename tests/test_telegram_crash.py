"""SIGKILL `python -m bot serve` while it answers a burst of 50 chats; after a restart each chat has exactly one reply.

The Bot API has no idempotency key: a reply Telegram accepted in the instant before the kill, before the bot
recorded it, is sent again after the restart (a second reply rather than none). So the kill comes once every
reply Telegram applied is recorded, while the next ones are on the wire (held, never applied).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from tests.fake_bot_api import FakeBotApi, serve_env, start_serve

CHATS = range(1000, 1050)


def recorded_sent(database: Path) -> int:
    """Replies the bot has recorded as sent, read from its SQLite file as another process would."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:  # closed, not only committed
        return db.execute("SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'").fetchone()[0]


@pytest.fixture
async def fake() -> FakeBotApi:
    api = await FakeBotApi().start()
    yield api
    await api.stop()


async def test_a_killed_bot_answers_every_chat_exactly_once_after_restart(tmp_path: Path, fake: FakeBotApi) -> None:
    env = serve_env(fake, tmp_path, MODEL_PATH=str(tmp_path / "missing-model.tar.gz"))
    bot = await start_serve(env)
    try:
        await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
        # from the 12th applied reply on, replies stay unapplied, as if still on the wire
        fake.on_send = lambda _: fake.hold("sendMessage") if len(fake.sent()) >= 12 else None
        for chat in CHATS:
            fake.text(chat, "Hallo, ich habe eine Frage zu meinem Fahrrad")
        await fake.wait_for(lambda: len(fake.sent()) >= 12, timeout=30)
        await fake.wait_for(lambda: recorded_sent(tmp_path / "streife.sqlite3") >= len(fake.sent()), timeout=30)
        await asyncio.sleep(0.3)
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
        answered_before = len(fake.sent())
        fake.on_send = None
        fake.release("sendMessage")
        assert answered_before < len(CHATS), "the burst was over before the kill"

        bot = await start_serve(env)
        await fake.wait_for(lambda: {int(p["chat_id"]) for p in fake.sent()} >= set(CHATS), timeout=60)
        polls = len(fake.calls_of("getUpdates"))
        await fake.wait_for(lambda: len(fake.calls_of("getUpdates")) > polls + 1, timeout=30)  # settled
        counts = Counter(int(p["chat_id"]) for p in fake.sent())
        assert counts == Counter({chat: 1 for chat in CHATS})
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(bot.wait(), 15)
            except asyncio.TimeoutError:
                bot.kill()
                await bot.wait()
