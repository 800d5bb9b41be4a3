"""A fake Mastodon instance on 127.0.0.1: the documented endpoints the bot uses, the ways they fail, a record.

Endpoints as documented (https://docs.joinmastodon.org/methods/): GET /api/v1/accounts/verify_credentials,
/api/v1/apps/verify_credentials, /api/v1/instance, /api/v2/instance, /api/v2/notifications/policy,
/api/v1/notifications (types[], min_id, since_id, max_id, limit; newest first), /api/v1/accounts/:id/statuses;
POST /api/v1/statuses (form data; Idempotency-Key kept for an hour; 422 past the length limit, 404 for an unknown
in_reply_to_id); GET /api/v1/streaming/user and /health (server-sent events: ":)" on connect, ":thump" heartbeats).
Every answer carries X-RateLimit-Limit/-Remaining/-Reset. Faults: 429 (the "statuses" family: 300 per 3 hours on
the real server), 5xx, answers slower than the client waits, 401, streams that drop or are refused.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.mastodon_status import counted_length

TOKEN = "mastodon-test-token"
APP = "streife"
OWN = {"id": "1", "username": "polizei", "acct": "polizei", "display_name": "Polizei Musterstadt", "bot": True}
MENTION = re.compile(r"(?<![=/\w])@(\w[\w.-]*\w|\w)(?:@([\w.-]+\w))?")
FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": (429, {"error": "Too many requests"}),
    "server_error": (500, {"error": "We're sorry, but something went wrong on our end."}),
    "unavailable": (503, {"error": "Service Unavailable"}),
    "unauthorized": (401, {"error": "The access token is invalid"}),
    "forbidden": (403, {"error": "This action is not allowed"}),
    "timeout": (0, {}),  # does the work, but answers only after `slow_s`: later than the client waits
}


def now_iso(offset_s: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Posted:
    """One status the bot posted (or tried to: `status` is the HTTP answer)."""

    text: str
    visibility: str
    in_reply_to_id: str | None
    key: str | None
    status: int
    id: str | None = None
    mentions: list[str] = field(default_factory=list)
    repeat: bool = False  # the Idempotency-Key was seen: the first status came back, nothing new was posted
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeMastodon:
    """The instance; tests push citizens' statuses with dm() and read what the bot posted in `posted`."""

    token: str = TOKEN
    max_chars: int = 500
    policy: dict[str, str] = field(default_factory=lambda: {"for_not_following": "accept", "for_not_followers": "accept",
                                                            "for_new_accounts": "accept", "for_private_mentions": "accept",
                                                            "for_limited_accounts": "filter"})
    heartbeat_s: float = 15.0
    slow_s: float = 3.0
    stream_refused: int | None = None  # answer the stream with this status (e.g. 503, 404) instead
    statuses_left: int | None = None  # the "statuses" rate-limit family: None for no limit
    statuses_reset_s: float = 3 * 3600.0
    url: str = ""

    def __post_init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {"polizei": dict(OWN)}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.posted: list[Posted] = []
        self.calls: list[tuple[str, str, int]] = []
        self.faults: dict[str, list[str]] = {}
        self.idempotent: dict[str, str] = {}
        self.idempotent_hits = 0
        self.stream_connects = 0
        self._status_ids = itertools.count(110_000_000_000_000_000)
        self._notification_ids = itertools.count(5000)
        self._account_ids = itertools.count(9001)
        self._streams: set[asyncio.Queue[Any]] = set()
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    # -- running ------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> "FakeMastodon":
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_get("/api/v1/accounts/verify_credentials", self.verify_credentials)
        r.add_get("/api/v1/apps/verify_credentials", self.app_credentials)
        for slash in ("", "/"):  # Rails routes both; Mastodon.py asks for /api/v2/instance/
            r.add_get("/api/v1/instance" + slash, self.instance_v1)
            r.add_get("/api/v2/instance" + slash, self.instance_v2)
        r.add_get("/api/v2/notifications/policy", self.notification_policy)
        r.add_get("/api/v1/notifications", self.list_notifications)
        r.add_get("/api/v1/accounts/{id}/statuses", self.account_statuses)
        r.add_post("/api/v1/statuses", self.post_status)
        r.add_get("/api/v1/streaming/health", self.stream_health)
        r.add_get("/api/v1/streaming/user", self.stream_user)
        self._server = TestServer(app, host="127.0.0.1", port=port)
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self

    async def stop(self) -> None:
        self.drop_streams()
        if self._server is not None:
            await self._server.close()

    def fail_next(self, route: str, *faults: str) -> None:
        """Answer the next calls of `route` ("statuses", "notifications", "stream") with these faults (see FAULTS)."""
        assert set(faults) <= set(FAULTS), faults
        self.faults.setdefault(route, []).extend(faults)

    def drop_streams(self, abrupt: bool = True) -> None:
        """End every open stream: abruptly (the connection breaks) or cleanly (the body ends)."""
        for queue in list(self._streams):
            queue.put_nowait("abort" if abrupt else None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `condition()` holds (a guard against hanging, not a timing assertion)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- what citizens and officers do --------------------------------------------------------

    def citizen(self, acct: str) -> dict[str, Any]:
        """A citizen's account (created on first use; "anna@social.example" is remote, "anna" local)."""
        if acct not in self.accounts:
            self.accounts[acct] = {"id": str(next(self._account_ids)), "username": acct.split("@")[0], "acct": acct,
                                   "display_name": acct.split("@")[0].title(), "bot": False,
                                   "url": f"https://{acct.split('@')[1] if '@' in acct else 'polizei.example'}/@{acct.split('@')[0]}"}
        return self.accounts[acct]

    def dm(self, acct: str, text: str = "", visibility: str = "direct", media: list[str] | None = None,
           content: str | None = None, spoiler: str = "", push: bool = True) -> str:
        """A citizen's status mentioning the police account, its mention notification (streamed if `push`); the status id."""
        author = self.citizen(acct)
        body = html.escape(text).replace("\n", "<br>")
        mention = '<span class="h-card" translate="no"><a href="https://polizei.example/@polizei" class="u-url mention">@<span>polizei</span></a></span>'
        status = self._status(author, content if content is not None else f"<p>{mention} {body}</p>", visibility,
                              [self._mention(OWN)], spoiler)
        status["media_attachments"] = [{"id": str(n), "type": kind, "url": f"https://files.example/{n}.bin", "description": None}
                                       for n, kind in enumerate(media or [], 1)]
        note = {"id": str(next(self._notification_ids)), "type": "mention", "created_at": now_iso(), "account": author, "status": status}
        self.notifications.append(note)
        if push:
            self.push("notification", note)
        return status["id"]

    def raw_notification(self, payload: dict[str, Any], push: bool = True) -> None:
        """Any notification body, as it is (for malformed input)."""
        payload = {"id": str(next(self._notification_ids)), **payload}
        self.notifications.append(payload)
        if push:
            self.push("notification", payload)

    def officer_dm(self, acct: str, text: str, app: str = "Web") -> str:
        """An officer answers a citizen in Mastodon's own app (not through the bot); the status id."""
        citizen = self.citizen(acct)
        content = f'<p><span class="h-card"><a href="{citizen["url"]}" class="u-url mention">@<span>{citizen["username"]}</span></a></span> {html.escape(text)}</p>'
        status = self._status(self.accounts["polizei"], content, "direct", [self._mention(citizen)], "", app)
        self.push("update", status)
        return status["id"]

    def push(self, event: str, payload: Any) -> None:
        for queue in list(self._streams):
            queue.put_nowait((event, payload))

    def replies(self, acct: str | None = None, visibility: str | None = None) -> list[Posted]:
        """Statuses the bot posted (to `acct`, of `visibility`), in order; repeats of an Idempotency-Key not counted."""
        return [p for p in self.posted if p.status == 200 and not p.repeat and (acct is None or acct in p.mentions)
                and (visibility is None or p.visibility == visibility)]

    def _status(self, author: dict[str, Any], content: str, visibility: str, mentions: list[dict[str, Any]],
                spoiler: str, app: str | None = None) -> dict[str, Any]:
        ident = str(next(self._status_ids))
        status = {"id": ident, "created_at": now_iso(), "in_reply_to_id": None, "in_reply_to_account_id": None,
                  "sensitive": False, "spoiler_text": spoiler, "visibility": visibility, "language": "de",
                  "uri": f"https://polizei.example/statuses/{ident}", "url": f"https://polizei.example/@{author['username']}/{ident}",
                  "content": content, "account": author, "mentions": mentions, "media_attachments": [], "tags": [],
                  "emojis": [], "reblog": None, "application": {"name": app} if app else None}
        self.statuses[ident] = status
        return status

    @staticmethod
    def _mention(account: dict[str, Any]) -> dict[str, Any]:
        return {k: account.get(k, "") for k in ("id", "username", "acct", "url")}

    # -- the API --------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}" and request.path != "/api/v1/streaming/health":
            response: web.StreamResponse = web.json_response(FAULTS["unauthorized"][1], status=401)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as err:
                self.calls.append((request.method, request.path, err.status))
                raise
        self.calls.append((request.method, request.path, response.status))
        return response

    def _headers(self, remaining: int = 299, reset_s: float = 300.0) -> dict[str, str]:
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": now_iso(reset_s)}

    async def _fault(self, route: str) -> web.Response | None:
        queue = self.faults.get(route)
        if not queue:
            return None
        fault = queue.pop(0)
        status, body = FAULTS[fault]
        if fault == "timeout":
            await asyncio.sleep(self.slow_s)
            return None
        headers = self._headers(0, 1.0) if status == 429 else self._headers()
        return web.json_response(body, status=status, headers=headers)

    async def verify_credentials(self, request: web.Request) -> web.Response:
        return web.json_response(self.accounts["polizei"], headers=self._headers())

    async def app_credentials(self, request: web.Request) -> web.Response:
        return web.json_response({"name": APP, "website": None}, headers=self._headers())

    async def instance_v1(self, request: web.Request) -> web.Response:
        ws = self.url.replace("http://", "ws://")
        return web.json_response({"uri": "polizei.example", "title": "Fake", "version": "4.3.0", "urls": {"streaming_api": ws},
                                  "configuration": {"statuses": {"max_characters": self.max_chars, "characters_reserved_per_url": 23}}})

    async def instance_v2(self, request: web.Request) -> web.Response:
        ws = self.url.replace("http://", "ws://")
        return web.json_response({"domain": "polizei.example", "title": "Fake", "version": "4.3.0", "api_versions": {"mastodon": 2},
                                  "configuration": {"urls": {"streaming": ws},
                                                    "statuses": {"max_characters": self.max_chars, "characters_reserved_per_url": 23}}})

    async def notification_policy(self, request: web.Request) -> web.Response:
        return web.json_response({**self.policy, "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}})

    @staticmethod
    def _page(items: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
        """Mastodon's id paging: max_id/since_id bound, min_id pages forward; newest first either way."""
        key = lambda value: (len(value), value)  # noqa: E731 (numeric ids as text)
        limit = min(int(query.get("limit") or 40), 80)
        if query.get("max_id"):
            items = [i for i in items if key(i["id"]) < key(query["max_id"])]
        if query.get("since_id"):
            items = [i for i in items if key(i["id"]) > key(query["since_id"])]
        items = sorted(items, key=lambda i: key(i["id"]))
        if query.get("min_id"):
            items = [i for i in items if key(i["id"]) > key(query["min_id"])][:limit]
        else:
            items = items[-limit:]
        return list(reversed(items))

    async def list_notifications(self, request: web.Request) -> web.Response:
        fault = await self._fault("notifications")
        if fault is not None:
            return fault
        types = request.query.getall("types[]", [])
        items = [n for n in self.notifications if not types or n.get("type") in types]
        return web.json_response(self._page(items, request.query), headers=self._headers())

    async def account_statuses(self, request: web.Request) -> web.Response:
        mine = request.match_info["id"] == OWN["id"]  # the author sees all its statuses, direct ones too
        items = [s for s in self.statuses.values() if s["account"]["id"] == request.match_info["id"]
                 and (mine or s["visibility"] in ("public", "unlisted"))]
        return web.json_response(self._page(items, request.query), headers=self._headers())

    async def post_status(self, request: web.Request) -> web.Response:
        form = await request.post()
        text, visibility = str(form.get("status") or ""), str(form.get("visibility") or "public")
        reply_to = str(form.get("in_reply_to_id") or "") or None
        key = request.headers.get("Idempotency-Key")
        posted = Posted(text, visibility, reply_to, key, 200)
        self.posted.append(posted)
        work = asyncio.ensure_future(self._create(posted))  # a client that gives up does not stop the server's work
        work.add_done_callback(lambda done: setattr(posted, "status", done.result().status) if not done.cancelled() else None)
        response = await asyncio.shield(work)
        await self._notify()
        return response

    async def _create(self, posted: Posted) -> web.Response:
        fault = await self._fault("statuses")
        if fault is not None:
            return fault
        if posted.key and posted.key in self.idempotent:  # a repeat within the hour: the first status again
            self.idempotent_hits += 1
            posted.id, posted.repeat = self.idempotent[posted.key], True
            return web.json_response(self.statuses[posted.id], headers=self._headers())
        if self.statuses_left is not None:
            if self.statuses_left <= 0:
                return web.json_response(FAULTS["rate_limit"][1], status=429, headers=self._headers(0, self.statuses_reset_s))
            self.statuses_left -= 1
        if not posted.text.strip():
            return web.json_response({"error": "Validation failed: Text can't be blank"}, status=422)
        if counted_length(posted.text) > self.max_chars:
            return web.json_response({"error": f"Validation failed: Text character limit of {self.max_chars} exceeded"}, status=422)
        if posted.visibility not in ("public", "unlisted", "private", "direct"):
            return web.json_response({"error": "Validation failed: Visibility is not included in the list"}, status=422)
        if posted.in_reply_to_id is not None and posted.in_reply_to_id not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404)
        mentioned = [self.accounts[m.group(1) + ("@" + m.group(2) if m.group(2) else "")]
                     for m in MENTION.finditer(posted.text) if (m.group(1) + ("@" + m.group(2) if m.group(2) else "")) in self.accounts]
        posted.mentions = [a["acct"] for a in mentioned]
        content = "<p>" + html.escape(posted.text).replace("\n", "<br>") + "</p>"
        status = self._status(self.accounts["polizei"], content, posted.visibility, [self._mention(a) for a in mentioned], "", APP)
        status["in_reply_to_id"] = posted.in_reply_to_id
        posted.id = status["id"]
        if posted.key:
            self.idempotent[posted.key] = posted.id
        self.push("update", status)  # own statuses reach the author's home stream
        remaining = self.statuses_left if self.statuses_left is not None else 299
        return web.json_response(status, headers=self._headers(remaining, self.statuses_reset_s if self.statuses_left is not None else 300.0))

    async def stream_health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def stream_user(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault("stream")
        if fault is not None:
            return fault
        if self.stream_refused is not None:
            return web.json_response({"error": "Streaming unavailable"}, status=self.stream_refused)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        await response.write(b":)\n")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams.add(queue)
        self.stream_connects += 1
        await self._notify()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.heartbeat_s)
                except asyncio.TimeoutError:
                    await response.write(b":thump\n")
                    continue
                if item is None:
                    break
                if item == "abort":
                    if request.transport is not None:
                        request.transport.close()
                    break
                event, payload = item
                await response.write(f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode())
        except ConnectionResetError:
            pass
        finally:
            self._streams.discard(queue)
            await self._notify()
        return response

