"""Telegram end to end under load: latency from an update appearing to its sendMessage, and crash safety.

    .venv/bin/python -m bench.telegram_load [--seconds 20] [--kills 5]

Runs `python -m bot serve` as a subprocess against the fake Bot API server (tests/fake_bot_api.py) on
127.0.0.1. Part 1 (real NLU model): p50/p99 latency at 10 and 30 messages/s offered from 200 chats.
Part 2 (safety-net mode for fast restarts): one message per chat at 20 messages/s while the bot is
SIGKILLed and restarted `--kills` times; then counts chats with no reply (lost) and more than one (doubled).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import tempfile
import time
from collections import Counter

import aiohttp

from tests.fake_bot_api import FakeBotApi, free_port, serve_env, start_serve

TEXTS = ["Wie erstatte ich eine Anzeige?", "Mein Fahrrad wurde geklaut, was nun?", "Wo ist die nächste Polizeiwache?",
         "Ich habe meinen Geldbeutel verloren", "Wie werde ich Polizist?", "Danke für eure Arbeit!",
         "Ich habe einen komischen Anruf von einem falschen Polizisten bekommen"]




async def wait_for_model(port: int, timeout_s: float = 120) -> None:
    """Wait until /healthz says the NLU model answers."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if (await response.json()).get("mode") == "nlu":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the model did not load in time")


async def offer(fake: FakeBotApi, rate: float, seconds: float, chats: list[int]) -> list[tuple[int, int]]:
    """Inject `rate` messages per second round-robin over `chats`; return (chat, update_id) in order."""
    sent, start, i = [], time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while i < due:
            chat = chats[i % len(chats)]
            sent.append((chat, fake.text(chat, random.choice(TEXTS))))
            i += 1
        await asyncio.sleep(0.005)
    return sent


def latencies(fake: FakeBotApi, offered: list[tuple[int, int]]) -> tuple[list[float], int]:
    """Per chat, the k-th message pairs with the k-th reply; returns latencies (s) and unanswered count."""
    replies: dict[int, list[float]] = {}
    for call in fake.calls_of("sendMessage"):
        replies.setdefault(int(call.params["chat_id"]), []).append(call.at)
    seen: Counter[int] = Counter()
    out, missing = [], 0
    for chat, update_id in offered:
        k = seen[chat]
        seen[chat] += 1
        if k < len(replies.get(chat, [])):
            out.append(replies[chat][k] - fake.injected_at[update_id])
        else:
            missing += 1
    return out, missing


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else (values[0] if values else float("nan"))


async def latency_runs(seconds: float) -> None:
    fake = await FakeBotApi().start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = serve_env(fake, tmp, WEB_PORT=str(port))
        bot = await start_serve(env)
        try:
            await wait_for_model(port)
            for chat in range(100, 110):  # warm up the model (its first parses are slow)
                fake.text(chat, random.choice(TEXTS))
            await fake.wait_for(lambda: len(fake.sent()) >= 10, timeout=60)
            for n, rate in enumerate((10, 30)):
                chats = list(range(10_000 * (n + 1), 10_000 * (n + 1) + 200))
                base = len(fake.calls_of("sendMessage"))
                offered = await offer(fake, rate, seconds, chats)
                try:
                    await fake.wait_for(lambda: len(fake.calls_of("sendMessage")) - base >= len(offered), timeout=60)
                except AssertionError:
                    pass  # counted as unanswered below
                await asyncio.sleep(1.0)
                values, missing = latencies(fake, offered)
                print(f"{rate:>3} msg/s offered, {len(offered)} messages from 200 chats: "
                      f"p50 {pct(values, 50) * 1000:.0f} ms, p99 {pct(values, 99) * 1000:.0f} ms, "
                      f"max {max(values) * 1000:.0f} ms, unanswered {missing}")
        finally:
            bot.send_signal(signal.SIGTERM)
            await bot.wait()
            await fake.stop()


async def channel_only_run(seconds: float) -> None:
    """30 msg/s in safety-net mode (no model): what the channel itself costs. Emergencies, so each gets a reply."""
    fake = await FakeBotApi().start()
    with tempfile.TemporaryDirectory() as tmp:
        env = serve_env(fake, tmp, MODEL_PATH=f"{tmp}/no-model.tar.gz")
        bot = await start_serve(env)
        try:
            await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
            sent: list[tuple[int, int]] = []
            start, i = time.monotonic(), 0
            while (elapsed := time.monotonic() - start) < seconds:
                while i < int(elapsed * 30) + 1:
                    chat = 30_000 + i % 200
                    sent.append((chat, fake.text(chat, "Hilfe, Einbrecher im Haus!")))
                    i += 1
                await asyncio.sleep(0.005)
            try:
                await fake.wait_for(lambda: len(fake.calls_of("sendMessage")) >= len(sent), timeout=60)
            except AssertionError:
                pass
            values, missing = latencies(fake, sent)
            print(f" 30 msg/s offered, safety-net mode (no model), {len(sent)} emergencies from 200 chats: "
                  f"p50 {pct(values, 50) * 1000:.0f} ms, p99 {pct(values, 99) * 1000:.0f} ms, unanswered {missing}")
        finally:
            bot.send_signal(signal.SIGTERM)
            await bot.wait()
            await fake.stop()


async def kill_runs(kills: int) -> None:
    fake = await FakeBotApi().start()
    with tempfile.TemporaryDirectory() as tmp:
        env = serve_env(fake, tmp, MODEL_PATH=f"{tmp}/no-model.tar.gz")
        bot = await start_serve(env)
        await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
        chats = iter(range(50_000, 200_000))
        offered: list[int] = []

        async def load() -> None:
            start, i = time.monotonic(), 0
            while not stop.is_set():
                while i < int((time.monotonic() - start) * 20) + 1:
                    chat = next(chats)
                    offered.append(chat)
                    fake.text(chat, "Hallo, ich habe eine Frage")
                    i += 1
                await asyncio.sleep(0.005)

        stop = asyncio.Event()
        loader = asyncio.create_task(load())
        for _ in range(kills):
            await asyncio.sleep(random.uniform(1.5, 4.0))
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            bot = await start_serve(env)
        await asyncio.sleep(3.0)
        stop.set()
        await loader
        try:
            await fake.wait_for(lambda: {int(p["chat_id"]) for p in fake.sent()} >= set(offered), timeout=60)
        except AssertionError:
            pass
        await asyncio.sleep(2.0)
        counts = Counter(int(p["chat_id"]) for p in fake.sent())
        lost = sum(1 for c in offered if counts[c] == 0)
        doubled = sum(1 for c in offered if counts[c] > 1)
        print(f"{kills} SIGKILL restarts under 20 msg/s: {len(offered)} chats, one message each: "
              f"lost {lost}, doubled {doubled}")
        bot.send_signal(signal.SIGTERM)
        await bot.wait()
        await fake.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of load per rate")
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    print("# Telegram channel: bot serve against the fake Bot API on 127.0.0.1")
    await latency_runs(args.seconds)
    await channel_only_run(args.seconds)
    await kill_runs(args.kills)


if __name__ == "__main__":
    asyncio.run(main())
