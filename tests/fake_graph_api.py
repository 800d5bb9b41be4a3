"""A fake of Meta's Send API on 127.0.0.1: the request, response and error shapes the real one documents.

Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Errors: https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}
TAGS = {"HUMAN_AGENT", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"}

# (HTTP status, error object) per fault, as Meta sends them.
FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": (400, {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613}),
    "outside_window": (400, {"message": "(#10) This message is sent outside of allowed window.", "type": "OAuthException",
                             "code": 10, "error_subcode": 2018278}),
    "user_unavailable": (400, {"message": "(#551) This person isn't available right now.", "type": "OAuthException",
                               "code": 551, "error_subcode": 1545041}),
    "invalid_token": (400, {"message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190}),
    "server_error": (500, {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException",
                           "code": 2, "is_transient": True}),
}


@dataclass
class Call:
    """One request the fake received."""

    account: str
    version: str
    token: str | None
    body: dict[str, Any]
    status: int = 200
    at: float = field(default_factory=time.monotonic)  # when it arrived (for bench/, never asserted in tests)

    @property
    def recipient(self) -> str:
        return str((self.body.get("recipient") or {}).get("id"))

    @property
    def text(self) -> str:
        return str((self.body.get("message") or {}).get("text") or "")


@dataclass
class FakeGraphApi:
    """POST /{version}/{account-id}/messages and /{version}/me/messages, with fault injection."""

    token: str = "test-access-token"
    tokens: set[str] = field(default_factory=set)  # further valid tokens (a Page's, for Messenger)
    calls: list[Call] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # applied to the next requests, one each, in order
    closed_windows: set[str] = field(default_factory=set)  # recipients past 24 h: only HUMAN_AGENT gets through
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    async def start(self) -> "FakeGraphApi":
        app = web.Application()
        app.router.add_post("/{version}/{account}/messages", self.messages)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    def fail_next(self, *faults: str) -> None:
        """Answer the next requests with these faults (see FAULTS)."""
        unknown = set(faults) - set(FAULTS)
        assert not unknown, f"unknown faults {unknown}"
        self.faults.extend(faults)

    def sent(self) -> list[Call]:
        """The calls that were answered with success."""
        return [c for c in self.calls if c.status == 200]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Call]:
        """Wait until `count` calls arrived (a guard against hanging, not a timing assertion)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), timeout)
        return self.calls

    async def messages(self, request: web.Request) -> web.Response:
        """Meta's Send API: validate like Meta, then answer with a message id or an error."""
        body = await self._body(request)
        token = self._token(request, body)
        call = Call(request.match_info["account"], request.match_info["version"], token, body)
        status, error = self._check(call)
        call.status = status
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if error is not None:
            return web.json_response({"error": {**error, "fbtrace_id": "AbCdEfGhIj"}}, status=status)
        return web.json_response({"recipient_id": call.recipient, "message_id": f"aWdfZAG1faXRlbTo{next(self._ids):06d}"})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return data if isinstance(data, dict) else {}
        return dict(await request.post())

    def _token(self, request: web.Request, body: dict[str, Any]) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):]
        return request.query.get("access_token") or body.get("access_token")

    def _check(self, call: Call) -> tuple[int, dict[str, Any] | None]:
        if call.token not in {self.token, *self.tokens}:
            return FAULTS["invalid_token"]
        if self.faults:
            return FAULTS[self.faults.pop(0)]
        body, message = call.body, call.body.get("message")
        if not call.body.get("recipient") or not isinstance(message, dict):
            return 400, {"message": "(#100) The parameter recipient is required", "type": "OAuthException", "code": 100}
        kind = body.get("messaging_type")
        if kind not in MESSAGING_TYPES or (kind == "MESSAGE_TAG" and body.get("tag") not in TAGS):
            return 400, {"message": "(#100) Param messaging_type or tag is invalid", "type": "OAuthException", "code": 100}
        if len(call.text) > 1000:
            return 400, {"message": "(#100) Length of param message[text] must be less than or equal to 1000",
                         "type": "OAuthException", "code": 100}
        if len(message.get("quick_replies") or []) > 13:
            return 400, {"message": "(#100) param message[quick_replies] has too many elements", "type": "OAuthException", "code": 100}
        if call.recipient in self.closed_windows and body.get("tag") != "HUMAN_AGENT":
            return FAULTS["outside_window"]
        return 200, None
