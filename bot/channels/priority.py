"""A bounded number of holders at once, with escalations let in before anything that waits."""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator


class PriorityGate:
    """Like asyncio.Semaphore(limit), but a waiting urgent caller gets the next free place (FIFO within each kind)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a place."""
        return len(self._urgent) + len(self._ordinary)

    @asynccontextmanager
    async def slot(self, urgent: bool = False) -> AsyncIterator[None]:
        """Hold a place for the duration of the block."""
        await self.acquire(urgent)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, urgent: bool = False) -> None:
        """Wait for a place; urgent callers go ahead of ordinary ones."""
        if self.active < self.limit and not self._urgent and (urgent or not self._ordinary):
            self.active += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._ordinary
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the place came with the cancellation: pass it on
            elif future in queue:
                queue.remove(future)
            raise

    def release(self) -> None:
        """Give a place back (to the first urgent waiter, else the first ordinary one)."""
        self.active -= 1
        while self.active < self.limit:
            queue = self._urgent or self._ordinary
            if not queue:
                return
            future = queue.popleft()
            if not future.done():
                self.active += 1
                future.set_result(None)
