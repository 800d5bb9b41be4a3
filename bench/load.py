"""An open-loop HTTP load generator (aiohttp, 127.0.0.1 only) and CPU/RSS readings from /proc.

Simulated citizens send messages at a fixed offered rate, whether or not earlier ones were
answered (open loop: a slow server gets no breathing room, so queueing shows in the latency).
Every request is bounded in time; the whole run is bounded in count.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urlparse

import aiohttp

from bench.triage_latency import percentile

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# One request: (session, citizen number, text) -> True when the reply arrived.
Send = Callable[[aiohttp.ClientSession, int, str], Awaitable[bool]]


def bench_texts() -> list[str]:
    """Realistic citizens' messages: the held-out test set first, then the training data."""
    from nlu.examples import read_dir, read_examples

    return [e.text for e in read_examples(ROOT / "tests" / "test_nlu.yml") + read_dir(ROOT / "data" / "nlu")]


def local_only(url: str) -> str:
    """Refuse any target that is not 127.0.0.1 (load is only ever put on this machine)."""
    if urlparse(url).hostname != "127.0.0.1":
        raise ValueError(f"load targets must be on 127.0.0.1, got {url}")
    return url.rstrip("/")


@dataclass
class ProcStats:
    """CPU seconds and peak RSS of one process and its children, read from /proc."""

    pid: int

    def _pids(self) -> list[int]:
        pids, children = [self.pid], {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
        for pid in pids:
            pids.extend(children.get(pid, []))
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU time so far."""
        total = 0
        for pid in self._pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / CLK_TCK

    def peak_rss_mb(self) -> float:
        """VmHWM (peak resident set) summed over the process tree, in MB."""
        total = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024


@dataclass
class RunResult:
    """One target at one offered rate."""

    target: str
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0

    def p(self, q: float) -> float:
        """The q-th percentile of reply latency in ms over every message sent; unanswered ones count as infinite."""
        values = self.latencies_ms + [float("inf")] * self.failed
        return percentile(values, q) if values else float("nan")

    @property
    def throughput(self) -> float:
        """Answered messages per second, first send to last answer."""
        return self.ok / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_percent(self) -> float:
        """CPU used by the server during the run (100 = one core busy)."""
        return 100 * self.cpu_s / self.wall_s if self.wall_s else 0.0


async def offered_load(target: str, send: Send, texts: list[str], rate: float, seconds: float,
                       citizens: int = 200, stats: ProcStats | None = None, timeout: float = 30.0,
                       max_in_flight: int = 2000) -> RunResult:
    """Send `rate` messages per second for `seconds` from `citizens` chats; measure every reply."""
    result = RunResult(target, rate, seconds)
    count = max(1, int(rate * seconds))
    cpu_before = stats.cpu_seconds() if stats else 0.0
    in_flight = asyncio.Semaphore(max_in_flight)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def one(n: int, scheduled: float) -> None:
            async with in_flight:  # latency counts from the scheduled send time (no coordinated omission)
                try:
                    ok = await send(session, n % citizens, texts[n % len(texts)])
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if ok:
                    result.ok += 1
                    result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
                else:
                    result.failed += 1

        started = time.perf_counter()
        tasks = []
        for n in range(count):
            scheduled = started + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, scheduled)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.wall_s = time.perf_counter() - started
    if stats:
        result.cpu_s = stats.cpu_seconds() - cpu_before
        result.peak_rss_mb = stats.peak_rss_mb()
    return result
