"""GET /metrics in Prometheus' text format (prometheus_client), and the channels part of /healthz.

Each app has its own registry (never the library's global one), so tests and several apps in one
process do not count into each other. Message, action and latency counts come from a dispatcher
listener (since this process started, as Prometheus expects); the queue, the handover waiting
times, the model's state, channel health and the web chat's limits are read at every scrape, so
they are right after a restart too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bot.dispatcher import Event
from bot.web.auth import for_operators
from bot.web.intake import INTAKE
from bot.web.keys import SERVICES

# Reply latency buckets in seconds: from a stored message to its reply handed to the channel.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Handover waiting buckets in seconds: from queued to claimed by an officer.
WAITING_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
HEALTHY = ("connected", "streaming", "polling", "standby")  # channel states in which messages flow (standby: the leader reads)


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


class Metrics:
    """What the dispatcher did since start (messages in and out, actions, reply latency), in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter("streife_messages_in_total", "Citizens' messages decided on since start.",
                               ["channel"], registry=self.registry)
        self.outbound = Counter("streife_messages_out_total", "Replies handed to a channel since start, by author.",
                                ["channel", "author"], registry=self.registry)
        self.actions = Counter("streife_actions_total",
                               "Triage decisions since start: answer, clarify, check, handover, escalate.",
                               ["channel", "action"], registry=self.registry)
        self.latency = Histogram("streife_reply_latency_seconds",
                                 "From a citizen's stored message to the bot's reply handed to the channel.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
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
            self.inbound.labels(channel).inc()
            self.actions.labels(channel, event.message.action or "none").inc()
        elif event.kind == "sent" and event.message is not None:
            self.outbound.labels(channel, event.message.author).inc()
            reply_to = event.message.reply_to
            if reply_to is not None and event.message.sent_at and self._log is not None:
                asked = self._log.message(reply_to).created_at
                self.latency.observe(max(0.0, _seconds_between(asked, event.message.sent_at)))

    def render(self) -> bytes:
        """The whole exposition text."""
        return generate_latest(self.registry)


def queue_metrics(log: Any) -> Iterator[Any]:
    """Conversations with officers now, the queue, and how long handed-over citizens waited (from the log)."""
    rows = log.db.execute(
        "select state, priority, count(*), min(queued_at) from conversations where state in ('queued', 'claimed') "
        "group by state, priority"
    ).fetchall()
    conversations = GaugeMetricFamily(
        "streife_conversations", "Conversations with officers now, by state and priority (2 escalated, 1 handed over).",
        labels=["state", "priority"])
    for state, priority, count, _ in rows:
        conversations.add_metric([state, str(priority)], count)
    yield conversations
    yield GaugeMetricFamily("streife_queue_length", "Conversations waiting for an officer.",
                            value=sum(n for s, _, n, _ in rows if s == "queued"))
    oldest = min((q for s, _, _, q in rows if s == "queued" and q), default=None)
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    yield GaugeMetricFamily("streife_queue_oldest_waiting_seconds",
                            "How long the longest-waiting queued conversation has waited.",
                            value=round(_seconds_between(oldest, now), 3) if oldest else 0)
    # (SQL both SQLite and PostgreSQL run: CASE for SQLite's scalar max() and total(), CAST for round())
    within = ", ".join(f"COALESCE(SUM(CASE WHEN w <= {bound} THEN 1 ELSE 0 END), 0)" for bound in WAITING_BUCKETS)
    count, total, *cumulative = log.db.execute(
        f"select count(*), COALESCE(SUM(w), 0.0), {within} from (select CASE WHEN claimed_at < queued_at THEN 0.0 ELSE"
        " round(CAST((julianday(claimed_at) - julianday(queued_at)) * 86400.0 AS NUMERIC), 3) END as w"
        " from conversations where claimed_at is not null and queued_at is not null) AS waits"
    ).fetchone()
    total = float(total)
    buckets = [(floatToGoString(bound), int(n)) for bound, n in zip(WAITING_BUCKETS, cumulative)] + [("+Inf", count)]
    yield HistogramMetricFamily("streife_handover_waiting_seconds",
                                "From queued to claimed by an officer (conversations in the log).",
                                buckets=buckets, sum_value=total)


def model_metrics(status: dict[str, Any]) -> Iterator[Any]:
    """Which model answers (or the safety net alone), whether one is loading, and the NLU workers."""
    yield InfoMetricFamily("streife_model", "Who decides: mode nlu (the model) or safety_net, and the model's version.",
                           value={"mode": str(status.get("mode")), "version": str(status.get("model_version") or "")})
    yield GaugeMetricFamily("streife_model_loading", "1 while a model is being loaded.",
                            value=int(bool(status.get("model_loading"))))
    if "workers" in status:
        yield GaugeMetricFamily("streife_nlu_workers", "NLU worker processes.", value=status["workers"])
        yield GaugeMetricFamily("streife_nlu_workers_ready", "NLU workers with a model loaded.",
                                value=status["workers_ready"])
        yield CounterMetricFamily("streife_nlu_deadline_misses_total",
                                  "Messages the model did not decide in time (the safety net decided).",
                                  value=status["deadline_misses"])


def channel_metrics(status: dict[str, str]) -> Iterator[Any]:
    """Each channel: up or not, and its state (connected, connecting, streaming, polling, failing, stopped)."""
    up = GaugeMetricFamily("streife_channel_up", "1 while messages flow on the channel.", labels=["channel"])
    state = GaugeMetricFamily("streife_channel_state", "The channel's state now (1 for the current one).",
                              labels=["channel", "state"])
    for channel, text in status.items():
        name = text.split(":", 1)[0].strip()
        up.add_metric([channel], int(name in HEALTHY))
        state.add_metric([channel, name], 1)
    yield up
    yield state


def intake_metrics(intake: Any) -> Iterator[Any]:
    """The web chat's limits at work: refused messages and streams, emergencies let through, open streams."""
    refused = CounterMetricFamily("streife_webchat_refused_total",
                                  "Web chat messages and live streams refused by a limit since start.", labels=["limit"])
    for name, count in sorted(intake.refused.items()):
        refused.add_metric([name], count)
    yield refused
    yield CounterMetricFamily("streife_webchat_exempt_total",
                              "Emergencies taken although their web chat was over a limit.", value=intake.exempt)
    streams = GaugeMetricFamily("streife_live_streams", "Open live streams, by audience.", labels=["audience"])
    streams.add_metric(["webchat"], intake.streams.open)
    streams.add_metric(["inbox"], intake.inbox_streams.open)
    yield streams


class ScrapeCollector(Collector):
    """What is read at every scrape: the handover log, the model, the channels, the web chat's limits."""

    def __init__(self, app: web.Application, started: float) -> None:
        self.app, self.started = app, started

    def collect(self) -> Iterator[Any]:
        """Yield the metric families of this moment."""
        services = self.app[SERVICES]
        yield from queue_metrics(services.handover)
        yield from model_metrics(services.model_status())
        yield from channel_metrics(channels_status(self.app))
        if INTAKE in self.app:
            yield from intake_metrics(self.app[INTAKE])
        yield GaugeMetricFamily("streife_uptime_seconds", "Seconds since this process started.",
                                value=round(time.time() - self.started, 1))


METRICS = web.AppKey("metrics", Metrics)


async def metrics_page(request: web.Request) -> web.Response:
    """Return the metrics in Prometheus' text format."""
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


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
    metrics = app[METRICS] = Metrics()
    metrics.registry.register(ScrapeCollector(app, metrics.started))

    async def attach(app: web.Application) -> None:
        app[METRICS].attach(app[SERVICES].dispatcher)

    app.on_startup.append(attach)
    app.router.add_get("/metrics", for_operators(metrics_page))  # METRICS_TOKEN bearer or an officer login
