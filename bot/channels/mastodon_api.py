"""Mastodon.py in threads: the REST calls and the stream the channel needs, and their errors as the bot reads them.

Mastodon.py is synchronous (requests). Every call runs in a small thread pool (one client per thread: a
requests.Session is not documented as thread-safe) and the stream in a thread of its own, so the event loop never
blocks. Rate limits are thrown, not slept on (ratelimit_method="throw"): the sender decides how long to wait.
Methods: https://docs.joinmastodon.org/methods/ (statuses, notifications, accounts, instance, streaming);
rate limits: https://docs.joinmastodon.org/api/rate-limits/ (X-RateLimit-Limit, -Remaining, -Reset).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from mastodon import Mastodon, StreamListener
from mastodon.errors import (MastodonAPIError, MastodonError, MastodonNetworkError, MastodonNotFoundError,
                             MastodonRatelimitError, MastodonServerError, MastodonUnauthorizedError)

from bot.channels.mastodon_status import Account, account_of

T = TypeVar("T")
USER_AGENT = "streife (police first-response bot)"
TIMEOUT_S = 10.0  # connect and read timeout of one REST call
STREAM_TIMEOUT_S = 60.0  # no byte (not even a heartbeat, sent every 15 s) for this long: the stream is dead
DEFAULT_MAX_CHARS = 500
PAGE = 40  # notifications per page (Mastodon's default)


@dataclass(eq=False)
class ApiError(Exception):
    """A failed call: `status` 0 when the instance did not answer; `retry_at` (epoch seconds) for rate limits."""

    status: int
    message: str
    retry_at: float | None = None

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message

    @property
    def transient(self) -> bool:
        """True when trying again later can help (no answer, rate limit, server error)."""
        return self.status in (0, 408, 429) or self.status >= 500

    @classmethod
    def from_exception(cls, err: Exception, client: Mastodon | None = None) -> "ApiError":
        """Translate a Mastodon.py exception (inside the thread that made the call, for its rate-limit state)."""
        if isinstance(err, MastodonRatelimitError):
            reset = getattr(client, "ratelimit_reset", None)
            return cls(429, "rate limit reached", float(reset) if reset else time.time() + 5.0)
        if isinstance(err, MastodonNetworkError):
            return cls(0, f"no answer: {err}"[:300])
        if isinstance(err, MastodonAPIError):
            args = err.args
            status = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
            status = status or (401 if isinstance(err, MastodonUnauthorizedError) else 404 if isinstance(err, MastodonNotFoundError)
                                else 500 if isinstance(err, MastodonServerError) else 422)
            detail = args[3] if len(args) > 3 and args[3] else (args[2] if len(args) > 2 else str(err))
            return cls(status, str(detail)[:300])
        return cls(0, f"{type(err).__name__}: {err}"[:300])


@dataclass(frozen=True)
class Limits:
    """What the instance allows in one status."""

    max_chars: int = DEFAULT_MAX_CHARS
    url_chars: int = 23


class MastodonApi:
    """The calls the Mastodon channel makes, each in a worker thread."""

    def __init__(self, base_url: str, token: str, workers: int = 8, timeout_s: float | None = None,
                 stream_timeout_s: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s or TIMEOUT_S
        self.stream_timeout_s = stream_timeout_s or STREAM_TIMEOUT_S
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="mastodon")
        self.workers = workers
        self._local = threading.local()
        self.remaining: int | None = None  # what the last answer said is left of the limit closest to exceeding
        self.reset_at: float | None = None

    def client(self) -> Mastodon:
        """This thread's Mastodon.py client."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = Mastodon(access_token=self.token, api_base_url=self.base_url, ratelimit_method="throw",
                              request_timeout=self.timeout_s, version_check_mode="none", user_agent=USER_AGENT)
            self._local.client = client
        return client

    async def call(self, work: Callable[[Mastodon], T]) -> T:
        """Run `work(client)` in a worker thread; Mastodon.py's errors come back as ApiError."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._run, work)

    def _run(self, work: Callable[[Mastodon], T]) -> T:
        client = self.client()
        try:
            result = work(client)
        except MastodonError as err:
            raise ApiError.from_exception(err, client) from None
        except Exception as err:  # requests or the typed-dict casting: never let it pass as something else
            raise ApiError.from_exception(err) from None
        self.remaining, self.reset_at = client.ratelimit_remaining, client.ratelimit_reset
        return result

    def close(self) -> None:
        """Stop the worker threads (a call in flight ends with its timeout)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- the calls ---------------------------------------------------------------------------

    async def me(self) -> Account:
        """The police account the token belongs to."""
        account = account_of(await self.call(lambda c: c.account_verify_credentials()))
        if account is None:
            raise ApiError(0, "verify_credentials returned no account")
        return account

    async def app_name(self) -> str | None:
        """The name of the app the token belongs to (our own statuses carry it as `application`)."""
        try:
            app = await self.call(lambda c: c.app_verify_credentials())
        except ApiError:
            return None
        return str(app.get("name") or "") or None if isinstance(app, dict) else None

    async def limits(self) -> Limits:
        """The instance's status length limit (500 when it does not say)."""
        try:
            info = await self.call(lambda c: c.instance_v2())
            statuses = ((info.get("configuration") or {}).get("statuses") or {}) if isinstance(info, dict) else {}
            return Limits(int(statuses.get("max_characters") or DEFAULT_MAX_CHARS), int(statuses.get("characters_reserved_per_url") or 23))
        except (ApiError, TypeError, ValueError, AttributeError):
            return Limits()

    async def policy(self) -> dict[str, Any]:
        """The account's notification filtering policy (Mastodon 4.3+); empty when the instance has none."""
        try:
            policy = await self.call(lambda c: c.notifications_policy())
        except ApiError:
            return {}
        return dict(policy) if isinstance(policy, dict) else {}

    async def mentions(self, after: str | None, limit: int = PAGE) -> list[Any]:
        """Mention notifications immediately newer than `after` (min_id: paging forward from a cursor)."""
        page = await self.call(lambda c: c.notifications(types=["mention"], min_id=after, limit=limit))
        return list(page) if isinstance(page, list) else []

    async def own_statuses(self, account_id: str, after: str | None, limit: int = PAGE) -> list[Any]:
        """The police account's own statuses newer than `after` (its direct ones included: it is their author)."""
        page = await self.call(lambda c: c.account_statuses(account_id, min_id=after, limit=limit, exclude_reblogs=True))
        return list(page) if isinstance(page, list) else []

    async def post(self, text: str, visibility: str, in_reply_to: str | None, key: str) -> str:
        """Post one status; its id. `key` is the Idempotency-Key: a repeat within an hour returns the first status."""
        status = await self.call(lambda c: c.status_post(text, in_reply_to_id=in_reply_to, visibility=visibility,
                                                         idempotency_key=key))
        ident = str(status.get("id") or "") if isinstance(status, dict) else ""
        if not ident:
            raise ApiError(0, "the instance answered without a status id")
        return ident

    def stream(self, listener: StreamListener) -> None:
        """Read the user stream (notifications and the home timeline) until it ends or fails (blocking: a thread)."""
        client = Mastodon(access_token=self.token, api_base_url=self.base_url, ratelimit_method="throw",
                          request_timeout=self.timeout_s, version_check_mode="none", user_agent=USER_AGENT)
        client.stream_user(listener, timeout=self.stream_timeout_s)
