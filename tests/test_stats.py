"""The dashboard's figures on a small hand-made log (a real SQLite file), its page, CSV and bad input."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.duty import DutyHours
from bot.handover import HandoverLog
from bot.handover.privacy import delete_chat
from bot.handover.stats import Period, compute, median, p90
from bot.handover.states import HandoverStates
from bot.handover.store import Inbound
from bot.responses import Responses
from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import Browser, served, with_settings

BERLIN = ZoneInfo("Europe/Berlin")
DUTY = DutyHours.parse("Mo-Fr 08:00-16:00", "Europe/Berlin")
PERIOD = Period(date(2026, 11, 2), date(2026, 11, 3))  # Monday and Tuesday (CET, UTC+1)
AFTER = datetime(2026, 11, 4, 12, tzinfo=timezone.utc)


class Clock:
    """A clock the test sets: local Berlin time in, UTC ISO strings out (as the log stores them)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 0, tzinfo=timezone.utc)

    def at(self, day: int, hour: int, minute: int = 0) -> "Clock":
        self.now = datetime(2026, 11, day, hour, minute, tzinfo=BERLIN).astimezone(timezone.utc)
        return self

    def __call__(self) -> str:
        return self.now.isoformat(timespec="milliseconds")


def _say(log: HandoverLog, clock: Clock, channel: str, chat: str, when: tuple[int, int, int], intent: str, action: str) -> int:
    clock.at(*when)
    stored = log.record_inbound(Inbound(channel, chat, f"user-{chat}", "eine Nachricht"))
    assert stored is not None
    log.record_decision(stored.message.id, intent, 0.9, action)
    return stored.message.id


def build_log(path: Path, responses: Responses) -> tuple[HandoverLog, Clock]:
    """Two days of a small team's work, every figure known by hand (times are Berlin time)."""
    clock = Clock()
    log = HandoverLog.open(path, clock=clock)
    states = HandoverStates(log, responses)
    _say(log, clock, "telegram", "t1", (2, 9, 0), "greet", "answer")
    _say(log, clock, "webchat", "w1", (2, 10, 0), "bike_theft", "answer")
    late = _say(log, clock, "telegram", "t2", (2, 20, 0), "out_of_scope", "clarify")  # after the shift
    _say(log, clock, "telegram", "t3", (3, 0, 30), "lost_found", "answer")  # Tuesday in Berlin, Monday in UTC
    _say(log, clock, "webchat", "w2", (3, 7, 59), "human_handoff", "handover")  # before the shift
    # three handovers on Monday, answered after 5, 20 and 60 minutes
    for chat, queued, replied in (("h1", (2, 10, 0), (2, 10, 5)), ("h2", (2, 11, 0), (2, 11, 20)), ("h3", (2, 12, 0), (2, 13, 0))):
        message = _say(log, clock, "webchat", chat, queued, "human_handoff", "handover")
        conv = log.message(message).conversation_id
        log.queue(conv, "handover", "human_handoff")
        clock.at(*replied)
        states.reply(conv, "anna", "Hallo, hier ist Anna von der Polizei.")
        clock.at(replied[0], replied[1], replied[2] + 1)
        states.reply(conv, "anna", "Wie kann ich helfen?")  # a second reply: not a first reply
    waiting = log.message(_say(log, clock, "instagram", "i1", (3, 9, 0), "tip_off", "handover")).conversation_id
    log.queue(waiting, "handover", "tip_off")  # nobody answers
    clock.at(3, 9, 30)
    log.relabel(late, "traffic", "anna")
    return log, clock


@pytest.fixture
def small_log(tmp_path: Path, responses: Responses) -> Any:
    log, clock = build_log(tmp_path / "stats.sqlite3", responses)
    yield log, clock
    log.close()


def test_messages_per_day_and_channel_are_counted_in_local_days(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DUTY, now=AFTER)
    monday, tuesday = date(2026, 11, 2), date(2026, 11, 3)
    assert dict(figures.inbound[monday]) == {"telegram": 2, "webchat": 4}
    assert dict(figures.inbound[tuesday]) == {"telegram": 1, "webchat": 1, "instagram": 1}
    assert figures.outbound[monday]["officer"] == 6 and figures.channels == ["instagram", "telegram", "webchat"]
    assert figures.intents == {"human_handoff": 4, "greet": 1, "bike_theft": 1, "out_of_scope": 1, "lost_found": 1, "tip_off": 1}
    assert figures.actions == {"answer": 3, "handover": 5, "clarify": 1}


def test_messages_outside_duty_hours(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DUTY, now=AFTER)
    assert figures.outside == {date(2026, 11, 2): 1, date(2026, 11, 3): 2}  # 20:00 Mon; 00:30 and 07:59 Tue
    assert figures.total_outside == 3 and figures.total_inbound == 9


def test_a_shift_starting_at_half_past_is_counted_to_the_minute(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DutyHours.parse("Mo-Fr 09:30-10:30", "Europe/Berlin"), now=AFTER)
    # on duty: only Monday 10:00 (w1 and h1); 9:00 on Monday and Tuesday is before the shift, 11:00 after it
    assert figures.total_outside == 7


def test_first_reply_after_handover_median_and_p90(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DUTY, now=AFTER)
    assert sorted(figures.replies[date(2026, 11, 2)]) == [300.0, 1200.0, 3600.0]
    assert median(figures.replies[date(2026, 11, 2)]) == 1200.0 and p90(figures.replies[date(2026, 11, 2)]) == 3600.0
    assert date(2026, 11, 3) not in figures.replies and figures.unanswered == 1


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert (median(values), p90(values)) == (5.5, 9.0)
    assert (median([7.0]), p90([7.0]), median([]), p90([])) == (7.0, 7.0, None, None)


def test_queue_length_at_each_full_hour(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DUTY, now=AFTER)
    # Monday: h1 waits 10:00-10:05, h2 11:00-11:20, h3 12:00-13:00 (a chat counts from its queueing, up to its claim);
    # Tuesday: i1 waits from 09:00 on
    assert figures.queue_max[10] == 1 and figures.queue_mean[10] == 1.0  # Mon h1 (10:00), Tue i1
    assert figures.queue_mean[11] == 1.0 and figures.queue_mean[13] == 0.5  # Mon h3 answered at 13:00; Tue i1
    assert figures.queue_mean[8] == 0.0 and figures.queue_max[23] == 1


def test_relabels_show_which_intent_became_which(small_log: Any) -> None:
    figures = compute(small_log[0], PERIOD, DUTY, now=AFTER)
    assert figures.relabels == {("out_of_scope", "traffic"): 1}
    assert figures.relabels_per_day == {date(2026, 11, 3): 1}


def _hourly(log: HandoverLog) -> dict[tuple[str, ...], int]:
    rows = log.db.execute("SELECT hour, channel, direction, author, intent, action, n FROM stats_hourly WHERE n != 0").fetchall()
    return {tuple(r[:6]): r[6] for r in rows}


def _raw(log: HandoverLog) -> dict[tuple[str, ...], int]:
    rows = log.db.execute(
        "SELECT substr(created_at, 1, 13), channel, direction, author, COALESCE(intent, ''), COALESCE(action, ''), COUNT(*)"
        " FROM messages GROUP BY 1, 2, 3, 4, 5, 6"
    ).fetchall()
    return {tuple(r[:6]): r[6] for r in rows}


def test_the_hourly_figures_follow_every_change_of_the_log(small_log: Any) -> None:
    log, clock = small_log
    before = compute(log, PERIOD, DUTY, now=AFTER)
    assert _hourly(log) == _raw(log)
    conv = log.find_conversation("webchat", "h2")
    assert conv is not None
    clock.at(3, 10)
    delete_chat(log, conv.id)  # the citizen deletes the chat: its messages and its handover leave the figures
    assert _hourly(log) == _raw(log)
    after = compute(log, PERIOD, DUTY, now=AFTER)
    assert after.inbound[date(2026, 11, 2)]["webchat"] == before.inbound[date(2026, 11, 2)]["webchat"] - 1
    assert sorted(after.replies[date(2026, 11, 2)]) == [300.0, 3600.0]


def test_the_migration_fills_the_figures_from_an_existing_log(small_log: Any, tmp_path: Path) -> None:
    log, clock = small_log
    expected = compute(log, PERIOD, DUTY, now=AFTER)
    for name in ("stats_message_added", "stats_message_changed", "stats_message_deleted", "stats_first_reply",
                 "stats_wait_started", "stats_wait_ended", "stats_conversation_deleted"):
        log.db.execute(f"DROP TRIGGER {name}")
    for table in ("stats_hourly", "stats_waits", "stats_first_replies"):
        log.db.execute(f"DROP TABLE {table}")
    log.db.execute("DROP INDEX idx_events_action_at")
    log.db.execute("DROP INDEX idx_messages_in_created")
    log.db.execute("PRAGMA user_version = 6")  # a log from before the dashboard
    log.close()
    again = HandoverLog.open(tmp_path / "stats.sqlite3", clock=clock)
    try:
        assert compute(again, PERIOD, DUTY, now=AFTER) == expected
        assert _hourly(again) == _raw(again)
    finally:
        again.close()


# -- the page, the CSV, bad input ------------------------------------------------------------


@pytest.fixture
def stats_settings(settings: Settings) -> Settings:
    return with_settings(settings, duty_hours="Mo-Fr 08:00-16:00", timezone="Europe/Berlin")


async def _officer(server: Any) -> Browser:
    browser = Browser(server)
    assert (await browser.login()).status == 303
    return browser


async def test_the_page_shows_charts_with_titles_and_the_figures(stats_settings: Settings, triage_no_model: Triage,
                                                                 responses: Responses) -> None:
    build_log(stats_settings.database_path, responses)[0].close()
    async with served(stats_settings, triage_no_model) as (_, server, _):
        async with await _officer(server) as browser:
            html = await browser.page("/inbox/stats?from=2026-11-02&to=2026-11-03")
            css = await browser.get("/inbox/stats/diagramme.css")
            assert css.status == 200 and "url(#stats-fill-0)" in await css.text()
    assert html.count("<svg") == 8  # seven charts and the patterns
    assert "<title>Nachrichten von Bürgerinnen und Bürgern pro Tag und Kanal</title>" in html
    axis = re.findall(r'<text[^>]*class="title"[^>]*>([^<]*)</text>', html)  # pygal breaks long axis titles into lines
    for title in ("Tag", "Zeit (Minuten)", "Wartende Chats (Anzahl)", "Anteil (Prozent)", "Uhrzeit (Ortszeit)", "Nachrichten (Anzahl)"):
        assert title in " ".join(axis), title
    assert "<style" not in html and "<script type=\"text/javascript\">" not in html  # the page's CSP allows neither
    assert "<dd>9</dd>" in html and "<dd>3 (33.3 %)</dd>" in html  # messages, outside duty hours
    assert "<dd>20.0 Min.</dd>" in html and "<dd>60.0 Min.</dd>" in html
    assert "<td>out_of_scope</td><td>traffic</td><td>1</td>" in html


async def test_the_csv_has_the_same_figures(stats_settings: Settings, triage_no_model: Triage, responses: Responses) -> None:
    build_log(stats_settings.database_path, responses)[0].close()
    async with served(stats_settings, triage_no_model) as (_, server, _):
        async with await _officer(server) as browser:
            response = await browser.get("/inbox/stats.csv?from=2026-11-02&to=2026-11-03")
            text = await response.text()
    assert response.status == 200 and response.content_type == "text/csv"
    assert "streife-statistik-2026-11-02-2026-11-03.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    value = {(r["day"], r["figure"], r["key"]): r["value"] for r in rows}
    assert list(rows[0]) == ["day", "figure", "key", "value"]
    assert value[("2026-11-02", "messages_in", "webchat")] == "4" and value[("2026-11-03", "messages_in", "telegram")] == "1"
    assert value[("2026-11-02", "messages_in_total", "")] == "6" and value[("2026-11-03", "outside_duty_hours", "")] == "2"
    assert value[("2026-11-02", "first_reply_median_min", "")] == "20.0" and value[("2026-11-02", "first_reply_p90_min", "")] == "60.0"
    assert value[("2026-11-03", "first_reply_median_min", "")] == ""  # no answered handover that day
    assert value[("", "relabel", "out_of_scope->traffic")] == "1" and value[("", "handovers_unanswered", "")] == "1"
    assert value[("2026-11-02", "action", "clarify")] == "1" and value[("2026-11-03", "intent", "tip_off")] == "1"
    assert sum(int(r["value"]) for r in rows if r["figure"] == "messages_in") == 9


@pytest.mark.parametrize("query, message", [
    ("from=2026-11-20&to=2026-11-01", "Das Startdatum liegt nach dem Enddatum"),
    ("from=2026-13-01&to=2026-11-01", "Das Startdatum „2026-13-01“ kann ich nicht lesen"),
    ("from=gestern", "Das Startdatum „gestern“ kann ich nicht lesen"),
    ("to=0001-01-01", "Das Enddatum muss zwischen 2000 und 2999 liegen"),
    ("from=2020-01-01&to=2026-11-01", "länger als zwei Jahre"),
    ("tage=5", "Wähl 7, 30 oder 90 Tage"),
])
async def test_a_bad_period_gets_a_clear_message_and_a_400(stats_settings: Settings, triage_no_model: Triage,
                                                         query: str, message: str) -> None:
    async with served(stats_settings, triage_no_model) as (_, server, _):
        async with await _officer(server) as browser:
            page = await browser.get(f"/inbox/stats?{query}")
            page_text = await page.text()
            sheet = await browser.get(f"/inbox/stats.csv?{query}")
            sheet_text = await sheet.text()
    assert page.status == 400 and message in page_text and 'name="from"' in page_text  # the form is back
    assert sheet.status == 400 and message in sheet_text


async def test_presets_and_the_default_period(stats_settings: Settings, triage_no_model: Triage) -> None:
    async with served(stats_settings, triage_no_model) as (_, server, _):
        async with await _officer(server) as browser:
            default = await browser.page("/inbox/stats")
            week = await browser.page("/inbox/stats?tage=7")
            anonymous = await Browser(server).__aenter__()
            try:
                refused = await anonymous.get("/inbox/stats.csv")
            finally:
                await anonymous.__aexit__()
    assert "(30 Tage, Ortszeit)" in default and "(7 Tage, Ortszeit)" in week
    assert refused.status == 401 or refused.status == 303  # the dashboard is for logged-in officers only


def test_days_are_local_across_the_change_from_summer_time(tmp_path: Path) -> None:
    clock = Clock()
    log = HandoverLog.open(tmp_path / "dst.sqlite3", clock=clock)
    try:
        for day, hour, minute in ((24, 23, 30), (25, 0, 30), (25, 23, 30), (26, 0, 30)):  # summer time ends on 25 Oct 2026
            clock.now = datetime(2026, 10, day, hour, minute, tzinfo=BERLIN).astimezone(timezone.utc)
            log.record_inbound(Inbound("telegram", f"c{day}{hour}", "u", "hallo"))
        figures = compute(log, Period(date(2026, 10, 24), date(2026, 10, 26)), DUTY, now=AFTER)
    finally:
        log.close()
    assert [sum(figures.inbound[d].values()) for d in figures.days] == [1, 2, 1]
    assert sum(figures.intents_per_day[date(2026, 10, 25)].values()) == 2
