"""Send stored replies to Telegram: HTML-escaped, split under 4,096 characters, rate limited, retried."""

from __future__ import annotations

import asyncio
import html
import logging
import random
import time
from typing import Any, Awaitable, Callable, TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from bot.channels.base import SendError
from bot.channels.telegram_updates import TOPIC_PREFIX, parse_chat_key
from bot.handover import Conversation, HandoverLog, Message

log = logging.getLogger(__name__)

MAX_CHARS = 4096
T = TypeVar("T")


class RateLimiter:
    """About one message per second per chat and 30 per second overall; emergencies go first."""

    def __init__(self, overall_per_s: float = 30.0, chat_interval_s: float = 1.0) -> None:
        self.rate = overall_per_s
        self.chat_interval_s = chat_interval_s
        self._tokens = overall_per_s
        self._stamp = time.monotonic()
        self._urgent_waiting = 0
        self._waiting = 0
        self._chat_next: dict[int, float] = {}

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Take a slot if one is free and no reply waits for it (for best-effort calls like the typing action)."""
        self._refill()
        if self._tokens >= 1 and not self._waiting:
            self._tokens -= 1
            return True
        return False

    async def acquire(self, chat_id: int, urgent: bool = False) -> None:
        """Wait for this chat's next slot and a free overall slot; queue, never drop."""
        delay = self._chat_next.get(chat_id, 0.0) - time.monotonic()
        if delay > 0 and not urgent:
            await asyncio.sleep(delay)
        self._urgent_waiting += urgent
        self._waiting += 1
        try:
            while True:
                self._refill()
                if self._tokens >= 1 and (urgent or not self._urgent_waiting):
                    self._tokens -= 1
                    break
                await asyncio.sleep(max(0.005, (1 - self._tokens) / self.rate))
        finally:
            self._urgent_waiting -= urgent
            self._waiting -= 1
        self._chat_next[chat_id] = time.monotonic() + self.chat_interval_s
        if len(self._chat_next) > 10_000:  # forget chats that are long quiet
            now = time.monotonic()
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}


def split_text(text: str, limit: int = MAX_CHARS - 96) -> list[str]:
    """Split at paragraph, line or word breaks so each part stays under Telegram's limit.

    Telegram counts the text after entity parsing (so escapes do not count) in UTF-16 code units.
    """
    def size(part: str) -> int:
        return len(part.encode("utf-16-le")) // 2

    parts, rest = [], text.strip()
    while size(rest) > limit:
        cut = len(rest)
        while size(rest[:cut]) > limit:
            cut = cut * 3 // 4
        window = rest[: cut + 1]
        at = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        at = at if at > cut // 2 else cut
        parts.append(rest[:at].rstrip())
        rest = rest[at:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def keyboard(buttons: list[list[str]] | None) -> InlineKeyboardMarkup | None:
    """Topic buttons as an inline keyboard, two per row (the person button on its own row)."""
    if not buttons:
        return None
    topics = [InlineKeyboardButton(label, callback_data=f"{TOPIC_PREFIX}{intent}") for label, intent in buttons
              if intent != "human_handoff"]
    rows = [topics[i : i + 2] for i in range(0, len(topics), 2)]
    rows += [[InlineKeyboardButton(label, callback_data=f"{TOPIC_PREFIX}{intent}")] for label, intent in buttons
             if intent == "human_handoff"]
    return InlineKeyboardMarkup(rows)


async def with_retries(call: Callable[[], Awaitable[T]], what: str, attempts: int = 5, base_delay_s: float = 0.5) -> T:
    """Run a Bot API call; honour 429 retry_after, retry 5xx, timeouts and resets with backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryAfter as err:
            wait = err.retry_after.total_seconds() if hasattr(err.retry_after, "total_seconds") else float(err.retry_after)
            log.warning("%s: Telegram asks to wait %.1f s", what, wait)
            if attempt == attempts:
                raise
            await asyncio.sleep(wait)
        except (Forbidden, BadRequest, InvalidToken, ChatMigrated):
            raise
        except NetworkError as err:  # 5xx, timeouts (TimedOut), dropped connections
            if attempt == attempts:
                raise
            delay = min(base_delay_s * 2 ** (attempt - 1), 10.0) * (0.8 + 0.4 * random.random())
            log.warning("%s failed (%s); retry %d in %.1f s", what, err, attempt, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class TelegramSender:
    """The Telegram channel's Sender: one stored outbound message to one chat."""

    def __init__(self, bot: Bot, handover: HandoverLog, limiter: RateLimiter | None = None, attempts: int = 5) -> None:
        self.bot = bot
        self.log = handover
        self.limiter = limiter or RateLimiter()
        self.attempts = attempts
        self._inflight: dict[int, asyncio.Future[str | None]] = {}

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Send `message` (once, even if two callers ask at the same time); raise SendError when it failed."""
        running = self._inflight.get(message.id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[message.id] = future
        try:
            result = await self._send(conversation, message)
            future.set_result(result)
            return result
        except BaseException as err:
            future.set_exception(err if isinstance(err, Exception) else SendError("cancelled"))
            future.exception()  # retrieved: a lone sender must not log "never retrieved"
            raise
        finally:
            self._inflight.pop(message.id, None)

    async def _send(self, conversation: Conversation, message: Message) -> str | None:
        try:
            chat_id, connection = parse_chat_key(conversation.chat_id)
        except ValueError as err:  # cannot happen for updates that passed translate(); never retry it
            raise SendError(f"not a Telegram chat: {conversation.chat_id!r}", final=True) from err
        parts = split_text(message.text)
        if not parts:
            raise SendError("empty message", final=True)
        progress_key = f"telegram:parts:{message.id}"
        done = int(self.log.get_value(progress_key) or 0)  # parts already delivered before a failure
        ids: list[str] = (self.log.get_value(f"{progress_key}:ids") or "").split(",") if done else []
        urgent = bool(message.meta.get("escalate"))
        markup = keyboard(message.meta.get("buttons"))
        extra: dict[str, Any] = {"business_connection_id": connection} if connection else {}
        for index, part in enumerate(parts[done:], done):
            last = index == len(parts) - 1
            await self.limiter.acquire(chat_id, urgent)
            try:
                sent = await with_retries(
                    lambda: self.bot.send_message(chat_id, html.escape(part, quote=False), parse_mode=ParseMode.HTML,
                                                  reply_markup=markup if last else None, **extra),
                    f"sendMessage to {conversation.citizen}", self.attempts,
                )
            except (Forbidden, BadRequest, InvalidToken, ChatMigrated) as err:
                raise SendError(f"Telegram refused: {err}", final=True) from err
            except TelegramError as err:
                raise SendError(f"Telegram unreachable: {err}") from err
            ids.append(str(sent.message_id))
            if not last:
                self.log.set_value(progress_key, str(index + 1))
                self.log.set_value(f"{progress_key}:ids", ",".join(ids))
        if done or len(parts) > 1:
            self.log.db.execute("DELETE FROM kv WHERE key IN (?, ?)", [progress_key, f"{progress_key}:ids"])
        return ",".join(ids)
