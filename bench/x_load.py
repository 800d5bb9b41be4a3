"""X direct messages end to end: from X's webhook POST to the reply reaching the DM endpoint, and SIGKILLs in a burst.

    .venv/bin/python -m bench.x_load [--messages 600] [--rate 10] [--kills 2] [--burst 100] [--no-model]

`python -m bot serve` runs as its own process; the fake X API (tests/fake_x_api.py, OAuth 1.0a checked, every sent
DM echoed to the webhook as X does) and X's side of the webhook run here, on 127.0.0.1.

Part 1: --messages DMs, each from its own citizen, offered at --rate per second (open loop) with the real NLU
model (safety-net mode with --no-model); latency from the webhook POST to the reply's arrival at the fake.
Part 2 (safety-net mode, fast restarts): a burst of --burst DMs at 20 per second while the bot is SIGKILLed and
restarted --kills times; X delivers again what was not acknowledged (its retries). Counts the DMs without a
reply (lost) and with more than one (doubled: only a reply X had created before the kill, while its answer or
its "sent" mark was still on the way, may go out again, since X's DM endpoint has no idempotency key).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.servers import METRICS_TOKEN
from bench.telegram_load import TEXTS, wait_for_model
from tests.fake_bot_api import free_port, start_serve
from tests.fake_x_api import ACCESS_SECRET, ACCESS_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, FakeXApi, activity, deliver, dm_event

EMERGENCY = "Hilfe, bei uns wird gerade eingebrochen!"
MARK_S = 0.3  # a reply whose answer came back this shortly before a kill may not be marked sent yet


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def x_env(api: FakeXApi, folder: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `python -m bot serve` that talks to the fake X API."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "INSTAGRAM_", "MESSENGER_", "X_"))}
    env.update(DATABASE_PATH=f"{folder}/streife.sqlite3", WEB_PORT=str(port), LOG_LEVEL="WARNING", METRICS_TOKEN=METRICS_TOKEN,
               FLOOD_MESSAGES="1000", X_CONSUMER_KEY=CONSUMER_KEY, X_CONSUMER_SECRET=CONSUMER_SECRET,
               X_ACCESS_TOKEN=ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET=ACCESS_SECRET, X_API_BASE_URL=api.url, **extra)
    return env


async def wait_up(port: int, timeout_s: float = 60.0) -> None:
    """Wait until the web server answers /livez."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/livez") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"bot serve did not answer on port {port} within {timeout_s:.0f} s")


async def stop(bot: asyncio.subprocess.Process) -> None:
    if bot.returncode is None:
        bot.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(bot.wait(), 15)
        except asyncio.TimeoutError:
            bot.kill()
            await bot.wait()


async def run(messages: int, rate: float, model: bool = True) -> dict[str, float]:
    """Part 1: DM-to-reply latency at `rate` DMs per second."""
    api = await FakeXApi().start()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        extra = {} if model else {"MODEL_PATH": f"{folder}/no-model.tar.gz", "NLU_PYTHON": f"{folder}/no-python"}
        bot = await start_serve(x_env(api, folder, port, **extra))
        try:
            await (wait_for_model(port) if model else wait_up(port))
            url = api.echo_to = f"http://127.0.0.1:{port}/x/webhook"
            posted: dict[str, float] = {}
            acks: list[float] = []
            async with aiohttp.ClientSession() as session:

                async def one(n: int) -> None:
                    user = f"23{n:017d}"
                    posted[user] = time.monotonic()
                    status = await deliver(session, url, activity(dm_event(user, text=TEXTS[n % len(TEXTS)])), attempts=1)
                    assert status == 200, status
                    acks.append(time.monotonic() - posted[user])

                started, tasks = time.monotonic(), []
                for n in range(messages):
                    tasks.append(asyncio.ensure_future(one(n)))
                    await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
                await asyncio.gather(*tasks)
                await api.wait_for(messages, timeout=120)
        finally:
            await stop(bot)
    await api.stop()
    first: dict[str, float] = {}
    for call in api.calls:
        first.setdefault(call.participant, call.at)
    replies = [first[user] - at for user, at in posted.items() if user in first]
    return {
        "messages": messages, "rate_per_s": rate, "replies": len(replies), "mode": "nlu" if model else "safety_net",
        "ack_p50_ms": 1000 * statistics.median(acks), "ack_p99_ms": 1000 * percentile(acks, 0.99),
        "reply_p50_ms": 1000 * statistics.median(replies), "reply_p99_ms": 1000 * percentile(replies, 0.99),
    }


@dataclass
class KillResult:
    """What a burst with SIGKILLs did."""

    offered: int
    kills: int
    lost: list[str] = field(default_factory=list)  # citizens without a reply
    doubled: list[str] = field(default_factory=list)  # citizens answered more than once
    in_flight: set[str] = field(default_factory=set)  # citizens whose reply was on the way at a kill
    replied_before_kill: int = 0  # citizens answered before the first kill (the burst was not over by then)
    stored: int = 0  # DMs in the handover log afterwards
    unacknowledged: int = 0  # DMs X never got a 200 for (after all its retries)
    emergencies_without_110: int = 0

    def line(self) -> str:
        return (f"X: {self.offered} DMs, {self.kills} SIGKILLs: lost {len(self.lost)}, answered twice {len(self.doubled)} "
                f"(replies in flight at the kills: {len(self.in_flight)}; {self.replied_before_kill} answered before the "
                f"first kill), stored {self.stored}, unacknowledged "
                f"{self.unacknowledged}, emergencies without the 110 prompt {self.emergencies_without_110}")


async def kill_run(kills: int = 2, dms: int = 100, rate: float = 20.0) -> KillResult:
    """Part 2: a burst of `dms` DMs (every tenth an emergency) while the bot is SIGKILLed `kills` times."""
    api = await FakeXApi(delay_s=0.1).start()
    port = free_port()
    users = [f"24{n:017d}" for n in range(dms)]
    result = KillResult(dms, kills)
    with tempfile.TemporaryDirectory() as folder:
        env = x_env(api, folder, port, MODEL_PATH=f"{folder}/no-model.tar.gz", NLU_PYTHON=f"{folder}/no-python")
        url = api.echo_to = f"http://127.0.0.1:{port}/x/webhook"
        bot = await start_serve(env)
        await wait_up(port)
        duration = dms / rate
        kill_at = [duration * (k + 1) / (kills + 1) for k in range(kills)]
        killed: list[float] = []
        try:
            async with aiohttp.ClientSession() as session:

                async def offer(n: int) -> int:  # X's retries, compressed: every 0.2 s for up to 30 s
                    text = EMERGENCY if n % 10 == 0 else f"Hallo, ich habe eine Frage zu meinem Fahrrad ({n})"
                    return await deliver(session, url, activity(dm_event(users[n], text=text)), attempts=150, retry_s=0.2)

                started, tasks = time.monotonic(), []
                for n in range(dms):
                    await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                    tasks.append(asyncio.ensure_future(offer(n)))
                    if kill_at and time.monotonic() - started >= kill_at[0]:
                        kill_at.pop(0)
                        bot.send_signal(signal.SIGKILL)
                        await bot.wait()
                        killed.append(time.monotonic())
                        bot = await start_serve(env)
                statuses = await asyncio.gather(*tasks)
            result.unacknowledged = sum(1 for s in statuses if s != 200)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and {c.participant for c in api.sent()} < set(users):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # anything sent twice would arrive now
        finally:
            await stop(bot)
        with sqlite3.connect(f"{folder}/streife.sqlite3") as db:
            result.stored = db.execute("SELECT COUNT(*) FROM messages WHERE channel = 'x' AND direction = 'in'").fetchone()[0]
    await api.stop()
    sent = api.sent()
    counts = Counter(c.participant for c in sent)
    first: dict[str, Any] = {}
    for call in sent:
        first.setdefault(call.participant, call)
    result.lost = [u for u in users if counts[u] == 0]
    result.doubled = [u for u in users if counts[u] > 1]
    result.in_flight = {u for u, c in first.items() if any(c.at <= k <= (c.answered or k) + MARK_S for k in killed)}
    result.replied_before_kill = sum(1 for c in first.values() if killed and c.at < killed[0])
    result.emergencies_without_110 = sum(1 for n in range(0, dms, 10) if users[n] in first and "110" not in first[users[n]].text)
    return result


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--no-model", action="store_true", help="safety-net mode (no NLU workers)")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args(argv)
    if args.messages:
        result = await run(args.messages, args.rate, model=not args.no_model)
        print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if args.kills:
        print((await kill_run(args.kills, args.burst)).line())
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
