"""Sending through Meta's Send API (Instagram and Messenger): the messaging window, quick replies, errors.

Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api/
Quick replies (max 13, titles max 20 characters):
https://developers.facebook.com/documentation/business-messaging/instagram-messaging/features/quick-replies
Error codes: https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import aiohttp

from bot.channels.base import SendError
from bot.channels.priority import PriorityGate
from bot.handover import Conversation, HandoverLog, Message

log = logging.getLogger(__name__)

STANDARD_WINDOW = timedelta(hours=24)  # anyone may answer this long after the citizen's last message
HUMAN_AGENT_WINDOW = timedelta(days=7)  # a person may answer this long with the HUMAN_AGENT tag
MAX_QUICK_REPLIES = 13
MAX_TITLE = 20
MAX_TEXT = 1000  # Instagram's limit; Messenger allows 2000
RETRY_DELAYS_S = (0.2, 1.0)  # in-send backoff for rate limits and server errors; the retry loop does the rest
TIMEOUT = aiohttp.ClientTimeout(total=15)
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80002, 80006})
TRANSIENT_CODES = frozenset({1, 2, 1200})
LABELS = {"instagram": "Instagram", "messenger": "Facebook Messenger"}
MAX_CONCURRENT_SENDS = 32  # sends in flight per account; an escalation gets the next free place


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(timezone.utc)


def quick_reply_title(label: str) -> str:
    """A button label that fits Instagram's 20 characters: drop a leading emoji, then cut at a word."""
    label = label.strip()
    if len(label) <= MAX_TITLE:
        return label
    head, _, rest = label.partition(" ")
    if rest and not any(c.isalnum() for c in head):
        label = rest.strip()
        if len(label) <= MAX_TITLE:
            return label
    cut = label[: MAX_TITLE - 1].rsplit(" ", 1)[0].rstrip(" ,.&-")
    return cut + "…"


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Text in parts of at most `limit` characters, split at paragraphs, then lines, then words."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return parts + [rest] if rest else parts


@dataclass(frozen=True)
class GraphError:
    """An error answer from the Graph API (or no answer at all: status 0)."""

    status: int
    code: int | None
    subcode: int | None
    message: str
    transient: bool

    @classmethod
    def from_response(cls, status: int, body: Any) -> "GraphError":
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        code, subcode = error.get("code"), error.get("error_subcode")
        code = code if isinstance(code, int) else None
        subcode = subcode if isinstance(subcode, int) else None
        transient = status >= 500 or status == 429 or code in RATE_LIMIT_CODES or code in TRANSIENT_CODES or bool(error.get("is_transient"))
        return cls(status, code, subcode, str(error.get("message") or f"HTTP {status}"), transient)

    @property
    def outside_window(self) -> bool:
        return self.code == 10 and self.subcode == 2018278

    @property
    def ref(self) -> str:
        return f"Code {self.code}" + (f"/{self.subcode}" if self.subcode else "") if self.code else f"HTTP {self.status}"

    def officer_text(self, label: str) -> str:
        """What the officer reads in the inbox next to the message."""
        if self.code == 190:
            return (f"Nicht gesendet: Der Zugangsschlüssel für {label} ist ungültig oder abgelaufen ({self.ref}). "
                    "Bitte die Technik informieren: Access Token erneuern.")
        if self.outside_window:
            return f"Nicht gesendet: {label} meldet, dass das Antwortfenster abgelaufen ist ({self.ref})."
        if self.code == 551:
            return (f"Nicht gesendet: Die Person ist auf {label} gerade nicht erreichbar, z. B. Account gelöscht, "
                    f"Bot blockiert oder Nachrichten abgeschaltet ({self.ref}).")
        if self.code in RATE_LIMIT_CODES or self.status == 429:
            return f"Noch nicht gesendet: {label} begrenzt gerade die Zahl der Nachrichten ({self.ref}). Wird automatisch erneut versucht."
        if self.transient:
            return f"Noch nicht gesendet: {label} ist gerade gestört ({self.ref}). Wird automatisch erneut versucht."
        return f"Nicht gesendet: {label} lehnt die Nachricht ab: {self.message} ({self.ref})."


class MetaSender:
    """Delivers stored outbound messages to one Instagram account or Facebook Page through the Send API."""

    def __init__(
        self,
        channel: str,
        handover: HandoverLog,
        session: aiohttp.ClientSession,
        base_url: str,
        version: str,
        account_id: str,
        token: str,
        human_agent_tag: bool = False,
        clock: Callable[[], datetime] = utcnow,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self.channel = channel
        self.label = LABELS.get(channel, channel)
        self.log = handover
        self.session = session
        self.url = f"{base_url.rstrip('/')}/{version}/{account_id or 'me'}/messages"
        self.token = token
        self.human_agent_tag = human_agent_tag
        self.clock = clock
        self.retry_delays = retry_delays
        self.gate = PriorityGate(MAX_CONCURRENT_SENDS)

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Send `message` inside the messaging window; raise SendError with a text for the officer."""
        tag = self.window_tag(conversation, message)
        parts = split_text(message.text) or [" "]
        buttons = message.meta.get("buttons") or []
        urgent = bool(message.meta.get("escalate"))
        first_id = None
        for number, part in enumerate(parts, 1):
            body: dict[str, Any] = {"recipient": {"id": conversation.chat_id}, "message": {"text": part}}
            body["messaging_type"] = "MESSAGE_TAG" if tag else "RESPONSE"
            if tag:
                body["tag"] = tag
            if number == len(parts) and buttons:
                body["message"]["quick_replies"] = [
                    {"content_type": "text", "title": quick_reply_title(str(label)), "payload": f"topic:{intent}"}
                    for label, intent in buttons[:MAX_QUICK_REPLIES]
                ]
            async with self.gate.slot(urgent):
                message_id = await self._post(body, conversation)
            first_id = first_id or message_id
        return first_id

    def window_tag(self, conversation: Conversation, message: Message) -> str | None:
        """None inside 24 hours, "HUMAN_AGENT" for an officer inside 7 days (if approved); else a final SendError."""
        last = conversation.last_inbound_at
        age = self.clock() - datetime.fromisoformat(last) if last else HUMAN_AGENT_WINDOW * 2
        if age <= STANDARD_WINDOW:
            return None
        if message.author == "officer" and self.human_agent_tag and age <= HUMAN_AGENT_WINDOW:
            return "HUMAN_AGENT"
        human_window = HUMAN_AGENT_WINDOW if self.human_agent_tag else STANDARD_WINDOW
        if age > human_window:
            self.notice(conversation, f"Das Antwortfenster ({'7 Tage' if self.human_agent_tag else '24 Stunden'}) ist abgelaufen.")
        if message.author != "officer":
            raise SendError(f"Nicht gesendet: Die letzte Nachricht der Person ist über 24 Stunden alt. "
                            f"Der Bot darf auf {self.label} nur innerhalb von 24 Stunden antworten.", final=True)
        if age <= HUMAN_AGENT_WINDOW:
            raise SendError("Nicht gesendet: Die letzte Nachricht der Person ist über 24 Stunden alt, und das "
                            "HUMAN_AGENT-Tag ist nicht freigeschaltet (INSTAGRAM_HUMAN_AGENT_TAG).", final=True)
        raise SendError(f"Nicht gesendet: Die letzte Nachricht der Person ist über 7 Tage alt. Auf {self.label} "
                        "kann dieser Chat nicht mehr beantwortet werden.", final=True)

    def notice(self, conversation: Conversation, reason: str) -> None:
        """Tell the inbox that this chat can no longer be answered on the platform, and why."""
        last = datetime.fromisoformat(conversation.last_inbound_at) if conversation.last_inbound_at else None
        when = f" Letzte Nachricht der Person: {last:%d.%m.%Y, %H:%M} Uhr (UTC)." if last else ""
        text = (f"Dieser Chat kann auf {self.label} nicht mehr beantwortet werden: {reason}{when} "
                "Erst wenn die Person wieder schreibt, geht es hier weiter.")
        self.log.update_conversation(conversation.id, meta={"channel_notice": text})

    async def _post(self, body: dict[str, Any], conversation: Conversation) -> str | None:
        """POST one message; retry rate limits and server errors with backoff, never permanent errors."""
        headers = {"Authorization": f"Bearer {self.token}"}
        error: GraphError | None = None
        for delay in (0.0, *self.retry_delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self.session.post(self.url, json=body, headers=headers, timeout=TIMEOUT) as response:
                    try:
                        data = await response.json(content_type=None)
                    except ValueError:
                        data = None
                    if response.status == 200 and isinstance(data, dict) and not data.get("error"):
                        return str(data.get("message_id") or "") or None
                    error = GraphError.from_response(response.status, data)
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                error = GraphError(0, None, None, str(err) or type(err).__name__, True)
            log.warning("%s send to %s failed: %s %s", self.label, conversation.citizen, error.ref, error.message)
            if not error.transient:
                break
        assert error is not None
        if error.outside_window:
            self.notice(conversation, f"{self.label} meldet, dass das Antwortfenster abgelaufen ist.")
        elif error.code == 551:
            self.notice(conversation, f"Die Person ist auf {self.label} nicht erreichbar.")
        if error.status == 0:
            raise SendError(f"Noch nicht gesendet: {self.label} ist nicht erreichbar ({error.message}). "
                            "Wird automatisch erneut versucht.")
        raise SendError(error.officer_text(self.label), final=not error.transient)
