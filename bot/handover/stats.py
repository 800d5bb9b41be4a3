"""The dashboard's figures (/inbox/stats), from small tables that triggers keep in step with the log.

Migration _v7 (`install`) adds, fills from what is already stored, and from then on maintains:
- `stats_hourly`: messages per UTC hour, channel, direction, author, intent and action (an insert
  adds one, a change of intent or action moves it, a deletion takes it away: the figures always
  cover exactly what the log holds, retention and deletions included);
- `stats_waits`: each wait in the queue, from the `queue` event to the next `claim` or `close`;
- `stats_first_replies`: each handover's first officer reply (the first `queue` event after the
  previous first reply, to the next officer message).
So the dashboard reads a few thousand rows whatever the size of the log. Days and hours of day are
local (the TIMEZONE setting); the log stores UTC, and a UTC hour is always one whole local hour.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from bot.duty import DutyHours

if TYPE_CHECKING:
    from bot.handover.store import HandoverLog

TABLES = (
    "CREATE TABLE stats_hourly (hour TEXT NOT NULL, channel TEXT NOT NULL, direction TEXT NOT NULL, author TEXT NOT NULL,"
    " intent TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (hour, channel, direction, author, intent, action)) WITHOUT ROWID",
    "CREATE TABLE stats_waits (id INTEGER PRIMARY KEY, conversation_id INTEGER, queued_at TEXT NOT NULL, ended_at TEXT)",
    "CREATE INDEX idx_stats_waits_queued ON stats_waits (queued_at)",
    "CREATE INDEX idx_stats_waits_ended ON stats_waits (ended_at)",
    "CREATE INDEX idx_stats_waits_conversation ON stats_waits (conversation_id)",
    "CREATE TABLE stats_first_replies (conversation_id INTEGER NOT NULL, queued_at TEXT NOT NULL, replied_at TEXT NOT NULL,"
    " PRIMARY KEY (conversation_id, queued_at))",
    "CREATE INDEX idx_stats_first_replies_queued ON stats_first_replies (queued_at)",
    "CREATE INDEX idx_events_action_at ON events (action, at)",  # relabels in a period
    "CREATE INDEX idx_messages_in_created ON messages (created_at) WHERE direction = 'in'",  # hours a shift starts or ends in
)
_KEY = "(hour, channel, direction, author, intent, action)"
_ADD = ("INSERT INTO stats_hourly VALUES (substr({r}.created_at, 1, 13), {r}.channel, {r}.direction, {r}.author,"
        " COALESCE({r}.intent, ''), COALESCE({r}.action, ''), 1) ON CONFLICT " + _KEY + " DO UPDATE SET n = n + 1;")
_TAKE = ("UPDATE stats_hourly SET n = n - 1 WHERE hour = substr(OLD.created_at, 1, 13) AND channel = OLD.channel"
         " AND direction = OLD.direction AND author = OLD.author AND intent = COALESCE(OLD.intent, '')"
         " AND action = COALESCE(OLD.action, '');")
_FIRST_REPLY = (
    "INSERT OR IGNORE INTO stats_first_replies (conversation_id, queued_at, replied_at)"
    " SELECT NEW.conversation_id, MIN(e.at), NEW.created_at FROM events e"
    " WHERE e.conversation_id = NEW.conversation_id AND e.action = 'queue' AND e.at <= NEW.created_at"
    " AND e.at > COALESCE((SELECT MAX(r.replied_at) FROM stats_first_replies r WHERE r.conversation_id = NEW.conversation_id), '')"
    " HAVING MIN(e.at) IS NOT NULL;"
)
TRIGGERS = (
    f"CREATE TRIGGER stats_message_added AFTER INSERT ON messages BEGIN {_ADD.format(r='NEW')} END",
    "CREATE TRIGGER stats_message_changed AFTER UPDATE OF created_at, channel, direction, author, intent, action ON messages"
    " WHEN OLD.intent IS NOT NEW.intent OR OLD.action IS NOT NEW.action OR OLD.created_at IS NOT NEW.created_at"
    " OR OLD.channel IS NOT NEW.channel OR OLD.direction IS NOT NEW.direction OR OLD.author IS NOT NEW.author"
    f" BEGIN {_TAKE} {_ADD.format(r='NEW')} END",
    f"CREATE TRIGGER stats_message_deleted AFTER DELETE ON messages BEGIN {_TAKE} END",
    "CREATE TRIGGER stats_first_reply AFTER INSERT ON messages WHEN NEW.author = 'officer' AND NEW.direction = 'out'"
    f" BEGIN {_FIRST_REPLY} END",
    "CREATE TRIGGER stats_wait_started AFTER INSERT ON events WHEN NEW.action = 'queue' AND NEW.conversation_id IS NOT NULL"
    " BEGIN INSERT INTO stats_waits (conversation_id, queued_at) SELECT NEW.conversation_id, NEW.at WHERE NOT EXISTS"
    " (SELECT 1 FROM stats_waits WHERE conversation_id = NEW.conversation_id AND ended_at IS NULL); END",
    "CREATE TRIGGER stats_wait_ended AFTER INSERT ON events WHEN NEW.action IN ('claim', 'close') AND NEW.conversation_id IS NOT NULL"
    " BEGIN UPDATE stats_waits SET ended_at = NEW.at WHERE conversation_id = NEW.conversation_id AND ended_at IS NULL; END",
    "CREATE TRIGGER stats_conversation_deleted AFTER DELETE ON conversations BEGIN"
    " DELETE FROM stats_waits WHERE conversation_id = OLD.id; DELETE FROM stats_first_replies WHERE conversation_id = OLD.id; END",
)


def install(db: Database) -> None:
    """Migration _v7: the tables, filled from the log as it is, then the triggers that keep them in step."""
    for sql in TABLES:
        db.execute(sql)
    db.execute(
        "INSERT INTO stats_hourly SELECT substr(created_at, 1, 13), channel, direction, author, COALESCE(intent, ''),"
        " COALESCE(action, ''), COUNT(*) FROM messages GROUP BY 1, 2, 3, 4, 5, 6"
    )
    open_waits: dict[int, int] = {}
    queued: dict[int, list[str]] = defaultdict(list)
    for event_id, at, action, conv in db.execute(
        "SELECT id, at, action, conversation_id FROM events WHERE action IN ('queue', 'claim', 'close')"
        " AND conversation_id IN (SELECT id FROM conversations) ORDER BY id"
    ).fetchall():
        if action == "queue":
            queued[conv].append(at)
            if conv not in open_waits:
                open_waits[conv] = db.execute("INSERT INTO stats_waits (conversation_id, queued_at) VALUES (?, ?)", [conv, at]).lastrowid
        elif conv in open_waits:
            db.execute("UPDATE stats_waits SET ended_at = ? WHERE id = ?", [at, open_waits.pop(conv)])
    last_reply: dict[int, str] = {}
    for conv, created in db.execute(
        "SELECT conversation_id, created_at FROM messages WHERE author = 'officer' AND direction = 'out' ORDER BY id"
    ).fetchall():
        pending = [at for at in queued.get(conv, []) if last_reply.get(conv, "") < at <= created]
        if pending:
            db.execute("INSERT OR IGNORE INTO stats_first_replies VALUES (?, ?, ?)", [conv, min(pending), created])
            last_reply[conv] = created
    for sql in TRIGGERS:
        db.execute(sql)


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

    @property
    def total_inbound(self) -> int:
        return sum(sum(c.values()) for c in self.inbound.values())

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
def _hour(hour: str, duty: DutyHours) -> tuple[date, int, str]:
    """A UTC hour 'YYYY-MM-DDTHH' as (local day, local hour, 'on' | 'off' | 'mixed' for duty hours)."""
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
    return local.date(), local.hour, "on" if on >= 60 else "off" if on <= 0 else "mixed"


def _segments(hour_from: str, hour_to: str, zone: Any) -> list[tuple[str, str, str]]:
    """The UTC hours [hour_from, hour_to) cut where the zone's UTC offset changes: (first, last, SQLite modifier)."""
    moment = datetime.fromisoformat(f"{hour_from}:00:00+00:00")
    stop = datetime.fromisoformat(f"{hour_to}:00:00+00:00")
    segments: list[tuple[str, str, str]] = []
    first, offset = hour_from, moment.astimezone(zone).utcoffset()
    while moment < stop:
        moment += timedelta(hours=1)
        now = moment.astimezone(zone).utcoffset() if moment < stop else None
        if now != offset:
            minutes = int((offset or timedelta()).total_seconds() // 60)
            segments.append((first, moment.strftime("%Y-%m-%dT%H"), f"{minutes:+d} minutes"))
            first, offset = moment.strftime("%Y-%m-%dT%H"), now
    return segments


def _local_day(stamp: str, zone: Any) -> date:
    return datetime.fromisoformat(stamp).astimezone(zone).date()


def compute(log: HandoverLog, period: Period, duty: DutyHours, now: datetime | None = None) -> Figures:
    """Every figure of the dashboard for `period` (local days in the duty hours' time zone)."""
    zone = duty.zone
    start, end = period.bounds(zone)
    hour_from, hour_to = start[:13], end[:13]  # UTC hours: [hour_from, hour_to)
    figures = Figures(period, period.days, [])
    for counter in ("inbound", "outbound", "intents_per_day", "actions_per_day"):
        setattr(figures, counter, {d: Counter() for d in figures.days})
    channels: set[str] = set()
    for first, last, shift in _segments(hour_from, hour_to, zone):  # SQL groups by local day (one UTC offset per segment)
        for day_text, channel, direction, author, n in log.db.execute(
            "SELECT date(hour || ':00', ?), channel, direction, author, SUM(n) FROM stats_hourly WHERE hour >= ? AND hour < ?"
            " GROUP BY 1, 2, 3, 4 HAVING SUM(n) > 0", [shift, first, last]
        ):
            day = date.fromisoformat(day_text)
            if direction == "in":
                figures.inbound[day][channel] += n
                channels.add(channel)
            else:
                figures.outbound[day][author] += n
        for day_text, intent, action, n in log.db.execute(
            "SELECT date(hour || ':00', ?), intent, action, SUM(n) FROM stats_hourly WHERE hour >= ? AND hour < ?"
            " AND direction = 'in' GROUP BY 1, 2, 3 HAVING SUM(n) > 0", [shift, first, last]
        ):
            day = date.fromisoformat(day_text)
            figures.intents_per_day[day][intent or NO_INTENT] += n
            figures.actions_per_day[day][action] += n
            figures.intents[intent or NO_INTENT] += n
            figures.actions[action] += n
    figures.channels = sorted(channels)
    mixed: list[str] = []
    for hour, n in log.db.execute(
        "SELECT hour, SUM(n) FROM stats_hourly WHERE hour >= ? AND hour < ? AND direction = 'in' GROUP BY hour HAVING SUM(n) > 0",
        [hour_from, hour_to],
    ):
        day, _, on_duty = _hour(hour, duty)
        if on_duty == "off":
            figures.outside[day] = figures.outside.get(day, 0) + n
        elif on_duty == "mixed":
            mixed.append(hour)
    for hour in mixed:  # a shift starts or ends within this hour: look at each message
        for (created,) in log.db.execute(
            "SELECT created_at FROM messages WHERE direction = 'in' AND created_at >= ? AND created_at < ?",
            [f"{hour}:", f"{hour};"],
        ):
            when = datetime.fromisoformat(created)
            if not duty.on_duty(when):
                day = when.astimezone(zone).date()
                figures.outside[day] = figures.outside.get(day, 0) + 1
    _replies(log, figures, start, end, zone)
    _queue(log, figures, start, end, zone, now or datetime.now(timezone.utc))
    for at, was, intent in log.db.execute(
        "SELECT at, json_extract(detail, '$.was'), json_extract(detail, '$.intent') FROM events"
        " WHERE action = 'relabel' AND at >= ? AND at < ?", [start, end]
    ):
        figures.relabels[(was or NO_INTENT, intent or NO_INTENT)] += 1
        figures.relabels_per_day[_local_day(at, zone)] += 1
    return figures


def _replies(log: HandoverLog, figures: Figures, start: str, end: str, zone: Any) -> None:
    for queued, replied in log.db.execute(
        "SELECT queued_at, replied_at FROM stats_first_replies WHERE queued_at >= ? AND queued_at < ?", [start, end]
    ):
        seconds = (datetime.fromisoformat(replied) - datetime.fromisoformat(queued)).total_seconds()
        figures.replies.setdefault(_local_day(queued, zone), []).append(max(0.0, seconds))
    figures.unanswered = log.db.execute(
        "SELECT COUNT(*) FROM stats_waits w WHERE w.queued_at >= ? AND w.queued_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM stats_first_replies r WHERE r.conversation_id = w.conversation_id AND r.queued_at >= w.queued_at)",
        [start, end],
    ).fetchone()[0]


def _queue(log: HandoverLog, figures: Figures, start: str, end: str, zone: Any, now: datetime) -> None:
    """Queue length at each local full hour of the period (up to now): mean and maximum by hour of day."""
    rows = log.db.execute(
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
