"""X's send window for the police account, learnt from the x-rate-limit-* headers of every answer.

https://docs.x.com/x-api/fundamentals/rate-limits: x-rate-limit-remaining and x-rate-limit-reset (a Unix
time) on every answer, 429 past the limit. For POST /2/dm_conversations/with/:participant_id/messages the
page names 15 requests per 15 minutes and 1,440 per 24 hours per user (the endpoint's own reference page
said 200 per 15 minutes): the headers, not either number, decide here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

MAX_WAIT_S = 3.0  # a send waits this long for a reset; a later one parks it (the chat's turn must not be held)
UNKNOWN_RESET_S = 60.0  # a 429 without x-rate-limit-reset: try again after this long


class WindowClosed(Exception):
    """The send window reopens later than a send may wait."""

    def __init__(self, until: float) -> None:
        super().__init__(f"X's send window is closed until {until:.0f}")
        self.until = until


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RateWindow:
    """While the window is closed, sends wait for its reset, then go one at a time, escalations first.

    One answer that shows room again opens it for everyone. A reset further away than
    `max_wait_s` is not waited for: the send fails for now (WindowClosed) and is parked until
    the reset (bot/channels/x.py).
    """

    def __init__(self, clock: Callable[[], float] = time.time, max_wait_s: float = MAX_WAIT_S) -> None:
        self.clock, self.max_wait_s = clock, max_wait_s
        self.closed_until = 0.0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()
        self._busy = False  # a request is out on a turn
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Sends waiting for the window."""
        return len(self._urgent) + len(self._ordinary)

    @property
    def open(self) -> bool:
        return self.closed_until <= self.clock() and not self._busy and not self.waiting

    def learn(self, status: int, headers: Any) -> float | None:
        """Read an answer: a 429, or none left in the window, closes it until the reset. Returns the reset time."""
        reset = _number(headers.get("x-rate-limit-reset"))
        remaining = _number(headers.get("x-rate-limit-remaining"))
        if status == 429:
            self.closed_until = reset if reset and reset > self.clock() else self.clock() + UNKNOWN_RESET_S
            return self.closed_until
        if remaining is not None and remaining <= 0 and reset:
            self.closed_until = reset
        elif 200 <= status < 300:
            self.closed_until = 0.0
        return reset

    @asynccontextmanager
    async def turn(self, urgent: bool) -> AsyncIterator[None]:
        """Wait until a request may go out (at once while the window is open)."""
        if self.open:
            yield
            return
        if self.closed_until - self.clock() > self.max_wait_s:
            raise WindowClosed(self.closed_until)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._ordinary
        queue.append(future)
        self._hand_on()
        try:
            await future
        except asyncio.CancelledError:
            if future in queue:
                queue.remove(future)
            elif future.done() and not future.cancelled():
                self._release()  # the turn came with the cancellation: pass it on
            raise
        try:
            yield
        finally:
            self._release()

    def _hand_on(self) -> None:
        """Give the turn to the next waiter (escalations first) once the window has reset and nobody holds it."""
        if self._busy or self._timer is not None:
            return
        wait = self.closed_until - self.clock()
        if wait > 0 and self.waiting:
            self._timer = asyncio.get_running_loop().call_later(wait, self._tick)
            return
        while self._urgent or self._ordinary:
            future = (self._urgent or self._ordinary).popleft()
            if not future.done():
                self._busy = True
                future.set_result(None)
                return

    def _tick(self) -> None:
        self._timer = None
        self._hand_on()

    def _release(self) -> None:
        self._busy = False
        self._hand_on()
