"""The dashboard: /inbox/stats (charts and tables for a period) and /inbox/stats.csv (the same figures).

The period is `from` and `to` (local dates, YYYY-MM-DD, both included) or a preset `tage` (7, 30, 90);
without them the last 30 days. The figures come from bot/handover/stats.py; the queries and the
drawing run in the dashboard's worker thread (bot/web/stats_reader.py), never on the event loop.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from aiohttp import web
from markupsafe import Markup
from sqlite_utils import Database

from bot.duty import DutyHours
from bot.handover.stats import ACTION_LABELS, Figures, Period, compute, median, p90
from bot.handover.stats_tables import OUTCOMES
from bot.web import charts
from bot.web.auth import officer
from bot.web.keys import SERVICES
from bot.web.render import render
from bot.web.stats_reader import READER, add_reader

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years (one of them may be a leap year)
CSV_FIELDS = ("day", "figure", "key", "value")


class PeriodError(ValueError):
    """A period the dashboard cannot show; the message is for officers (German)."""


def _date(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"Das {name} „{value[:20]}“ kann ich nicht lesen. Bitte so: 2026-11-27 (Jahr-Monat-Tag).") from None
    if not 2000 <= day.year <= 2999:
        raise PeriodError(f"Das {name} muss zwischen 2000 und 2999 liegen.")
    return day


def parse_period(query: Mapping[str, str], today: date) -> Period:
    """The period a request asks for; PeriodError with a German message when it cannot be shown."""
    preset = query.get("tage", "").strip()
    if preset and not (query.get("from") or query.get("to")):
        if preset not in {str(p) for p in PRESETS}:
            raise PeriodError("Diesen Zeitraum gibt es nicht. Wähl 7, 30 oder 90 Tage.")
        return Period(today - timedelta(days=int(preset) - 1), today)
    last = _date(query["to"], "Enddatum") if query.get("to") else today
    first = _date(query["from"], "Startdatum") if query.get("from") else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodError("Das Startdatum liegt nach dem Enddatum. Tausch die beiden bitte.")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError("Der Zeitraum ist länger als zwei Jahre. Wähl bitte einen kürzeren.")
    return Period(first, last)


def _today(request: web.Request) -> date:
    return datetime.now(request.app[SERVICES].triage.duty.zone).date()


OUTCOME_LABELS = {  # what happened to a comment under a post (bot/handover/stats_tables.py, OUTCOME)
    "hidden": "Verborgen/gelöscht (Beleidigung)", "public_110": "Öffentlich: 110-Hinweis", "private": "Privat beantwortet",
    "public": "Öffentlich beantwortet", "listed": "Fürs Team gelistet", "open": "Noch nicht entschieden", "nothing": "Nichts getan",
}


async def _in_worker(request: web.Request, work: Any, *args: Any) -> Any:
    """Run `work(db, *args)` in the dashboard's thread (its own connection): the event loop stays free."""
    return await request.app[READER].run(request.app[SERVICES].handover, work, *args)


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def daily_rows(figures: Figures) -> list[dict[str, Any]]:
    """One row per day: messages per channel, replies, outside duty hours, first reply times, relabels."""
    rows = []
    for day in figures.days:
        inbound = figures.inbound[day]
        total = sum(inbound.values())
        replies = figures.replies.get(day, [])
        rows.append({
            "day": day, "label": day.strftime("%d.%m."), "channels": inbound, "total": total,
            "bot": figures.outbound[day].get("bot", 0), "officer": figures.outbound[day].get("officer", 0),
            "outside": figures.outside.get(day, 0), "outside_pct": _share(figures.outside.get(day, 0), total),
            "handovers": len(replies), "median_min": _minutes(median(replies)), "p90_min": _minutes(p90(replies)),
            "relabels": figures.relabels_per_day.get(day, 0),
            "comments": figures.comments[day], "comments_total": sum(figures.comments[day].values()),
            "outcomes": figures.comment_outcomes[day],
        })
    return rows


def _charts(figures: Figures, rows: list[dict[str, Any]]) -> dict[str, Markup]:
    labels = [r["label"] for r in rows]
    return {
        "messages": charts.bars_per_day(
            "Nachrichten von Bürgerinnen und Bürgern pro Tag und Kanal", "Nachrichten (Anzahl)", labels,
            {c: [r["channels"].get(c, 0) for r in rows] for c in figures.channels} or {"Nachrichten": [0] * len(rows)},
            stacked=True),
        "intents": charts.horizontal("Themen der Nachrichten (Intent des Modells)", "Nachrichten (Anzahl)",
                                     figures.intents.most_common()),
        "actions": charts.horizontal("Was der Bot mit den Nachrichten gemacht hat", "Nachrichten (Anzahl)",
                                     [(ACTION_LABELS.get(a, a), n) for a, n in figures.actions.most_common()]),
        "replies": charts.bars_per_day(
            "Zeit von der Übergabe bis zur ersten Antwort eines Menschen", "Zeit (Minuten)", labels,
            {"Median": [r["median_min"] for r in rows], "90. Perzentil": [r["p90_min"] for r in rows]},
            x_title="Tag der Übergabe"),
        "queue": charts.bars_per_day(
            "Warteschlange über den Tag (jeweils zur vollen Stunde)", "Wartende Chats (Anzahl)",
            [f"{h:02d} Uhr" for h in range(24)],
            {"Durchschnitt": figures.queue_mean, "Höchstwert": figures.queue_max}, x_title="Uhrzeit (Ortszeit)"),
        "relabels": charts.horizontal("Korrekturen: Modell-Thema → Thema laut Team", "Korrekturen (Anzahl)",
                                      [(f"{was} → {now}", n) for (was, now), n in figures.relabels.most_common(15)]),
        "outside": charts.bars_per_day("Nachrichten außerhalb der Dienstzeit", "Anteil (Prozent)", labels,
                                       {"Anteil außerhalb der Dienstzeit": [r["outside_pct"] for r in rows]}),
        "comments": charts.bars_per_day(
            "Kommentare unter Beiträgen pro Tag: was damit geschah", "Kommentare (Anzahl)", labels,
            {OUTCOME_LABELS[o]: [r["outcomes"].get(o, 0) for r in rows] for o in OUTCOMES
             if any(r["outcomes"].get(o) for r in rows)} or {"Kommentare": [0] * len(rows)}, stacked=True),
    }


def _page(db: Database, period: Period, duty: DutyHours) -> dict[str, Any]:
    """The page's figures, tables and charts (runs in the dashboard's thread)."""
    figures = compute(db, period, duty)
    rows = daily_rows(figures)
    answered = figures.all_replies()
    outcomes: Counter[str] = Counter()
    for day in figures.days:
        outcomes.update(figures.comment_outcomes[day])
    summary = {
        "total": figures.total_inbound, "outside": figures.total_outside,
        "outside_pct": _share(figures.total_outside, figures.total_inbound),
        "handovers": len(answered), "unanswered": figures.unanswered,
        "median_min": _minutes(median(answered)), "p90_min": _minutes(p90(answered)),
        "relabels": sum(figures.relabels.values()), "comments": figures.total_comments,
    }
    return {"figures": figures, "rows": rows, "summary": summary, "charts": _charts(figures, rows),
            "comment_channels": sorted(figures.comment_channels),
            "outcomes": [(o, OUTCOME_LABELS[o], outcomes.get(o, 0)) for o in OUTCOMES if outcomes.get(o)]}


async def stats_page(request: web.Request) -> web.Response:
    """The dashboard for the chosen period; a bad period gets the form back with a clear message (400)."""
    base = {"session": officer(request), "presets": PRESETS, "query": request.query}
    try:
        period = parse_period(request.query, _today(request))
    except PeriodError as err:
        return render(request, "stats.html", status=400, error=str(err), figures=None, **base)
    page = await _in_worker(request, _page, period, request.app[SERVICES].triage.duty)
    return render(request, "stats.html", error=None, patterns=charts.patterns(), action_labels=ACTION_LABELS,
                  duty_hours=request.app[SERVICES].settings.duty_hours, **page, **base)


def csv_rows(figures: Figures) -> list[tuple[str, str, str, Any]]:
    """The figures as (day, figure, key, value); rows for the whole period have the day empty."""
    out: list[tuple[str, str, str, Any]] = []
    for row in daily_rows(figures):
        day = row["day"].isoformat()
        for channel in figures.channels:
            out.append((day, "messages_in", channel, row["channels"].get(channel, 0)))
        out += [(day, "messages_in_total", "", row["total"]), (day, "replies_out", "bot", row["bot"]),
                (day, "replies_out", "officer", row["officer"]), (day, "outside_duty_hours", "", row["outside"]),
                (day, "outside_duty_hours_pct", "", row["outside_pct"]), (day, "handovers_answered", "", row["handovers"]),
                (day, "first_reply_median_min", "", row["median_min"]), (day, "first_reply_p90_min", "", row["p90_min"]),
                (day, "relabels", "", row["relabels"])]
        out += [(day, "intent", k, v) for k, v in sorted(figures.intents_per_day[row["day"]].items())]
        out += [(day, "action", k or "none", v) for k, v in sorted(figures.actions_per_day[row["day"]].items())]
        out += [(day, "comments", channel, row["comments"].get(channel, 0)) for channel in sorted(figures.comment_channels)]
        out += [(day, "comments_total", "", row["comments_total"])]
        out += [(day, "comment_outcome", o, row["outcomes"][o]) for o in OUTCOMES if row["outcomes"].get(o)]
    out += [("", "queue_mean_at_hour", f"{h:02d}", figures.queue_mean[h]) for h in range(24)]
    out += [("", "queue_max_at_hour", f"{h:02d}", figures.queue_max[h]) for h in range(24)]
    out += [("", "relabel", f"{was}->{now}", n) for (was, now), n in figures.relabels.most_common()]
    out.append(("", "handovers_unanswered", "", figures.unanswered))
    return out


async def stats_csv(request: web.Request) -> web.Response:
    """The same figures as CSV: columns day, figure, key, value (English keys, see the README)."""
    try:
        period = parse_period(request.query, _today(request))
    except PeriodError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    text = await _in_worker(request, _csv, period, request.app[SERVICES].triage.duty)
    name = f"streife-statistik-{period.first}-{period.last}.csv"
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv(db: Database, period: Period, duty: DutyHours) -> str:
    """The CSV text (runs in the dashboard's thread)."""
    figures = compute(db, period, duty)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    writer.writerows(("" if v is None else v for v in row) for row in csv_rows(figures))
    return buffer.getvalue()


async def chart_css(request: web.Request) -> web.Response:
    """The charts' stylesheet (pygal's, served as a file: the page allows no inline styles)."""
    return web.Response(text=charts.stylesheet(), content_type="text/css", charset="utf-8")


def add_stats_routes(app: web.Application) -> None:
    """The dashboard's routes (behind the officer guard like every /inbox page)."""
    app.router.add_get("/inbox/stats", stats_page)
    app.router.add_get("/inbox/stats.csv", stats_csv)
    app.router.add_get("/inbox/stats/diagramme.css", chart_css)
    add_reader(app)
