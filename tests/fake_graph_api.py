"""A fake of Meta's Send API on 127.0.0.1: the request, response and error shapes the real one documents.

Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Errors: https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
Comments (replies, hide, delete, list, private replies): see bot/channels/graph_comments.py for the pages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
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
    "app_rate_limit": (400, {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4,
                             "is_transient": True}),
    "comment_gone": (400, {"message": "Unsupported post request. Object with ID does not exist, cannot be loaded due to missing "
                           "permissions, or does not support this operation.", "type": "GraphMethodException",
                           "code": 100, "error_subcode": 33}),
    "lost_answer": (0, {}),  # comment endpoints only: done on the platform, but the connection drops before the answer
    "bad_gateway": (502, {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}),
}
PRIVATE_WINDOW = timedelta(days=7)


@dataclass
class FakeComment:
    """A comment as the fake Graph API knows it (unknown ids are created on first use)."""

    id: str
    media_id: str = ""
    text: str = ""
    author_id: str = ""
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    hidden: bool = False
    deleted: bool = False
    private_replied: bool = False
    replies: list[str] = field(default_factory=list)  # ids of comments answering this one


@dataclass
class CommentCall:
    """One request on a comment endpoint: kind is reply, private_reply, hide, unhide, delete, list or replies."""

    kind: str
    target: str  # the comment id (media id for "list")
    text: str
    token: str | None
    status: int = 200
    at: float = field(default_factory=time.monotonic)


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
    comments: dict[str, FakeComment] = field(default_factory=dict)
    comment_calls: list[CommentCall] = field(default_factory=list)  # kept apart from `calls` (the DMs)
    comment_faults: list[str] = field(default_factory=list)  # like `faults`, for the comment endpoints
    comment_delay: float = 0.0  # seconds each comment call takes (a slow Meta)
    before_private_answer: Any = None  # async (recipient_id, message_id, text) -> None: e.g. Meta's echo, sent first

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    async def start(self) -> "FakeGraphApi":
        app = web.Application()
        app.router.add_post("/{version}/{account}/messages", self.messages)
        app.router.add_post("/{version}/{id}/replies", self.comment_reply)  # Instagram
        app.router.add_post("/{version}/{id}/comments", self.comment_reply)  # Facebook
        app.router.add_get("/{version}/{id}/comments", self.comment_list)
        app.router.add_get("/{version}/{id}/replies", self.comment_list)
        app.router.add_post("/{version}/{id}", self.comment_hide)
        app.router.add_delete("/{version}/{id}", self.comment_delete)
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
        if isinstance(body.get("recipient"), dict) and "comment_id" in body["recipient"]:
            return await self.private_reply(request, body, token)
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

    # -- comments ------------------------------------------------------------------------

    def add_comment(self, comment_id: str, media_id: str = "", text: str = "", author_id: str = "",
                    age: timedelta = timedelta(0)) -> FakeComment:
        """A comment that exists on the platform (created `age` ago)."""
        comment = FakeComment(comment_id, media_id, text, author_id, datetime.now(timezone.utc) - age)
        self.comments[comment_id] = comment
        return comment

    def delete_comment(self, comment_id: str) -> None:
        """The author deleted the comment on the platform."""
        self._comment(comment_id).deleted = True

    def fail_comments(self, *faults: str) -> None:
        """Answer the next comment requests with these faults (see FAULTS)."""
        unknown = set(faults) - set(FAULTS)
        assert not unknown, f"unknown faults {unknown}"
        self.comment_faults.extend(faults)

    def done(self, kind: str | None = None) -> list[CommentCall]:
        """Comment calls answered with success (of one kind)."""
        return [c for c in self.comment_calls if c.status == 200 and (kind is None or c.kind == kind)]

    async def wait_for_comments(self, predicate: Any, timeout: float = 10.0) -> list[CommentCall]:
        """Wait until `predicate(comment_calls)` holds (a guard against hanging, not a timing assertion)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.comment_calls)), timeout)
        return self.comment_calls

    def _comment(self, comment_id: str) -> FakeComment:
        return self.comments.get(comment_id) or self.add_comment(comment_id)

    def _pre(self, call: CommentCall) -> tuple[int, dict[str, Any]] | None:
        """The token check and the next injected fault, before the call changes anything."""
        if call.token not in {self.token, *self.tokens}:
            return FAULTS["invalid_token"]
        if self.comment_faults and self.comment_faults[0] != "lost_answer":
            return FAULTS[self.comment_faults.pop(0)]
        return None

    async def _answer(self, request: web.Request, call: CommentCall, error: tuple[int, dict[str, Any]] | None,
                      data: dict[str, Any]) -> web.Response:
        """Record the call; answer with `data` or the error (fault "lost_answer": done, but the connection drops)."""
        if self.comment_delay:
            await asyncio.sleep(self.comment_delay)
        call.status = error[0] if error else 200
        lost = error is None and self.comment_faults[:1] == ["lost_answer"]
        if lost:
            self.comment_faults.pop(0)
            call.status = 0
        async with self._changed:
            self.comment_calls.append(call)
            self._changed.notify_all()
        if lost and request.transport is not None:
            request.transport.close()  # Meta did it; the answer never arrives
        if error is not None:
            return web.json_response({"error": {**error[1], "fbtrace_id": "AbCdEfGhIj"}}, status=error[0])
        return web.json_response(data)

    def _gone(self, comment_id: str) -> tuple[int, dict[str, Any]] | None:
        return FAULTS["comment_gone"] if self._comment(comment_id).deleted else None

    async def comment_reply(self, request: web.Request) -> web.Response:
        """POST /{comment-id}/replies?message= (Instagram) or /{comment-id}/comments message= (Facebook)."""
        body = await self._body(request)
        target = request.match_info["id"]
        text = request.query.get("message") or str(body.get("message") or "")
        call = CommentCall("reply", target, text, self._token(request, body))
        error = self._pre(call) or self._gone(target)
        if error is None and not text:
            error = (400, {"message": "(#100) The parameter message is required", "type": "OAuthException", "code": 100})
        if error is None and request.path.endswith("/replies") and self._comment(target).hidden:
            error = (400, {"message": "(#100) You cannot reply to a hidden comment", "type": "OAuthException", "code": 100})
        reply_id = f"1790{next(self._ids):012d}"
        if error is None:
            self._comment(target).replies.append(reply_id)
            self.add_comment(reply_id, self._comment(target).media_id, text)
        return await self._answer(request, call, error, {"id": reply_id})

    async def private_reply(self, request: web.Request, body: dict[str, Any], token: str | None) -> web.Response:
        """POST /{account}/messages with recipient.comment_id: once per comment, within 7 days."""
        target = str(body["recipient"].get("comment_id") or "")
        text = str((body.get("message") or {}).get("text") or "")
        call = CommentCall("private_reply", target, text, token)
        comment = self._comment(target)
        error = self._pre(call) or self._gone(target)
        if error is None and not text:
            error = (400, {"message": "(#100) Message cannot be empty", "type": "OAuthException", "code": 100})
        if error is None and len(text) > (1000 if token == self.token else 2000):  # Instagram's limit, Messenger's
            error = (400, {"message": "(#100) Length of param message[text] must be less than or equal to 1000",
                           "type": "OAuthException", "code": 100})
        if error is None and (comment.private_replied or datetime.now(timezone.utc) - comment.created > PRIVATE_WINDOW):
            error = FAULTS["outside_window"]  # Meta's answer to a second private reply and to one after 7 days
        if error is None:
            comment.private_replied = True
        author = comment.author_id or "6" + "".join(ch for ch in target if ch.isdigit())[-9:]  # the commenter's scoped id
        message_id = f"aWdfZAG1faXRlbTo{next(self._ids):06d}"
        if error is None and self.before_private_answer is not None:
            await self.before_private_answer(author, message_id, text)
        return await self._answer(request, call, error, {"recipient_id": author, "message_id": message_id})

    async def comment_hide(self, request: web.Request) -> web.Response:
        """POST /{comment-id}?hide=true|false (Instagram) or ?is_hidden=true|false (Facebook)."""
        body = await self._body(request)
        target = request.match_info["id"]
        flag = request.query.get("hide") or request.query.get("is_hidden") or str(body.get("hide") or body.get("is_hidden") or "")
        call = CommentCall("hide" if flag == "true" else "unhide", target, "", self._token(request, body))
        error = self._pre(call) or self._gone(target)
        if error is None and flag not in ("true", "false"):
            error = (400, {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100})
        if error is None:
            self._comment(target).hidden = flag == "true"
        return await self._answer(request, call, error, {"success": True})

    async def comment_delete(self, request: web.Request) -> web.Response:
        """DELETE /{comment-id}."""
        target = request.match_info["id"]
        call = CommentCall("delete", target, "", self._token(request, {}))
        error = self._pre(call) or self._gone(target)
        if error is None:
            self._comment(target).deleted = True
        return await self._answer(request, call, error, {"success": True})

    async def comment_list(self, request: web.Request) -> web.Response:
        """GET /{media-id}/comments or /{comment-id}/replies: the comments that are not deleted."""
        target = request.match_info["id"]
        parent = self.comments.get(target)  # a known comment: its replies; else a media's (post's) comments
        call = CommentCall("replies" if parent else "list", target, "", self._token(request, {}))
        ids = parent.replies if parent else [c.id for c in self.comments.values() if c.media_id == target]
        error = self._pre(call)
        rows = [self.comments[i] for i in ids if not self.comments[i].deleted]
        data = [{"id": c.id, "text": c.text, "message": c.text, "timestamp": c.created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                 "from": {"id": c.author_id}, "hidden": c.hidden} for c in rows]
        return await self._answer(request, call, error, {"data": data})
