"""A fake Telegram Bot API server on 127.0.0.1: the documented protocol, fault injection, a call record.

Tests and the bench start it in-process, point PTB at `fake.base_url` (PTB's base_url form,
e.g. http://127.0.0.1:PORT/bot) and inject updates as Telegram would deliver them.
"""

from __future__ import annotations

import asyncio
import html
import os
import socket
import sys
import itertools
import json
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import aiohttp
from aiohttp import web

TOKEN = "123:ABC"
BOT_USER = {"id": 123, "is_bot": True, "first_name": "Streife", "username": "streife_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
             "tg-emoji", "blockquote"}
_TAG = re.compile(r"</?([a-z-]+)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


@dataclass
class Call:
    """One request the bot made, and what the fake did with it."""

    method: str
    params: dict[str, Any]
    at: float
    outcome: str = "ok"  # ok | error <code> | dropped | abandoned


@dataclass
class Fault:
    """A planned misbehaviour for the next `times` calls of a method."""

    kind: str  # status | slow | drop
    times: int | None
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0


class ApiError(Exception):
    """Answer the request with a Bot API error."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def html_to_text(text: str) -> str:
    """The text a Telegram user sees for an HTML-formatted message; ApiError(400) if it does not parse."""
    for match in re.finditer(r"<[^>]*>?", text):
        tag = _TAG.fullmatch(match[0])
        if tag is None or tag[1] not in HTML_TAGS:
            raise ApiError(400, f"Bad Request: can't parse entities: unsupported start tag at byte offset {match.start()}")
    for match in re.finditer(r"&[^;\s]*;?", text):
        if not _ENTITY.fullmatch(match[0]):
            raise ApiError(400, f"Bad Request: can't parse entities: unsupported entity at byte offset {match.start()}")
    return html.unescape(_TAG.sub("", text))


def _params(raw: dict[str, Any]) -> dict[str, Any]:
    """Form fields as PTB sends them (JSON-encoded strings for objects) back to values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in "[{" :
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


@dataclass
class FakeBotApi:
    """Telegram's Bot API as far as streife uses it, on a random port of 127.0.0.1."""

    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # delivered or not, kept until confirmed
    injected_at: dict[int, float] = field(default_factory=dict)
    history: dict[int, dict[str, Any]] = field(default_factory=dict)  # every update ever injected
    blocked: set[int] = field(default_factory=set)
    business: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)
    webhook_deliveries: list[tuple[int, int]] = field(default_factory=list)  # (update_id, HTTP status)
    webhook_retry_s: float = 0.2
    on_send: Callable[[dict[str, Any]], None] | None = None  # told of every applied sendMessage (benchmarks)

    def __post_init__(self) -> None:
        self._ids = itertools.count(100_000)
        self._message_ids = itertools.count(1)
        self._faults: dict[str, list[Fault]] = {}
        self._held: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._poll_generation = 0
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.port = 0

    # -- server ------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The Bot API's paths."""
        app.router.add_route("*", "/bot{token}/{method}", self._handle)

    async def start(self, port: int = 0) -> "FakeBotApi":
        """Listen on 127.0.0.1 (a free port unless given)."""
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Close the server and the webhook pusher."""
        if self._pusher:
            self._pusher.cancel()
        for event in self._held.values():
            event.set()
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """PTB's base_url form: the token is appended by PTB."""
        return f"http://127.0.0.1:{self.port}/bot"

    # -- fault injection ---------------------------------------------------------------------

    def fail(self, method: str, status: int = 500, times: int | None = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` calls of `method` with an HTTP error (429 with retry_after)."""
        self._faults.setdefault(method, []).append(Fault("status", times, status=status, retry_after=retry_after))

    def slow(self, method: str, seconds: float, times: int | None = None) -> None:
        """Wait `seconds` before handling calls of `method`."""
        self._faults.setdefault(method, []).append(Fault("slow", times, seconds=seconds))

    def drop(self, method: str, times: int | None = 1) -> None:
        """Close the connection without an answer (the request is not applied)."""
        self._faults.setdefault(method, []).append(Fault("drop", times))

    def hold(self, method: str) -> None:
        """Keep calls of `method` waiting (unapplied) until `release`; callers that hang up are never applied."""
        self._held.setdefault(method, asyncio.Event())

    def release(self, method: str) -> None:
        """Let held calls of `method` through."""
        event = self._held.pop(method, None)
        if event:
            event.set()

    def clear_faults(self) -> None:
        """Behave again."""
        self._faults.clear()
        for method in list(self._held):
            self.release(method)

    def _next_fault(self, method: str) -> Fault | None:
        faults = self._faults.get(method) or []
        for fault in faults:
            if fault.times is None or fault.times > 0:
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    # -- injecting updates -------------------------------------------------------------------

    def inject(self, update: dict[str, Any]) -> int:
        """Add an update as Telegram would queue it; returns its update_id."""
        update_id = next(self._ids)
        self.history[update_id] = {"update_id": update_id, **update}
        self.updates.append(self.history[update_id])
        self.injected_at[update_id] = time.monotonic()
        self._notify()
        return update_id

    def redeliver(self, update_id: int) -> None:
        """Queue an update again with its old update_id (Telegram redelivers what it thinks unconfirmed)."""
        self.updates = sorted([u for u in self.updates if u["update_id"] != update_id] + [self.history[update_id]],
                              key=lambda u: u["update_id"])
        self._notify()

    def message(self, chat_id: int, text: str | None = None, *, chat_type: str = "private", language: str = "de",
                user_id: int | None = None, message_id: int | None = None, **content: Any) -> dict[str, Any]:
        """A Message object from a citizen (private chat unless chat_type says otherwise)."""
        user = {"id": user_id or abs(chat_id), "is_bot": False, "first_name": "Bürger", "language_code": language}
        chat = {"id": chat_id, "type": chat_type}
        chat.update({"first_name": "Bürger"} if chat_type == "private" else {"title": "Eine Gruppe"})
        msg = {"message_id": message_id or next(self._message_ids), "date": int(time.time()), "chat": chat, "from": user}
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        msg.update(content)
        return msg

    def text(self, chat_id: int, text: str, **kw: Any) -> int:
        """A citizen writes `text`."""
        return self.inject({"message": self.message(chat_id, text, **kw)})

    def media(self, chat_id: int, kind: str, caption: str | None = None, **kw: Any) -> int:
        """A citizen sends a photo, video, voice, sticker, document, location or contact."""
        content = {
            "photo": {"photo": [{"file_id": "p-small", "file_unique_id": "ps", "width": 90, "height": 90},
                                {"file_id": "p-large", "file_unique_id": "pl", "width": 1280, "height": 960}]},
            "video": {"video": {"file_id": "v1", "file_unique_id": "v1u", "width": 640, "height": 480, "duration": 5}},
            "voice": {"voice": {"file_id": "vo1", "file_unique_id": "vo1u", "duration": 3}},
            "sticker": {"sticker": {"file_id": "s1", "file_unique_id": "s1u", "type": "regular", "width": 512,
                                    "height": 512, "is_animated": False, "is_video": False}},
            "document": {"document": {"file_id": "d1", "file_unique_id": "d1u", "file_name": "beweis.pdf"}},
            "location": {"location": {"latitude": 49.44, "longitude": 7.77}},
            "contact": {"contact": {"phone_number": "+4915100000", "first_name": "Zeuge"}},
        }[kind]
        if caption is not None:
            content["caption"] = caption
        return self.inject({"message": self.message(chat_id, None, **content, **kw)})

    def edit(self, chat_id: int, message_id: int, text: str) -> int:
        """A citizen edits an earlier message."""
        msg = self.message(chat_id, text, message_id=message_id)
        msg["edit_date"] = int(time.time()) + 1
        return self.inject({"edited_message": msg})

    def press(self, chat_id: int, data: str, message_id: int | None = None) -> int:
        """A citizen presses an inline button of the bot's last message with a keyboard (or of `message_id`)."""
        user = {"id": chat_id, "is_bot": False, "first_name": "Bürger", "language_code": "de"}
        shown = [p for p in self.sent(chat_id) if p.get("reply_markup") and message_id in (None, p["message_id"])]
        message = {"message_id": message_id or (shown[-1]["message_id"] if shown else 1), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private", "first_name": "Bürger"}, "from": BOT_USER,
                   "text": shown[-1]["plain"] if shown else "…"}
        if shown:
            message["reply_markup"] = shown[-1]["reply_markup"]
        return self.inject({"callback_query": {"id": f"cq{next(self._ids)}", "from": user, "chat_instance": "ci",
                                               "message": message, "data": data}})

    def connect_business(self, connection_id: str, owner_id: int, can_reply: bool = True, enabled: bool = True) -> int:
        """An officer connects the bot to their Telegram Business account."""
        owner = {"id": owner_id, "is_bot": False, "first_name": "Isabel"}
        connection = {"id": connection_id, "user": owner, "user_chat_id": owner_id, "date": int(time.time()),
                      "is_enabled": enabled, "rights": {"can_reply": can_reply}}
        self.business[connection_id] = connection
        return self.inject({"business_connection": connection})

    def business_text(self, connection_id: str, chat_id: int, text: str, from_id: int | None = None) -> int:
        """A message in a chat of a connected business account (from the citizen unless from_id says otherwise)."""
        msg = self.message(chat_id, text, user_id=from_id or chat_id)
        msg["business_connection_id"] = connection_id
        return self.inject({"business_message": msg})

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- reading the record ------------------------------------------------------------------

    def calls_of(self, method: str, outcome: str | None = "ok") -> list[Call]:
        """The calls of a method (only applied ones unless outcome=None)."""
        return [c for c in self.calls if c.method == method and (outcome is None or c.outcome == outcome)]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Applied sendMessage calls (params plus "plain": what the citizen reads), oldest first."""
        return [c.params for c in self.calls_of("sendMessage")
                if chat_id is None or int(c.params["chat_id"]) == chat_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the bot")
            await asyncio.sleep(0.02)

    # -- the API -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            raw = await request.json() if request.content_type == "application/json" else dict(await request.post())
        except ConnectionResetError:  # the client hung up mid-request (e.g. a cancelled typing action)
            return web.Response(status=499)
        params = _params({**request.query, **raw})
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            call.outcome = "error 401"
            return self._error(ApiError(401, "Unauthorized"))
        fault = self._next_fault(method)
        if fault and fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
        if method in self._held:
            call.outcome = "held"
            await self._held[method].wait()
            if request.transport is None or request.transport.is_closing():
                call.outcome = "abandoned"
                return web.Response(status=499)
            call.outcome = "ok"
        if fault and fault.kind == "drop":
            call.outcome = "dropped"
            if request.transport:
                request.transport.abort()
            return web.Response(status=499)
        if fault and fault.kind == "status":
            call.outcome = f"error {fault.status}"
            if fault.status == 429:
                return self._error(ApiError(429, f"Too Many Requests: retry after {fault.retry_after or 1}",
                                            {"retry_after": fault.retry_after or 1}))
            return self._error(ApiError(fault.status, "Internal Server Error"))
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            call.outcome = "error 404"
            return self._error(ApiError(404, "Not Found"))
        try:
            result = await handler(params)
        except ApiError as err:
            call.outcome = f"error {err.code}"
            return self._error(err)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(err: ApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": err.code, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        return web.json_response(body, status=err.code)

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll ends with 409, as on Telegram
        deadline = time.monotonic() + timeout
        while True:
            batch = [u for u in self.updates if u["update_id"] >= offset][:limit]
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        secret = params.get("secret_token") or ""
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": params.get("url", ""), "secret_token": secret, "allowed_updates": params.get("allowed_updates")}
        if str(params.get("drop_pending_updates")).lower() == "true":
            self.updates.clear()
        if self.webhook["url"] and (self._pusher is None or self._pusher.done()):
            self._pusher = asyncio.create_task(self._push_webhook())
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        if str(params.get("drop_pending_updates")).lower() == "true":
            self.updates.clear()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": len(self.updates)}

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id, text = int(params["chat_id"]), str(params.get("text") or "")
        plain = html_to_text(text) if params.get("parse_mode") == "HTML" else text
        if not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(plain.encode("utf-16-le")) // 2 > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        connection = params.get("business_connection_id")
        if connection and not (self.business.get(connection, {}).get("rights") or {}).get("can_reply"):
            raise ApiError(400, "Bad Request: BUSINESS_CONNECTION_INVALID")
        for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if not button.get("text") or len(button.get("callback_data", "").encode()) > 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        params["plain"] = plain
        params["message_id"] = next(self._message_ids)
        result = {"message_id": params["message_id"], "date": int(time.time()), "from": BOT_USER,
                  "chat": {"id": chat_id, "type": "private", "first_name": "Bürger"}, "text": plain}
        if connection:
            result["business_connection_id"] = connection
        if self.on_send is not None:
            self.on_send(params)
        return result

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getBusinessConnection(self, params: dict[str, Any]) -> Any:
        connection = self.business.get(str(params.get("business_connection_id")))
        if connection is None:
            raise ApiError(400, "Bad Request: BUSINESS_CONNECTION_INVALID")
        return connection

    async def _push_webhook(self) -> None:
        """Deliver queued updates to the webhook one by one; keep each until the bot answers 2xx."""
        async with aiohttp.ClientSession() as session:
            while self.webhook.get("url"):
                if not self.updates:
                    try:
                        await asyncio.wait_for(self._changed.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
                    continue
                update = self.updates[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret_token"]} if self.webhook.get("secret_token") else {}
                try:
                    async with session.post(self.webhook["url"], json=update, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=10)) as response:
                        status = response.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status = 0
                self.webhook_deliveries.append((update["update_id"], status))
                if 200 <= status < 300:
                    if self.updates and self.updates[0] is update:
                        self.updates.pop(0)
                else:
                    await asyncio.sleep(self.webhook_retry_s)


# -- running streife against the fake (in-process, over real HTTP) ---------------------------------

@asynccontextmanager
async def running_bot(settings: Any, triage: Any, port: int | None = None) -> AsyncIterator[Any]:
    """Serve the whole web app (Telegram channel included) on 127.0.0.1; yields its Services."""
    from aiohttp.test_utils import TestServer

    from bot.channels.base import LogOnlySender
    from bot.dispatcher import Dispatcher
    from bot.handover import HandoverLog
    from bot.services import Services
    from bot.web.app import create_app

    handover = HandoverLog.open(settings.database_path)
    services = Services(settings, triage, handover, Dispatcher(handover, triage, {"webchat": LogOnlySender()}))
    app = create_app(settings, services, load_model=False)
    try:
        async with TestServer(app, host="127.0.0.1", port=port):
            yield services
    finally:
        handover.close()


def bot_settings(tmp_path: Any, fake: FakeBotApi, **env: str) -> Any:
    """Settings with the bot token and the fake's address; extra environment variables as keywords."""
    from bot.settings import Settings

    base = {"DATABASE_PATH": str(tmp_path / "streife.sqlite3"), "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_BASE_URL": fake.base_url, "MODEL_PATH": str(tmp_path / "no-model.tar.gz")}
    return Settings.from_env({**base, **env}, dotenv=tmp_path / "none.env")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env(fake: FakeBotApi, folder: Any, **env: str) -> dict[str, str]:
    """The environment of a `python -m bot serve` that talks to this fake, with its database in `folder`."""
    return {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url,
            "DATABASE_PATH": f"{folder}/streife.sqlite3", "WEB_PORT": str(free_port()), "LOG_LEVEL": "WARNING", **env}


async def start_serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m bot serve` as its own process."""
    from bot.settings import ROOT

    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
