"""Reading Mastodon: the user stream in a thread of its own, polling notifications as the fallback, the cursors.

The user stream (GET /api/v1/streaming/user: notifications and the home timeline) brings a citizen's mention at
once. After every (re)connect, and every few poll intervals while it runs, GET /api/v1/notifications?min_id=<cursor>
fetches whatever the stream missed; while the stream is down the same call runs every MASTODON_POLL_SECONDS. The
cursor is the newest notification taken and moves (and is written) only after its message is stored: a crash
re-fetches rather than loses, and duplicates are dropped by status id. Streaming:
https://docs.joinmastodon.org/methods/streaming/ (Mastodon.py's docs: "no effort is made to catch up").
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mastodon import StreamListener

from bot.channels.mastodon_api import PAGE, ApiError
from bot.channels.mastodon_status import id_key, notification_inbound

if TYPE_CHECKING:
    from bot.channels.mastodon import MastodonChannel

log = logging.getLogger("bot.channels.mastodon")

CONNECT_WAIT_S = 15.0  # a stream that has not answered by then counts as unavailable: poll instead
STREAM_RETRY_S = 60.0  # while polling, try the stream again this often
SAFETY_POLLS = 6  # while the stream runs, fetch missed notifications every SAFETY_POLLS * poll interval
POLICY_KEYS = ("for_private_mentions", "for_not_following", "for_not_followers", "for_new_accounts")


class _Listener(StreamListener):
    """Hands the stream thread's events to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        self.loop, self.queue = loop, queue
        self.socket: socket.socket | None = None
        self.closed = False

    def put(self, kind: str, payload: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the service stops
            pass

    def handle_stream(self, response: Any) -> None:
        self.socket = _socket_of(response)
        if self.closed:  # given up on before it answered: do not read
            return
        self.put("connected")
        super().handle_stream(response)

    def on_notification(self, notification: Any) -> None:
        self.put("notification", notification)

    def on_update(self, status: Any) -> None:
        self.put("update", status)

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        pass

    def close(self) -> None:
        """End the stream from another thread: shut the socket down (closing the response would wait for the reader)."""
        self.closed = True
        if self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


def _socket_of(response: Any) -> socket.socket | None:
    """The socket under a requests response (urllib3 2: raw._connection.sock; else through the file object)."""
    raw = getattr(response, "raw", None)
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class MastodonReader:
    """The Mastodon channel's part that reads: connect, stream or poll, catch up, keep the cursors."""

    async def run(self: "MastodonChannel") -> None:
        """Connect (retrying while the instance is unreachable), then stream, or poll while the stream is down."""
        delay = 1.0
        while not self.stopped:
            try:
                await self._connect()
                await self._read()
            except Exception as err:  # never let the channel die quietly: log, wait, start over
                self.problem = f"{type(err).__name__}: {err}"[:200]
                log.exception("the Mastodon channel failed; starting again in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _read(self: "MastodonChannel") -> None:
        pause = 1.0
        while not self.stopped:
            if await self._open_stream():
                self.mode, opened = "streaming", time.monotonic()
                await self._read_stream()
                if time.monotonic() - opened < 10.0:  # dropped at once again: do not hammer the instance
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 60.0)
                else:
                    pause = 1.0
            else:
                self.mode = "polling"
                await self._poll(STREAM_RETRY_S)

    async def _connect(self: "MastodonChannel") -> None:
        delay = 1.0
        while True:
            try:
                self.own = await self.api.me()
                break
            except ApiError as err:
                self.problem = str(err)
                level = logging.ERROR if err.status == 401 else logging.WARNING
                log.log(level, "Mastodon at %s not usable (%s); trying again in %.0f s", self.api.base_url, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
        self.app_name = await self.api.app_name()
        self.limits = await self.api.limits()
        policy = await self.api.policy()
        self.policy_warnings = [f"{k}={policy[k]}" for k in POLICY_KEYS if policy.get(k) in ("filter", "drop")]
        if self.policy_warnings:
            log.warning("Mastodon filters or drops notifications (%s): such DMs never reach the bot. Set these to "
                        "'accept' (README, Mastodon)", ", ".join(self.policy_warnings))
        await self._init_cursors()
        self.problem = None
        log.info("Mastodon ready as @%s on %s (statuses up to %d characters)", self.own.acct, self.api.base_url, self.limits.max_chars)

    def _key(self: "MastodonChannel", name: str) -> str:
        assert self.own is not None
        return f"mastodon:{urlsplit(self.api.base_url).netloc or self.api.base_url}:{self.own.id}:{name}"

    async def _init_cursors(self: "MastodonChannel") -> None:
        """Start after the newest notification and own status the first time (history is not answered)."""
        assert self.own is not None
        stored, own_stored = self.log.get_value(self._key("since_id")), self.log.get_value(self._key("own_since_id"))
        if stored is None:
            newest = await self.api.mentions(None, limit=1)
            stored = notification_inbound(newest[0], self.own)[0] if newest else "0"
            self.log.set_value(self._key("since_id"), stored or "0")
        if own_stored is None:
            newest = await self.api.own_statuses(self.own.id, None, limit=1)
            own_stored = str(newest[0].get("id") or "0") if newest and isinstance(newest[0], dict) else "0"
            self.log.set_value(self._key("own_since_id"), own_stored)
        self.cursor, self.own_cursor = stored or "0", own_stored

    # -- streaming and polling ------------------------------------------------------------------

    async def _open_stream(self: "MastodonChannel") -> bool:
        """Start a stream thread; True once the instance answered with the event stream."""
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        listener = self._listener = _Listener(asyncio.get_running_loop(), self._queue)
        threading.Thread(target=self._stream_thread, args=(listener,), name="mastodon-stream", daemon=True).start()
        try:
            kind, payload = await asyncio.wait_for(self._queue.get(), CONNECT_WAIT_S)
        except asyncio.TimeoutError:
            kind, payload = "ended", TimeoutError("no answer")
        if kind == "connected":
            self._caught_up = False  # what came before the stream is fetched first
            return True
        listener.close()
        log.warning("Mastodon stream unavailable (%s); polling notifications every %.0f s", payload, self.poll_s)
        return False

    def _stream_thread(self: "MastodonChannel", listener: _Listener) -> None:
        error: BaseException | None = None
        try:
            self.api.stream(listener)
        except BaseException as err:  # a dropped stream, a closed socket, a refusal: the loop decides
            error = err
        listener.put("ended", error)

    async def _read_stream(self: "MastodonChannel") -> None:
        """Take streamed events until the stream ends; catch up first and every few poll intervals."""
        due = 0.0
        while not self.stopped:
            if time.monotonic() >= due:
                wait = await self._catch_up_safely()
                due = time.monotonic() + max(wait, self.poll_s * SAFETY_POLLS if self.problem is None and self._caught_up else 1.0)
            try:
                kind, payload = await asyncio.wait_for(self._queue.get(), max(0.05, due - time.monotonic()))
            except asyncio.TimeoutError:
                continue
            if kind == "ended":
                log.warning("Mastodon stream ended (%s); reconnecting", payload or "closed by the instance")
                return
            try:
                if kind == "notification":
                    ident, inbound = notification_inbound(payload, self.own)  # type: ignore[arg-type]
                    await self._take([(ident, inbound)], stream=True)
                elif kind == "update":
                    self.record_own(payload)
            except sqlite3.OperationalError as err:  # not stored: the cursor stays, the next catch-up fetches it
                log.warning("a streamed Mastodon event was not stored (%s); fetching it again", err)
                self._caught_up = False
            except Exception:  # a bug must not end the stream: the catch-up fetches the event again
                log.exception("a streamed Mastodon %s could not be taken", kind)
                self._caught_up = False
            if not self._caught_up:
                due = min(due, time.monotonic() + 1.0)

    async def _poll(self: "MastodonChannel", seconds: float) -> None:
        """Fetch new notifications every poll interval for `seconds`."""
        deadline = time.monotonic() + seconds
        while not self.stopped and time.monotonic() < deadline:
            wait = await self._catch_up_safely()
            await asyncio.sleep(max(wait, self.poll_s))

    async def _catch_up_safely(self: "MastodonChannel") -> float:
        """Catch up; on failure note why. Seconds to wait before the next try (a rate limit's reset)."""
        try:
            await self.catch_up()
            self.problem = None
        except ApiError as err:
            self.problem = str(err)
            log.warning("fetching Mastodon notifications failed (%s)", err)
            if err.retry_at:  # the stream goes on meanwhile: only the next fetch waits
                return min(300.0, max(0.0, err.retry_at - time.time()))
        except sqlite3.OperationalError as err:
            self.problem, self._caught_up = f"database: {err}", False
            log.warning("storing Mastodon notifications failed (%s); trying again", err)
        except Exception as err:  # a malformed answer Mastodon.py could not read, or a bug: log it, go on
            self.problem, self._caught_up = f"{type(err).__name__}: {err}"[:200], False
            log.exception("catching up on Mastodon notifications failed")
        return 0.0

    async def catch_up(self: "MastodonChannel") -> int:
        """Fetch and store every mention (and own status) newer than the cursors; how many were new."""
        assert self.own is not None
        new, self._gap = 0, False
        while True:
            before = self.cursor
            page = await self.api.mentions(self.cursor)
            items = sorted((notification_inbound(n, self.own) for n in page), key=lambda item: id_key(item[0]))
            new += await self._take(items)
            if len(page) < PAGE or self._gap or self.cursor == before:
                break
        while True:
            before = self.own_cursor
            own = await self.api.own_statuses(self.own.id, self.own_cursor)
            for status in sorted(own, key=lambda s: id_key(str(s.get("id") or "")) if isinstance(s, dict) else (0, "")):
                self.record_own(status)
            if len(own) < PAGE or self.own_cursor == before:
                self._caught_up = not self._gap  # from now on the stream's events may move the cursor
                return new

    # -- storing --------------------------------------------------------------------------------

    def _advance(self: "MastodonChannel", name: str, ident: str) -> None:
        """Move a cursor forward and persist it (called only after what it covers is stored)."""
        current = self.cursor if name == "since_id" else self.own_cursor
        if not ident or id_key(ident) <= id_key(current) or (name == "since_id" and self._gap):
            return  # (behind a message not stored yet the cursor must not move on)
        if name == "since_id":
            self.cursor = ident
        else:
            self.own_cursor = ident
        try:
            self.log.set_value(self._key(name), ident)
        except sqlite3.OperationalError as err:  # only a starting point: an older one re-fetches, duplicates are dropped
            log.info("Mastodon cursor not stored (%s)", err)
