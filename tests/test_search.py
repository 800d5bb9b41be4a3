"""Search (FTS5) over the handover log and the citizen's history: real SQLite, real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlite_utils import Database

from bot.handover import HandoverLog, Inbound
from bot.handover.privacy import delete_chat, delete_citizen, purge_expired
from bot.handover.schema import MIGRATIONS
from bot.handover.search import SearchError, SearchQuery, build_query, forget_deleted, fts_query, search
from bot.settings import Settings
from bot.triage import Triage
from tests.pg_index import SQLITE_ONLY, stored
from tests.pg_index import indexed as index_count
from tests.web_support import Browser, served

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
BERLIN = ZoneInfo("Europe/Berlin")


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="milliseconds")


def write(log: HandoverLog, chat: str, text: str, days_ago: float = 0, user: str | None = None, channel: str = "webchat") -> int:
    """A citizen's message, taken as decided (a served app's recovery leaves it alone); the conversation's id."""
    stored = log.record_inbound(Inbound(channel, chat, user or chat, text, at=at(days_ago)))
    log.record_decision(stored.message.id, None, None, "answer")
    return stored.conversation.id


def words_found(log: HandoverLog, words: str, **filters: str) -> list[str]:
    hits = search(log, build_query({"q": words, **filters}, BERLIN)).hits
    return [log.message(h.message_id).text for h in hits]


def test_words_are_found_whatever_their_case_umlauts_and_endings(handover: HandoverLog) -> None:
    write(handover, "a", "Mein Fahrrad wurde am Bahnhof gestohlen")
    write(handover, "b", "Jemand hat die Fahrräder im Hof beschädigt")
    write(handover, "c", "Wie erreiche ich die Wache?")
    assert words_found(handover, "FAHRRADER") == ["Jemand hat die Fahrräder im Hof beschädigt"]
    assert words_found(handover, "fahrrad") == words_found(handover, "Fahrr") == ["Jemand hat die Fahrräder im Hof beschädigt", "Mein Fahrrad wurde am Bahnhof gestohlen"]
    assert words_found(handover, "Fahrrad Bahnhof") == ["Mein Fahrrad wurde am Bahnhof gestohlen"]
    assert words_found(handover, '"am Bahnhof"') == ["Mein Fahrrad wurde am Bahnhof gestohlen"]
    assert words_found(handover, '"Bahnhof am"') == []
    assert words_found(handover, "Roller") == []


def test_the_bots_canned_replies_are_not_searched_but_officers_replies_are(handover: HandoverLog) -> None:
    conv = write(handover, "a", "Hallo, ich habe eine Frage")
    handover.add_outbound(conv, "Ich bin der Bot. Für eine Anzeige nutze die Onlinewache.", author="bot")
    handover.add_outbound(conv, "Hier ist Anna. Die Onlinewache findest du hier.", author="officer", officer="anna")
    assert words_found(handover, "Onlinewache") == ["Hier ist Anna. Die Onlinewache findest du hier."]


@pytest.mark.parametrize("words", ['"', "*", "(", ")", "NEAR(a b)", "-", ":", "a:b", "-Fahrrad", "Fahrrad*", "Fahrrad OR Roller",
                                    '"Fahrrad', "NOT Fahrrad", "Fahrrad AND", "^Fahrrad", "{text}: Fahrrad", "Fahrrad'", "'Fahrrad"])
def test_fts_syntax_in_the_words_is_searched_for_as_text_never_obeyed(handover: HandoverLog, words: str) -> None:
    write(handover, "a", "Mein Fahrrad ist weg")
    try:
        expression = fts_query(words)
    except SearchError as err:
        assert "Sonderzeichen" in str(err)
        return
    assert re.fullmatch(r'"[\w ]+"\*?( "[\w ]+"\*?)*', expression)  # only quoted tokens and phrases
    search(handover, build_query({"q": words}, BERLIN))  # SQLite accepts every expression we build


@pytest.mark.parametrize("fields, message", [
    ({"q": "x" * 10_000}, "zu lang"),
    ({"q": "eins zwei drei vier fünf sechs sieben acht neun"}, "Zu viele Suchwörter"),
    ({"q": '"*() :-'}, "nur Sonderzeichen"),
    ({"von": "2026-11-20", "bis": "2026-11-10"}, "„Von“ liegt nach „Bis“"),
    ({"von": "2026-02-30"}, "verstehe ich nicht"),
    ({"bis": "gestern"}, "verstehe ich nicht"),
    ({"von": "0001-01-01"}, "außerhalb"),
    ({"thema": "drop table"}, "Thema kenne ich nicht"),
    ({"kanal": "fax"}, "Kanal kenne ich nicht"),
    ({"status": "weg"}, "Status kenne ich nicht"),
    ({"person": "<script>"}, "Pseudonym"),
])
def test_bad_input_gets_a_clear_german_message(fields: dict[str, str], message: str) -> None:
    with pytest.raises(SearchError, match=message):
        build_query(fields, BERLIN)


def test_filters_narrow_the_hits_and_the_to_date_is_inclusive(handover: HandoverLog) -> None:
    first = write(handover, "a", "Roller weg am Montag", days_ago=10, channel="telegram")
    write(handover, "b", "Roller weg am Dienstag", days_ago=2)
    write(handover, "c", "Roller weg am Mittwoch", days_ago=0.1)
    handover.update_conversation(first, state="queued")
    citizen = handover.conversation(first).citizen
    day = (NOW - timedelta(days=2)).astimezone(BERLIN).date().isoformat()
    assert words_found(handover, "Roller") == ["Roller weg am Mittwoch", "Roller weg am Dienstag", "Roller weg am Montag"]
    assert words_found(handover, "Roller", kanal="telegram") == ["Roller weg am Montag"]
    assert words_found(handover, "Roller", status="queued") == ["Roller weg am Montag"]
    assert words_found(handover, "", person=citizen) == ["Roller weg am Montag"]
    assert words_found(handover, "Roller", bis=day) == ["Roller weg am Dienstag", "Roller weg am Montag"]
    assert words_found(handover, "Roller", von=day, bis=day) == ["Roller weg am Dienstag"]
    german = (NOW - timedelta(days=2)).astimezone(BERLIN).strftime("%d.%m.%Y")
    assert words_found(handover, "", von=german, bis=german) == ["Roller weg am Dienstag"]


def test_the_intent_filter_uses_the_officers_correction(handover: HandoverLog) -> None:
    write(handover, "a", "Mein Rad ist weg")
    write(handover, "b", "Mein Auto ist weg")
    first, second = handover.transcript(1)[0], handover.transcript(2)[0]
    handover.record_decision(first.id, "bike_theft", 0.9, "answer")
    handover.record_decision(second.id, "bike_theft", 0.6, "answer")
    handover.relabel(second.id, "report_crime", "anna")
    assert words_found(handover, "weg", thema="bike_theft") == ["Mein Rad ist weg"]
    assert words_found(handover, "", thema="report_crime") == ["Mein Auto ist weg"]


def test_results_come_in_pages_newest_first(handover: HandoverLog) -> None:
    for n in range(7):
        write(handover, f"c{n}", f"Lärm Nummer {n}", days_ago=7 - n)
    pages = [search(handover, SearchQuery(words="Lärm", page=p), page_size=3) for p in (1, 2, 3)]
    assert [[h.conversation_id for h in page.hits] for page in pages] == [[7, 6, 5], [4, 3, 2], [1]]
    assert [page.more for page in pages] == [True, True, False]


def indexed(log: HandoverLog, word: str) -> int:
    """Rows the FTS index itself has for a word (not the messages table)."""
    return index_count(log, "messages_fts", word)


def test_privacy_deletion_and_the_citizens_own_deletion_remove_the_index_rows(handover: HandoverLog) -> None:
    write(handover, "a", "Mein Nachbar Zwiebelfisch schlägt seine Frau", user="u1")
    write(handover, "b", "Noch einmal wegen Zwiebelfisch", user="u1")
    chat = write(handover, "c", "Ich heiße Kartoffelkuchen und mein Handy ist weg", user="u2")
    write(handover, "d", "Zwiebelfisch ist auch mein Nachbar", user="u3")
    assert indexed(handover, "zwiebelfisch") == 3
    delete_citizen(handover, handover.conversation(1).citizen, "cli:root")
    delete_chat(handover, chat)
    assert indexed(handover, "zwiebelfisch") == 1 and indexed(handover, "kartoffelkuchen") == 0
    assert words_found(handover, "Zwiebelfisch") == ["Zwiebelfisch ist auch mein Nachbar"]
    assert words_found(handover, "Kartoffelkuchen") == []
    assert handover.backend != "sqlite" or handover.db.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)").rowcount != 0


@pytest.mark.parametrize("how", ["citizen", "chat", "retention"])
def test_a_deleted_messages_words_leave_the_index_in_the_file_too(tmp_path: Path, how: str) -> None:
    path = tmp_path / "log.sqlite3"
    log = HandoverLog.open(path, clock=lambda: at(40))
    chat = write(log, "secret", "Mein Kennwort ist Quappenfang", days_ago=40)
    log.clock = lambda: at(0)
    for n in range(30):  # other traffic, so the index has more than one segment
        write(log, f"other{n}", f"Nachricht Nummer {n} über den Hafen")
    log.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    assert b"quappenfang" in stored(path, log.url)  # the index keeps the folded word (the text itself is capitalised)
    if how == "citizen":
        delete_citizen(log, log.conversation(chat).citizen, "cli:root")
    elif how == "chat":
        delete_chat(log, chat)
    else:
        purge_expired(log, 30, now=NOW)
    assert words_found(log, "Hafen")[:1] == ["Nachricht Nummer 29 über den Hafen"]
    log.close()
    assert b"quappenfang" not in stored(path, log.url) and b"Quappenfang" not in stored(path, log.url)


@SQLITE_ONLY
def test_rewriting_the_index_waits_for_no_other_process(tmp_path: Path) -> None:
    import sqlite3

    log = HandoverLog.open(tmp_path / "log.sqlite3")
    write(log, "a", "Mein Rad ist weg")
    other = sqlite3.connect(tmp_path / "log.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writes
    try:
        forget_deleted(log)  # no error: the next deletion or retention run rewrites it
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert words_found(log, "Rad") == ["Mein Rad ist weg"]
    log.close()


def test_the_retention_job_removes_the_index_rows_of_old_transcripts() -> None:
    log = HandoverLog.open(":memory:", clock=lambda: at(40))
    write(log, "old", "Schon lange her: Quittengelee im Keller", days_ago=40)
    log.clock = lambda: at(1)
    write(log, "new", "Gestern: Quittengelee vor der Tür", days_ago=1)
    assert indexed(log, "quittengelee") == 2
    purge_expired(log, 30, now=NOW)
    assert indexed(log, "quittengelee") == 1
    assert words_found(log, "Quittengelee") == ["Gestern: Quittengelee vor der Tür"]
    log.close()


@SQLITE_ONLY
def test_an_existing_database_gets_its_index_when_it_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = Database(path)
    for number, step in enumerate(MIGRATIONS[:3], 1):
        step(db)
        db.execute(f"PRAGMA user_version = {number}")
    db.conn.commit()
    db.close()
    old = HandoverLog.__new__(HandoverLog)  # the version-3 log, written without the search index
    old.db, old.clock, old._key = Database(path), lambda: at(3), b"k"
    write(old, "a", "Ein Einbruch in der Gartenlaube")
    old.db.conn.commit()
    old.db.close()
    log = HandoverLog.open(path)
    assert words_found(log, "Gartenlaube") == ["Ein Einbruch in der Gartenlaube"]
    log.close()


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", html)


async def test_the_search_page_marks_the_hit_escapes_the_rest_and_links_to_the_message(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        conv = write(services.handover, "a", "<b>Achtung</b> mein E-Roller wurde am Bahnhof geklaut", days_ago=0.01)
        message = services.handover.transcript(conv)[0].id
        assert (await officer.login()).status == 303
        page = plain(await officer.page("/inbox/suche?q=roller&kanal=webchat"))
        assert "&lt;b&gt;Achtung&lt;/b&gt; mein E-<mark>Roller</mark> wurde am Bahnhof geklaut" in page
        assert f'href="/inbox/c/{conv}?treffer={message}&amp;q=roller#m{message}"' in page
        assert services.handover.conversation(conv).citizen in page and '<span class="state state-bot">Bot</span>' in page
        conversation = await officer.page(f"/inbox/c/{conv}?treffer={message}&q=roller")
        assert f'id="m{message}"' in conversation and "/static/search.js" in conversation
        nothing = await officer.page("/inbox/suche?q=Zwiebelfisch")
        assert "Nichts gefunden" in nothing
        empty = await officer.page("/inbox/suche?q=&thema=&kanal=")
        assert "Gib ein Suchwort ein oder wähle mindestens einen Filter." in empty


@pytest.mark.parametrize("query, message", [
    ("q=" + "a" * 8_000, "Der Suchtext ist zu lang"),
    ("q=%22*%28%29", "nur Sonderzeichen"),
    ("q=Roller&von=2026-11-20&bis=2026-11-01", "„Von“ liegt nach „Bis“"),
    ("von=31.02.2026", "verstehe ich nicht"),
    ("q=Roller&seite=abc", None),
    ("q=NEAR%28Roller+Bahnhof%29+-x+a%3Ab", None),
    ("q=%F0%9F%9B%B4+Roller", None),
])
async def test_bad_search_input_gets_a_message_never_a_500(settings: Settings, triage_no_model: Triage, query: str, message: str | None) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        write(services.handover, "a", "Roller am Bahnhof", days_ago=0.01)
        await officer.login()
        response = await officer.get(f"/inbox/suche?{query}")
        html = await response.text()
        if message:
            assert response.status == 400 and message in html and 'role="alert"' in html
        else:
            assert response.status == 200 and "<mark>" not in html or "Roller" in html


async def test_ten_thousand_characters_get_a_message_never_a_500(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as officer:
        await officer.login()
        posted = await officer.post("/inbox/suche", {"q": "Roller" * 1_000 + "!" * 4_000})
        assert posted.status == 400 and "Der Suchtext ist zu lang (10000 Zeichen)" in await posted.text()
        in_the_address = await officer.get("/inbox/suche?q=" + "ä" * 10_000)
        assert in_the_address.status == 400  # the server refuses an address this long before any handler


async def test_a_conversation_shows_the_same_citizens_other_chats_within_retention(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        log = services.handover
        old = write(log, "w1", "Vor langer Zeit: mein Mofa", user="same")
        earlier = write(log, "w2", "Letzte Woche: Ärger mit dem Nachbarn", user="same")
        current = write(log, "w3", "Heute: wieder der Nachbar", user="same")
        stranger = write(log, "w4", "Fremde Person schreibt", user="other")
        now = datetime.now(timezone.utc)
        log.db.execute("UPDATE conversations SET updated_at = ?, last_inbound_at = ? WHERE id = ?",
                       [(now - timedelta(days=60)).isoformat(), (now - timedelta(days=60)).isoformat(), old])
        log.db.execute("UPDATE conversations SET last_inbound_at = ? WHERE id = ?", [(now - timedelta(days=7)).isoformat(), earlier])
        await officer.login()
        page = plain(await officer.page(f"/inbox/c/{current}"))
        history = page.split('class="history"')[1]
        assert f'href="/inbox/c/{earlier}"' in history and "Letzte Woche: Ärger mit dem Nachbarn" in history
        assert f'href="/inbox/c/{old}"' not in history and f'href="/inbox/c/{stranger}"' not in history
        assert f'href="/inbox/c/{current}"' not in history
        alone = plain(await officer.page(f"/inbox/c/{stranger}"))
        assert "Keine anderen Chats dieser Person" in alone
