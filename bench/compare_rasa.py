"""Reply latency, throughput, CPU and peak RSS: our bot against Rasa's own server, same messages.

200 simulated citizens send the held-out and training messages at offered rates of 10, 30 and
100 messages/s for --seconds each, first to `python -m bot serve` (web chat endpoint), then to
`rasa run` (REST channel) serving a model trained from the same pipeline and data.

Run: .venv/bin/python -m bench.compare_rasa [--seconds 60] [--rates 10 30 100] [--skip-rasa]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.load import ProcStats, RunResult, bench_texts, local_only, offered_load
from bench.rasa_stack import free_port, start_rasa, trained_model
from bench.servers import NO_WEBCHAT_LIMITS, rasa_sender, start_ours, stop, wait_for_mode, webchat_sender

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


async def run_rates(name: str, base: str, pid: int, make_send, rates: list[float], seconds: float,
                    citizens: int) -> list[RunResult]:
    """Warm the server up, then load it at each rate in turn (fresh chats for every rate)."""
    texts = bench_texts()
    stats = ProcStats(pid)
    await offered_load(name, make_send(base, "warm"), texts, rate=20, seconds=1, citizens=citizens)
    results = []
    for rate in rates:
        result = await offered_load(name, make_send(base, f"r{int(rate)}"), texts, rate, seconds, citizens, stats)
        print(f"  {name} at {rate:g}/s: {line(result)}", file=sys.stderr)
        results.append(result)
    return results


def ms(value: float, timeout_ms: float = 30_000) -> str:
    """A latency for the table; an unanswered message shows as "> 30000" (the client's timeout)."""
    return f"> {timeout_ms:.0f}" if value == float("inf") else f"{value:.1f}"


def ratio(a: float, b: float) -> str:
    """a/b for the table ("n/a" when either side has no finite figure)."""
    return f"{a / b:.2f}" if b and a != float("inf") and b != float("inf") else "n/a"


def line(r: RunResult) -> str:
    return (f"p50 {ms(r.p(50))} ms, p95 {ms(r.p(95))} ms, p99 {ms(r.p(99))} ms, {r.throughput:.1f} msg/s "
            f"({r.ok}/{r.sent} answered), CPU {r.cpu_percent:.0f}%, peak RSS {r.peak_rss_mb:.0f} MB")


def bench_ours(rates: list[float], seconds: float, citizens: int, model: Path | None = None,
               mode: str = "nlu") -> list[RunResult]:
    """Start our bot, wait for the NLU model (or the safety net alone: mode="safety_net"), load it."""
    with tempfile.TemporaryDirectory(prefix="streife-bench-") as tmp:
        # FLOOD_MESSAGES: each of 200 chats writes every 2 s at 100 msg/s; answer every message, as Rasa does
        proc, base = start_ours(Path(tmp) / "bench.sqlite3", model=model, log_file=Path(tmp) / "serve.log",
                                extra_env={"FLOOD_MESSAGES": "1000", **NO_WEBCHAT_LIMITS})
        try:
            wait_for_mode(local_only(base), proc, mode)
            return asyncio.run(run_rates("ours", base, proc.pid, webchat_sender, rates, seconds, citizens))
        finally:
            stop(proc)


def bench_rasa(rates: list[float], seconds: float, citizens: int) -> list[RunResult]:
    """Train (once) and start Rasa's server, load it."""
    model = trained_model()
    port = free_port()
    proc = start_rasa(model, port)
    try:
        base = local_only(f"http://127.0.0.1:{port}")
        return asyncio.run(run_rates("rasa", base, proc.pid, rasa_sender, rates, seconds, citizens))
    finally:
        stop(proc)


def table(ours: list[RunResult], rasa: list[RunResult]) -> str:
    """A Markdown table: one row per server and rate, plus the ratio ours/Rasa's per rate."""
    rows = ["| rate msg/s | server | p50 ms | p95 ms | p99 ms | achieved msg/s | answered | CPU % | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    by_rate = {r.rate: r for r in rasa}
    for o in ours:
        for r in [o, by_rate.get(o.rate)]:
            if r is not None:
                rows.append(f"| {r.rate:g} | {r.target} | {ms(r.p(50))} | {ms(r.p(95))} | {ms(r.p(99))} "
                            f"| {r.throughput:.1f} | {r.ok}/{r.sent} | {r.cpu_percent:.0f} | {r.peak_rss_mb:.0f} |")
        if o.rate in by_rate:
            r = by_rate[o.rate]
            rows.append(f"| {o.rate:g} | **ours/Rasa** | {ratio(o.p(50), r.p(50))} | {ratio(o.p(95), r.p(95))} "
                        f"| {ratio(o.p(99), r.p(99))} | {o.throughput / max(r.throughput, 1e-9):.2f} | | "
                        f"{o.cpu_percent / max(r.cpu_percent, 1e-9):.2f} | {o.peak_rss_mb / max(r.peak_rss_mb, 1e-9):.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run both servers at every rate and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 30, 100])
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--skip-rasa", action="store_true", help="measure only our bot")
    parser.add_argument("--model", type=Path, default=None, help="our NLU model (default: MODEL_PATH)")
    parser.add_argument("--json", type=Path, default=OUT / "compare_rasa.json")
    args = parser.parse_args(argv)
    started = time.time()
    ours = bench_ours(args.rates, args.seconds, args.citizens, args.model)
    rasa = [] if args.skip_rasa else bench_rasa(args.rates, args.seconds, args.citizens)
    print(f"{args.citizens} citizens, {args.seconds:g} s per rate, messages from tests/test_nlu.yml and data/nlu\n")
    print(table(ours, rasa))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "started": started, "seconds": args.seconds, "citizens": args.citizens,
        "results": [{**{k: v for k, v in asdict(r).items() if k != "latencies_ms"},
                     "p50": r.p(50), "p95": r.p(95), "p99": r.p(99), "throughput": r.throughput,  # inf: unanswered
                     "cpu_percent": r.cpu_percent} for r in ours + rasa],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
