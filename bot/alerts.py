"""Officer alerts: a Telegram message to the team's chat when a conversation is escalated or queued.

Alerts use Telegram's HTML parse mode. With ALERT_INCLUDE_TEXT a citizen's words go into the alert,
so they are quoted so that they cannot pass for the bot's: escaped, on one line (a line break
could fake a link line), inside a code entity (Telegram makes no links there), web addresses
defanged, bidirectional and zero-width characters shown as code points, and labelled as the
citizen's unchecked words.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections import Counter, defaultdict, deque
from typing import Callable

import aiohttp

from bot.channels.priority import PriorityGate
from bot.dispatcher import Event
from bot.handover.queue_view import GROUP_MIN, client_of
from bot.settings import Settings
from bot.web.visible import visible

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_S = (0.5, 2.0, 5.0)
MAX_RETRY_AFTER_S = 30.0
TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_CITIZEN_TEXT = 300
FLOOD_WINDOW_S = 600.0  # one client's emergencies within this long ...
SUMMARY_DELAY_S = 60.0  # ... past GROUP_MIN are summed up in one alert this often (the chat stays readable)
CONCURRENT_ALERTS = 4  # alerts on their way at once; an emergency's goes first
_LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):/+")


class AlertError(Exception):
    """The Bot API did not take the alert."""

    def __init__(self, message: str, retry_after: float | None = None, final: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.final = final


def quote_citizen(text: str, limit: int = MAX_CITIZEN_TEXT) -> str:
    """A citizen's text for an HTML alert: one line, escaped, links defanged, hidden characters shown, in <code>."""
    text = _LINE_BREAKS.sub(" ⏎ ", text.strip())
    text = _CONTROLS.sub(" ", text)
    text = visible(text)  # bidi and zero-width characters shown, never obeyed
    text = _SCHEME.sub(lambda m: f"{m[1]}[:]//", text)  # https://x -> https[:]//x (no link, plainly marked)
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return f"<code>{html.escape(cut, quote=False)}</code>"


def alert_text(event: Event, settings: Settings, language_name: Callable[[str], str] = str) -> str:
    """The alert for one event (Telegram HTML): what happened, where, the inbox link; the citizen's words only if allowed."""
    conv = event.conversation
    reason = (event.decision.intent if event.decision else None) or conv.reason or event.kind
    head = "🚨 NOTFALL im Chat" if event.kind == "escalated" else "🙋 Neuer Chat für das Team"
    esc = lambda value: html.escape(str(value), quote=False)  # noqa: E731
    lines = [head, f"Kanal: {esc(conv.channel)} · Bürger: {esc(conv.citizen)} · Grund: {esc(reason)}"]
    if conv.language not in ("de", "en"):  # the officer knows before opening the chat
        lines.append(f"Sprache: {esc(language_name(conv.language))} (schreibt nicht Deutsch oder Englisch)")
    if settings.alert_include_text and event.message is not None and event.message.text:
        lines.append("Wortlaut der Person (ungeprüft, Links darin nicht öffnen):")
        lines.append(quote_citizen(event.message.text))
    lines.append(f"Im Posteingang: {esc(settings.web_base_url)}/inbox/c/{conv.id}")
    return "\n".join(lines)


class OfficerAlerts:
    """Sends alerts in the background (a slow Bot API never delays the citizen's reply), with retries."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, backoff_s: tuple[float, ...] = BACKOFF_S,
                 language_name: Callable[[str], str] = str) -> None:
        self.settings = settings
        self.language_name = language_name  # "tr" -> "Türkisch"
        self.session = session
        self.backoff_s = backoff_s
        self.url = f"{settings.telegram_api_base_url}{settings.telegram_bot_token}/sendMessage"
        self.tasks: set[asyncio.Task[bool]] = set()
        self._queued_alerted: dict[int, str] = {}  # conversation id -> queued_at already alerted
        self._recent: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)  # client -> its emergencies' times
        self._held: Counter[tuple[str, str]] = Counter()  # client -> emergencies not alerted one by one
        self.gate = PriorityGate(CONCURRENT_ALERTS)

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
        elif self._flooding(client_of(event.conversation)):
            return
        self._spawn(alert_text(event, self.settings, self.language_name), urgent=event.kind == "escalated")

    def _spawn(self, text: str, urgent: bool) -> None:
        task = asyncio.create_task(self.send(text, urgent))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _flooding(self, client: tuple[str, str]) -> bool:
        """True past GROUP_MIN emergencies of one client in FLOOD_WINDOW_S: summed up later, not alerted one by one.

        One person writing hundreds of emergencies must not bury a real one from someone else in the
        officers' chat (nor run into Telegram's limits for groups); each is still in the inbox, grouped.
        """
        now = time.monotonic()
        times = self._recent[client]
        while times and times[0] < now - FLOOD_WINDOW_S:
            times.popleft()
        times.append(now)
        if len(self._recent) > 10_000:  # forget quiet clients
            for key in [k for k, v in self._recent.items() if not v or v[-1] < now - FLOOD_WINDOW_S]:
                del self._recent[key]
        if len(times) <= GROUP_MIN:
            return False
        self._held[client] += 1
        if self._held[client] == 1:
            summary = asyncio.create_task(self._summary(client))
            self.tasks.add(summary)  # type: ignore[arg-type]
            summary.add_done_callback(self.tasks.discard)  # type: ignore[arg-type]
        return True

    async def _summary(self, client: tuple[str, str]) -> None:
        """One alert for the emergencies of one client held back in the last SUMMARY_DELAY_S."""
        await asyncio.sleep(SUMMARY_DELAY_S)
        count = self._held.pop(client, 0)
        if count:
            where = "derselben Person (Web-Chat, derselbe Anschluss)" if client[0] == "network" else "derselben Person"
            await self.send(f"🚨 {count} weitere Notfälle von {where}, im Posteingang als Gruppe.\n"
                            f"Im Posteingang: {html.escape(self.settings.web_base_url, quote=False)}/inbox", urgent=True)

    async def send(self, text: str, urgent: bool = True) -> bool:
        """Post one alert to the officers' chat, retrying on network errors, 5xx and 429 (an emergency's first)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.gate.slot(urgent):
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
            "parse_mode": "HTML",
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
        """Wait a little for alerts still on their way (at shutdown); what is left (a summary still waiting) is dropped."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()
