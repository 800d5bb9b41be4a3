"""Search, second round: comments under posts, one row per chat, the index rewrite off the event loop, paging a POST."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlite_utils import Database

from bot.handover import HandoverLog, Inbound
from bot.handover.comments import Comments, IncomingComment
from bot.handover.privacy import delete_chat, delete_citizen, purge_expired
from bot.handover.schema import MIGRATIONS
from bot.handover.search import SearchQuery, build_query, search
from bot.handover import search_index
from bot.handover.search_index import forget_deleted_soon
from bot.settings import Settings
from bot.triage import Triage
from tests.pg_index import SQLITE_ONLY, indexed, stored
from tests.web_support import Browser, served

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
BERLIN = ZoneInfo("Europe/Berlin")


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="milliseconds")


def write(log: HandoverLog, chat: str, text: str, days_ago: float = 0, user: str | None = None) -> int:
    stored = log.record_inbound(Inbound("webchat", chat, user or chat, text, at=at(days_ago)))
    log.record_decision(stored.message.id, None, None, "answer")
    return stored.conversation.id


def comment(log: HandoverLog, cid: str, text: str, author: str = "fan1", own: bool = False, days_ago: float = 0,
            caption: str = "Heute Kontrollen am Ring") -> int:
    stored = Comments(log).record(IncomingComment("instagram", cid, "post1", author, text, created_at=at(days_ago),
                                                  caption=caption, own=own))
    Comments(log).decide(stored.id, None, None, None, "none", 9)  # decided: a served app leaves it alone
    return stored.id


def found(log: HandoverLog, words: str, **fields: str) -> tuple[list[int], list[int]]:
    results = search(log, build_query({"q": words, **fields}, BERLIN))
    return [h.conversation_id for h in results.hits], [c.comment_id for c in results.comments]


def test_comments_are_searched_with_chats_and_the_filter_picks_one_or_both(handover: HandoverLog) -> None:
    chat = write(handover, "a", "Mein Roller ist weg")
    mine = comment(handover, "c1", "Wo kann ich meinen geklauten Roller melden?")
    comment(handover, "c2", "Wir kontrollieren heute Roller am Ring", author="page", own=True)  # the page's own
    assert found(handover, "roller") == ([chat], [mine])
    assert found(handover, "roller", **{"in": "chats"}) == ([chat], [])
    assert found(handover, "roller", **{"in": "kommentare"}) == ([], [mine])
    assert found(handover, "roller", status="bot") == ([chat], [])  # the chat state means nothing for a comment
    assert found(handover, "roller", kanal="webchat") == ([chat], [])
    assert found(handover, "", person=Comments(handover).get(mine).author) == ([], [mine])
    hit = search(handover, SearchQuery(words="geklauten")).comments[0]
    assert "\ue000geklauten\ue001" in hit.snippet and hit.caption == "Heute Kontrollen am Ring" and hit.channel == "instagram"


def test_a_chat_is_one_row_with_its_best_hit_and_the_number_of_hits(handover: HandoverLog) -> None:
    many = write(handover, "a", "Lärm im Hof", days_ago=3)
    write(handover, "a", "Der Lärm hört nicht auf, Lärm Lärm Lärm", days_ago=2.9)
    write(handover, "a", "Immer noch Lärm", days_ago=2.8)
    other = write(handover, "b", "Auch bei mir Lärm", days_ago=1)
    hits = search(handover, SearchQuery(words="Lärm")).hits
    assert [(h.conversation_id, h.count) for h in hits] == [(other, 1), (many, 3)]
    assert handover.message(hits[1].message_id).text == "Der Lärm hört nicht auf, Lärm Lärm Lärm"  # best ranked
    for n in range(5):
        write(handover, f"p{n}", f"Lärm {n}", days_ago=0.5 - n / 100)
        write(handover, f"p{n}", f"Lärm {n} noch einmal", days_ago=0.4 - n / 100)
    pages = [search(handover, SearchQuery(words="Lärm", page=p), page_size=3).hits for p in (1, 2, 3)]
    assert [[h.count for h in page] for page in pages] == [[2, 2, 2], [2, 2, 1], [3]]
    assert len({h.conversation_id for page in pages for h in page}) == 7


def comments_indexed(log: HandoverLog, word: str) -> int:
    return indexed(log, "comments_fts", word)


def test_deletion_and_retention_remove_comments_from_the_index_and_kept_evidence_is_not_searchable(handover: HandoverLog) -> None:
    handover.clock = lambda: at(40)
    old = comment(handover, "c1", "Alte Meinung über Quittengelee", author="u1", days_ago=40)
    handover.clock = lambda: at(0)
    gone = comment(handover, "c2", "Quittengelee und Beleidigung", author="u2")
    kept = comment(handover, "c3", "Quittengelee, du Vollpfosten", author="u3")
    stays = comment(handover, "c4", "Quittengelee schmeckt", author="u4")
    store = Comments(handover)
    store.mark_complaint(kept, "anna")  # evidence for a criminal complaint: kept past the deletion
    assert comments_indexed(handover, "quittengelee") == 4
    purge_expired(handover, 30, now=NOW)
    delete_citizen(handover, store.get(gone).author, "cli:root")
    delete_citizen(handover, store.get(kept).author, "cli:root")
    assert comments_indexed(handover, "quittengelee") == 1 and found(handover, "Quittengelee") == ([], [stays])
    assert store.get(kept).text == "" and store.evidence(kept)[0].text == "Quittengelee, du Vollpfosten"
    assert old and (handover.backend != "sqlite" or handover.db.execute(
        "INSERT INTO comments_fts (comments_fts, rank) VALUES ('integrity-check', 1)").rowcount != 0)


@SQLITE_ONLY
def test_an_existing_database_gets_its_comments_indexed_when_it_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    log = HandoverLog.open(path)
    comment(log, "c1", "Ein Kommentar über Gartenzwerge")
    log.close()
    db = Database(path)
    db.execute("DROP TABLE comments_fts")
    for name in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER comments_fts_{name}")
    db.execute(f"PRAGMA user_version = {MIGRATIONS.index(MIGRATIONS[-1])}")  # as before _v9
    db.conn.commit()
    db.close()
    log = HandoverLog.open(path)
    assert found(log, "Gartenzwerge")[1] == [1]
    log.close()


@pytest.mark.parametrize("how", ["web chat deleted", "retention"])
async def test_the_index_rewrite_after_a_deletion_leaves_the_event_loop_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                             how: str) -> None:
    monkeypatch.setattr(search_index, "MERGE_PAGES", 2)  # small steps, so a small index takes many
    path = tmp_path / "log.sqlite3"
    log = HandoverLog.open(path, clock=lambda: at(40))
    secret = write(log, "secret", "Mein Kennwort ist Quappenfang", days_ago=40)
    log.clock = lambda: at(0)
    for batch in range(0, 3000, 100):  # enough index for many steps (PostgreSQL: one long transaction would update
        with log.transaction():         # the same per-day counter rows 3000 times, each time slower)
            for n in range(batch, batch + 100):
                write(log, f"o{n}", f"Nachricht {n} über den Hafen, die Fähre {n * 7} und den Leuchtturm {n * 13}")
    log.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0)

    beat = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    if how == "retention":
        assert purge_expired(log, 30, now=NOW)["messages"] == 1  # returns before the index is rewritten
    else:
        delete_chat(log, secret)
    returned = time.perf_counter()
    task = forget_deleted_soon(log)  # a second deletion while one runs: the same run, once more
    assert task is not None
    await task
    beat.cancel()
    during = [t for t in ticks if started <= t]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert len(during) > 10 and max(gaps) < 0.25, (len(during), max(gaps))  # other work ran between the steps
    assert returned - started < 0.25
    assert found(log, "Hafen")[0][:1] == [3001]
    log.close()
    assert b"quappenfang" not in stored(path, log.url) and b"Quappenfang" not in stored(path, log.url)


async def test_a_posted_search_can_be_paged_and_comments_link_to_their_page(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        log = services.handover
        for n in range(30):
            write(log, f"c{n}", f"Fahrrad Nummer {n}", days_ago=0.01 + n / 1000)
        note = comment(log, "k1", "Mein <i>Fahrrad</i> wurde geklaut, wo melde ich das?", caption="Fahrradcodierung am Samstag")
        await officer.login()
        posted = await officer.post("/inbox/suche", {"q": "Fahrrad", "in": "beides"})
        html = re.sub(r"\s+", " ", await posted.text())
        assert posted.status == 200 and html.count('class="hit"') == 25 and "1 Treffer" in html
        assert f'href="/inbox/kommentare/{note}"' in html and "Mein &lt;i&gt;<mark>Fahrrad</mark>&lt;/i&gt; wurde geklaut" in html
        assert "Beitrag: Fahrradcodierung am Samstag" in html
        later = re.search(r'href="(/inbox/suche\?[^"]+)" rel="next"', html)[1].replace("&amp;", "&")
        assert "q=Fahrrad" in later and "seite=2" in later
        second = re.sub(r"\s+", " ", await officer.page(later))
        assert second.count('class="hit"') == 5 and "Fahrrad Nummer 0<" not in html and "Fahrrad Nummer 0" in second.replace("</mark>", "")
        only = await officer.page("/inbox/suche?q=Fahrrad&in=kommentare")
        assert "Kommentare unter Beiträgen" in only and "<h2>Chats</h2>" not in only
        bad = await officer.get("/inbox/suche?q=Fahrrad&in=alles")
        assert bad.status == 400 and "Chats, Kommentare oder beides" in await bad.text()
