"""Instagram DMs and Facebook Messenger: Meta's webhook on the project's server, replies through the Graph API.

Both products share one webhook format and one Send API; the `object` field ("instagram" or "page") picks the
channel ("instagram" or "messenger"), so each keeps its own conversations, pseudonyms and sender.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from bot.channels.base import BackgroundTasks
from bot.channels.comment_inbound import CommentInbound
from bot.channels.comment_executor import CommentDesk
from bot.channels.meta_send import MetaSender, split_text
from bot.channels.meta_webhook import Echo, Parsed, WebhookError, parse, signature_ok
from bot.dispatcher import Dispatcher, Event
from bot.handover import HandoverLog, Message
from bot.settings import Settings
from bot.web import jsonbody
from bot.web.keys import ALERTS, COMMENTS, HUB, SERVICES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/instagram/webhook"
OWN_ECHO_WINDOW = timedelta(minutes=10)  # an echo of text we sent this recently is ours, whatever its mid
DRAIN_TIMEOUT_S = 10.0


class MetaChannel(BackgroundTasks):
    """Stores what Meta's webhook brings, answers it in the background, and keeps the Meta senders.

    Failed sends are retried by the one recovery loop of every channel (bot/recovery.py).
    """

    channel_name = "Meta"
    desk: CommentDesk | None = None  # comments under posts: app[COMMENTS], set in the cleanup context

    def __init__(self) -> None:
        self.settings = Settings()
        self.dispatcher: Dispatcher | None = None
        self.session: aiohttp.ClientSession | None = None
        self.channels: list[str] = []  # channels with a registered sender
        self._tasks: set[asyncio.Task[None]] = set()
        self.comments: CommentInbound | None = None  # comments coming in (issue 14): stored, triaged, planned

    @property
    def log(self) -> HandoverLog:
        assert self.dispatcher is not None, "the Meta channel is not started"
        return self.dispatcher.log

    def start(self, settings: Settings, dispatcher: Dispatcher) -> None:
        """Register a sender per configured product (Instagram, Messenger)."""
        self.settings, self.dispatcher = settings, dispatcher
        from bot.comment_policy import CommentPolicy
        from bot.handover.comments import Comments
        from nlu.intents import INTENTS

        policy = CommentPolicy.load(settings.data_dir / "comment_policy.yml", INTENTS)
        self.comments = CommentInbound(Comments(dispatcher.log), dispatcher.triage, policy, base_url=settings.web_base_url)
        accounts = {
            "instagram": (settings.instagram_account_id, settings.instagram_access_token),
            "messenger": (settings.messenger_page_id, settings.messenger_access_token),
        }
        for channel, (account_id, token) in accounts.items():
            if not token or (channel == "instagram" and not account_id):
                continue
            self.session = self.session or aiohttp.ClientSession()
            dispatcher.senders[channel] = MetaSender(
                channel, dispatcher.log, self.session, settings.graph_api_base_url, settings.graph_api_version,
                account_id, token, settings.instagram_human_agent_tag,
            )
            self.channels.append(channel)
        if settings.instagram_verify_token and not settings.instagram_app_secret:
            log.warning("INSTAGRAM_APP_SECRET is not set: Meta's webhook is verified but every POST is refused")
        if self.channels:
            log.info("Meta channels ready: %s", ", ".join(self.channels))

    async def stop(self) -> None:
        """Let running replies finish (bounded), then close the HTTP session."""
        await self.drain(timeout=DRAIN_TIMEOUT_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def accept(self, parsed: Parsed) -> list[int]:
        """Store every citizen message (duplicates dropped) and every officer echo; return ids to answer.

        An emergency that meets a database locked by another process is answered at once from memory
        (its records follow); anything else the database refuses makes the webhook answer 503.
        """
        assert self.dispatcher is not None
        ids = []
        for inbound in parsed.inbound:
            stored = await self.dispatcher.take(inbound)
            if not isinstance(stored, Message):
                continue
            ids.append(stored.id)
            conv = self.log.conversation(stored.conversation_id)
            if conv.meta.get("channel_notice"):  # the citizen wrote again: the window is open again
                self.log.update_conversation(conv.id, meta={"channel_notice": None})
        for echo in parsed.echoes:
            try:
                self.record_echo(echo)
            except sqlite3.IntegrityError:  # its mid is stored already: a redelivery raced its twin
                log.info("%s echo %s was recorded before", echo.channel, echo.mid)
        if self.comments is not None and (parsed.comments or parsed.comment_changes):
            work = self.comments.accept(parsed.comments, parsed.comment_changes)  # stored before the 200
            if work:
                self._spawn(self.comments.run(work))
        return ids

    def record_echo(self, echo: Echo) -> int | None:
        """Put an officer's answer from the Instagram app in the transcript; the bot's own echoes are dropped."""
        conv = self.log.find_conversation(echo.channel, echo.chat_id)
        if conv is None or self._is_ours(conv.id, echo):
            return None
        with self.log.transaction():
            message_id = self.log.add_outbound(conv.id, echo.text, "officer", meta={"via": "app"}, kind=echo.kind)
            self.log.mark_sent(message_id, echo.mid)
            self.log.audit("officer", "reply_in_app", conv.id, message_id=message_id, channel=echo.channel)
            if conv.state in ("bot", "closed"):  # a person answered: the bot keeps quiet until the chat is closed
                conv = self.log.queue(conv.id, "handover", "answered_in_app")
        self._spawn(self.dispatcher.emit(Event("officer", self.log.conversation(conv.id), self.log.message(message_id))))
        return message_id

    def _is_ours(self, conversation_id: int, echo: Echo) -> bool:
        """An echo of this app's send: our app id, a known mid, or text we are sending or just sent."""
        if self.settings.instagram_app_id and echo.app_id == self.settings.instagram_app_id:
            return True
        recent = (datetime.now(timezone.utc) - OWN_ECHO_WINDOW).isoformat(timespec="milliseconds")
        for msg in self.log.iter_messages(
            "conversation_id = ? AND direction = 'out' AND (platform_id = ? OR status = 'pending' OR sent_at >= ?)",
            [conversation_id, echo.mid, recent],
        ):
            if msg.platform_id == echo.mid or (echo.text and echo.text in split_text(msg.text)):
                return True
        # a comment's private reply: its echo may come before the executor writes it into this DM
        return bool(echo.text and self.comments is not None
                    and self.comments.store.private_reply_in_flight(echo.channel, echo.text, recent))



INSTAGRAM = web.AppKey("instagram_channel", MetaChannel)


async def verify_webhook(request: web.Request) -> web.Response:
    """Answer Meta's subscription check with hub.challenge when hub.verify_token matches."""
    token = request.app[SERVICES].settings.instagram_verify_token
    query = request.query
    given = query.get("hub.verify_token", "")
    if token and query.get("hub.mode") == "subscribe" and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")
    log.warning("Meta webhook verification refused (mode %r)", query.get("hub.mode"))
    raise web.HTTPForbidden(text="verification failed")


async def receive_webhook(request: web.Request) -> web.Response:
    """Check the signature on the raw body, store every message, answer 200, then reply in the background."""
    channel = request.app[INSTAGRAM]
    body = await request.read()
    secret = request.app[SERVICES].settings.instagram_app_secret
    if not signature_ok(secret, body, request.headers.get("X-Hub-Signature-256")):
        log.warning("Meta webhook POST with a missing or wrong signature refused (%d bytes)", len(body))
        raise web.HTTPForbidden(text="invalid signature")
    try:
        parsed = parse(jsonbody.loads(body, replace_surrogates=True))  # deep nesting: 400; lone surrogates: U+FFFD
    except (ValueError, WebhookError) as err:  # JSON and UTF-8 errors are ValueErrors
        log.warning("Meta webhook POST with a valid signature but a malformed body: %s", err)
        raise web.HTTPBadRequest(text="malformed JSON") from None
    channel.process_later(await channel.accept(parsed))
    return web.Response(text="EVENT_RECEIVED")


def add_instagram_routes(app: web.Application) -> None:
    """Meta's webhook routes, and the channel's start and stop around the app's life."""
    channel = MetaChannel()
    app[INSTAGRAM] = channel

    async def meta_resources(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        channel.start(services.settings, services.dispatcher)
        cluster, recovery = services.dispatcher.cluster, None
        if channel.session is not None:  # a Meta token is set: comment actions go out through the Graph API
            channel.desk = app[COMMENTS] = CommentDesk.start(services.handover, channel.session, services.settings, app.get(HUB),
                                                             None if cluster.backend == "sqlite" else cluster)  # (PostgreSQL: on the leader)
        if channel.comments is not None:
            channel.comments.hub, channel.comments.alerts = app.get(HUB), app.get(ALERTS)
            channel.comments.executor = channel.desk.executor if channel.desk is not None else None
        if channel.comments is not None and cluster.backend == "sqlite":
            channel._spawn(channel.comments.recover())  # comments stored but not triaged before a restart
        elif channel.comments is not None:  # several instances: the leader, each time one takes over
            recovery = cluster.lead("comment triage recovery", channel.comments.recover)
        yield
        if recovery is not None:
            await cluster.drop(recovery)
        if channel.desk is not None:
            await channel.desk.executor.stop()
        await channel.stop()

    app.cleanup_ctx.append(meta_resources)  # after the services' own context; before recover() (on_startup)
    app.router.add_get(WEBHOOK_PATH, verify_webhook)
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
