"""Telegram DMs on python-telegram-bot 22: store each update, answer it in order per chat, send through the log.

An update is stored in the handover log before anything else (a redelivery is a duplicate), then answered
under a per-chat lock; polling confirms an update's offset only after its replies were sent and recorded.
Replies that fail to send are retried by the one recovery loop of every channel (bot/recovery.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.error import TelegramError

from bot.channels.priority import PriorityGate
from bot.channels.telegram_request import AiohttpRequest
from bot.channels.telegram_sender import RateLimiter, TelegramSender, with_retries
from bot.channels.telegram_updates import Incoming, salvage, translate
from bot.handover import Message
from bot.services import Services

log = logging.getLogger(__name__)

TYPING_DELAY_S = 0.4  # show "typing…" only when an answer takes longer than this
MAX_CONCURRENT_CHATS = 64  # chats answered at once (an emergency gets the next free place)
COMMANDS = [BotCommand("start", "Was der Bot kann"), BotCommand("help", "Hilfe und Notrufnummern"),
            BotCommand("mensch", "Mit einem Menschen sprechen")]


@dataclass
class Job:
    """What is left to do for a stored update: decide and answer it, or just deliver fixed replies."""

    incoming: Incoming
    message_id: int | None = None
    outbound: list[int] = field(default_factory=list)


class TelegramChannel:
    """Citizens' private Telegram chats (and connected business accounts) to and from the dispatcher."""

    def __init__(self, services: Services, bot: Bot | None = None) -> None:
        settings = services.settings
        self.services = services
        self.dispatcher = services.dispatcher
        self.log = services.handover
        self.bot = bot or Bot(
            settings.telegram_bot_token, base_url=settings.telegram_api_base_url,
            request=AiohttpRequest(connection_pool_size=MAX_CONCURRENT_CHATS + 8, read_timeout=10),
            get_updates_request=AiohttpRequest(connection_pool_size=2, read_timeout=10),
        )
        self.sender = TelegramSender(self.bot, self.log, RateLimiter(settings.telegram_max_rate))
        self.username: str | None = None
        self.poller: Any = None  # the Poller in polling mode (telegram_app.py), for /healthz
        self.stopped: str | None = None  # why the channel stopped for good (a rejected token)
        self._slots = PriorityGate(MAX_CONCURRENT_CHATS)
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- storing an update (the durable step) ------------------------------------------------

    async def accept(self, update: Update) -> Job | None:
        """Store an update in the handover log; None when there is nothing to answer (or it came before)."""
        if update.business_connection is not None:
            await self.on_business_connection(update)
            return None
        return await self.accept_incoming(translate(update, self.username))

    async def accept_unreadable(self, update_id: int, raw: Any, error: Exception) -> Job | None:
        """An update that cannot be read: audited, logged, and what can still be read of it kept and answered."""
        incoming = salvage(update_id, raw, self.username)
        keys = sorted(k for k in raw if k != "update_id")[:5] if isinstance(raw, dict) else []
        self.log.audit("telegram", "unreadable_update", None, update_id=update_id, error=type(error).__name__, fields=keys,
                       kept=incoming is not None)
        log.warning("Telegram update %s could not be read (%s); skipped, %s", update_id, type(error).__name__,
                    "what it says is kept for the officers" if incoming else "recorded in the audit")
        return await self.accept_incoming(incoming)

    async def accept_incoming(self, incoming: Incoming | None) -> Job | None:
        """Store a translated update (commands with their fixed reply); None when there is nothing to answer."""
        if incoming is None:
            return None
        if incoming.business_connection_id and not await self._business_may_answer(incoming):
            return None
        if incoming.command in ("start", "help"):
            return self.on_command(incoming)
        stored = await self.dispatcher.take(incoming.inbound)
        if not isinstance(stored, Message):  # a duplicate, or an emergency answered while the database was locked
            return None
        if incoming.business_connection_id:
            self.log.update_conversation(stored.conversation_id, meta={"business_connection_id": incoming.business_connection_id})
        return Job(incoming, message_id=stored.id)

    def on_command(self, incoming: Incoming) -> Job | None:
        """Record /start or /help with its fixed reply (the menu with topic buttons) in one transaction."""
        responses = self.dispatcher.triage.responses
        with self.log.transaction():
            stored = self.dispatcher.receive(incoming.inbound)
            if stored is None:
                return None
            conv = self.log.conversation(stored.conversation_id)
            language = conv.language if self.log.has_bot_reply(conv.id) else incoming.language
            if conv.with_officer:  # the officer has the chat: the bot keeps quiet
                self.log.record_decision(stored.id, None, None, None)
                return None
            self.log.update_conversation(conv.id, language=language)
            if incoming.command == "start":
                text = responses.start_text(language)
                buttons = [list(b) for b in responses.topic_buttons(language)] + [[responses.handoff(language), "human_handoff"]]
            else:
                text, buttons = responses.help_text(language), []
            self.log.record_decision(stored.id, None, None, "answer")
            outbound = self.log.add_outbound(conv.id, text, "bot", reply_to=stored.id, meta={"buttons": buttons} if buttons else None)
        return Job(incoming, outbound=[outbound])

    async def on_business_connection(self, update: Update) -> None:
        """Remember whether a connected business account lets the bot reply, and whose account it is."""
        connection = update.business_connection
        rights = connection.rights
        self.log.set_value(f"telegram:business:{connection.id}", json.dumps(
            {"owner": connection.user.id, "enabled": connection.is_enabled, "can_reply": bool(rights and rights.can_reply)}))
        self.log.audit("telegram", "business_connection", None, enabled=connection.is_enabled,
                       can_reply=bool(rights and rights.can_reply))

    async def _business_may_answer(self, incoming: Incoming) -> bool:
        """True when the connection lets the bot reply and the message is the citizen's, not the officer's."""
        key = f"telegram:business:{incoming.business_connection_id}"
        raw = self.log.get_value(key)
        if raw is None:
            try:
                connection = await with_retries(lambda: self.bot.get_business_connection(incoming.business_connection_id),
                                                "getBusinessConnection", attempts=3)
            except TelegramError as err:
                log.warning("business connection unknown (%s); message not answered", err)
                return False
            rights = connection.rights
            raw = json.dumps({"owner": connection.user.id, "enabled": connection.is_enabled,
                              "can_reply": bool(rights and rights.can_reply)})
            self.log.set_value(key, raw)
        info = json.loads(raw)
        return bool(info["enabled"] and info["can_reply"]) and str(info["owner"]) != incoming.inbound.user_id

    # -- answering a stored update ------------------------------------------------------------

    def spawn(self, job: Job) -> asyncio.Task[None]:
        """Answer a stored update in the background (in order per chat)."""
        task = asyncio.create_task(self.finish(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def finish(self, job: Job) -> None:
        """Decide and answer a stored update: in order per chat, a bounded number of chats at once."""
        if job.incoming.callback_query_id:  # stop the spinner at once, without losing this update's place in line
            spinner = asyncio.create_task(self._answer_button(job.incoming.callback_query_id))
            self._tasks.add(spinner)
            spinner.add_done_callback(self._tasks.discard)
        inbound = job.incoming.inbound
        urgent = job.message_id is not None and self.dispatcher.urgent(inbound.text, inbound.button)
        async with self.chat_lock(job.incoming.chat_key):
            async with self._slots.slot(urgent):
                typing = asyncio.create_task(self._typing(job.incoming))
                try:
                    if job.message_id is not None:
                        await self.dispatcher.process_and_deliver(job.message_id)
                    else:
                        await self.dispatcher.deliver(job.outbound)
                finally:
                    typing.cancel()

    def health(self) -> str:
        """The truth for /healthz: connecting, connected (polling answers, or webhook set), failing or stopped."""
        if self.stopped:
            return f"stopped: {self.stopped}"
        if self.username is None:
            return "connecting"
        return self.poller.health() if self.poller is not None else "connected"

    def chat_lock(self, key: str) -> "_ChatLock":
        """The lock that keeps one chat's updates and resends in order."""
        return _ChatLock(self, key)

    async def _answer_button(self, query_id: str) -> None:
        """Stop the button's spinner (best effort: the answer itself comes as a message)."""
        try:
            await with_retries(lambda: self.bot.answer_callback_query(query_id), "answerCallbackQuery", attempts=2)
        except TelegramError as err:
            log.info("answerCallbackQuery failed: %s", err)

    async def _typing(self, incoming: Incoming) -> None:
        """Show "typing…" while an answer takes a moment (best effort, never at the cost of a reply)."""
        await asyncio.sleep(TYPING_DELAY_S)
        extra = {"business_connection_id": incoming.business_connection_id} if incoming.business_connection_id else {}
        while True:
            if self.sender.limiter.try_acquire():
                try:
                    await self.bot.send_chat_action(incoming.chat_id, "typing", **extra)
                except TelegramError:
                    pass
            await asyncio.sleep(4.5)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let answers in progress finish (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


class _ChatLock:
    """An asyncio.Lock per chat that is forgotten when nobody uses it."""

    def __init__(self, channel: TelegramChannel, key: str) -> None:
        self.channel, self.key = channel, key

    async def __aenter__(self) -> None:
        ch = self.channel
        ch._lock_users[self.key] = ch._lock_users.get(self.key, 0) + 1
        lock = ch._locks.setdefault(self.key, asyncio.Lock())
        try:
            await lock.acquire()
        except BaseException:
            self._forget()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.channel._locks[self.key].release()
        self._forget()

    def _forget(self) -> None:
        ch = self.channel
        ch._lock_users[self.key] -= 1
        if not ch._lock_users[self.key]:
            del ch._lock_users[self.key], ch._locks[self.key]
