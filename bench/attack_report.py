"""Figures of bench/attack.py: memory and CPU from /proc, the phases, and the report against issue 12's targets."""

from __future__ import annotations

import asyncio
import math
import os
import platform
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHANNELS = ("webchat", "telegram", "instagram")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _status_value(pid: int, key: str) -> int:
    """A kB field of /proc/PID/status (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """The direct children of a process (the service's NLU workers)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Memory:
    """Peak resident memory of the service (without its workers) and of each worker, sampled every 0.1 s; CPU used."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        with suppress(OSError):  # "5" resets VmHWM to the current RSS, so the peak is this phase's own
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.service_start_mb = _status_value(pid, "VmRSS") / 1024
        self.service_peak_mb = self.service_start_mb
        self.worker_peak_mb: dict[int, float] = {}
        self.cpu_start = (cpu_seconds(pid), sum(cpu_seconds(c) for c in children(pid)))
        self.cpu_used = (0.0, 0.0)  # service, workers: CPU seconds during the phase
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Read the RSS of the service and of each of its children now."""
        self.service_peak_mb = max(self.service_peak_mb, _status_value(self.pid, "VmRSS") / 1024)
        for child in children(self.pid):
            rss = _status_value(child, "VmRSS") / 1024
            self.worker_peak_mb[child] = max(self.worker_peak_mb.get(child, 0.0), rss)

    def service_hwm_mb(self) -> float:
        """The service's VmHWM: its peak since this sampler started (catches spikes between samples)."""
        return _status_value(self.pid, "VmHWM") / 1024

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.1)

    def __enter__(self) -> "Memory":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self.cpu_used = (cpu_seconds(self.pid) - self.cpu_start[0],
                         sum(cpu_seconds(c) for c in children(self.pid)) - self.cpu_start[1])
        if self._task is not None:
            self._task.cancel()


@dataclass
class Placement:
    """Where the real emergency stands in one listing of the waiting chats."""

    rank: int | None  # 1-based; None: not listed at all
    flood_above: int  # the flood's chats listed before it (all of those listed, when it is missing)
    listed: int

    def text(self) -> str:
        """The placement in words, for the report."""
        if self.rank is None:
            return f"not listed ({self.listed} listed)"
        return f"#{self.rank} of {self.listed}; above it {self.flood_above} flood, {self.rank - 1 - self.flood_above} real"


@dataclass
class Phase:
    """One attack (or the calm before) and what the emergencies and the service did meanwhile."""

    name: str
    latency: dict[str, list[float]]
    missed: Counter[str]
    service_mb: tuple[float, float, float]  # RSS at the start, sampled peak, VmHWM during the phase
    workers_mb: list[float]
    cpu_s: tuple[float, float]  # CPU seconds of the service and of its workers during the phase
    seconds: float
    five_xx: int
    attack: dict[str, Any] = field(default_factory=dict)
    inbox: Placement | None = None
    handover: Placement | None = None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (with 30 values, p99 is the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else float("nan")


def _ms(values: list[float], missed: int) -> str:
    if not values:
        return f"– ({missed} missed)" if missed else "–"
    text = f"{1000 * percentile(values, 0.5):.0f} / {1000 * percentile(values, 0.99):.0f}"
    return text + (f" ({missed} missed)" if missed else "")


def _answers(result: dict[str, Any]) -> str:
    parts = [f"{n}×{s}" for s, n in sorted(result.get("statuses", {}).items(), key=lambda kv: int(kv[0]))]
    parts += [f"{n}× {e}" for e, n in sorted(result.get("errors", {}).items())]
    took = f" in {result['seconds']:g} s" if "seconds" in result else ""
    return (", ".join(parts) + took) if parts else "–"


def table(phases: list[Phase]) -> str:
    """The figures as a Markdown table."""
    rows = ["| phase | web chat p50 / p99 ms | Telegram p50 / p99 ms | Instagram p50 / p99 ms | real emergency: /inbox; "
            "handover list | service RSS MB (start → peak; VmHWM) | NLU workers peak RSS MB | CPU s: service / workers "
            "(wall s) | 5xx | attacker got |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        lat = [f"{_ms(p.latency[c], p.missed[c])} (n={len(p.latency[c])})" for c in CHANNELS]
        inbox = f"{p.inbox.text()}; {p.handover.text()}" if p.inbox and p.handover else "–"
        workers = " + ".join(f"{mb:.0f}" for mb in p.workers_mb) or "none"
        start, peak, hwm = p.service_mb
        cpu = f"{p.cpu_s[0]:.1f} / {p.cpu_s[1]:.1f} ({p.seconds:.0f})"
        rows.append(f"| {p.name} | {' | '.join(lat)} | {inbox} | {start:.0f} → {peak:.0f}; {hwm:.0f} | {workers} "
                    f"| {cpu} | {p.five_xx} | {_answers(p.attack)} |")
    return "\n".join(rows)


def targets(phases: list[Phase]) -> list[str]:
    """The issue's targets, each met or missed (and by how much)."""
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    def worst_p99(ps: list[Phase]) -> tuple[float, str]:
        pairs = [(percentile(p.latency[c], 0.99) if p.latency[c] and not p.missed[c] else math.inf, f"{p.name[:3]} {c}")
                 for p in ps for c in CHANNELS]
        return max(pairs) if pairs else (0.0, "-")

    for key, label in (("H2", "under the H2 flood, emergency p99 <= 1 s on every channel"),
                       ("H3", "under compressed and slow bodies, emergency p99 <= 1 s"),
                       ("H4", "under anonymous requests for the inbox's new pages, emergency p99 <= 1 s")):
        ps = [p for p in phases if p.name.startswith(key)]
        if ps:
            worst, where = worst_p99(ps)
            lines.append(f"- {label}: {verdict(worst <= 1.0)} (worst p99 {worst * 1000:.0f} ms, {where})")
    for p in phases:
        if p.inbox is not None and p.handover is not None:
            ok = p.inbox.rank is not None and p.inbox.flood_above == 0 and p.handover.rank is not None \
                and p.handover.flood_above == 0
            lines.append(f"- after the H1 flood, the real emergency before every fake one (only real emergencies that "
                         f"waited longer above it): {verdict(ok)} (/inbox {p.inbox.text()}; handover list "
                         f"{p.handover.text()}; its 110 prompt after {p.attack.get('real_reply_s')} s)")
    for p in phases:
        if p.name.startswith("H4"):
            statuses, errors = p.attack.get("statuses", {}), p.attack.get("errors", {})
            ok = set(map(int, statuses)) <= {303, 401} and not errors
            slowest = max((pair[1] for pair in p.attack.get("refusal_ms_p50_p99", {}).values()), default=math.nan)
            lines.append(f"- anonymous requests for /inbox/stats, stats.csv and suche only refused (303 to the login, 401): "
                         f"{verdict(ok)} ({_answers(p.attack)}; refusal p99 at most {slowest:.0f} ms)")
    h3 = [p for p in phases if p.name.startswith("H3")]
    if h3:
        peak = max(max(p.service_mb[1:]) for p in h3)
        lines.append(f"- compressed and slow bodies keep the service under 500 MB: {verdict(peak <= 500)} (peak {peak:.0f} MB)")
    if phases:
        peak = max(max(p.service_mb[1:]) for p in phases)
        lines.append(f"- service RSS <= 250 MB without the workers: {verdict(peak <= 250)} (peak {peak:.0f} MB)")
        total = sum(p.five_xx for p in phases)
        lines.append(f"- no 5xx: {verdict(total == 0)} ({total})")
    return lines


def machine() -> str:
    """Python, aiohttp, cores, load and free memory: the figures depend on them."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    memory = ""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        memory = f", {int(info['MemAvailable'].split()[0]) // 1024} MB available"
    except (OSError, KeyError, ValueError):
        pass
    return (f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, {os.cpu_count()} cores, "
            f"load average {load}{memory}")
