"""What every channel provides: a way to send a stored outbound message."""

from __future__ import annotations

from typing import Protocol

from bot.handover import Conversation, Message


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
