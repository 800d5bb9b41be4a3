"""Officer alerts: a Telegram message to the team's chat when a conversation is escalated or queued."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from bot.dispatcher import Event
from bot.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_S = (0.5, 2.0, 5.0)
MAX_RETRY_AFTER_S = 30.0
TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_CITIZEN_TEXT = 300


class AlertError(Exception):
    """The Bot API did not take the alert."""

    def __init__(self, message: str, retry_after: float | None = None, final: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.final = final


def alert_text(event: Event, settings: Settings) -> str:
    """The alert for one event: what happened, where, the inbox link; the citizen's words only if allowed."""
    conv = event.conversation
    reason = (event.decision.intent if event.decision else None) or conv.reason or event.kind
    head = "🚨 NOTFALL im Chat" if event.kind == "escalated" else "🙋 Neuer Chat für das Team"
    lines = [head, f"Kanal: {conv.channel} · Bürger: {conv.citizen} · Grund: {reason}"]
    if settings.alert_include_text and event.message is not None and event.message.text:
        text = event.message.text.strip()
        lines.append(f"Nachricht: {text[:MAX_CITIZEN_TEXT]}{'…' if len(text) > MAX_CITIZEN_TEXT else ''}")
    lines.append(f"{settings.web_base_url}/inbox/c/{conv.id}")
    return "\n".join(lines)


class OfficerAlerts:
    """Sends alerts in the background (a slow Bot API never delays the citizen's reply), with retries."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
        self.settings = settings
        self.session = session
        self.backoff_s = backoff_s
        self.url = f"{settings.telegram_api_base_url}{settings.telegram_bot_token}/sendMessage"
        self.tasks: set[asyncio.Task[bool]] = set()
        self._queued_alerted: dict[int, str] = {}  # conversation id -> queued_at already alerted

    @property
    def enabled(self) -> bool:
        """True when a bot token and the officers' chat are configured."""
        return bool(self.settings.telegram_bot_token and self.settings.officer_alert_chat_id)

    def on_event(self, event: Event) -> None:
        """Dispatcher listener: alert at once on an escalation, once per queuing on a handover."""
        if event.kind == "queued":
            queued_at = event.conversation.queued_at or ""
            if event.conversation.state != "queued" or self._queued_alerted.get(event.conversation.id) == queued_at:
                return
            self._queued_alerted[event.conversation.id] = queued_at
        elif event.kind != "escalated":
            return
        task = asyncio.create_task(self.send(alert_text(event, self.settings)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, text: str) -> bool:
        """Post one alert to the officers' chat, retrying on network errors, 5xx and 429."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._post(text)
                return True
            except AlertError as err:
                if err.final or attempt == ATTEMPTS:
                    log.error("officer alert not delivered (attempt %s): %s", attempt, err)
                    return False
                delay = min(err.retry_after, MAX_RETRY_AFTER_S) if err.retry_after else self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
                log.warning("officer alert failed (attempt %s), retrying in %.1fs: %s", attempt, delay, err)
                await asyncio.sleep(delay)
        return False

    async def _post(self, text: str) -> None:
        payload = {
            "chat_id": self.settings.officer_alert_chat_id,
            "text": text,
            "link_preview_options": {"is_disabled": True},
        }
        try:
            async with self.session.post(self.url, json=payload, timeout=TIMEOUT) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise AlertError(f"{type(err).__name__}: {err}") from None
        if isinstance(body, dict) and body.get("ok"):
            return
        description = body.get("description", "") if isinstance(body, dict) else ""
        retry_after = ((body or {}).get("parameters") or {}).get("retry_after") if isinstance(body, dict) else None
        message = f"HTTP {status}: {description}"
        if status == 429:
            raise AlertError(message, retry_after=float(retry_after or 1))
        raise AlertError(message, final=400 <= status < 500)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait a little for alerts still on their way (at shutdown)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)
