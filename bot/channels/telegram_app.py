"""Telegram in the aiohttp app: the Sender, polling or the webhook route, started after recovery."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from typing import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.error import TelegramError

from bot.channels.telegram import COMMANDS, TelegramChannel
from bot.channels.telegram_polling import Poller
from bot.channels.telegram_sender import with_retries
from bot.channels.telegram_updates import ALLOWED_UPDATES, CHANNEL, MalformedUpdate
from bot.web import jsonbody
from bot.web.keys import SERVICES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_KEY = "telegram:webhook_secret"
TELEGRAM = web.AppKey("telegram", TelegramChannel)
TASKS = web.AppKey("telegram_tasks", list)
POLLER = web.AppKey("telegram_poller", dict)


def webhook_url(configured: str) -> str:
    """The URL Telegram posts to: the setting, with /telegram/webhook added when it names only the host."""
    url = configured.rstrip("/")
    return url + WEBHOOK_PATH if urlsplit(url).path in ("", "/") else url


def webhook_secret(channel: TelegramChannel) -> str:
    """TELEGRAM_WEBHOOK_SECRET, or one generated once and kept in the database."""
    configured = channel.services.settings.telegram_webhook_secret
    if configured:
        return configured
    stored = channel.log.get_value(SECRET_KEY)
    if stored is None:
        stored = secrets.token_urlsafe(32)
        channel.log.set_value(SECRET_KEY, stored)
    return stored


async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
    """Register Telegram's Sender when a token is set (before recovery resends pending replies)."""
    services = app[SERVICES]
    if not services.settings.telegram_bot_token:
        yield
        return
    channel = TelegramChannel(services)
    services.dispatcher.senders[CHANNEL] = channel.sender
    app[TELEGRAM] = channel
    app[TASKS] = []
    app[POLLER] = {}
    yield
    poller: Poller | None = app[POLLER].get("poller")
    if poller is not None:
        poller.stopped = True
    for task in app[TASKS]:
        task.cancel()
    if app[TASKS]:
        await asyncio.wait(app[TASKS], timeout=5)
    await channel.drain()
    if poller is not None:
        await poller.confirm()
    await channel.bot.shutdown()


async def start_telegram(app: web.Application) -> None:
    """Start polling or the webhook in the background (after recovery, so older messages go first)."""
    channel = app.get(TELEGRAM)
    if channel is not None:
        task = asyncio.create_task(_run(app, channel), name="telegram")
        task.add_done_callback(lambda t: _stopped(channel, t))
        app[TASKS].append(task)


def _stopped(channel: TelegramChannel, task: asyncio.Task[None]) -> None:
    """Remember why the channel stopped for good, for /healthz (a cancellation at shutdown is no problem)."""
    if task.cancelled():
        return
    error = task.exception()
    channel.stopped = f"{type(error).__name__}: {error}"[:200] if error is not None else "the channel ended"
    if error is not None:
        log.error("the Telegram channel stopped: %s", channel.stopped)


async def _run(app: web.Application, channel: TelegramChannel) -> None:
    """Connect to Telegram (retrying while it is unreachable), then poll or set the webhook."""
    settings = channel.services.settings
    delay = 1.0
    while True:
        try:
            await channel.bot.initialize()
            break
        except TelegramError as err:
            log.warning("Telegram not reachable (%s); trying again in %.0f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
    channel.username = channel.bot.username
    try:
        await with_retries(lambda: channel.bot.set_my_commands(COMMANDS), "setMyCommands", attempts=3)
    except TelegramError as err:
        log.info("setMyCommands failed: %s", err)
    if settings.telegram_webhook_url:
        url = webhook_url(settings.telegram_webhook_url)
        await with_retries(lambda: channel.bot.set_webhook(url, secret_token=webhook_secret(channel),
                                                           allowed_updates=ALLOWED_UPDATES, max_connections=40),
                           "setWebhook", attempts=10)
        log.info("Telegram webhook set to %s", url)
        return
    await with_retries(lambda: channel.bot.delete_webhook(), "deleteWebhook", attempts=10)
    cluster = channel.services.dispatcher.cluster
    job = cluster.lead("telegram polling", lambda: _poll(app, channel))  # one poller at a time: the leader's
    try:
        await asyncio.Event().wait()  # until shutdown (the leader job starts and stops with leadership)
    finally:
        await cluster.drop(job)


async def _poll(app: web.Application, channel: TelegramChannel) -> None:
    """Long polling while this instance leads (from the offset stored in the database: the last leader's)."""
    poller = Poller(channel)
    app[POLLER]["poller"] = poller
    channel.poller = poller
    log.info("polling Telegram as @%s", channel.username)
    try:
        await poller.run()
    except Exception as err:  # a rejected token: for /healthz, as when polling ran in the channel's own task
        channel.stopped = f"{type(err).__name__}: {err}"[:200]
        log.error("the Telegram channel stopped: %s", channel.stopped)
        raise
    finally:
        if app[POLLER].get("poller") is poller and not poller.stopped:  # leadership lost: the new leader confirms
            del app[POLLER]["poller"]
            channel.poller = None


async def telegram_webhook(request: web.Request) -> web.Response:
    """Take one update from Telegram: check the secret, store the update, answer 200, then reply."""
    channel = request.app.get(TELEGRAM)
    if channel is None or not channel.services.settings.telegram_webhook_url:
        raise web.HTTPNotFound()
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")  # any bytes: 403, never 500
    if not hmac.compare_digest(given, webhook_secret(channel).encode()):
        log.warning("Telegram webhook call with a wrong or missing secret from %s", request.remote)
        raise web.HTTPForbidden()
    try:
        data = jsonbody.loads(await request.read(), replace_surrogates=True)  # deep nesting: 400; lone surrogates: U+FFFD
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("not an update object")
        update = Update.de_json(data, channel.bot)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError) as err:  # dates past time_t: the last two
        log.warning("malformed Telegram update refused: %s", err)
        raise web.HTTPBadRequest(text="malformed update") from None
    try:
        job = await channel.accept(update)  # stored: a crash from here on is recovered, not lost
    except MalformedUpdate as err:
        log.warning("malformed Telegram update refused: %s", err)
        raise web.HTTPBadRequest(text="malformed update") from None
    if job is not None:
        channel.spawn(job)
    return web.Response(text="ok")


def add_telegram_routes(app: web.Application) -> None:
    """The webhook route (it answers 404 unless webhook mode is on)."""
    app.router.add_post(WEBHOOK_PATH, telegram_webhook)

