"""The Telegram channel's pure parts: splitting, chat keys, the webhook URL, the rate limiter's order."""

from __future__ import annotations

import asyncio

import pytest

from bot.channels.telegram_app import webhook_url
from bot.channels.telegram_sender import RateLimiter, split_text
from bot.channels.telegram_updates import chat_key, parse_chat_key


@pytest.mark.parametrize("text", ["kurz", "Wort " * 2000, "ä" * 9000, "🚨" * 3000 + "\n\n" + "x " * 3000])
def test_split_text_keeps_every_word_and_stays_under_the_limit(text: str) -> None:
    parts = split_text(text)
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


@pytest.mark.parametrize(("chat", "connection", "key"), [(42, None, "42"), (42, "bc:1", "biz:bc:1:42")])
def test_chat_keys_round_trip(chat: int, connection: str | None, key: str) -> None:
    assert chat_key(chat, connection) == key
    assert parse_chat_key(key) == (chat, connection)


@pytest.mark.parametrize(("setting", "url"), [
    ("https://bot.example.org", "https://bot.example.org/telegram/webhook"),
    ("https://bot.example.org/", "https://bot.example.org/telegram/webhook"),
    ("https://proxy.example.org/streife/telegram/webhook", "https://proxy.example.org/streife/telegram/webhook"),
])
def test_webhook_url(setting: str, url: str) -> None:
    assert webhook_url(setting) == url


async def test_an_emergency_overtakes_queued_replies() -> None:
    limiter = RateLimiter(overall_per_s=5, chat_interval_s=0)
    order: list[str] = []

    async def send(name: str, urgent: bool) -> None:
        await limiter.acquire(hash(name), urgent)
        order.append(name)

    normal = [asyncio.create_task(send(f"n{i}", False)) for i in range(8)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(send("emergency", True))
    await asyncio.gather(*normal, urgent)
    assert order[5] == "emergency"
    assert order[:5] == ["n0", "n1", "n2", "n3", "n4"]  # the burst allowance was used before it came
