"""Search and the dashboard's figures on PostgreSQL (pg_features.sql) give officers what SQLite gives them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlite_utils import Database

from bot.handover import HandoverLog, Inbound
from bot.handover.comments import Comments, IncomingComment
from bot.handover.pg import PgDatabase
from bot.handover.search import SearchQuery, search
from bot.handover.stats_tables import DAY_TABLES, ensure_zone, zone_offsets

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
TEXTS = [  # (chat, text): citizens' words as they come, with what FTS5's tokenizer makes of punctuation
    ("a", "Mein E-Roller wurde am Bahnhof geklaut, bitte helft mir!"),
    ("b", "Hallo, ich wollte fragen: " + " ".join(f"wort{i}" for i in range(30)) + " und dann kam der Roller vorbei"),
    ("c", "Schreib an max@web.de oder schau auf www.polizei.de/anzeige nach, Version 3.5"),
    ("d", "Ärger im Café, naïve Übung. Die Fahrräder stehen am Bahnhof."),
    ("e", "Roller Roller Roller am Bahnhof Roller"),
    ("a", "Noch was: der Roller war blau."),
    ("f", "Нужна помощь, украли велосипед у вокзала"),
    ("g", "Çok acil: bisikletim çalındı, lütfen yardım"),
]
QUERIES = ["roller", "Bahnhof Roller", '"am Bahnhof"', '"Bahnhof am"', "anzeige", "max", "web", "3", "cafe", "NAIVE", "ubung",
           "Fahrrad", "fahrrader", "wort1", "велосипед", "велос", "çalındı", "calın", "Roller blau", "E-Roller", "nichts"]


def at(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def fill(log: HandoverLog) -> HandoverLog:
    for n, (chat, text) in enumerate(TEXTS):
        stored = log.record_inbound(Inbound("webchat", chat, f"user-{chat}", text, at=at(n)))
        assert stored is not None
        log.record_decision(stored.message.id, None, None, "answer")
    return log


@pytest.fixture
def both(pg_url: str) -> Any:
    """The same log on SQLite (FTS5) and on PostgreSQL."""
    logs = fill(HandoverLog(Database(memory=True))), fill(HandoverLog.open(pg_url))
    yield logs
    for log in logs:
        log.close()


def found(log: HandoverLog, words: str) -> list[tuple[int, int, str]]:
    return [(h.message_id, h.count, h.snippet) for h in search(log, SearchQuery(words=words)).hits]


@pytest.mark.parametrize("words", QUERIES)
def test_the_same_words_find_the_same_messages_with_the_same_marks(both: Any, words: str) -> None:
    sqlite, postgres = both
    assert found(postgres, words) == found(sqlite, words)


def test_comments_are_found_and_marked_the_same(pg_url: str) -> None:
    logs = HandoverLog(Database(memory=True), clock=lambda: at(0)), HandoverLog.open(pg_url, clock=lambda: at(0))
    for log in logs:
        store = Comments(log)
        for n, (_, text) in enumerate(TEXTS):
            assert store.record(IncomingComment("instagram", f"k{n}", "post-1", f"author-{n}", text)) is not None
        assert store.record(IncomingComment("instagram", "own", "post-1", "page", "Roller vom Team", own=True)) is not None
    for words in ("Roller", '"am Bahnhof"', "anzeige", "fahrrader", "wort2"):
        sqlite, postgres = (search(log, SearchQuery(words=words, scope="kommentare")).comments for log in logs)
        assert [(c.comment_id, c.snippet) for c in postgres] == [(c.comment_id, c.snippet) for c in sqlite] != [], words
    for log in logs:
        log.close()


def test_a_conversations_best_hit_is_the_same_message(both: Any) -> None:
    sqlite, postgres = both
    hits = search(postgres, SearchQuery(words="Roller")).hits
    assert [(h.conversation_id, h.count) for h in hits] == [(1, 2), (5, 1), (2, 1)]  # chat a: two messages match
    assert [h.message_id for h in hits] == [h.message_id for h in search(sqlite, SearchQuery(words="Roller")).hits]


def test_postgresql_also_folds_sharp_s_and_ligatures(pg_url: str) -> None:
    """The known difference: unaccent writes ß as ss, Æ as AE and ı as i, FTS5 keeps them (PostgreSQL finds more)."""
    log = HandoverLog.open(pg_url)
    stored = log.record_inbound(Inbound("webchat", "s", "s", "Die Straße ist gesperrt, Ærger überall, çalındı"))
    assert stored is not None
    for words in ("Straße", "strasse", "Strass", "aerger", "calindi"):
        assert [h.message_id for h in search(log, SearchQuery(words=words)).hits] == [stored.message.id], words
    assert search(log, SearchQuery(words="strasse")).hits[0].snippet == "Die \ue000Straße\ue001 ist gesperrt, Ærger überall, çalındı"
    log.close()


def test_the_search_reads_the_gin_index(pg_url: str) -> None:
    log = HandoverLog.open(pg_url)
    plan = " ".join(r[0] for r in log.db.execute(
        "EXPLAIN SELECT m.id FROM messages m WHERE m.author != 'bot' AND public.streife_tsv(m.text) @@ ?::tsquery",
        ["'roller':*"]).fetchall())
    assert "idx_messages_search" in plan
    plan = " ".join(r[0] for r in log.db.execute(
        "EXPLAIN SELECT c.id FROM comments c WHERE c.own = 0 AND public.streife_tsv(c.text) @@ ?::tsquery", ["'roller'"]).fetchall())
    assert "idx_comments_search" in plan
    log.close()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"])
def test_the_zone_offsets_are_pythons(pg_url: str, zone: str) -> None:
    log = HandoverLog.open(pg_url)
    rows = [tuple(r) for r in log.db.execute("SELECT since, shift FROM stats_zone_offsets(?) ORDER BY since", [zone])]
    assert rows == zone_offsets(ZoneInfo(zone))
    log.close()


def _tables(log: HandoverLog) -> dict[str, set[tuple[Any, ...]]]:
    return {t: {tuple(r) for r in log.db.execute(f"SELECT * FROM {t} WHERE n != 0")} for t in DAY_TABLES}


def test_one_statement_that_changes_two_replies_of_a_comment_counts_it_once(pg_url: str) -> None:
    """PostgreSQL runs AFTER ROW triggers at the statement's end: the comment is recounted, never counted twice."""
    log = HandoverLog.open(pg_url, clock=lambda: at(0))
    store = Comments(log)
    stored = store.record(IncomingComment("instagram", "c1", "post-1", "author-1", "Hilfe, bitte"))
    assert stored is not None
    store.decide(stored.id, "emergency", 0.95, "escalate", "escalate", 0)
    public, private = store.plan(stored.id, "public_reply", "Ruf die 110 an."), store.plan(stored.id, "private_reply", "110!")
    log.db.execute("UPDATE comment_actions SET status = 'sent' WHERE id IN (?, ?)", [public, private])
    counted = _tables(log)["stats_days_comments"]
    assert counted == {("2026-11-18", "instagram", "public_110", 1)}
    log.db.execute("DELETE FROM comment_actions WHERE comment_id = ?", [stored.id])  # both replies in one statement
    assert _tables(log)["stats_days_comments"] == {("2026-11-18", "instagram", "nothing", 1)}
    before = _tables(log)
    assert ensure_zone(log.db, "Asia/Tokyo") and ensure_zone(log.db, "Europe/Berlin")  # rebuilt from the log: the same
    assert _tables(log) == before
    log.close()


def test_two_instances_starting_with_a_new_time_zone_rebuild_once(pg_url: str) -> None:
    """Both call ensure_zone at once (Services.build): one rebuilds, the other waits for it and finds the zone built."""
    log = fill(HandoverLog.open(pg_url))
    first, second = PgDatabase(pg_url), PgDatabase(pg_url)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda db: ensure_zone(db, "Asia/Tokyo"), (first, second)))
    assert sorted(results) == [False, True] and log.get_value("stats_zone") == "Asia/Tokyo"
    assert sum(n for (n,) in log.db.execute("SELECT n FROM stats_days_volume")) == len(TEXTS)
    for db in (first, second, log):
        db.close()
