"""The dashboard's figures on a small hand-made log (messages and comments under posts) (a real SQLite file), its page, CSV and bad input."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import threading
import time
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.duty import DutyHours
from bot.handover import HandoverLog
from bot.handover import comment_privacy
from bot.handover.accounts import Accounts
from bot.handover.comments import Comments
from bot.handover.comment_rows import IncomingComment
from bot.handover.officers import Officers
from bot.handover.privacy import delete_chat, purge_expired
from bot.handover.records import Inbound
from bot.handover.stats import Period, compute, median, p90
from bot.handover.stats_tables import DAY_TABLES, ensure_zone, install
from bot.handover.states import HandoverStates
from bot.responses import Responses
from bot.settings import Settings
from bot.triage import Triage
from bot.web.stats_reader import READER
from tests.pg_index import SQLITE_ONLY
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


def _tables(log: HandoverLog) -> dict[str, dict[tuple[str, ...], int]]:
    """The per-day tables as they are (rows with n = 0 left out)."""
    return {t: {tuple(r[:-1]): r[-1] for r in log.db.execute(f"SELECT * FROM {t} WHERE n != 0")} for t in DAY_TABLES}


def _outcome(comment: dict[str, Any], sent: set[tuple[int, str]]) -> str:
    """What happened to a comment, worked out again in Python (the first that applies)."""
    if comment["hidden"] or comment["deleted"]:
        return "hidden"
    if comment["policy"] == "escalate" and (comment["id"], "public_reply") in sent:
        return "public_110"
    if (comment["id"], "private_reply") in sent:
        return "private"
    if (comment["id"], "public_reply") in sent:
        return "public"
    return "listed" if comment["policy"] == "list" else "open" if comment["status"] == "new" else "nothing"


def _raw(log: HandoverLog, zone: ZoneInfo = BERLIN) -> dict[str, dict[tuple[str, ...], int]]:
    """The same figures counted from the raw log (local days through zoneinfo)."""
    def day(stamp: str) -> str:
        return datetime.fromisoformat(stamp).astimezone(zone).date().isoformat()

    out: dict[str, Counter[tuple[str, ...]]] = {t: Counter() for t in DAY_TABLES}
    for created, channel, direction, author, intent, action in log.db.execute(
        "SELECT created_at, channel, direction, author, intent, action FROM messages"
    ):
        out["stats_days_volume"][(day(created), channel, direction, author)] += 1
        if direction == "in":
            out["stats_days_intents"][(day(created), intent or "")] += 1
            out["stats_days_actions"][(day(created), action or "")] += 1
            out["stats_hours_inbound"][(created[:13],)] += 1
    sent = {(r[0], r[1]) for r in log.db.execute("SELECT comment_id, kind FROM comment_actions WHERE status = 'sent'")}
    for comment in log._select("SELECT * FROM comments WHERE own = 0"):
        out["stats_days_comments"][(day(comment["created_at"]), comment["channel"], _outcome(comment, sent))] += 1
    for event in log._select("SELECT at, detail FROM events WHERE action = 'relabel'"):
        detail = json.loads(event["detail"])
        if "intent" in detail:  # (a deletion empties the detail)
            out["stats_days_relabels"][(day(event["at"]), detail.get("was") or "", detail["intent"])] += 1
    return {t: dict(c) for t, c in out.items()}


def test_the_per_day_figures_follow_every_change_of_the_log(small_log: Any) -> None:
    log, clock = small_log
    before = compute(log, PERIOD, DUTY, now=AFTER)
    assert _tables(log) == _raw(log)
    conv = log.find_conversation("webchat", "h2")
    assert conv is not None
    clock.at(3, 10)
    delete_chat(log, conv.id)  # the citizen deletes the chat: its messages and its handover leave the figures
    assert _tables(log) == _raw(log)
    after = compute(log, PERIOD, DUTY, now=AFTER)
    assert after.inbound[date(2026, 11, 2)]["webchat"] == before.inbound[date(2026, 11, 2)]["webchat"] - 1
    assert sorted(after.replies[date(2026, 11, 2)]) == [300.0, 3600.0]
    message = _say(log, clock, "x", "x1", (3, 11, 0), "greet", "answer")  # a new message, decided, then decided again
    log.record_decision(message, "thanks", 0.8, "answer")
    assert _tables(log) == _raw(log) and compute(log, PERIOD, DUTY, now=AFTER).intents["thanks"] == 1


def _purge(log: HandoverLog, clock: Clock) -> dict[str, int]:
    clock.at(20, 12)
    log.db.execute("UPDATE conversations SET state = 'closed'")  # (open chats are kept whatever their age)
    return purge_expired(log, retention_days=1, now=datetime(2026, 11, 4, 0, tzinfo=timezone.utc))  # before 3 Nov 01:00 Berlin goes


def test_retention_leaves_the_figures_of_past_days_in_place(small_log: Any) -> None:
    log, clock = small_log
    half_past = DutyHours.parse("Mo-Fr 09:30-10:30", "Europe/Berlin")  # hours a shift starts or ends in
    before, tables = compute(log, PERIOD, DUTY, now=AFTER), _tables(log)
    before_half_past = compute(log, PERIOD, half_past, now=AFTER)
    counts = _purge(log, clock)
    assert counts["messages"] == 13 and log.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2  # the words are gone
    assert _tables(log) == tables and compute(log, PERIOD, DUTY, now=AFTER) == before  # the figures are not
    assert sorted(compute(log, PERIOD, DUTY, now=AFTER).replies[date(2026, 11, 2)]) == [300.0, 1200.0, 3600.0]
    estimated = compute(log, PERIOD, half_past, now=AFTER).outside
    assert before_half_past.outside == {date(2026, 11, 2): 4, date(2026, 11, 3): 3}
    # Monday's purged 9:00 (off) and two at 10:00 (on) count by the half hour off duty: 1.5, rounded 2 (one too many);
    # whole hours stay exact, and Tuesday's 9:00 is still stored (counted to the minute)
    assert estimated == {date(2026, 11, 2): 5, date(2026, 11, 3): 3}
    assert not log.db.execute("SELECT 1 FROM kv WHERE key = 'stats_retention'").fetchone()  # the flag lasted the transaction
    clock.at(20, 13)
    _say(log, clock, "telegram", "t10", (20, 13, 0), "greet", "answer")  # later messages count as ever
    assert sum(compute(log, Period(date(2026, 11, 20), date(2026, 11, 20)), DUTY, now=AFTER).inbound[date(2026, 11, 20)].values()) == 1


def test_a_privacy_deletion_after_retention_still_takes_the_chat_out(small_log: Any) -> None:
    log, clock = small_log
    _purge(log, clock)
    before = compute(log, PERIOD, DUTY, now=AFTER)
    waiting = log.find_conversation("instagram", "i1")  # Tuesday 09:00: younger than the cutoff, still stored
    assert waiting is not None and before.unanswered == 1
    delete_chat(log, waiting.id)
    after = compute(log, PERIOD, DUTY, now=AFTER)
    assert after.inbound[date(2026, 11, 3)].get("instagram", 0) == 0 and after.unanswered == 0
    assert after.inbound[date(2026, 11, 2)] == before.inbound[date(2026, 11, 2)]  # the purged Monday stays
    assert after.intents["tip_off"] == 0 and after.total_inbound == before.total_inbound - 1


def test_a_conversation_id_used_again_after_retention_starts_its_own_figures(small_log: Any) -> None:
    log, clock = small_log
    log.db.execute("UPDATE conversations SET state = 'closed'")
    clock.at(20, 12)
    purge_expired(log, retention_days=1, now=datetime(2026, 11, 20, 12, tzinfo=timezone.utc))  # every chat goes
    assert log.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
    assert log.db.execute("SELECT COUNT(*) FROM stats_waits WHERE conversation_id < 0").fetchone()[0] == 4  # kept, detached
    for n in range(10):  # SQLite gives the old ids again, among them those of h1-h3 and i1
        conv = log.message(_say(log, clock, "webchat", f"new{n}", (20, 13, n), "human_handoff", "handover")).conversation_id
        log.queue(conv, "handover", "human_handoff")
    assert conv == 10 or log.backend == "postgresql"  # (PostgreSQL never gives an id again)
    today = compute(log, Period(date(2026, 11, 20), date(2026, 11, 20)), DUTY, now=datetime(2026, 11, 20, 15, tzinfo=timezone.utc))
    assert today.unanswered == 10 and today.queue_max[14] == 10
    past = compute(log, PERIOD, DUTY, now=AFTER)
    assert sorted(past.replies[date(2026, 11, 2)]) == [300.0, 1200.0, 3600.0] and past.unanswered == 1


def _assign_i1(log: HandoverLog, clock: Clock) -> int:
    """Anna assigns the waiting chat i1 to Berta on Tuesday 09:45 (it waited from 09:00)."""
    officers = Officers(log)
    officers.add("berta", "ein langes Passwort 123")
    waiting = log.find_conversation("instagram", "i1")
    assert waiting is not None
    clock.at(3, 9, 45)
    Accounts(officers).assign(waiting.id, "berta", "anna")
    return waiting.id


def test_an_assignment_ends_the_wait_in_the_queue(small_log: Any) -> None:
    log, clock = small_log
    assert compute(log, PERIOD, DUTY, now=AFTER).queue_max[23] == 1  # i1 waits from Tuesday 09:00 on
    conv = _assign_i1(log, clock)
    figures = compute(log, PERIOD, DUTY, now=AFTER)
    assert figures.queue_max[23] == 0 and figures.queue_max[14] == 0  # i1 waited until 09:45 only
    ended = log.db.execute("SELECT ended_at FROM stats_waits WHERE conversation_id = ?", [conv]).fetchone()[0]
    assert ended == clock()


@SQLITE_ONLY
def test_the_migration_fills_the_figures_from_an_existing_log(small_log: Any) -> None:
    log, clock = small_log
    _comments(log, clock)
    _assign_i1(log, clock)
    expected = compute(log, PERIOD, DUTY, now=AFTER)
    assert expected.queue_max[23] == 0
    log.db.execute("UPDATE stats_waits SET ended_at = NULL")  # as _v7 left a wait an assignment ended
    for (name,) in log.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'stats_days_%'").fetchall():
        log.db.execute(f"DROP TRIGGER {name}")
    for table in (*DAY_TABLES, "stats_zone"):
        log.db.execute(f"DROP TABLE {table}")
    log.db.execute("DELETE FROM stats_first_replies")  # as a bulk import that wrote messages before events leaves it
    log.db.execute("DELETE FROM kv WHERE key = 'stats_zone'")
    with log.transaction():
        install(log.db)  # migration _v8 on a log from before the per-day tables (later migrations are not ours to re-run)
    assert compute(log, PERIOD, DUTY, now=AFTER) == expected
    assert _tables(log) == _raw(log)
    _say(log, clock, "telegram", "t8", (3, 13, 0), "greet", "answer")  # and the triggers are back
    assert _tables(log) == _raw(log)


def test_the_service_rebuilds_for_a_new_time_zone_when_it_starts(settings: Settings, responses: Responses) -> None:
    from bot.services import Services

    build_log(settings.database_path, responses)[0].close()
    services = Services.build(with_settings(settings, timezone="Asia/Tokyo"))  # not the dashboard's first request
    try:
        assert services.handover.get_value("stats_zone") == "Asia/Tokyo"
        assert _tables(services.handover) == _raw(services.handover, ZoneInfo("Asia/Tokyo"))
    finally:
        services.handover.close()


def test_another_time_zone_rebuilds_the_days_once(small_log: Any) -> None:
    log, _ = small_log
    tokyo = DutyHours.parse("Mo-Fr 08:00-16:00", "Asia/Tokyo")
    figures = compute(log, PERIOD, tokyo, now=AFTER)  # UTC+9: Monday 20:00 in Berlin is Tuesday 04:00 in Tokyo
    assert _tables(log) == _raw(log, ZoneInfo("Asia/Tokyo"))
    assert sum(figures.inbound[date(2026, 11, 3)].values()) == 4
    _say(log, small_log[1], "telegram", "t9", (3, 12, 0), "greet", "answer")  # the triggers now count in Tokyo days
    assert _tables(log) == _raw(log, ZoneInfo("Asia/Tokyo"))
    assert not ensure_zone(log.db, "Asia/Tokyo") and ensure_zone(log.db, "Europe/Berlin")


# -- comments under posts ----------------------------------------------------------------------


def _comment(store: Comments, clock: Clock, cid: str, when: tuple[int, int, int], channel: str = "instagram",
             own: bool = False) -> int:
    clock.at(*when)
    stored = store.record(IncomingComment(channel, cid, "post-1", f"author-{cid}", "ein Kommentar", own=own))
    assert stored is not None
    return stored.id


def _comments(log: HandoverLog, clock: Clock) -> Comments:
    """Seven comments under a post, each with another outcome (times Berlin)."""
    store = Comments(log)
    insult = _comment(store, clock, "c1", (2, 10, 0))
    store.decide(insult, "insult", 0.9, "answer", "abuse", 2)
    store.action_sent(store.plan(insult, "hide"))
    emergency = _comment(store, clock, "c2", (2, 11, 0))
    store.decide(emergency, "emergency", 0.95, "escalate", "escalate", 0)
    store.action_sent(store.plan(emergency, "public_reply", "Bitte ruf sofort die 110 an."))
    store.action_sent(store.plan(emergency, "private_reply", "Ruf die 110 an."))
    question = _comment(store, clock, "c3", (2, 12, 0), channel="messenger")
    store.decide(question, "bike_theft", 0.9, "answer", "faq", 1)
    store.action_sent(store.plan(question, "private_reply", "So zeigst du den Diebstahl an."))
    listed = _comment(store, clock, "c4", (3, 9, 0), channel="messenger")
    store.decide(listed, "out_of_scope", 0.4, "clarify", "list", 3)
    _comment(store, clock, "c5", (3, 10, 0))  # not decided yet
    nothing = _comment(store, clock, "c6", (3, 11, 0))
    store.decide(nothing, "thanks", 0.9, "answer", "none", 9)
    _comment(store, clock, "c7", (3, 11, 30), own=True)  # the team's own comment: not counted
    public = _comment(store, clock, "c8", (3, 12, 0))
    store.decide(public, "station_contact", 0.9, "answer", "faq", 1)
    store.plan(public, "public_reply", "Die Wache hat rund um die Uhr offen.")  # planned, not sent yet
    return store


def test_comments_per_day_channel_and_what_happened(small_log: Any) -> None:
    log, clock = small_log
    store = _comments(log, clock)
    figures = compute(log, PERIOD, DUTY, now=AFTER)
    monday, tuesday = date(2026, 11, 2), date(2026, 11, 3)
    assert dict(figures.comments[monday]) == {"instagram": 2, "messenger": 1}
    assert dict(figures.comments[tuesday]) == {"instagram": 3, "messenger": 1} and figures.total_comments == 7
    assert dict(figures.comment_outcomes[monday]) == {"hidden": 1, "public_110": 1, "private": 1}
    assert dict(figures.comment_outcomes[tuesday]) == {"listed": 1, "open": 1, "nothing": 2}
    assert _tables(log) == _raw(log)
    pending = store.actions(store.by_platform("instagram", "c8").id)[0]  # type: ignore[union-attr]
    store.action_sent(pending.id)  # the public reply goes out
    assert compute(log, PERIOD, DUTY, now=AFTER).comment_outcomes[tuesday] == {"listed": 1, "open": 1, "nothing": 1, "public": 1}
    assert _tables(log) == _raw(log)
    emergency = store.by_platform("instagram", "c2")
    assert emergency is not None
    comment_privacy.delete(log, emergency.author)  # the author's data is erased: the comment leaves the figures
    assert compute(log, PERIOD, DUTY, now=AFTER).comment_outcomes[monday] == {"hidden": 1, "private": 1}
    assert _tables(log) == _raw(log)


def test_comment_retention_leaves_the_figures_in_place(small_log: Any) -> None:
    log, clock = small_log
    _comments(log, clock)
    before, tables = compute(log, PERIOD, DUTY, now=AFTER), _tables(log)
    clock.at(30, 12)
    counts = purge_expired(log, retention_days=1, now=datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    assert counts["comments"] >= 6 and _tables(log) == tables and compute(log, PERIOD, DUTY, now=AFTER) == before
    assert compute(log, PERIOD, DUTY, now=AFTER).comment_outcomes[date(2026, 11, 2)] == {"hidden": 1, "public_110": 1, "private": 1}


def test_a_comment_kept_for_a_complaint_still_counts_once_when_it_is_hidden_after_retention(small_log: Any) -> None:
    log, clock = small_log
    store = _comments(log, clock)
    question = store.by_platform("messenger", "c3")  # Monday, answered privately
    assert question is not None
    store.mark_complaint(question.id, "anna")
    clock.at(30, 12)
    purge_expired(log, retention_days=1, now=datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    assert store.get(question.id).text == "" and all(a.text == "" for a in store.actions(question.id))  # no personal text left
    store.record_hidden("messenger", "c3", True)  # an officer hides it in Meta's app
    monday = date(2026, 11, 2)
    assert compute(log, PERIOD, DUTY, now=AFTER).comment_outcomes[monday] == {"hidden": 2, "public_110": 1}
    assert not log.db.execute("SELECT * FROM stats_days_comments WHERE n < 0").fetchall()
    assert ensure_zone(log.db, "Asia/Tokyo")  # a rebuild counts the kept comment once
    tables = _tables(log)["stats_days_comments"]
    assert sum(tables.values()) == 7 and min(tables.values()) > 0


def test_another_time_zone_after_retention_keeps_the_purged_days(small_log: Any) -> None:
    log, clock = small_log
    _comments(log, clock)
    purged_hours = _tables(log)["stats_hours_inbound"]
    _purge(log, clock)
    assert ensure_zone(log.db, "Asia/Tokyo")
    tables, raw = _tables(log), _raw(log, ZoneInfo("Asia/Tokyo"))
    assert tables["stats_hours_inbound"] == purged_hours  # UTC hours: exact
    assert raw["stats_days_volume"] == {("2026-11-03", "webchat", "in", "citizen"): 1, ("2026-11-03", "instagram", "in", "citizen"): 1}
    assert sum(tables["stats_days_volume"].values()) == 15 and tables["stats_days_volume"][("2026-11-03", "instagram", "in", "citizen")] == 1
    assert sum(tables["stats_days_comments"].values()) == 7  # the purged comments are still counted


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
    assert html.count("<svg") == 9  # eight charts and the patterns
    assert "<title>Nachrichten von Bürgerinnen und Bürgern pro Tag und Kanal</title>" in html
    axis = re.findall(r'<text[^>]*class="title"[^>]*>([^<]*)</text>', html)  # pygal breaks long axis titles into lines
    for title in ("Tag", "Zeit (Minuten)", "Wartende Chats (Anzahl)", "Anteil (Prozent)", "Uhrzeit (Ortszeit)", "Nachrichten (Anzahl)"):
        assert title in " ".join(axis), title
    assert "<style" not in html and "<script type=\"text/javascript\">" not in html  # the page's CSP allows neither
    assert "<dd>9</dd>" in html and "<dd>3 (33.3 %)</dd>" in html  # messages, outside duty hours
    assert "<dd>20.0 Min.</dd>" in html and "<dd>60.0 Min.</dd>" in html
    assert "<td>out_of_scope</td><td>traffic</td><td>1</td>" in html


async def test_the_csv_has_the_same_figures(stats_settings: Settings, triage_no_model: Triage, responses: Responses) -> None:
    log, clock = build_log(stats_settings.database_path, responses)
    _comments(log, clock)
    log.close()
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
    assert value[("2026-11-02", "comments", "messenger")] == "1" and value[("2026-11-03", "comments_total", "")] == "4"
    assert value[("2026-11-02", "comment_outcome", "public_110")] == "1" and value[("2026-11-02", "comment_outcome", "hidden")] == "1"


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


async def test_a_slow_dashboard_does_not_hold_up_the_inbox(stats_settings: Settings, triage_no_model: Triage,
                                                           responses: Responses) -> None:
    build_log(stats_settings.database_path, responses)[0].close()
    release = threading.Event()
    async with served(stats_settings, triage_no_model) as (app, server, services):
        async with await _officer(server) as browser:
            busy = asyncio.ensure_future(app[READER].run(services.handover, lambda db: release.wait(10)))  # a slow query
            dashboard = asyncio.ensure_future(browser.page("/inbox/stats?from=2026-11-02&to=2026-11-03"))
            started = time.perf_counter()
            queue = await asyncio.wait_for(browser.page("/inbox"), 5)  # answered while the dashboard waits
            waited = time.perf_counter() - started
            assert not dashboard.done()
            release.set()
            html = await asyncio.wait_for(dashboard, 10)
            assert await busy
    assert waited < 2 and "Statistik" in queue and "<dd>9</dd>" in html


def test_a_message_dated_at_the_end_of_time_is_still_stored(tmp_path: Path) -> None:
    """A platform's timestamp late on 9999-12-31 (datetime accepts it) must not stop the citizen's message."""
    from bot.handover import Inbound
    log = HandoverLog.open(tmp_path / "log.sqlite3", pseudonym_key="k")
    try:
        stored = log.record_inbound(Inbound("instagram", "c1", "u1", "Hilfe", platform_id="m1", at="9999-12-31T23:30:00.000+00:00"))
        days = [r[0] for r in log.db.execute("SELECT day FROM stats_days_volume")]
    finally:
        log.close()
    assert stored is not None and days == ["9999-12-31"]
