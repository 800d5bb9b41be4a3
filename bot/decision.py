"""What triage returns and reads: a Decision for one message, the Context of its conversation, the Parser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from bot.danger_check import Checked
from nlu.parse import Parse


class Parser(Protocol):
    """Where triage gets the model's reading: the NLU workers (bot/nlu_client.py) or a model in process."""

    @property
    def ready(self) -> bool:
        """A model is loaded and answering."""

    async def parse(self, text: str, urgent: bool = False) -> Parse | None:
        """The model's reading, or None when it has none in time."""


@dataclass(frozen=True)
class Context:
    """What triage needs to know about the conversation besides the message."""

    recent_actions: tuple[str, ...] = ()  # the bot's earlier actions in this chat, oldest first
    first_contact: bool = False  # the citizen writes for the first time: say it is a bot
    language: str | None = None  # the language the citizen used before, if known
    checked: Checked | None = None  # what the bot's last `check` asked about (kept in the conversation's meta)


@dataclass(frozen=True)
class Decision:
    """What the bot does with one message."""

    text: str
    intent: str
    confidence: float
    action: str
    reply: str
    language: str
    source: str = "model"  # model | safety_net | button | check (a typed answer to a check) | no_model | empty
    rule: str | None = None  # the safety-net rule that fired
    buttons: tuple[tuple[str, str], ...] = field(default=())  # (label, intent) topic buttons
    checked: Checked | None = None  # set on a `check`: what to keep until the citizen answers

    @property
    def escalated(self) -> bool:
        """True for an emergency or self-harm escalation."""
        return self.action == "escalate"

    def as_dict(self) -> dict[str, object]:
        """The stable JSON shape of `bot triage`."""
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "action": self.action,
            "reply": self.reply,
            "language": self.language,
        }

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(self.as_dict(), ensure_ascii=False)
