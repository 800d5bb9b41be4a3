"""X (Twitter) direct messages: the Account Activity webhook on the project's server, replies through X's v2 API.

Every POST is checked against its signature before it is read, stored before it is acknowledged, and
answered in the background; the police account's own DMs (X delivers those too) are recorded as the
bot's (dropped: they are in the log already) or as an officer's answer from X's app, never triaged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from bot.channels.base import BackgroundTasks
from bot.channels.meta_send import split_text
from bot.channels.x_api import MAX_TEXT, Credentials, XSender, render
from bot.channels.x_webhook import CHANNEL, SIGNATURE_HEADER, OwnMessage, Parsed, WebhookError, crc_response, parse, signature_ok
from bot.dispatcher import Dispatcher, Event
from bot.handover import HandoverLog, Inbound, Message
from bot.settings import Settings
from bot.web import jsonbody
from bot.web.keys import SERVICES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/x/webhook"
OWN_WINDOW = timedelta(minutes=10)  # an echo of text the bot is sending or just sent is the bot's
DRAIN_TIMEOUT_S = 10.0
UNPARK_DELAY_S = 0.5  # after X's reset time (whole seconds), before the parked replies are sent again
_NOT_WORD = re.compile(r"[^\w]+")


def label_key(text: str) -> str:
    """A button label or a typed text, without emoji, punctuation, case and extra spaces."""
    return " ".join(_NOT_WORD.sub(" ", text).casefold().split())


class XChannel(BackgroundTasks):
    """Stores what X's webhook brings, answers it in the background, and keeps the X sender."""

    channel_name = "X"

    def __init__(self) -> None:
        self.settings = Settings()
        self.dispatcher: Dispatcher | None = None
        self.session: aiohttp.ClientSession | None = None
        self.sender: XSender | None = None
        self.account = ""  # the police account's user id (from the access token)
        self.labels: dict[str, str] = {}  # typed button label -> topic intent
        self.parked: set[int] = set()  # replies waiting for X's send window to reset
        self._unpark: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def log(self) -> HandoverLog:
        assert self.dispatcher is not None, "the X channel is not started"
        return self.dispatcher.log

    def start(self, settings: Settings, dispatcher: Dispatcher) -> None:
        """Register the sender when the app's and the account's credentials are all set."""
        self.settings, self.dispatcher = settings, dispatcher
        credentials = Credentials(settings.x_consumer_key, settings.x_consumer_secret, settings.x_access_token,
                                  settings.x_access_token_secret)
        self.account = credentials.user_id
        responses = dispatcher.triage.responses
        for language in ("de", "en"):
            pairs = [*responses.topic_buttons(language), (responses.handoff(language), "human_handoff")]
            self.labels.update({label_key(label): intent for label, intent in pairs if label_key(label)})
        given = [bool(v) for v in dataclasses.astuple(credentials)]
        if all(given):
            self.session = aiohttp.ClientSession()
            self.sender = XSender(dispatcher.log, self.session, settings.x_api_base_url, credentials, ZoneInfo(settings.timezone))
            self.sender.on_park = self.park
            dispatcher.senders[CHANNEL] = self.sender
            log.info("X channel ready (account %s)", "known" if self.account else "from the webhook")
        elif any(given):
            log.warning("X is only partly configured (X_CONSUMER_KEY, X_CONSUMER_SECRET, X_ACCESS_TOKEN and "
                        "X_ACCESS_TOKEN_SECRET are all needed to answer); DMs are %s", "stored, not answered"
                        if settings.x_consumer_secret else "refused (no X_CONSUMER_SECRET to check them)")

    async def stop(self) -> None:
        """Let running replies finish (bounded), then close the HTTP session."""
        await self.drain(timeout=DRAIN_TIMEOUT_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._unpark is not None:
            self._unpark.cancel()
        if self.session is not None:
            await self.session.close()

    async def accept(self, parsed: Parsed) -> list[int]:
        """Store every citizen DM (duplicates dropped) and the account's own; return the ids to answer."""
        assert self.dispatcher is not None
        ids = []
        for inbound in parsed.inbound:
            stored = await self.dispatcher.take(self._typed_button(inbound))
            if not isinstance(stored, Message):
                continue
            ids.append(stored.id)
            conv = self.log.conversation(stored.conversation_id)
            if conv.meta.get("channel_notice"):  # the citizen wrote again: X delivers to them again
                self.log.update_conversation(conv.id, meta={"channel_notice": None})
        for own in parsed.own:
            try:
                self.record_own(own)
            except sqlite3.IntegrityError:  # its event id is stored already: a redelivery raced its twin
                log.info("own X message %s was recorded before", own.event_id)
        return ids

    def _typed_button(self, inbound: Inbound) -> Inbound:
        """A DM that is exactly a topic label listed under a reply (X DMs have no buttons) counts as that button."""
        intent = self.labels.get(label_key(inbound.text)) if inbound.kind == "text" and not inbound.button else None
        return dataclasses.replace(inbound, kind="button", button=intent) if intent else inbound

    def record_own(self, own: OwnMessage) -> int | None:
        """Put an officer's DM from X's app in the transcript; the bot's own DMs are in it already."""
        conv = self.log.find_conversation(CHANNEL, own.chat_id)
        if conv is None or self._is_ours(conv.id, own):
            return None
        with self.log.transaction():
            message_id = self.log.add_outbound(conv.id, own.text, "officer", meta={"via": "app"}, kind=own.kind)
            self.log.mark_sent(message_id, own.event_id)
            self.log.audit("officer", "reply_in_app", conv.id, message_id=message_id, channel=CHANNEL)
            if conv.state in ("bot", "closed"):  # a person answered: the bot keeps quiet until the chat is closed
                conv = self.log.queue(conv.id, "handover", "answered_in_app")
        assert self.dispatcher is not None
        self._spawn(self.dispatcher.emit(Event("officer", self.log.conversation(conv.id), self.log.message(message_id))))
        return message_id

    def _is_ours(self, conversation_id: int, own: OwnMessage) -> bool:
        """An echo of this bot's send: a known event id, or text it is sending or sent lately (also before a restart)."""
        if self.sender is not None and self.sender.is_own(own.chat_id, own.event_id, own.text):
            return True
        recent = (datetime.now(timezone.utc) - OWN_WINDOW).isoformat(timespec="milliseconds")
        for msg in self.log.iter_messages(
            "conversation_id = ? AND direction = 'out' AND (platform_id = ? OR status = 'pending' OR sent_at >= ?)",
            [conversation_id, own.event_id, recent],
        ):
            if msg.platform_id == own.event_id or (own.text and own.text in split_text(render(msg), MAX_TEXT)):
                return True
        return False

    def park(self, message_id: int, until: float) -> None:
        """Keep a reply that waits for X's send window from the recovery loop until the reset, then wake it.

        The recovery loop would retry it with its own backoff and give it up after 8 tries and 10 minutes,
        while X's windows last 15; parked, it goes out right after the reset, escalations first.
        """
        assert self.dispatcher is not None
        loop = asyncio.get_running_loop()
        failed_at = self.dispatcher.failed_at
        loop.call_soon(failed_at.__setitem__, message_id, math.inf)  # (after the dispatcher noted the failure)
        self.parked.add(message_id)
        at = loop.time() + max(0.0, until - time.time()) + UNPARK_DELAY_S
        if self._unpark is None or self._unpark.when() < at:
            if self._unpark is not None:
                self._unpark.cancel()
            self._unpark = loop.call_at(at, self._reopened)

    def _reopened(self) -> None:
        """The send window has reset: the parked replies are due again."""
        assert self.dispatcher is not None
        self._unpark = None
        for message_id in self.parked:
            self.dispatcher.failed_at.pop(message_id, None)
        log.info("X's send window has reset: %d waiting replies go out now", len(self.parked))
        self.parked.clear()
        self.dispatcher.recovery.wake()



X = web.AppKey("x_channel", XChannel)


async def answer_crc(request: web.Request) -> web.Response:
    """Answer X's challenge-response check: {"response_token": "sha256=" + base64 HMAC of crc_token}."""
    secret = request.app[SERVICES].settings.x_consumer_secret
    if not secret:
        raise web.HTTPForbidden(text="X webhook not configured")
    tokens = request.query.getall("crc_token", [])
    answer = crc_response(secret, tokens[0]) if len(tokens) == 1 else None
    if answer is None:
        log.warning("X CRC request refused: %d crc_token values, the first %d characters long", len(tokens), len(tokens[0]) if tokens else 0)
        raise web.HTTPBadRequest(text="crc_token missing or not a token")
    return web.json_response({"response_token": answer})


async def receive_webhook(request: web.Request) -> web.Response:
    """Check the signature on the raw body, store every DM, answer 200, then reply in the background."""
    channel = request.app[X]
    body = await request.read()
    if not signature_ok(request.app[SERVICES].settings.x_consumer_secret, body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("X webhook POST with a missing or wrong signature refused (%d bytes)", len(body))
        raise web.HTTPForbidden(text="invalid signature")
    try:
        parsed = parse(jsonbody.loads(body, replace_surrogates=True), channel.account)
    except (ValueError, WebhookError) as err:  # JSON, UTF-8 and nesting errors are ValueErrors
        log.warning("X webhook POST with a valid signature but a malformed body: %s", err)
        raise web.HTTPBadRequest(text="malformed body") from None
    if parsed.ignored and not (parsed.inbound or parsed.own):
        log.debug("X webhook POST without direct messages (%d events ignored)", parsed.ignored)
    channel.process_later(await channel.accept(parsed))
    return web.Response(text="ok")


def add_x_routes(app: web.Application) -> None:
    """X's webhook routes, and the channel's start and stop around the app's life."""
    channel = XChannel()
    app[X] = channel

    async def x_resources(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        channel.start(services.settings, services.dispatcher)
        yield
        await channel.stop()

    app.cleanup_ctx.append(x_resources)  # after the services' own context; before recover() (on_startup)
    app.router.add_get(WEBHOOK_PATH, answer_crc)
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
