"""Sending X direct messages: POST /2/dm_conversations/with/{participant_id}/messages, OAuth 1.0a, limits, errors.

Endpoint: https://docs.x.com/x-api/direct-messages/manage/integrate (JSON {"text": ...}; answer 201 with
data.dm_event_id). Rate limits: https://docs.x.com/x-api/fundamentals/rate-limits (x-rate-limit-remaining and
x-rate-limit-reset, a Unix time, on every answer; 429 past the limit). Errors are RFC 7807 problem objects:
https://docs.x.com/x-api/fundamentals/response-codes-and-errors. Requests are signed with OAuth 1.0a user context
(oauthlib, as tweepy does), because the police account's own access token and secret are what X issues for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable

import aiohttp
from oauthlib.oauth1 import Client as OAuth1

from bot.channels.base import SendError
from bot.channels.meta_send import split_text
from bot.channels.priority import PriorityGate
from bot.channels.x_limits import RateWindow, WindowClosed
from bot.channels.x_webhook import USER_ID
from bot.danger_check import CHECK_NO
from bot.handover import Conversation, HandoverLog, Message

log = logging.getLogger(__name__)

MAX_TEXT = 10_000  # characters of one DM
RETRY_DELAYS_S = (0.2, 1.0)  # in-send backoff for server errors and timeouts; the recovery loop does the rest
TIMEOUT_S = 15.0
MAX_CONCURRENT_SENDS = 16
OWN_WINDOW_S = 600.0  # what this sender sent that recently is recognised when X echoes it to the webhook


@dataclass(frozen=True)
class Credentials:
    """The app's consumer key and secret and the police account's access token and secret."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str

    @property
    def user_id(self) -> str:
        """The account's user id: an OAuth 1.0a access token starts with it ("12345-abc...")."""
        head = self.access_token.partition("-")[0]
        return head if USER_ID.fullmatch(head) else ""

    def authorization(self, url: str, method: str = "POST") -> str:
        """The OAuth 1.0a Authorization header (HMAC-SHA1) for a request without a form body."""
        client = OAuth1(self.consumer_key, client_secret=self.consumer_secret,
                        resource_owner_key=self.access_token, resource_owner_secret=self.access_token_secret)
        _, headers, _ = client.sign(url, method)
        return headers["Authorization"]


@dataclass(frozen=True)
class XError:
    """An error answer from X's API (status 0: no answer at all)."""

    status: int
    problem: str  # the last part of the problem type ("usage-capped", "client-forbidden", "about:blank" ...)
    detail: str
    reset_at: float | None = None

    @classmethod
    def from_response(cls, status: int, body: Any, reset_at: float | None = None) -> "XError":
        body = body if isinstance(body, dict) else {}
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        problem = str(body.get("type") or first.get("type") or "").rsplit("/", 1)[-1]
        detail = str(body.get("detail") or first.get("detail") or first.get("message") or body.get("title") or "")
        return cls(status, problem, detail[:300] or f"HTTP {status}", reset_at)

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status >= 500 or (self.status == 429 and self.problem != "usage-capped")

    @property
    def unreachable(self) -> bool:
        """The citizen cannot get DMs from the account (DMs closed, blocked, account gone)."""
        return self.status == 404 or (self.status == 403 and self.problem != "client-forbidden")

    def officer_text(self, zone: tzinfo) -> str:
        """What the officer reads in the inbox next to the message."""
        ref = f"HTTP {self.status}" if self.status else self.detail
        if self.status == 0:
            return f"Noch nicht gesendet: X ist nicht erreichbar ({ref}). Wird automatisch erneut versucht."
        if self.status == 401:
            return (f"Nicht gesendet: X lehnt die Zugangsdaten ab ({ref}). Bitte die Technik informieren: "
                    "X_ACCESS_TOKEN, X_ACCESS_TOKEN_SECRET und den Consumer Key prüfen.")
        if self.problem == "usage-capped" or self.status == 402:
            return (f"Nicht gesendet: Das Kontingent des X-Zugangs ist aufgebraucht ({ref}: {self.detail}). "
                    "Bitte die Technik informieren.")
        if self.status == 429:
            when = f", wieder frei ab {_clock_time(self.reset_at, zone)}" if self.reset_at else ""
            return (f"Noch nicht gesendet: X begrenzt gerade die Zahl der Nachrichten ({ref}{when}). "
                    "Wird automatisch gesendet, Notfälle zuerst.")
        if self.problem == "client-forbidden":
            return (f"Nicht gesendet: Dieser X-Zugang darf keine Direktnachrichten senden ({ref}: {self.detail}). "
                    "Bitte die Technik informieren.")
        if self.status == 403:
            return (f"Nicht gesendet: X stellt die Nachricht nicht zu ({ref}: {self.detail}). Vielleicht nimmt die Person "
                    "keine Direktnachrichten an oder hat den Account blockiert.")
        if self.status == 404:
            return f"Nicht gesendet: Den Account der Person gibt es auf X nicht mehr ({ref})."
        if self.transient:
            return f"Noch nicht gesendet: X ist gerade gestört ({ref}). Wird automatisch erneut versucht."
        return f"Nicht gesendet: X lehnt die Nachricht ab: {self.detail} ({ref})."


class XFailure(Exception):
    """A DM that could not be sent (for now), with X's error."""

    def __init__(self, error: XError) -> None:
        super().__init__(error.detail)
        self.error = error


def _clock_time(at: float, zone: tzinfo) -> str:
    """"10:15 Uhr" today, "03.12. 10:15 Uhr" on another day."""
    moment, today = datetime.fromtimestamp(at, zone), datetime.now(zone).date()
    return f"{moment:%H:%M} Uhr" if moment.date() == today else f"{moment:%d.%m. %H:%M} Uhr"


@dataclass
class Outgoing:
    """A DM this sender sent or is sending (X echoes it to the webhook, sometimes before it answers the POST)."""

    at: float  # time.monotonic()
    chat_id: str
    text: str
    event_id: str | None = None  # from X's answer
    echo_id: str | None = None  # from X's echo to the webhook: X created it, whatever its answer said


def render(message: Message) -> str:
    """The DM text: the message, and its topic buttons as lines the citizen can type back (X DMs have no buttons)."""
    buttons = message.meta.get("buttons") or []
    if not buttons or any(intent == CHECK_NO for _, intent in buttons):  # the check says "answer yes or no" itself
        return message.text
    return message.text.rstrip() + "\n\n" + "\n".join(f"• {label}" for label, _ in buttons)


class XSender:
    """Delivers stored outbound messages to citizens as X direct messages."""

    def __init__(self, handover: HandoverLog, session: aiohttp.ClientSession, base_url: str, credentials: Credentials,
                 zone: tzinfo = timezone.utc, retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
                 timeout_s: float = TIMEOUT_S, window: RateWindow | None = None) -> None:
        self.log = handover
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.zone = zone
        self.retry_delays = retry_delays
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.window = window or RateWindow()
        self.gate = PriorityGate(MAX_CONCURRENT_SENDS)
        self.recent: deque[Outgoing] = deque()  # sent or being sent, for recognising X's echoes
        self.on_park: Callable[[int, float], None] | None = None  # told of a message that waits for the window's reset

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Send `message` as one DM (or several, split at X's limit); raise SendError with a text for the officer."""
        if not USER_ID.fullmatch(conversation.chat_id):
            raise SendError(f"Nicht gesendet: {conversation.chat_id!r} ist keine X-Nutzer-ID.", final=True)
        parts = split_text(render(message), MAX_TEXT)
        if not parts:
            raise SendError("Nicht gesendet: Die Nachricht ist leer.", final=True)
        urgent = bool(message.meta.get("escalate"))
        try:
            ids = [await self._post(conversation, part, urgent) for part in parts]
        except XFailure as failure:
            if failure.error.status == 429 and failure.error.transient and failure.error.reset_at and self.on_park:
                self.on_park(message.id, failure.error.reset_at)
            raise SendError(failure.error.officer_text(self.zone), final=not failure.error.transient) from None
        return ids[0]

    def is_own(self, chat_id: str, event_id: str, text: str) -> bool:
        """True for a DM this sender sent (or is sending) in the last OWN_WINDOW_S: X echoes every sent DM."""
        cutoff = time.monotonic() - OWN_WINDOW_S
        while self.recent and self.recent[0].at < cutoff:
            self.recent.popleft()
        for outgoing in self.recent:
            if outgoing.chat_id == chat_id and (outgoing.event_id == event_id or (text and outgoing.text == text)):
                outgoing.echo_id = outgoing.echo_id or event_id
                return True
        return False

    async def _post(self, conversation: Conversation, text: str, urgent: bool) -> str | None:
        """POST one DM; wait for rate-limit resets, retry server errors and timeouts, never permanent errors."""
        url = f"{self.base_url}/2/dm_conversations/with/{conversation.chat_id}/messages"
        outgoing = Outgoing(time.monotonic(), conversation.chat_id, text)
        self.recent.append(outgoing)  # before the request: X may echo the DM before it answers
        error: XError | None = None
        for attempt in range(1 + len(self.retry_delays)):
            if attempt and error is not None and error.status != 429:  # a 429 waits for the reset in turn()
                await asyncio.sleep(self.retry_delays[attempt - 1])
            if outgoing.echo_id:  # the answer was lost, but X delivered the DM to the webhook: never send it twice
                return outgoing.echo_id
            try:
                async with self.window.turn(urgent), self.gate.slot(urgent):
                    outgoing.event_id, error = await self._request(url, text)
            except WindowClosed as closed:
                error = XError(429, "rate-limit", "Too Many Requests", closed.until)
                break
            if error is None:
                return outgoing.event_id
            log.warning("X send to %s failed: HTTP %s %s %s", conversation.citizen, error.status, error.problem, error.detail)
            if not error.transient:
                break
        self.recent.remove(outgoing)
        assert error is not None
        if error.unreachable:
            self.notice(conversation, error.officer_text(self.zone))
        raise XFailure(error)

    async def _request(self, url: str, text: str) -> tuple[str | None, XError | None]:
        """One request: the new DM's event id, or the error."""
        headers = {"Authorization": self.credentials.authorization(url), "Content-Type": "application/json"}
        try:
            async with self.session.post(url, json={"text": text}, headers=headers, timeout=self.timeout) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                reset = self.window.learn(response.status, response.headers)
                if 200 <= response.status < 300:
                    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else {}
                    if not data.get("dm_event_id"):
                        log.warning("X accepted a DM (HTTP %s) without naming its event id", response.status)
                    return str(data.get("dm_event_id") or "") or None, None
                error = XError.from_response(response.status, body, reset if response.status == 429 else None)
        except asyncio.TimeoutError:
            return None, XError(0, "", f"keine Antwort nach {self.timeout.total:g} s")
        except aiohttp.ClientError as err:
            return None, XError(0, "", str(err) or type(err).__name__)
        return None, error

    def notice(self, conversation: Conversation, reason: str) -> None:
        """Tell the inbox that this chat cannot be answered on X right now; cleared when the citizen writes again."""
        text = f"Dieser Chat kann auf X gerade nicht beantwortet werden. {reason.removeprefix('Nicht gesendet: ')}"
        self.log.update_conversation(conversation.id, meta={"channel_notice": text})
