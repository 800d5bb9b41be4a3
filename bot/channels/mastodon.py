"""Mastodon direct messages: a citizen's mention in (bot/channels/mastodon_stream.py), direct statuses out.

A citizen's DM is a status with visibility `direct` that mentions the police account; it arrives as a `mention`
notification and is stored first (deduplicated by status id), answered after. Public mentions are recorded and
answered only when they are an emergency (a public "call 110 now", the rest directly: mastodon_send.py). The
account's own direct statuses written in a Mastodon app are recorded as an officer's answers, never triaged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from aiohttp import web

from bot.channels.base import BackgroundTasks
from bot.channels.mastodon_api import Limits, MastodonApi
from bot.channels.mastodon_send import MastodonSender
from bot.channels.mastodon_status import (CHANNEL, DIRECT, Account, account_of, html_to_text, is_public,
                                          strip_leading_mentions)
from bot.channels.mastodon_stream import MastodonReader, _Listener
from bot.cluster import LeaderJob
from bot.dispatcher import Event
from bot.handover import Inbound, Message
from bot.services import Services
from bot.decision import Context
from bot.web.keys import SERVICES

log = logging.getLogger(__name__)


class MastodonChannel(MastodonReader, BackgroundTasks):
    """Takes citizens' mentions into the handover log and keeps the Mastodon sender."""

    channel_name = "Mastodon"

    def __init__(self, services: Services, api: MastodonApi | None = None) -> None:
        settings = services.settings
        self.services = services
        self.dispatcher = services.dispatcher
        self.log = services.handover
        self.api = api or MastodonApi(settings.mastodon_base_url, settings.mastodon_access_token)
        self.poll_s = settings.mastodon_poll_seconds
        self.limits = Limits()
        self.sender = MastodonSender(self.log, self.api, lambda: self.limits, settings.timezone)
        self.own: Account | None = None
        self.app_name: str | None = None
        self.cursor = self.own_cursor = "0"
        self.mode = "connecting"  # connecting | streaming | polling | stopped
        self.problem: str | None = None
        self.policy_warnings: list[str] = []
        self.stopped = False
        self._gap = False  # a message of the current batch is not stored: the cursor stops before it
        self._caught_up = False  # all before the stream's events is stored: those may move the cursor
        self._listener: _Listener | None = None
        self._task: asyncio.Task[Any] | None = None
        self._job: LeaderJob | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def health(self) -> str:
        """"streaming" or "polling" while the instance answers, else why not."""
        return f"failing: {self.problem}" if self.problem else self.mode

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and read in the background, on the leader only (one reader for several instances: bot/cluster.py)."""
        cluster = self.dispatcher.cluster
        if not cluster.is_leader:
            self.mode = "standby"
        self._job = cluster.lead("mastodon", self._read_while_leading)

    async def _read_while_leading(self) -> None:
        """Read while this instance leads; the stream thread ends when leadership does (from the stored cursor next time)."""
        self._task = asyncio.current_task()
        try:
            await self.run()
        finally:
            if self._listener is not None:
                self._listener.close()
            if not self.stopped:
                self.mode, self.problem = "standby", None

    async def stop(self) -> None:
        """Stop reading, let replies in progress finish (bounded), stop the worker threads."""
        self.stopped, self.mode = True, "stopped"
        if self._listener is not None:
            self._listener.close()
        if self._job is not None:
            await self.dispatcher.cluster.drop(self._job)
        await self.drain(timeout=10.0)
        self.api.close()

    async def _take(self, items: list[tuple[str, Inbound | None]], stream: bool = False) -> int:
        """Store mentions in order, moving the cursor after each; then answer them, escalations first.

        A streamed mention moves the cursor only once everything before the stream is stored (a catch-up ran).
        """
        stored: list[Message] = []
        try:
            for ident, inbound in items:
                if inbound is not None:
                    message = await self.dispatcher.take(inbound)  # raises if the database refuses: the cursor stays
                    if isinstance(message, Message):
                        stored.append(message)
                    elif any(u.key == (CHANNEL, inbound.platform_id) for u in self.dispatcher.unwritten):
                        self._gap = True  # an emergency answered from memory is not stored yet: the cursor waits
                        self._caught_up = False
                        break
                if self._caught_up or not stream:
                    self._advance("since_id", ident)
        finally:
            urgent = [m for m in stored if self.dispatcher.urgent(m.text)]
            for message in urgent + [m for m in stored if m not in urgent]:
                self._spawn(self._public(message) if is_public(message.meta) else self.dispatcher.process_and_deliver(message.id))
        return len(stored)

    async def _public(self, message: Message) -> None:
        """A public mention: an emergency goes the whole way (public 110 line, DM); anything else is only recorded."""
        if self.dispatcher.urgent(message.text):
            await self.dispatcher.process_and_deliver(message.id)
            return
        self.dispatcher.deciding.add(message.id)  # the recovery loop leaves it alone meanwhile
        try:
            decision = await self.dispatcher.triage.decide(message.text, Context()) if message.text else None
            check = decision is not None and decision.action == "check"  # maybe danger: a person looks at it
            if decision is None or not decision.escalated:
                with self.log.transaction():
                    self.log.record_decision(message.id, decision.intent if decision else None,
                                             decision.confidence if decision else None, None)
                    if check:
                        self.log.queue(message.conversation_id, "handover", "public_mention_check")
        finally:
            self.dispatcher.deciding.discard(message.id)
        if decision is not None and decision.escalated:  # the model sees an emergency: the whole way
            await self.dispatcher.process_and_deliver(message.id)
            return
        conv, stored = self.log.conversation(message.conversation_id), self.log.message(message.id)
        await self.dispatcher.emit(Event("message", conv, stored, decision))
        if check:
            await self.dispatcher.emit(Event("queued", conv, stored, decision))

    def record_own(self, status: Any) -> int | None:
        """Record the account's own direct status written in a Mastodon app as an officer's answer; never triaged."""
        data = status if isinstance(status, dict) else {}
        author = account_of(data.get("account"))
        ident = str(data.get("id") or "")
        if self.own is None or author is None or author.id != self.own.id or not ident:
            return None
        self._advance("own_since_id", ident)
        app = data.get("application") if isinstance(data.get("application"), dict) else {}
        if data.get("visibility") != DIRECT or self.app_name is None or app.get("name") == self.app_name:
            return None  # public posts, and this bot's own statuses (or no way to tell them apart)
        mentioned = [account_of(m) for m in data["mentions"]] if isinstance(data.get("mentions"), list) else []
        conv = next((c for m in mentioned if m is not None and (c := self.log.find_conversation(CHANNEL, m.acct))), None)
        if conv is None or any(self.log.iter_messages("channel = ? AND direction = 'out' AND platform_id = ?", [CHANNEL, ident])):
            return None
        citizen = Account("", conv.chat_id.split("@")[0], conv.chat_id)
        text = strip_leading_mentions(html_to_text(str(data.get("content") or "")), citizen)
        with self.log.transaction():
            message_id = self.log.add_outbound(conv.id, text, "officer", meta={"via": "app"})
            self.log.mark_sent(message_id, ident)
            self.log.audit("officer", "reply_in_app", conv.id, message_id=message_id, channel=CHANNEL)
            if conv.state in ("bot", "closed"):  # a person answered: the bot keeps quiet until the chat is closed
                self.log.queue(conv.id, "handover", "answered_in_app")
        self._spawn(self.dispatcher.emit(Event("officer", self.log.conversation(conv.id), self.log.message(message_id))))
        return message_id



MASTODON = web.AppKey("mastodon", MastodonChannel)


async def mastodon_ctx(app: web.Application) -> AsyncIterator[None]:
    """Register the Mastodon sender when MASTODON_BASE_URL and MASTODON_ACCESS_TOKEN are set (before recovery)."""
    services = app[SERVICES]
    settings = services.settings
    if not (settings.mastodon_base_url and settings.mastodon_access_token):
        if settings.mastodon_base_url or settings.mastodon_access_token:
            log.warning("Mastodon needs both MASTODON_BASE_URL and MASTODON_ACCESS_TOKEN; the channel is off")
        yield
        return
    channel = MastodonChannel(services)
    services.dispatcher.senders[CHANNEL] = channel.sender
    app[MASTODON] = channel
    yield
    await channel.stop()


async def start_mastodon(app: web.Application) -> None:
    """Start reading after recovery, so older messages go first."""
    channel = app.get(MASTODON)
    if channel is not None:
        channel.start()
