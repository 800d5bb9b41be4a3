"""Parse throughput of the NLU workers: parses per second with 1 and with N worker processes.

Before the split the model parsed on one thread inside the service, so one core did all parsing.
Now each worker is its own process (nlu/worker.py), so parsing uses every core.

Run: .venv/bin/python -m bench.nlu_throughput [--messages 2000] [--concurrency 16] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

from bench.load import bench_texts
from bot.nlu_workers import NluSupervisor
from bot.settings import Settings


async def measure(workers: int, messages: int, concurrency: int) -> tuple[float, float, int]:
    """(parses per second, median ms per parse, parses without an answer) with `workers` processes."""
    settings = dataclasses.replace(Settings.from_env(), nlu_deadline=60.0, model_watch_seconds=0)
    supervisor = NluSupervisor(settings, workers=workers)
    await supervisor.start()
    try:
        assert await supervisor.client.wait_ready(300), "the NLU workers did not load the model"
        await asyncio.sleep(1.0)  # every worker connected and warm
        texts = (bench_texts() * (messages // 1000 + 2))[:messages]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for text in texts:
            queue.put_nowait(text)
        latencies: list[float] = []
        missed = 0

        async def citizen() -> None:
            nonlocal missed
            while not queue.empty():
                text = queue.get_nowait()
                t0 = time.perf_counter()
                if await supervisor.client.parse(text) is None:
                    missed += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(citizen() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return len(texts) / elapsed, statistics.median(latencies), missed
    finally:
        await supervisor.stop()


def main() -> int:
    """Print one line per worker count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for workers in args.workers:
        rate, median, missed = asyncio.run(measure(workers, args.messages, args.concurrency))
        print(f"{workers} worker(s): {rate:.0f} parses/s, median {median:.1f} ms per parse at {args.concurrency} in flight, "
              f"{missed} unanswered", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
