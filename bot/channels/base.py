"""What every channel provides: a way to send a stored outbound message."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from bot.handover import Conversation, Message

log = logging.getLogger(__name__)


class SendError(Exception):
    """A channel could not deliver a message; `final` means retrying will not help."""

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class Sender(Protocol):
    """Delivers one outbound message to the citizen; returns the platform's message id."""

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Send `message` in `conversation`; raise SendError when it failed."""
        ...


class LogOnlySender:
    """For channels whose citizens read the transcript from the log (the web chat)."""

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Nothing to push: the web chat page reads the message from the log."""
        return None


class BackgroundTasks:
    """Work a channel starts and does not wait for (answering stored messages, events), kept until done.

    Webhook channels store a message, acknowledge the platform at once, and answer in the background;
    the dispatcher keeps replies in order per conversation. Needs `self._tasks = set()` and, for
    `process_later`, `self.dispatcher`.
    """

    channel_name = "channel"
    _tasks: set[asyncio.Task[Any]]
    dispatcher: Any

    def process_later(self, message_ids: list[int]) -> None:
        """Answer stored messages in the background (in order per conversation: the dispatcher locks)."""
        assert self.dispatcher is not None
        for message_id in message_ids:
            self._spawn(self.dispatcher.process_and_deliver(message_id))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every background task has finished (or `timeout` passes without one finishing)."""
        while self._tasks:
            done, _ = await asyncio.wait(set(self._tasks), timeout=timeout)
            if not done:
                return

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s background task failed", self.channel_name, exc_info=task.exception())
