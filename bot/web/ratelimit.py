"""Small in-memory limits: token buckets per key and counted slots, both with bounded memory.

Written here rather than taken from the `limits` package: its in-memory storage starts a timer
thread after every hit that scans all keys (costly under exactly the flood it should absorb), and
it needs packaging>=21, which Rasa's side of the project cannot have.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, OrderedDict
from typing import Any, AsyncIterator, Callable

MAX_KEYS = 100_000  # keys remembered per limit; the least recently used is forgotten first


class Buckets:
    """Token buckets per key: `capacity` tokens that refill evenly over `period` seconds."""

    def __init__(self, capacity: float, period: float, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be more than 0")
        self.capacity = float(capacity)
        self.rate = self.capacity / period  # tokens per second
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """0.0 when `key` may spend `cost` now, else the seconds until it may (nothing is spent)."""
        cost = min(float(cost), self.capacity)
        missing = cost - self._tokens(key, self.clock())
        return 0.0 if missing <= 0 else missing / self.rate

    def spend(self, key: str, cost: float = 1.0) -> None:
        """Spend `cost` tokens of `key` (never below zero: an exempt message does not punish later)."""
        now = self.clock()
        self._buckets[key] = (max(0.0, self._tokens(key, now) - float(cost)), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend `cost` when there is enough and return 0.0; else spend nothing and return the wait in seconds."""
        wait = self.retry_after(key, cost)
        if wait == 0.0:
            self.spend(key, cost)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class Slots:
    """Things held open (event streams): at most `per_key[kind]` per key of each kind and `total` overall."""

    def __init__(self, per_key: dict[str, int], total: int) -> None:
        self.per_key = dict(per_key)
        self.total = total
        self.open = 0
        self._held: Counter[tuple[str, str]] = Counter()

    def acquire(self, keys: dict[str, str]) -> str | None:
        """Hold one slot for every key (kind -> key); None when granted, else the kind that is full ("total" overall)."""
        if self.open >= self.total:
            return "total"
        for kind, key in keys.items():
            if self._held[(kind, key)] >= self.per_key[kind]:
                return kind
        for kind, key in keys.items():
            self._held[(kind, key)] += 1
        self.open += 1
        return None

    def release(self, keys: dict[str, str]) -> None:
        """Give back the slots `acquire(keys)` granted."""
        for kind, key in keys.items():
            self._held[(kind, key)] -= 1
            if self._held[(kind, key)] <= 0:
                del self._held[(kind, key)]
        self.open -= 1

    def held(self, kind: str, key: str) -> int:
        """How many slots `key` of `kind` holds now."""
        return self._held.get((kind, key), 0)


class Gate:
    """Requests in progress: at most `per_key` of one client at a time and `total` overall; others wait.

    A client with more than `waiting` requests already waiting is refused at once, before its body
    is read: one address with 150 parallel senders then costs the event loop two requests' work at
    a time, not 150, and every other citizen and channel keeps its turn (bench/attack.py, H2).
    """

    def __init__(self, per_key: int, waiting: int, total: int) -> None:
        self.per_key, self.waiting, self.total = per_key, waiting, total
        self._keys: dict[str, list[Any]] = {}  # key -> [semaphore, requests holding or waiting]
        self._all: asyncio.Semaphore | None = None
        self.refused = 0

    @contextlib.asynccontextmanager
    async def enter(self, key: str) -> AsyncIterator[bool]:
        """Wait for this client's turn; yields False (at once) when too many of its requests already wait."""
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = [asyncio.Semaphore(self.per_key), 0]
        if entry[1] >= self.per_key + self.waiting:
            self.refused += 1
            yield False
            return
        if self._all is None:
            self._all = asyncio.Semaphore(self.total)
        entry[1] += 1
        try:
            async with entry[0], self._all:
                yield True
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._keys.pop(key, None)
