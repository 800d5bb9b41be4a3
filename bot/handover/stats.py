"""The dashboard's figures (/inbox/stats), from small tables that triggers keep in step with the log.

The tables: waits in the queue and first replies (migration _v7, bot/handover/stats_waits.py), and
per-day tables (migration _v8, bot/handover/stats_tables.py): messages per local day and channel,
intents and actions per day, citizens' messages per UTC hour (duty hours), comments under posts per
day, channel and outcome, relabels per day. So the dashboard reads a few hundred rows whatever the
size of the log. Days and hours of day are local (the TIMEZONE setting); the log stores UTC, and a
UTC hour is always one whole local hour.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from bot.duty import DutyHours
from bot.handover.stats_tables import ensure_zone

if TYPE_CHECKING:
    from bot.handover.store import HandoverLog


ACTION_LABELS = {  # DESIGN.md's actions, as officers call them
    "answer": "Vom Bot beantwortet", "handover": "An euch übergeben", "escalate": "Eskaliert (Notfall)",
    "clarify": "Nicht verstanden (Rückfrage)", "check": "Nachgefragt: Gefahr?", "": "Noch ohne Entscheidung",
}
NO_INTENT = "(ohne Thema)"


@dataclass(frozen=True)
class Period:
    """Local calendar days `first` to `last`, both included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def bounds(self, zone: Any) -> tuple[str, str]:
        """The period as UTC ISO strings [start, end), comparable with the log's timestamps."""
        start = datetime.combine(self.first, time(0), tzinfo=zone).astimezone(timezone.utc)
        end = datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
        return start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds")


@dataclass
class Figures:
    """Everything the dashboard shows for one period."""

    period: Period
    days: list[date]
    channels: list[str]
    inbound: dict[date, Counter[str]] = field(default_factory=dict)  # day -> channel -> citizens' messages
    outbound: dict[date, Counter[str]] = field(default_factory=dict)  # day -> author -> replies
    intents: Counter[str] = field(default_factory=Counter)
    intents_per_day: dict[date, Counter[str]] = field(default_factory=dict)
    actions: Counter[str] = field(default_factory=Counter)
    actions_per_day: dict[date, Counter[str]] = field(default_factory=dict)
    outside: dict[date, int] = field(default_factory=dict)  # citizens' messages outside duty hours
    replies: dict[date, list[float]] = field(default_factory=dict)  # seconds from handover to the first officer reply
    unanswered: int = 0  # handovers in the period still without an officer reply
    queue_mean: list[float] = field(default_factory=list)  # by local hour of day 0..23
    queue_max: list[int] = field(default_factory=list)
    relabels: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model's intent, officer's intent)
    relabels_per_day: Counter[date] = field(default_factory=Counter)
    comments: dict[date, Counter[str]] = field(default_factory=dict)  # day -> channel -> comments under posts
    comment_outcomes: dict[date, Counter[str]] = field(default_factory=dict)  # day -> outcome (stats_tables.OUTCOMES)
    comment_channels: set[str] = field(default_factory=set)

    @property
    def total_inbound(self) -> int:
        return sum(sum(c.values()) for c in self.inbound.values())

    @property
    def total_comments(self) -> int:
        return sum(sum(c.values()) for c in self.comments.values())

    @property
    def total_outside(self) -> int:
        return sum(self.outside.values())

    def all_replies(self) -> list[float]:
        return [s for values in self.replies.values() for s in values]


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def p90(values: list[float]) -> float | None:
    """The 90th percentile by nearest rank: 90 % of the values are at most this (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@lru_cache(maxsize=65536)
def _hour(hour: str, duty: DutyHours) -> tuple[date, int, float]:
    """A UTC hour 'YYYY-MM-DDTHH' as (local day, local hour, share of the hour within duty hours, 0.0 to 1.0)."""
    local = datetime.fromisoformat(f"{hour}:00:00+00:00").astimezone(duty.zone)
    begin = local.hour * 60 + local.minute
    on = 0.0
    for offset, day in ((0, local.weekday()), (1440, (local.weekday() + 1) % 7)):  # an hour may reach into the next day
        for weekday, start, end in duty.shifts:
            if weekday != day:
                continue
            s = offset + start.hour * 60 + start.minute
            e = offset + (1440 if end == time(23, 59, 59) else end.hour * 60 + end.minute)
            on += max(0, min(e, begin + 60) - max(s, begin))
    return local.date(), local.hour, min(1.0, on / 60)


def _local_day(stamp: str, zone: Any) -> date:
    return datetime.fromisoformat(stamp).astimezone(zone).date()


def compute(log: HandoverLog | Database, period: Period, duty: DutyHours, now: datetime | None = None) -> Figures:
    """Every figure of the dashboard for `period` (local days in the duty hours' time zone).

    Takes the handover log or a connection of its own (the web app reads in a worker thread); the
    per-day tables are rebuilt first when they were built for another time zone.
    """
    db: Database = log if isinstance(log, Database) or not hasattr(log, "db") else log.db  # (no `db`: PostgreSQL's adapter)
    zone = duty.zone
    ensure_zone(db, str(zone))
    start, end = period.bounds(zone)
    hour_from, hour_to = start[:13], end[:13]  # UTC hours: [hour_from, hour_to)
    figures = Figures(period, period.days, [])
    for counter in ("inbound", "outbound", "intents_per_day", "actions_per_day", "comments", "comment_outcomes"):
        setattr(figures, counter, {d: Counter() for d in figures.days})
    first, last = period.first.isoformat(), period.last.isoformat()
    channels: set[str] = set()
    for day_text, channel, direction, author, n in db.execute(
        "SELECT day, channel, direction, author, n FROM stats_days_volume WHERE day BETWEEN ? AND ? AND n > 0", [first, last]
    ):
        day = date.fromisoformat(day_text)
        if direction == "in":
            figures.inbound[day][channel] += n
            channels.add(channel)
        else:
            figures.outbound[day][author] += n
    for table, per_day, total in (("stats_days_intents", figures.intents_per_day, figures.intents),
                                  ("stats_days_actions", figures.actions_per_day, figures.actions)):
        for day_text, key, n in db.execute(f"SELECT * FROM {table} WHERE day BETWEEN ? AND ? AND n > 0", [first, last]):
            key = key or (NO_INTENT if table == "stats_days_intents" else "")
            per_day[date.fromisoformat(day_text)][key] += n
            total[key] += n
    for day_text, channel, outcome, n in db.execute(
        "SELECT day, channel, outcome, n FROM stats_days_comments WHERE day BETWEEN ? AND ? AND n > 0", [first, last]
    ):
        day = date.fromisoformat(day_text)
        figures.comments[day][channel] += n
        figures.comment_outcomes[day][outcome] += n
        figures.comment_channels.add(channel)
    figures.channels = sorted(channels)
    _outside(db, figures, duty, hour_from, hour_to)
    _replies(db, figures, start, end, zone)
    _queue(db, figures, start, end, zone, now or datetime.now(timezone.utc))
    for day_text, was, intent, n in db.execute(
        "SELECT day, was, intent, n FROM stats_days_relabels WHERE day BETWEEN ? AND ? AND n > 0", [first, last]
    ):
        figures.relabels[(was or NO_INTENT, intent or NO_INTENT)] += n
        figures.relabels_per_day[date.fromisoformat(day_text)] += n
    return figures


def _outside(db: Database, figures: Figures, duty: DutyHours, hour_from: str, hour_to: str) -> None:
    """Citizens' messages outside duty hours per local day, from the UTC hours [hour_from, hour_to).

    In an hour a shift starts or ends in, each message stored is looked at; those the retention job has
    removed count by the share of the hour off duty (their minute is no longer known).
    """
    outside: Counter[date] = Counter()
    estimated: Counter[date] = Counter()
    for hour, n in db.execute(
        "SELECT hour, n FROM stats_hours_inbound WHERE hour >= ? AND hour < ? AND n > 0", [hour_from, hour_to]
    ):
        day, _, on_share = _hour(hour, duty)
        if on_share <= 0:
            outside[day] += n
        elif on_share < 1:  # a shift starts or ends within this hour
            stamps = [datetime.fromisoformat(c) for (c,) in db.execute(
                "SELECT created_at FROM messages WHERE direction = 'in' AND created_at >= ? AND created_at < ?",
                [f"{hour}:", f"{hour};"])]
            outside[day] += sum(1 for when in stamps if not duty.on_duty(when))
            estimated[day] += max(0, n - len(stamps)) * (1 - on_share)
    for day, share in estimated.items():
        outside[day] += round(share)
    figures.outside = {day: n for day, n in outside.items() if n}


def _replies(db: Database, figures: Figures, start: str, end: str, zone: Any) -> None:
    for queued, replied in db.execute(
        "SELECT queued_at, replied_at FROM stats_first_replies WHERE queued_at >= ? AND queued_at < ?", [start, end]
    ):
        seconds = (datetime.fromisoformat(replied) - datetime.fromisoformat(queued)).total_seconds()
        figures.replies.setdefault(_local_day(queued, zone), []).append(max(0.0, seconds))
    figures.unanswered = db.execute(
        "SELECT COUNT(*) FROM stats_waits w WHERE w.queued_at >= ? AND w.queued_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM stats_first_replies r WHERE r.conversation_id = w.conversation_id AND r.queued_at >= w.queued_at)",
        [start, end],
    ).fetchone()[0]


def _queue(db: Database, figures: Figures, start: str, end: str, zone: Any, now: datetime) -> None:
    """Queue length at each local full hour of the period (up to now): mean and maximum by hour of day."""
    rows = db.execute(
        "SELECT queued_at, ended_at FROM stats_waits WHERE queued_at >= ? AND queued_at < ?"
        " UNION ALL SELECT queued_at, ended_at FROM stats_waits WHERE queued_at < ? AND ended_at > ?"
        " UNION ALL SELECT queued_at, ended_at FROM stats_waits WHERE queued_at < ? AND ended_at IS NULL",
        [start, end, start, start, start],
    ).fetchall()
    starts = sorted(q for q, _ in rows)
    ends = sorted(e for _, e in rows if e is not None)
    totals, highs, samples = [0] * 24, [0] * 24, [0] * 24
    for day in figures.days:
        for hour in range(24):
            moment = datetime.combine(day, time(hour), tzinfo=zone)
            if moment.astimezone(zone).hour != hour or moment > now:  # a skipped hour (DST) or the future
                continue
            stamp = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
            waiting = bisect_right(starts, stamp) - bisect_right(ends, stamp)
            totals[hour] += waiting
            highs[hour] = max(highs[hour], waiting)
            samples[hour] += 1
    figures.queue_mean = [round(totals[h] / samples[h], 2) if samples[h] else 0.0 for h in range(24)]
    figures.queue_max = highs
