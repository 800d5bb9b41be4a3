"""Sending on Mastodon: direct statuses in reply to the citizen, mentioning only the citizen; limits and errors.

A reply is a status with visibility `direct` that starts with "@citizen" (a direct status reaches everyone it
mentions, so every other "@name" in the text is broken) and answers the citizen's status (in_reply_to_id).
Long texts become a thread of statuses within the instance's limit. A public mention is answered only when it
is an emergency: publicly with nothing but "call 110 now", and with the rest as a direct message.
POST /api/v1/statuses: https://docs.joinmastodon.org/methods/statuses/#create (Idempotency-Key: one hour).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from datetime import datetime
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from bot.channels.base import SendError
from bot.channels.mastodon_api import ApiError, Limits, MastodonApi
from bot.channels.mastodon_status import DIRECT, neutralise_mentions, split_status
from bot.channels.priority import PriorityGate
from bot.handover import Conversation, HandoverLog, Message

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.2, 1.0)  # in-send backoff for server errors and timeouts; the recovery loop does the rest
MAX_WAIT_S = 2.0  # a rate limit that resets this soon is waited for inside the send
RESERVE = 5  # when this few requests are left before the limit resets, only escalations are sent
SALT_KEY = "mastodon:idempotency_salt"
CALL_110 = {"de": "Ruf jetzt die 110 an.", "en": "Call 110 now."}


def call_110(language: str) -> str:
    """The whole public answer to a public emergency mention."""
    return CALL_110.get(language) or f"{CALL_110['de']} / {CALL_110['en']}"


class MastodonSender:
    """Delivers stored outbound messages as direct statuses through one account."""

    def __init__(self, handover: HandoverLog, api: MastodonApi, limits: Callable[[], Limits], timezone: str = "Europe/Berlin",
                 retry_delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.log = handover
        self.api = api
        self.limits = limits
        self.zone = ZoneInfo(timezone)
        self.retry_delays = retry_delays
        self.gate = PriorityGate(api.workers)  # never more sends than threads: an escalation never queues in the pool
        self.blocked_until = 0.0  # the instance's rate limit refuses statuses until then (epoch seconds)
        salt = handover.get_value(SALT_KEY)
        if salt is None:
            salt = secrets.token_hex(8)
            handover.set_value(SALT_KEY, salt)
        self.salt = salt  # keys stay unique across databases that reuse message ids

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        """Send `message` as direct statuses (and the public 110 line for a public emergency); the first id."""
        urgent = bool(message.meta.get("escalate"))
        reply_to, visibility = self._target(conversation, message)
        if visibility != DIRECT and not urgent:
            raise SendError("Nicht gesendet: Das war eine öffentliche Erwähnung. Der Bot antwortet dort nur bei einem "
                            "Notfall; ihr könnt der Person selbst eine Direktnachricht schreiben.", final=True)
        mention = f"@{conversation.chat_id} "
        limits = self.limits()
        keys = self._keys(message)
        if visibility != DIRECT:  # a public emergency: publicly only the 110 line, everything else directly
            line = split_status(call_110(conversation.language), mention, limits.max_chars, limits.url_chars)[0]
            public_id = await self._post(line, visibility, reply_to, next(keys), urgent)
            log.info("public 110 reply %s to an emergency mention in %s", public_id, conversation.citizen)
        first_id = None
        for part in split_status(neutralise_mentions(message.text), mention, limits.max_chars, limits.url_chars):
            status_id = await self._post(part, DIRECT, reply_to, next(keys), urgent)
            first_id, reply_to = first_id or status_id, status_id  # later parts answer the part before: a thread
        return first_id

    def _target(self, conversation: Conversation, message: Message) -> tuple[str | None, str]:
        """(the citizen's status to answer, its visibility): the message replied to, else the citizen's latest."""
        if message.reply_to is not None and message.reply_to > 0:
            ref = self.log.message(message.reply_to)
            return ref.platform_id, ref.meta.get("visibility", DIRECT)
        latest = None
        if conversation.id > 0:
            for msg in self.log.iter_messages("conversation_id = ? AND direction = 'in' AND platform_id IS NOT NULL", [conversation.id]):
                latest = msg
        return (latest.platform_id if latest else None), DIRECT  # officers always answer directly

    def _keys(self, message: Message) -> Iterator[str]:
        """Idempotency keys per status: stable for a stored message (a resend after a crash is not posted twice)."""
        base = f"streife-{self.salt}-{message.id}" if message.id > 0 else f"streife-{uuid.uuid4().hex}"
        return iter(f"{base}-{n}" for n in range(10_000))

    async def _post(self, text: str, visibility: str, reply_to: str | None, key: str, urgent: bool) -> str:
        """Post one status; wait out short rate limits, retry server errors, answer the officer's question why not."""
        now = time.time()
        if not urgent and now < self.blocked_until:
            raise SendError(self._rate_text(self.blocked_until))
        if not urgent and self.api.remaining is not None and self.api.remaining <= RESERVE and (self.api.reset_at or 0) > now:
            raise SendError(self._rate_text(self.api.reset_at or now, reserve=True))
        error: ApiError | None = None
        async with self.gate.slot(urgent):
            delays = list(self.retry_delays)
            while True:
                try:
                    return await self.api.post(text, visibility, reply_to, key)
                except ApiError as err:
                    error = err
                log.warning("Mastodon status failed (%s)", error)
                if error.status == 429:
                    self.blocked_until = max(self.blocked_until, error.retry_at or time.time() + 5.0)
                    wait = self.blocked_until - time.time()
                    if wait > MAX_WAIT_S or not delays:
                        break
                    delays.pop(0)
                    await asyncio.sleep(max(0.0, wait))
                    continue
                if error.status == 404 and reply_to is not None:  # the citizen deleted that status: answer without it
                    reply_to = None
                    continue
                if not error.transient or not delays:
                    break
                await asyncio.sleep(delays.pop(0))
        raise SendError(self._officer_text(error), final=not error.transient)

    def _clock(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.zone).strftime("%H:%M")

    def _rate_text(self, until: float, reserve: bool = False) -> str:
        why = ("Das Kontingent dieses Kontos ist fast aufgebraucht; Notfälle haben Vorrang"
               if reserve else "Mastodon begrenzt gerade die Beiträge dieses Kontos")
        return f"Noch nicht gesendet: {why} (wieder möglich ab etwa {self._clock(until)} Uhr). Wird automatisch erneut versucht."

    def _officer_text(self, error: ApiError) -> str:
        """What the officer reads next to a message that did not go out."""
        if error.status == 429:
            return self._rate_text(error.retry_at or time.time())
        if error.status == 0:
            return f"Noch nicht gesendet: Mastodon ist nicht erreichbar ({error.message}). Wird automatisch erneut versucht."
        if error.status >= 500:
            return f"Noch nicht gesendet: Mastodon ist gerade gestört (HTTP {error.status}). Wird automatisch erneut versucht."
        if error.status == 401:
            return ("Nicht gesendet: Der Zugangsschlüssel für Mastodon ist ungültig oder wurde widerrufen (HTTP 401). "
                    "Bitte die Technik informieren: MASTODON_ACCESS_TOKEN erneuern.")
        if error.status == 403:
            return (f"Nicht gesendet: Mastodon verweigert das Senden (HTTP 403: {error.message}). "
                    "Hat der Zugangsschlüssel das Recht write:statuses?")
        return f"Nicht gesendet: Mastodon lehnt die Nachricht ab: {error.message} (HTTP {error.status})."
