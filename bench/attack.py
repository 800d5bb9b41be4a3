"""A bench that attacks (issue 12, part 6): floods and hostile bodies while real emergencies arrive.

    .venv/bin/python -m bench.attack [--attacks h1 h2 h3] [--fakes 250] [--workers 150] [--seconds 30]
                                     [--profile DIR] ...   (about 3 minutes)

For each attack a fresh `python -m bot serve` runs on 127.0.0.1 with its NLU workers and the real
model (models/nlu.tar.gz), a temporary database and a free port; its Telegram channel polls a fake
Bot API and its Instagram channel sends to a fake Graph API, both in this process. Meanwhile one
real emergency per channel per second (--rate) comes from a new citizen each: web chat (POST
/chat/messages until the 110 prompt is in /chat/transcript), Telegram (the update until its
sendMessage), Instagram (the signed webhook until the Graph API send). The attacker is one client
(one address, as many cookies as it likes) in a process of its own (bench/attack_floods.py):
  H1  --fakes fake emergencies, a new cookie each; then a real one from someone else: is any fake
      one listed above it among the waiting chats on /inbox and in `bot handover list`? (Real
      emergencies of the other citizens that waited longer may be, and are counted apart.)
  H2  --workers concurrent senders of 4,000-character messages for --seconds.
  H3  --gzip gzip bodies of --gzip-kb KB at once (each inflates about 1,000 times), then --slow
      senders of a --slow-bytes body one byte at a time.
  H4  --anon anonymous requests (--anon-concurrency at a time) for the officers' dashboard, its CSV
      and the search (GET, and POST with a 100 KB form), half with a made-up session cookie: each
      must be refused (303 to the login, 401) quickly, before any page or search work.
Printed per phase: emergency reply latency p50/p99 per channel, the inbox check, peak RSS of the
service (without its workers) and of each worker, CPU, 5xx responses; then the issue's targets.
--profile DIR runs py-spy (PY_SPY=path, or on PATH) on the service in every phase.
Everything is bounded in count and time and stops by itself. Nothing is asserted here.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

from bench import attack_floods
from bench.attack_report import CHANNELS, Memory, Phase, Placement, machine, table, targets
from bench.attack_stack import REPLY_TIMEOUT, ROOT, SECRET, Stack, log_problems, running_service

REAL_EMERGENCY = "Bitte kommt schnell, ein Mann bedroht meine Mutter mit einem Messer"
REAL_ADDRESS = "192.0.2.200"  # the real citizen's address (not the attacker's)
ATTACKERS = {"h1": "203.0.113.1", "h2": "203.0.113.2", "h3": "203.0.113.3", "h4": "203.0.113.4"}  # one client per attack


class Traffic:
    """One real emergency per channel every 1/rate s, each from a new citizen, while the block runs."""

    def __init__(self, stack: Stack, rate: float) -> None:
        self.stack, self.rate = stack, rate
        self.latency: dict[str, list[float]] = {c: [] for c in CHANNELS}
        self.missed: Counter[str] = Counter()
        self.why: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def _one(self, channel: str, n: int) -> None:
        try:
            self.latency[channel].append(await asyncio.wait_for(self.stack.emergency(channel, n), REPLY_TIMEOUT))
        except (asyncio.TimeoutError, aiohttp.ClientError, RuntimeError, ValueError) as err:
            self.missed[channel] += 1
            self.why[f"{channel}: {type(err).__name__} {err}"[:120]] += 1

    async def _run(self) -> None:
        started, k = time.monotonic(), 0
        while True:
            for channel in CHANNELS:
                task = asyncio.create_task(self._one(channel, next(self.stack.numbers)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            k += 1
            await asyncio.sleep(max(0.0, started + k / self.rate - time.monotonic()))

    async def __aenter__(self) -> "Traffic":
        self._loop = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)  # each is bounded by REPLY_TIMEOUT


def _five_xx(result: dict[str, Any]) -> int:
    return sum(n for status, n in result.get("statuses", {}).items() if int(status) >= 500)


async def measure(stack: Stack, name: str, o: argparse.Namespace,
                  attack: Callable[[], Awaitable[dict[str, Any]]]) -> Phase:
    """Run `attack` while emergencies arrive on every channel (at least --min-phase s) and memory is sampled."""
    before, started = stack.five_xx(), time.monotonic()
    profiler = await _profile(stack.proc.pid, name, o.profile) if o.profile else None
    try:
        with Memory(stack.proc.pid) as memory:
            async with Traffic(stack, o.rate) as traffic:
                result = await attack()
                await asyncio.sleep(max(0.0, started + o.min_phase - time.monotonic()))  # what the attack left behind
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await asyncio.wait_for(profiler.wait(), 60)
    for reason, count in traffic.why.items():
        print(f"  {name}: missed {count}x {reason}", file=sys.stderr)
    return Phase(name, traffic.latency, traffic.missed,
                 (memory.service_start_mb, memory.service_peak_mb, memory.service_hwm_mb()),
                 sorted(memory.worker_peak_mb.values(), reverse=True), memory.cpu_used, time.monotonic() - started,
                 stack.five_xx() - before + _five_xx(result), result)


async def _profile(pid: int, name: str, folder: str) -> asyncio.subprocess.Process:
    """py-spy (PY_SPY, or on PATH) sampling the service during one phase, collapsed stacks into `folder`."""
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / (re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60] + ".txt")
    return await asyncio.create_subprocess_exec(py_spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                                                "--output", str(out), "--nonblocking", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)


def _placement(order: list[int], real: int | None, flood: set[int]) -> Placement:
    if real is None or real not in order:
        return Placement(None, sum(1 for i in order if i in flood), len(order))
    rank = order.index(real) + 1
    return Placement(rank, sum(1 for i in order[:rank - 1] if i in flood), len(order))


async def attack_h1(stack: Stack, flood: Callable[..., Awaitable[dict[str, Any]]], o: argparse.Namespace) -> list[Phase]:
    """H1: fake emergencies from one client, then a real one from another citizen; where is it listed?"""
    prefix, real_cookie = f"flood-{uuid.uuid4().hex[:6]}-", f"real-{uuid.uuid4().hex[:12]}"

    async def attack() -> dict[str, Any]:
        result = await flood("h1", base=stack.base, fakes=o.fakes, address=ATTACKERS["h1"], prefix=prefix)
        try:
            seconds = await asyncio.wait_for(stack.webchat_emergency(REAL_EMERGENCY, real_cookie, REAL_ADDRESS), REPLY_TIMEOUT)
            result["real_reply_s"] = round(seconds, 3)
        except (asyncio.TimeoutError, aiohttp.ClientError, RuntimeError) as err:
            result["real_reply_s"] = f"missed: {type(err).__name__} {err}"
        await asyncio.sleep(1.0)
        return result

    phase = await measure(stack, f"H1: {o.fakes} fake emergencies", o, attack)
    flood_ids = set(stack.conversation_ids("webchat", prefix).values())
    real = stack.conversation_ids("webchat", real_cookie).get(real_cookie)
    page_order, _ = await stack.inbox_order()
    phase.inbox = _placement(page_order, real, flood_ids)
    phase.handover = _placement(await stack.handover_list(), real, flood_ids)
    phase.attack["flood_chats"] = len(flood_ids)
    return [phase]


async def attack_h2(stack: Stack, flood: Callable[..., Awaitable[dict[str, Any]]], o: argparse.Namespace) -> list[Phase]:
    """H2: one client with many concurrent senders of long ordinary messages."""
    prefix = f"long-{uuid.uuid4().hex[:6]}-"
    return [await measure(stack, f"H2: {o.workers} senders x {o.size} chars, {o.seconds:g} s", o, lambda: flood(
        "h2", base=stack.base, workers=o.workers, seconds=o.seconds, address=ATTACKERS["h2"], prefix=prefix, size=o.size))]


async def attack_h3(stack: Stack, flood: Callable[..., Awaitable[dict[str, Any]]], o: argparse.Namespace) -> list[Phase]:
    """H3: gzip bodies at once, then bodies sent one byte at a time."""
    prefix = f"body-{uuid.uuid4().hex[:6]}-"
    gzip = await measure(stack, f"H3: {o.gzip} gzip bodies of {o.gzip_kb} KB at once", o, lambda: flood(
        "h3_gzip", base=stack.base, bodies=o.gzip, compressed_kb=o.gzip_kb, address=ATTACKERS["h3"], prefix=prefix,
        secret=SECRET))
    await asyncio.sleep(1.0)
    slow = await measure(stack, f"H3: {o.slow} senders of {o.slow_bytes / 1e6:g} MB, one byte at a time", o,
                         lambda: flood("h3_slow", base=stack.base, senders=o.slow, size=o.slow_bytes,
                                       address=ATTACKERS["h3"], prefix=prefix, secret=SECRET, max_seconds=o.slow_seconds))
    return [gzip, slow]


async def attack_h4(stack: Stack, flood: Callable[..., Awaitable[dict[str, Any]]], o: argparse.Namespace) -> list[Phase]:
    """H4: anonymous clients ask for the dashboard, its CSV and the search; none has a session."""
    prefix = f"anon-{uuid.uuid4().hex[:6]}-"
    return [await measure(stack, f"H4: {o.anon} anonymous requests for /inbox/stats, stats.csv, suche", o, lambda: flood(
        "h4", base=stack.base, requests=o.anon, concurrency=o.anon_concurrency, address=ATTACKERS["h4"], prefix=prefix))]


ATTACKS = {"h1": attack_h1, "h2": attack_h2, "h3": attack_h3, "h4": attack_h4}


async def run_attacks(o: argparse.Namespace) -> tuple[list[Phase], list[str]]:
    """Every chosen attack against its own fresh service (or one service for all with --one-service)."""
    model = None if o.no_model else Path(o.model).resolve()
    if model is not None and not model.is_file():
        raise SystemExit(f"no model at {model}: run `make train` first, or pass --no-model")
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()

    async def flood(name: str, **kw: Any) -> dict[str, Any]:
        return await loop.run_in_executor(pool, functools.partial(attack_floods.run, name, **kw))

    phases: list[Phase] = []
    problems: list[str] = []
    try:
        await loop.run_in_executor(pool, attack_floods.warm)
        groups = [list(o.attacks)] if o.one_service else [[a] for a in o.attacks]
        with tempfile.TemporaryDirectory(prefix="streife-attack-") as tmp:
            for i, group in enumerate(groups):
                folder = Path(tmp) / f"service{i}"
                folder.mkdir()
                async with running_service(folder, model, o.nlu_workers) as stack:
                    if i == 0 and o.calm > 0:
                        phases.append(await measure(stack, f"calm: no attack, {o.calm:g} s", o,
                                                    lambda: asyncio.sleep(o.calm, {})))
                    for name in group:
                        phases += await ATTACKS[name](stack, flood, o)
                problems += [f"service {i} ({', '.join(group)}): {line}" for line in log_problems(folder)]
    finally:
        pool.shutdown(cancel_futures=True)
    return phases, problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attacks", nargs="+", choices=sorted(ATTACKS), default=["h1", "h2", "h3", "h4"])
    parser.add_argument("--rate", type=float, default=1.0, help="real emergencies per second on each channel")
    parser.add_argument("--calm", type=float, default=10.0, help="seconds of emergencies without an attack first")
    parser.add_argument("--min-phase", type=float, default=10.0, help="emergencies keep coming at least this long per phase")
    parser.add_argument("--fakes", type=int, default=250, help="H1: fake emergencies")
    parser.add_argument("--workers", type=int, default=150, help="H2: concurrent senders")
    parser.add_argument("--seconds", type=float, default=30.0, help="H2: seconds of flood")
    parser.add_argument("--size", type=int, default=4000, help="H2: characters per message")
    parser.add_argument("--gzip", type=int, default=8, help="H3: gzip bodies sent at once")
    parser.add_argument("--gzip-kb", type=int, default=200, help="H3: size of each gzip body")
    parser.add_argument("--slow", type=int, default=3, help="H3: slow senders")
    parser.add_argument("--slow-bytes", type=int, default=1_000_000, help="H3: body size of each slow sender")
    parser.add_argument("--slow-seconds", type=float, default=90.0, help="H3: a slow sender gives up after this")
    parser.add_argument("--anon", type=int, default=10_000, help="H4: anonymous requests for the inbox's new pages")
    parser.add_argument("--anon-concurrency", type=int, default=100, help="H4: of those at a time")
    parser.add_argument("--model", default=str(ROOT / "models" / "nlu.tar.gz"))
    parser.add_argument("--no-model", action="store_true", help="no NLU workers: the safety net answers alone")
    parser.add_argument("--nlu-workers", type=int, default=None, help="NLU worker processes (default: one per core)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the service in every phase (collapsed stacks in DIR)")
    parser.add_argument("--one-service", action="store_true", help="one service for every attack (default: a fresh one each)")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    before = machine()
    started = time.monotonic()
    phases, problems = await run_attacks(options)
    workers = options.nlu_workers or os.cpu_count() or 1
    print(f"# Under attack: bot serve on 127.0.0.1, {'no model (safety net only)' if options.no_model else f'{workers} NLU workers, {options.model}'}; "
          f"{options.rate:g} real emergency/s per channel, a new citizen each; {time.monotonic() - started:.0f} s in all")
    print(f"# machine before: {before}\n# machine after:  {machine()}\n")
    print(table(phases))
    print("\nTargets (issue 12):")
    print("\n".join(targets(phases)))
    if problems:
        print("\nService log (ERROR lines):\n" + "\n".join(f"  {line}" for line in problems))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
