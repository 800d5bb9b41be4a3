"""GET /metrics in Prometheus' text format, and the channels part of /healthz.

Counters come from a dispatcher listener (since this process started, as Prometheus expects);
the queue and handover waiting times are read from the handover log at every scrape, so they
are right after a restart too.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from bot.dispatcher import Event
from bot.web.auth import for_operators
from bot.web.intake import INTAKE, WebChatIntake
from bot.web.keys import SERVICES

# Reply latency buckets in seconds: from a stored message to its reply handed to the channel.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Handover waiting buckets in seconds: from queued to claimed by an officer.
WAITING_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        """The exposition lines of this histogram."""
        sep = "," if labels else ""
        out, total = [], 0
        for bound, count in zip([*map(_number, self.buckets), "+Inf"], self.counts):
            total += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {total}')
        wrapped = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{wrapped} {_number(self.sum)}", f"{name}_count{wrapped} {total}"]


def _number(value: float) -> str:
    """A sample value: whole numbers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """What the dispatcher did since start: messages in and out, actions, reply latency."""

    def __init__(self) -> None:
        self.inbound: Counter[str] = Counter()
        self.outbound: Counter[str] = Counter()
        self.actions: Counter[tuple[str, str]] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.started = time.time()
        self._log: Any = None

    def attach(self, dispatcher: Any) -> None:
        """Listen to the dispatcher's events."""
        self._log = dispatcher.log
        dispatcher.listeners.append(self.on_event)

    def on_event(self, event: Event) -> None:
        """Count one dispatcher event."""
        channel = event.conversation.channel
        if event.kind == "message" and event.message is not None:
            self.inbound[channel] += 1
            self.actions[(channel, event.message.action or "none")] += 1
        elif event.kind == "sent" and event.message is not None:
            self.outbound[(channel, event.message.author)] += 1
            reply_to = event.message.reply_to
            if reply_to is not None and event.message.sent_at and self._log is not None:
                asked = self._log.message(reply_to).created_at
                self.latency.observe(max(0.0, _seconds_between(asked, event.message.sent_at)))


def render(metrics: Metrics, log: Any) -> str:
    """The whole exposition text."""
    out = [
        "# HELP streife_messages_in_total Citizens' messages decided on since start.",
        "# TYPE streife_messages_in_total counter",
        *(f'streife_messages_in_total{{channel="{c}"}} {n}' for c, n in sorted(metrics.inbound.items())),
        "# HELP streife_messages_out_total Replies handed to a channel since start, by author.",
        "# TYPE streife_messages_out_total counter",
        *(f'streife_messages_out_total{{channel="{c}",author="{a}"}} {n}' for (c, a), n in sorted(metrics.outbound.items())),
        "# HELP streife_actions_total Triage decisions since start: answer, clarify, check, handover, escalate.",
        "# TYPE streife_actions_total counter",
        *(f'streife_actions_total{{channel="{c}",action="{a}"}} {n}' for (c, a), n in sorted(metrics.actions.items())),
        "# HELP streife_reply_latency_seconds From a citizen's stored message to the bot's reply handed to the channel.",
        "# TYPE streife_reply_latency_seconds histogram",
        *metrics.latency.lines("streife_reply_latency_seconds"),
    ]
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    rows = log.db.execute(
        "select state, priority, count(*), min(queued_at) from conversations where state in ('queued', 'claimed') "
        "group by state, priority"
    ).fetchall()
    out += ["# HELP streife_conversations Conversations with officers now, by state and priority (2 escalated, 1 handed over).",
            "# TYPE streife_conversations gauge"]
    out += [f'streife_conversations{{state="{s}",priority="{p}"}} {n}' for s, p, n, _ in rows]
    out += ["# HELP streife_queue_length Conversations waiting for an officer.", "# TYPE streife_queue_length gauge",
            f"streife_queue_length {sum(n for s, _, n, _ in rows if s == 'queued')}"]
    oldest = min((q for s, _, _, q in rows if s == "queued" and q), default=None)
    out += ["# HELP streife_queue_oldest_waiting_seconds How long the longest-waiting queued conversation has waited.",
            "# TYPE streife_queue_oldest_waiting_seconds gauge",
            f"streife_queue_oldest_waiting_seconds {_number(round(_seconds_between(oldest, now), 3)) if oldest else 0}"]
    waiting = Histogram(WAITING_BUCKETS)
    for queued_at, claimed_at in log.db.execute(
        "select queued_at, claimed_at from conversations where claimed_at is not null and queued_at is not null"
    ):
        waiting.observe(max(0.0, _seconds_between(queued_at, claimed_at)))
    out += ["# HELP streife_handover_waiting_seconds From queued to claimed by an officer (conversations in the log).",
            "# TYPE streife_handover_waiting_seconds histogram", *waiting.lines("streife_handover_waiting_seconds"),
            "# HELP streife_uptime_seconds Seconds since this process started.", "# TYPE streife_uptime_seconds gauge",
            f"streife_uptime_seconds {round(time.time() - metrics.started, 1)}"]
    return "\n".join(out) + "\n"


METRICS = web.AppKey("metrics", Metrics)


def intake_lines(intake: WebChatIntake) -> list[str]:
    """The web chat's limits at work: refused messages and streams, emergencies let through, open streams."""
    return [
        "# HELP streife_webchat_refused_total Web chat messages and live streams refused by a limit since start.",
        "# TYPE streife_webchat_refused_total counter",
        *(f'streife_webchat_refused_total{{limit="{name}"}} {n}' for name, n in sorted(intake.refused.items())),
        "# HELP streife_webchat_exempt_total Emergencies taken although their web chat was over a limit.",
        "# TYPE streife_webchat_exempt_total counter", f"streife_webchat_exempt_total {intake.exempt}",
        "# HELP streife_live_streams Open live streams, by audience.", "# TYPE streife_live_streams gauge",
        f'streife_live_streams{{audience="webchat"}} {intake.streams.open}',
        f'streife_live_streams{{audience="inbox"}} {intake.inbox_streams.open}',
    ]


async def metrics_page(request: web.Request) -> web.Response:
    """Return the metrics in Prometheus' text format."""
    body = render(request.app[METRICS], request.app[SERVICES].handover)
    if INTAKE in request.app:
        body += "\n".join(intake_lines(request.app[INTAKE])) + "\n"
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


def channels_status(app: web.Application) -> dict[str, str]:
    """Each channel with a sender: "connected"; Telegram and Mastodon tell their own truth (streaming, polling, failing ...)."""
    from bot.channels.mastodon import MASTODON
    from bot.channels.telegram_app import TELEGRAM

    status = {}
    for channel in sorted(app[SERVICES].dispatcher.senders):
        status[channel] = "connected"
    for name, key in (("telegram", TELEGRAM), ("mastodon", MASTODON)):
        channel = app.get(key)
        if channel is not None and name in status:
            status[name] = channel.health()
    return status


def add_metrics_routes(app: web.Application) -> None:
    """GET /metrics, and the listener that counts (attached once the services exist)."""
    app[METRICS] = Metrics()

    async def attach(app: web.Application) -> None:
        app[METRICS].attach(app[SERVICES].dispatcher)

    app.on_startup.append(attach)
    app.router.add_get("/metrics", for_operators(metrics_page))  # METRICS_TOKEN bearer or an officer login
