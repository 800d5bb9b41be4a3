"""Mastodon DMs under load and through crashes, against the fake instance (tests/fake_mastodon.py) on 127.0.0.1.

    .venv/bin/python -m bench.mastodon_load [--messages 600] [--rate 10] [--kills 2] [--burst 100]

Part 1: the whole app in process (safety-net mode: no NLU model, so this measures the channel, Mastodon.py's
threads, the handover log and the dispatcher). Each DM comes from its own citizen through the user stream at
`--rate` per second; the figure is the time from the status appearing on the stream to the bot's reply status
arriving at the fake (p50, p99). Part 2: `python -m bot serve` as a subprocess while `--burst` DMs arrive (25/s);
it is SIGKILLed `--kills` times and restarted; then every citizen's replies are counted: lost (none) and
doubled (more than one reply thread; the Idempotency-Key should keep this at 0), and the key's repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

from bot.channels.mastodon import MASTODON
from bot.web.app import create_app
from tests.fake_bot_api import free_port, start_serve
from tests.fake_mastodon import FakeMastodon
from tests.mastodon_helpers import mastodon_settings

TEXT = "Hallo, wo ist die nächste Polizeiwache?"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(messages: int, rate: float) -> dict[str, float]:
    """`messages` DMs at `rate` per second through the stream; DM-to-reply latencies in ms."""
    fake = await FakeMastodon().start()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(mastodon_settings(Path(folder), fake, LOG_LEVEL="WARNING"), load_model=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await fake.wait_for(lambda: fake.open_streams == 1, timeout=30)
        sent: dict[str, float] = {}
        started = time.monotonic()
        for n in range(messages):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            sent[fake.dm(f"buerger{n}@social.example", TEXT)] = time.monotonic()
        await fake.wait_for(lambda: sum(1 for p in fake.replies() if p.in_reply_to_id in sent) >= messages, timeout=120)
        await app[MASTODON].drain()
        latencies = [1000 * (p.at - sent[p.in_reply_to_id]) for p in fake.replies() if p.in_reply_to_id in sent]
        await runner.cleanup()
    await fake.stop()
    return {"messages": messages, "rate_per_s": rate, "replies": len(latencies),
            "reply_p50_ms": statistics.median(latencies), "reply_p99_ms": percentile(latencies, 0.99),
            "reply_max_ms": max(latencies)}


def serve_env(fake: FakeMastodon, folder: str) -> dict[str, str]:
    """The environment of a `python -m bot serve` reading from the fake (safety-net mode: restarts are quick)."""
    return {**os.environ, "MASTODON_BASE_URL": fake.url, "MASTODON_ACCESS_TOKEN": fake.token, "MASTODON_POLL_SECONDS": "1",
            "DATABASE_PATH": f"{folder}/streife.sqlite3", "WEB_PORT": str(free_port()), "LOG_LEVEL": "WARNING",
            "MODEL_PATH": f"{folder}/no-model.tar.gz"}


async def kill_run(kills: int = 2, messages: int = 100, rate: float = 25.0) -> dict[str, int]:
    """`messages` DMs (one per citizen) while the bot is SIGKILLed `kills` times; lost, doubled, key repeats."""
    fake = await FakeMastodon().start()
    with tempfile.TemporaryDirectory() as folder:
        env = serve_env(fake, folder)
        bot = await start_serve(env)
        try:
            await fake.wait_for(lambda: fake.open_streams == 1, timeout=60)
            statuses: list[str] = []
            killed_at: list[int] = []  # DMs offered when each kill came

            async def burst() -> None:  # in kills + 1 parts: part k waits for kill k (a slow machine stays in the burst)
                start = time.monotonic()
                for n in range(messages):
                    while len(killed_at) < n * (kills + 1) // messages:
                        await asyncio.sleep(0.05)
                        start = time.monotonic() - n / rate  # resume at the same pace, however long the kill took
                    await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                    statuses.append(fake.dm(f"b{n}@social.example", TEXT))

            load = asyncio.create_task(burst())
            base = 0
            for _ in range(kills):
                await fake.wait_for(lambda: len(fake.replies()) >= base + 5, timeout=60)  # answering: kill it
                bot.send_signal(signal.SIGKILL)
                await bot.wait()
                killed_at.append(len(statuses))
                bot = await start_serve(env)
                await fake.wait_for(lambda: fake.open_streams >= 1, timeout=60)
                base = len(fake.replies())
            await load
            await fake.wait_for(lambda: {p.in_reply_to_id for p in fake.replies()} >= set(statuses), timeout=120)
            await asyncio.sleep(2.0)  # anything sent twice arrives now
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(bot.wait(), 20)
            except asyncio.TimeoutError:
                bot.kill()
                await bot.wait()
    threads = Counter(p.in_reply_to_id for p in fake.replies())  # a reply's first status answers the citizen's
    await fake.stop()
    return {"offered": len(statuses), "lost": sum(1 for s in statuses if threads[s] == 0),
            "doubled": sum(1 for s in statuses if threads[s] > 1), "key_repeats": fake.idempotent_hits,
            "first_kill_at": killed_at[0] if killed_at else 0, "last_kill_at": killed_at[-1] if killed_at else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.messages, args.rate))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if args.kills:
        crash = asyncio.run(kill_run(args.kills, args.burst))
        print(f"{args.kills} SIGKILL restarts during {crash['offered']} DMs: lost {crash['lost']}, doubled {crash['doubled']} "
              f"(Idempotency-Key repeats answered by the instance: {crash['key_repeats']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
