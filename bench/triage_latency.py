"""Triage latency per message (safety net + model + reply), peak memory, and start-up to the first answer.

Run: .venv/bin/python -m bench.triage_latency [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def time_to_first_answer(model: str | None) -> float:
    """Seconds from starting `python -m bot triage` to its first JSON line."""
    env = dict(os.environ, LOG_LEVEL="ERROR")
    if model is not None:
        env["MODEL_PATH"] = model
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "triage"], cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    proc.stdin.write("hilfe einbrecher\n".encode())
    proc.stdin.flush()
    proc.stdout.readline()
    elapsed = time.perf_counter() - started
    proc.stdin.close()
    proc.wait(timeout=60)
    return elapsed


async def measure(count: int) -> None:
    """Triage `count` realistic messages one by one and print the latency distribution."""
    from bot.services import build_triage
    from bot.settings import Settings
    from bot.decision import Context
    from nlu.examples import read_dir, read_examples
    from bot.nlu_workers import NluSupervisor

    settings = Settings.from_env()
    started = time.perf_counter()
    supervisor = NluSupervisor(settings, workers=1)
    await supervisor.start()
    await supervisor.client.wait_ready(300)
    triage = build_triage(settings, supervisor.client)
    load_s = time.perf_counter() - started
    texts = [e.text for e in read_examples(ROOT / "tests" / "test_nlu.yml") + read_dir(ROOT / "data" / "nlu")]
    texts = (texts * (count // len(texts) + 1))[:count]
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        await triage.decide(text, Context())
        latencies.append((time.perf_counter() - t0) * 1000)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await supervisor.stop()
    print(f"model load in the NLU worker (start + import + load + warm-up): {load_s:.1f} s")
    print(f"triage latency over {len(latencies)} messages: p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
    print(f"peak RSS of the service (without its NLU worker): {rss_mb:.0f} MB")


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(measure(args.messages))
    print(f"start to first answer, safety net only (no model): {time_to_first_answer(str(ROOT / 'models' / 'missing.tar.gz')):.1f} s")
    print(f"start to first answer, with the NLU model: {time_to_first_answer(None):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
