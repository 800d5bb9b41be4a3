"""Telegram end to end under load: from an update appearing to its sendMessage, and crash safety.

    .venv/bin/python -m bench.telegram_load [--seconds 60] [--rates 10 30 100] [--kills 5] [--messages 1000]

Runs `python -m bot serve` as a subprocess in long-polling mode against the fake Bot API server
(tests/fake_bot_api.py) on 127.0.0.1.

Part 1 (real NLU model): 200 chats send questions the bot answers itself at offered rates of 10,
30 and 100 messages/s (open loop, latency from the update's scheduled time to the bot's sendMessage
arriving at the fake); p50/p95/p99, achieved throughput, CPU and peak RSS of the bot. Telegram allows
a bot about 30 messages/s overall, and the bot keeps to that (TELEGRAM_MAX_RATE); for rates above 30
the bot runs with TELEGRAM_MAX_RATE raised (as with paid broadcasts or a local Bot API server), so the
figure is the bot's own capacity, not Telegram's cap.

Part 2 (safety-net mode, for fast restarts): --messages messages, one per chat, at 20 messages/s
while the bot is SIGKILLed and restarted --kills times; then counts messages with no reply (lost)
and with more than one (doubled).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from typing import Any

import aiohttp

from bench.load import ProcStats, RunResult, offered_load
from bench.compare_rasa import line, table
from bench.servers import METRICS_TOKEN
from tests.fake_bot_api import FakeBotApi, serve_env, start_serve

# Questions the bot answers itself (no handover), so every message has exactly one reply to wait for.
TEXTS = ["Wie erstatte ich eine Anzeige?", "Mein Fahrrad wurde geklaut, was nun?", "Wo ist die nächste Polizeiwache?",
         "Ich habe meinen Geldbeutel verloren", "Wie werde ich Polizist?", "Danke für eure Arbeit!",
         "Ich habe einen komischen Anruf von einem falschen Polizisten bekommen",
         "Kann ich eine Anzeige auch online machen?", "Wann habt ihr geöffnet?", "Hallo!",
         "Jemand hat mein Auto zerkratzt, was soll ich tun?", "Wie melde ich einen Fundgegenstand?"]
RATE_LIMITED = 30.0  # Telegram's overall limit, the bot's default TELEGRAM_MAX_RATE


class Replies:
    """Turns the fake's sendMessage calls into awaitable replies: first in, first out per chat."""

    def __init__(self, fake: FakeBotApi) -> None:
        self.fake = fake
        self.waiting: defaultdict[int, deque[asyncio.Future[float]]] = defaultdict(deque)
        fake.on_send = self._sent

    def _sent(self, params: dict[str, Any]) -> None:
        queue = self.waiting.get(int(params["chat_id"]))
        while queue:
            future = queue.popleft()
            if not future.done():  # a timed-out wait was cancelled
                future.set_result(time.perf_counter())
                return

    def sender(self, first_chat: int, timeout: float = 30.0):
        """A bench.load Send: citizen n writes in chat first_chat + n; True once the reply was sent."""

        async def send(session: aiohttp.ClientSession, n: int, text: str) -> bool:
            chat = first_chat + n
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self.waiting[chat].append(future)
            self.fake.text(chat, text)
            try:
                await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                return False
            return True

        return send


async def wait_for_model(port: int, timeout_s: float = 180) -> None:
    """Wait until /healthz says the NLU model answers."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz",
                                       headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
                    body = await response.json()
                    if body.get("mode") == "nlu" and not body.get("model_loading"):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the model did not load in time")


async def rate_runs(rates: list[float], seconds: float, citizens: int, max_rate: float) -> list[RunResult]:
    """One bot process with TELEGRAM_MAX_RATE=max_rate, loaded at each rate in turn (fresh chats each)."""
    fake = await FakeBotApi().start()
    replies = Replies(fake)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = serve_env(fake, tmp, TELEGRAM_MAX_RATE=f"{max_rate:g}", FLOOD_MESSAGES="1000", METRICS_TOKEN=METRICS_TOKEN)
        bot = await start_serve(env)
        try:
            await wait_for_model(int(env["WEB_PORT"]))
            stats = ProcStats(bot.pid)
            await offered_load("telegram", replies.sender(900_000), TEXTS, rate=10, seconds=2, citizens=citizens)
            for n, rate in enumerate(rates, 1):
                result = await offered_load("telegram", replies.sender(100_000 * n), TEXTS, rate, seconds, citizens, stats)
                print(f"  telegram at {rate:g}/s (TELEGRAM_MAX_RATE={max_rate:g}): {line(result)}", file=sys.stderr)
                results.append(result)
        finally:
            bot.send_signal(signal.SIGTERM)
            await bot.wait()
            await fake.stop()
    return results


async def kill_run(kills: int, messages: int, rate: float = 20.0) -> tuple[int, int, int]:
    """`messages` messages from as many chats while the bot is SIGKILLed `kills` times; (offered, lost, doubled)."""
    fake = await FakeBotApi().start()
    with tempfile.TemporaryDirectory() as tmp:
        env = serve_env(fake, tmp, MODEL_PATH=f"{tmp}/no-model.tar.gz")
        bot = await start_serve(env)
        await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
        chats = list(range(50_000, 50_000 + messages))
        duration = messages / rate
        kill_at = sorted(random.uniform(0.1, 0.9) * duration for _ in range(kills))

        async def load() -> None:
            start = time.monotonic()
            for i, chat in enumerate(chats):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                fake.text(chat, "Hallo, ich habe eine Frage")

        loader = asyncio.create_task(load())
        started = time.monotonic()
        for at in kill_at:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            bot = await start_serve(env)
        await loader
        try:
            await fake.wait_for(lambda: {int(p["chat_id"]) for p in fake.sent()} >= set(chats), timeout=120)
        except AssertionError:
            pass
        await asyncio.sleep(2.0)  # anything sent twice would arrive now
        counts = Counter(int(p["chat_id"]) for p in fake.sent())
        bot.send_signal(signal.SIGTERM)
        await bot.wait()
        await fake.stop()
    return len(chats), sum(1 for c in chats if counts[c] == 0), sum(1 for c in chats if counts[c] > 1)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of load per rate")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 30, 100])
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000, help="messages offered during the kills")
    args = parser.parse_args(argv)
    results: list[RunResult] = []
    limited = [r for r in args.rates if r <= RATE_LIMITED]
    if limited:
        results += await rate_runs(limited, args.seconds, args.citizens, RATE_LIMITED)
    above = [r for r in args.rates if r > RATE_LIMITED]
    if above:
        results += await rate_runs(above, args.seconds, args.citizens, 2 * max(above))
    print(f"# Telegram: bot serve (long polling) against the fake Bot API on 127.0.0.1, {args.citizens} chats, "
          f"{args.seconds:g} s per rate; TELEGRAM_MAX_RATE {RATE_LIMITED:g} up to 30 msg/s, {2 * max(above or [0]):g} above\n")
    print(table(results, []))
    if args.kills:
        offered, lost, doubled = await kill_run(args.kills, args.messages)
        print(f"\n{args.kills} SIGKILL restarts during {offered} messages (one per chat, 20 msg/s, safety-net mode): "
              f"lost {lost}, doubled {doubled}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
