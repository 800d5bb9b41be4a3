"""Instagram webhook under load: how fast Meta gets its 200, and how fast the reply reaches the Graph API.

    .venv/bin/python -m bench.instagram_load [--messages 400] [--rate 40]

The whole app in process on 127.0.0.1 (safety-net mode, no NLU model: triage is then cheap, so this measures
the channel, the handover log and the dispatcher), the fake Graph API (tests/fake_graph_api.py) on 127.0.0.1.
Each message comes from its own citizen, signed like Meta signs it, offered at `--rate` per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.channels.instagram import INSTAGRAM
from bot.channels.meta_webhook import sign
from bot.web.app import create_app
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import PAGE_TOKEN, SECRET, TOKEN, message, meta_settings, notification


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(messages: int, rate: float) -> dict[str, float]:
    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(meta_settings(Path(folder), graph), load_model=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/instagram/webhook"
        posted: dict[str, float] = {}
        acks: list[float] = []
        async with aiohttp.ClientSession() as session:

            async def one(n: int) -> None:
                user = f"9{n:07d}"
                body = json.dumps(notification(message(user, "Wo ist die nächste Wache?"))).encode()
                posted[user] = time.monotonic()
                async with session.post(url, data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}) as r:
                    assert r.status == 200, r.status
                acks.append(time.monotonic() - posted[user])

            started = time.monotonic()
            tasks = []
            for n in range(messages):
                tasks.append(asyncio.ensure_future(one(n)))
                await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
            await asyncio.gather(*tasks)
            await graph.wait_for(messages, timeout=120)
            await app[INSTAGRAM].drain()
        replies = [c.at - posted[c.recipient] for c in graph.calls]
        await runner.cleanup()
    await graph.stop()
    return {
        "messages": messages, "rate_per_s": rate, "replies": len(replies),
        "ack_p50_ms": 1000 * statistics.median(acks), "ack_p99_ms": 1000 * percentile(acks, 0.99),
        "reply_p50_ms": 1000 * statistics.median(replies), "reply_p99_ms": 1000 * percentile(replies, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.messages, args.rate))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
