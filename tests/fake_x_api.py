"""A fake of X on 127.0.0.1: the v2 DM endpoint (with OAuth 1.0a checked), and X's side of the webhook.

Send: POST /2/dm_conversations/with/{participant_id}/messages, JSON {"text": ...}, answered 201 with
{"data": {"dm_conversation_id", "dm_event_id"}} and x-rate-limit-* headers
(https://docs.x.com/x-api/direct-messages/manage/integrate, https://docs.x.com/x-api/fundamentals/rate-limits).
Errors are problem objects (https://docs.x.com/x-api/fundamentals/response-codes-and-errors). The OAuth 1.0a
signature is recomputed here from RFC 5849 section 3.4 with the standard library, independently of oauthlib.
Webhook bodies follow https://docs.x.com/x-api/account-activity/introduction (direct_message_events).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.x_webhook import SIGNATURE_HEADER, sign

CONSUMER_KEY = "x-consumer-key-for-tests"
CONSUMER_SECRET = "x-consumer-secret-for-tests"
ACCOUNT = "1500000000000000001"  # the police account's user id
ACCESS_TOKEN = f"{ACCOUNT}-x-access-token-for-tests"
ACCESS_SECRET = "x-access-token-secret-for-tests"
MAX_TEXT = 10_000
_event_ids = itertools.count(1_900_000_000_000_000_001)


def _problem(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"title": title, "detail": detail, "type": kind, "status": status, **extra}


# (HTTP status, body) per fault, shaped as X documents them.
FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": _problem(429, "Too Many Requests", "Too Many Requests"),
    "usage_capped": _problem(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap",
                             "https://api.x.com/2/problems/usage-capped", period="Monthly", scope="Product"),
    "server_error": _problem(503, "Service Unavailable", "Service Unavailable"),
    "unauthorized": _problem(401, "Unauthorized", "Unauthorized"),
    "forbidden": _problem(403, "Forbidden", "You are not permitted to send messages to this user."),
    "client_forbidden": _problem(403, "Client Forbidden", "This request must be made using an approved developer account "
                                 "that is enrolled in the requested endpoint.", "https://api.x.com/2/problems/client-forbidden",
                                 reason="client-not-enrolled"),
    "not_found": _problem(404, "Not Found Error", "Could not find user.", "https://api.x.com/2/problems/resource-not-found"),
}


def _enc(value: str) -> str:
    return quote(value, safe="-._~")


def oauth_signature(method: str, url: str, params: list[tuple[str, str]], consumer_secret: str, token_secret: str) -> str:
    """RFC 5849 3.4: HMAC-SHA1 over METHOD&base-URL&sorted-parameters, keyed with both secrets."""
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in params))
    base = "&".join([method.upper(), _enc(url), _enc(normalized)])
    key = f"{_enc(consumer_secret)}&{_enc(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()


def _oauth_params(header: str) -> dict[str, str]:
    if not header.startswith("OAuth "):
        return {}
    params = {}
    for item in header[len("OAuth "):].split(","):
        key, _, value = item.strip().partition("=")
        params[unquote(key)] = unquote(value.strip('"'))
    return params


@dataclass
class Call:
    """One request to the DM endpoint."""

    participant: str
    body: Any
    status: int = 201
    event_id: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived (for bench/, never asserted in tests)
    answered: float | None = None  # when the answer went back

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "") if isinstance(self.body, dict) else ""


@dataclass
class FakeXApi:
    """POST /2/dm_conversations/with/{participant_id}/messages, with OAuth checked and faults on demand."""

    consumer_key: str = CONSUMER_KEY
    consumer_secret: str = CONSUMER_SECRET
    access_token: str = ACCESS_TOKEN
    access_secret: str = ACCESS_SECRET
    window_limit: int = 15_000  # requests per window (X documents 15 per 15 minutes per user for this endpoint)
    window_s: float = 900.0
    delay_s: float = 0.0  # time before answering (the DM exists from the moment the request arrived)
    fault_reset_s: float = 1.0  # a 429 from fail_next() says the window resets this far ahead
    calls: list[Call] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # applied to the next requests, one each, in order
    echo_to: str = ""  # a webhook URL: every DM sent is delivered there too, as X does
    echo_first: bool = False  # deliver the echo before answering the POST (X does not promise the order)
    url: str = ""

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None
        self._window = (0.0, 0)  # (reset time, requests used)
        self._nonces: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> "FakeXApi":
        app = web.Application()
        app.router.add_post("/2/dm_conversations/with/{participant_id}/messages", self.messages)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.close()

    def fail_next(self, *faults: str) -> None:
        """Answer the next requests with these faults (FAULTS; "timeout": no DM, no answer; "lost_answer": the DM, no answer)."""
        unknown = set(faults) - set(FAULTS) - {"timeout", "lost_answer"}
        assert not unknown, f"unknown faults {unknown}"
        self.faults.extend(faults)

    def sent(self) -> list[Call]:
        """The DMs X created."""
        return [c for c in self.calls if c.status == 201]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Call]:
        """Wait until `count` requests arrived (a guard against hanging, not a timing assertion)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), timeout)
        return self.calls

    async def messages(self, request: web.Request) -> web.Response:
        """X's DM endpoint: authenticate, apply the rate window, validate, create the DM."""
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        call = Call(request.match_info["participant_id"], body)
        injected = bool(self.faults)
        status, payload = self._answer(request, call)
        call.status = status
        lost = status == 201 and bool(self.faults) and self.faults[0] == "lost_answer"
        if lost:
            self.faults.pop(0)
        if status == 201:
            call.event_id = str(next(_event_ids))
            payload = {"data": {"dm_conversation_id": f"{ACCOUNT}-{call.participant}", "dm_event_id": call.event_id}}
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if status == 201 and self.echo_to:
            echo = self._spawn(self._echo(call))
            if self.echo_first:
                await echo
        if status == 0 or lost:
            await asyncio.sleep(3600)  # never answer (the client gives up)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        call.answered = time.monotonic()
        return web.json_response(payload, status=status, headers=self._limit_headers(status, injected))

    def _answer(self, request: web.Request, call: Call) -> tuple[int, dict[str, Any]]:
        if not self._signed(request):
            return FAULTS["unauthorized"]
        if self.faults and self.faults[0] != "lost_answer":
            fault = self.faults.pop(0)
            return (0, {}) if fault == "timeout" else FAULTS[fault]
        reset, used = self._window
        if time.time() >= reset:
            reset, used = time.time() + self.window_s, 0
        self._window = (reset, used + 1)
        if used >= self.window_limit:
            return FAULTS["rate_limit"]
        text = call.body.get("text") if isinstance(call.body, dict) else None
        if not call.participant.isdigit() or not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.",
                            "https://api.x.com/2/problems/invalid-request")
        return 201, {}

    def _limit_headers(self, status: int, injected: bool = False) -> dict[str, str]:
        reset, used = self._window
        if status == 429 and injected:  # a fault from fail_next(): its window resets fault_reset_s ahead
            reset = time.time() + self.fault_reset_s
        remaining = 0 if status == 429 else max(0, self.window_limit - used)
        return {"x-rate-limit-limit": str(self.window_limit), "x-rate-limit-remaining": str(remaining),
                "x-rate-limit-reset": str(int(reset) + (1 if reset % 1 else 0))}

    def _signed(self, request: web.Request) -> bool:
        """OAuth 1.0a user context: the right keys, a fresh nonce, and a signature over method, URL and query."""
        oauth = _oauth_params(request.headers.get("Authorization", ""))
        if oauth.get("oauth_consumer_key") != self.consumer_key or oauth.get("oauth_token") != self.access_token:
            return False
        if oauth.get("oauth_signature_method") != "HMAC-SHA1" or oauth.get("oauth_nonce", "") in self._nonces:
            return False
        if abs(time.time() - float(oauth.get("oauth_timestamp") or 0)) > 300:
            return False
        self._nonces.add(oauth["oauth_nonce"])
        params = [(k, v) for k, v in oauth.items() if k not in ("oauth_signature", "realm")] + list(request.query.items())
        url = str(request.url.with_query(None))
        expected = oauth_signature(request.method, url, params, self.consumer_secret, self.access_secret)
        return hmac.compare_digest(expected, oauth.get("oauth_signature", ""))

    async def _echo(self, call: Call) -> None:
        """Deliver the sent DM to the webhook, as X does with every DM the account sends."""
        event = dm_event(ACCOUNT, call.participant, call.text, event_id=call.event_id)
        async with aiohttp.ClientSession() as session:
            await deliver(session, self.echo_to, activity(event), self.consumer_secret, attempts=1)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


# -- X's side of the webhook ---------------------------------------------------------------------


def dm_event(sender: str, recipient: str = ACCOUNT, text: str = "", event_id: str | None = None,
             media: dict[str, Any] | None = None, urls: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """One direct_message_events item (type message_create), as the Account Activity API delivers it."""
    data: dict[str, Any] = {"text": text, "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": urls or []}}
    if media is not None:
        data["attachment"] = {"type": "media", "media": media}
    data.update(extra)
    return {"type": "message_create", "id": event_id or str(next(_event_ids)), "created_timestamp": str(int(time.time() * 1000)),
            "message_create": {"target": {"recipient_id": recipient}, "sender_id": sender, "message_data": data}}


def activity(*events: dict[str, Any], for_user_id: str = ACCOUNT) -> dict[str, Any]:
    """An Account Activity API body: the events and the users map X adds (names stay out of the log)."""
    users = {}
    for event in events:
        create = event.get("message_create") if isinstance(event, dict) else None
        if isinstance(create, dict) and isinstance(create.get("sender_id"), str):
            sender = create["sender_id"]
            users[sender] = {"id": sender, "name": f"Name {sender}", "screen_name": f"handle_{sender}"}
    return {"for_user_id": for_user_id, "direct_message_events": list(events), "users": users}


def xaa(*events: dict[str, Any], account: str = ACCOUNT, event_type: str = "dm.received") -> dict[str, Any]:
    """The same events in the X Activity API's envelope (data.event_type, data.filter, data.payload)."""
    return {"data": {"event_uuid": "-6850472171600526495", "filter": {"user_id": account}, "event_type": event_type,
                     "tag": "dm-inbound", "payload": {"direct_message_events": list(events), "users": {}}}}


async def deliver(session: aiohttp.ClientSession, url: str, body: Any, secret: str = CONSUMER_SECRET, attempts: int = 4,
                  retry_s: float = 0.5, raw: bytes | None = None) -> int:
    """POST a signed webhook body as X does; a refused or lost delivery is tried again (up to `attempts`). Last status."""
    data = raw if raw is not None else json.dumps(body).encode()
    status = 0
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(retry_s)
        try:
            async with session.post(url, data=data, headers={SIGNATURE_HEADER: sign(secret, data),
                                                             "Content-Type": "application/json"}) as response:
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status = 0
        if status == 200:
            break
    return status
