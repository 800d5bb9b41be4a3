"""One instance against two behind the round-robin proxy: throughput, webhook-to-reply latency, polling takeover.

    .venv/bin/python -m bench.two_instances [--setups sqlite-1 pg-1 pg-2] [--messages 600] [--rate 10]
                                            [--seconds 30] [--concurrency 32] [--kills 3] [--no-model]
    .venv/bin/python -m bench.two_instances --smoke      # seconds, no model (tests/test_bench_smoke.py)

Each setup is a bench/cluster_run.py Cluster: `sqlite-1` is the default deployment (one instance, one
SQLite file), `pg-1` one instance on PostgreSQL, `pg-2` two instances on one PostgreSQL; all behind
bench/proxy.py on 127.0.0.1, with the fake Graph API and the fake Bot API. Every instance runs
`python -m bot serve` with the real NLU model (NLU_WORKERS=1 each) unless --no-model.

Citizens write Instagram DMs (signed webhooks, each from its own account, questions the bot answers
itself); a reply is timed from the webhook's POST to its arrival at the fake Graph API.
- throughput: --messages webhooks, --concurrency at a time, each sender waiting for its reply;
  messages / seconds from the first POST to the last reply;
- p50 / p99 webhook-to-reply at an offered --rate per second for --seconds (open loop);
- takeover: the polling instance is SIGKILLed --kills times; seconds from the kill to the fake Bot
  API's next getUpdates (with one instance: it is restarted at once, so this is its restart time).
Prints one line per figure; the machine's other load shows in them (2 cores, shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import aiohttp

from bench.cluster_run import Cluster
from bot.channels.meta_webhook import sign
from tests.instagram_helpers import SECRET, message, notification

SETUPS = {"sqlite-1": (1, "sqlite"), "pg-1": (1, "postgresql"), "pg-2": (2, "postgresql")}
# Questions the model answers itself (no handover), so every message has exactly one reply.
TEXTS = ["Wie erstatte ich eine Anzeige?", "Mein Fahrrad wurde geklaut, was nun?", "Wo ist die nächste Polizeiwache?",
         "Ich habe meinen Geldbeutel verloren", "Wie werde ich Polizist?", "Kann ich eine Anzeige auch online machen?",
         "Ich habe einen komischen Anruf von einem falschen Polizisten bekommen", "Wie melde ich einen Fundgegenstand?"]
BUTTON = {"quick_reply": {"payload": "topic:station_contact"}}  # without the model: a topic button (answered, no handover)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Replies:
    """Futures resolved when the fake Graph API receives a reply for a citizen (recipient id)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.seen = 0
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            calls = self.cluster.graph.calls
            for call in calls[self.seen:]:
                future = self.waiting.pop(call.recipient, None)
                if future is not None and not future.done() and call.status == 200:
                    future.set_result(call.at)
            self.seen = len(calls)
            await asyncio.sleep(0.002)

    def expect(self, user: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[user] = future
        return future

    def close(self) -> None:
        self._task.cancel()


async def one(session: aiohttp.ClientSession, cluster: Cluster, replies: Replies, user: str, text: str,
              model: bool, timeout: float = 60.0) -> float | None:
    """A citizen's DM through the proxy (sent again on a non-200, as Meta does); seconds until the reply arrived."""
    event = message(user, text, **({} if model else BUTTON))
    body = json.dumps(notification(event)).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}
    arrived = replies.expect(user)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            async with session.post(f"{cluster.proxy.url}/instagram/webhook", data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    break
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.2)
    try:
        return await asyncio.wait_for(asyncio.shield(arrived), max(0.1, timeout - (time.monotonic() - started))) - started
    except asyncio.TimeoutError:
        return None


async def throughput(cluster: Cluster, replies: Replies, run: str, messages: int, concurrency: int, model: bool) -> dict[str, Any]:
    """Closed loop: `concurrency` senders, `messages` in all; messages per second from first POST to last reply."""
    queue = list(range(messages))
    lost = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def sender() -> None:
            nonlocal lost
            while queue:
                n = queue.pop()
                if await one(session, cluster, replies, f"8{run}{n:07d}", TEXTS[n % len(TEXTS)], model) is None:
                    lost += 1

        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return {"messages": messages, "seconds": seconds, "per_s": (messages - lost) / seconds, "lost": lost}


async def latency(cluster: Cluster, replies: Replies, run: str, rate: float, seconds: float, model: bool) -> dict[str, Any]:
    """Open loop at `rate` per second for `seconds`: webhook-to-reply p50 and p99."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks = []
        started = time.monotonic()
        for n in range(max(1, int(rate * seconds))):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, cluster, replies, f"9{run}{n:07d}", TEXTS[n % len(TEXTS)], model)))
        results = await asyncio.gather(*tasks)
    times = [r for r in results if r is not None]
    return {"n": len(results), "lost": len(results) - len(times),
            "p50_ms": 1000 * statistics.median(times) if times else float("nan"),
            "p99_ms": 1000 * percentile(times, 0.99) if times else float("nan")}


async def takeovers(cluster: Cluster, kills: int) -> list[float]:
    """Kill the polling instance `kills` times; seconds from each kill to the next getUpdates."""
    out = []
    for _ in range(kills):
        leader = await cluster.wait_for_leader()
        killed_at = await leader.kill()
        if len(cluster.nodes) == 1:
            await leader.start()
        seconds, _ = await cluster.takeover(killed_at, timeout=120)
        out.append(seconds)
        if not leader.running:
            await leader.start()
        await leader.wait_ready(timeout=300 if cluster.model else 60, mode="nlu" if cluster.model else None)
        await asyncio.sleep(1.0)
    return out


async def bench_setup(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """All three figures for one setup."""
    instances, database = SETUPS[name]
    async with Cluster(instances=instances, database=database, model=args.model) as cluster:
        replies = Replies(cluster)
        try:
            await latency(cluster, replies, "0", rate=min(args.rate, 5), seconds=1, model=args.model)  # warm-up
            lat = await latency(cluster, replies, "1", args.rate, args.seconds, args.model)
            tput = await throughput(cluster, replies, "2", args.messages, args.concurrency, args.model)
            take = await takeovers(cluster, args.kills) if args.kills else []
        finally:
            replies.close()
    what = "takeover" if instances > 1 else "restart"
    print(f"{name}: throughput {tput['per_s']:.1f} msg/s ({tput['messages']} webhooks, {args.concurrency} at a time, "
          f"{tput['seconds']:.1f} s, lost {tput['lost']})", flush=True)
    print(f"{name}: webhook-to-reply p50 {lat['p50_ms']:.0f} ms ({lat['n']} at {args.rate:g}/s, lost {lat['lost']})", flush=True)
    print(f"{name}: webhook-to-reply p99 {lat['p99_ms']:.0f} ms ({lat['n']} at {args.rate:g}/s)", flush=True)
    if take:
        print(f"{name}: polling {what} min {min(take):.2f} s, median {statistics.median(take):.2f} s, "
              f"max {max(take):.2f} s ({len(take)} kills of the polling instance)", flush=True)
    return {"throughput": tput, "latency": lat, "takeover": take}


async def main(argv: list[str] | None = None, smoke: bool = False) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=["sqlite-1", "pg-1", "pg-2"])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--no-model", dest="model", action="store_false", help="safety net and topic buttons only")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, no model (tests/test_bench_smoke.py)")
    args = parser.parse_args(argv)
    if smoke or args.smoke:
        args.messages, args.concurrency, args.rate, args.seconds, args.kills, args.model = 20, 4, 5.0, 1.0, 1, False
        if "--setups" not in (sys.argv[1:] if argv is None else argv):
            args.setups = ["sqlite-1", "pg-2"]
    print(f"# one vs two instances behind bench/proxy.py on 127.0.0.1, {'NLU model' if args.model else 'no model'}", flush=True)
    return {name: await bench_setup(name, args) for name in args.setups}


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
