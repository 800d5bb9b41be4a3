"""The comment executor on a real SQLite file, talking HTTP to the fake Graph API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from bot.channels.comment_executor import CommentExecutor
from bot.channels.graph_comments import GraphComments
from bot.handover import HandoverLog
from bot.handover.comments import Comment, CommentError, Comments, IncomingComment
from bot.web.live import INBOX, EventHub
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import graph, meta_settings  # noqa: F401  (fixture)

MEDIA = "17900000000000100"
FAST = (0.05,) * 8  # retry delays in tests


class Clock:
    """The log's clock, movable by the test."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> str:
        return (datetime.now(timezone.utc) + self.offset).isoformat(timespec="milliseconds")


@dataclass
class Desk:
    log: HandoverLog
    store: Comments
    executor: CommentExecutor
    graph: FakeGraphApi
    clock: Clock
    events: asyncio.Queue

    def comment(self, platform_id: str, text: str = "Hallo", author: str = "5550001", channel: str = "instagram",
                age: timedelta = timedelta(0)) -> Comment:
        created = (datetime.now(timezone.utc) - age).isoformat(timespec="milliseconds")
        self.graph.add_comment(platform_id, MEDIA, text, author, age)
        stored = self.store.record(IncomingComment(channel, platform_id, MEDIA, author, text, author_name="jemand",
                                                   created_at=created, permalink="https://www.instagram.com/p/x/"))
        assert stored is not None
        return stored

    def status(self, action_id: int) -> str:
        return self.store.action(action_id).status


@pytest.fixture
async def desk(tmp_path: Path, graph: FakeGraphApi) -> AsyncIterator[Desk]:  # noqa: F811
    clock = Clock()
    log = HandoverLog.open(tmp_path / "streife.sqlite3", clock=clock)
    hub = EventHub()
    async with aiohttp.ClientSession() as session:
        store = Comments(log)
        executor = CommentExecutor(store, GraphComments(session, meta_settings(tmp_path, graph)), hub, retry_delays=FAST)
        executor.start()
        yield Desk(log, store, executor, graph, clock, hub.subscribe(INBOX))
        await executor.stop()
    log.close()


async def test_an_emergency_comment_gets_its_public_and_private_reply_within_5_s(desk: Desk) -> None:
    desk.graph.comment_delay = 0.02  # a Meta that takes its time
    for n in range(40):  # a burst of ordinary work queued first
        desk.store.plan(desk.comment(f"178000000001{n:02d}", "Danke euch!").id, "public_reply", "Gern geschehen!")
    await desk.executor.kick()
    c = desk.comment("17800000000000999", "Hilfe, jemand bricht gerade bei uns ein", author="5550999")
    started = time.monotonic()
    public = desk.store.plan(c.id, "public_reply", "Bitte ruf sofort die 110 an. Wir haben dir eine Nachricht geschickt.", priority=0)
    private = desk.store.plan(c.id, "private_reply", "Bitte ruf sofort die 110 an. Sag, wo du bist.", priority=0)
    await desk.executor.kick()
    await desk.graph.wait_for_comments(lambda calls: {"reply", "private_reply"} <= {k.kind for k in calls if k.target == c.platform_id}, 5)
    assert time.monotonic() - started < 5.0
    await desk.executor.drain()
    assert desk.status(public) == desk.status(private) == "sent"
    # the private reply opened the DM: linked both ways, its text in the transcript
    conv = desk.log.find_conversation("instagram", "5550999")
    assert conv is not None and desk.store.get(c.id).conversation_id == conv.id
    [sent] = desk.log.transcript(conv.id)
    assert sent.text.startswith("Bitte ruf sofort die 110 an.") and sent.status == "sent" and sent.platform_id
    assert [x.id for x in desk.store.for_conversation(conv.id)] == [c.id]


async def test_emergencies_go_before_ordinary_work(desk: Desk) -> None:
    await desk.executor.stop()  # plan everything first, then let one executor pass decide the order
    ordinary = [desk.comment(f"178000000002{n:02d}", "Schönes Foto").id for n in range(30)]
    for cid in ordinary:
        desk.store.plan(cid, "public_reply", "Danke dir!")
    urgent = desk.comment("17800000000000998", "Er hat ein Messer", author="5550998")
    desk.store.plan(urgent.id, "public_reply", "Bitte ruf sofort die 110 an.", priority=0)
    executor = CommentExecutor(desk.store, desk.executor.client, retry_delays=FAST, concurrency=2)
    await executor.drain()
    order = [k.target for k in desk.graph.done("reply")]
    assert len(order) == 31 and order.index(urgent.platform_id) < 2


async def test_abuse_is_hidden_within_5_s_and_the_evidence_kept(desk: Desk) -> None:
    c = desk.comment("17800000000000301", "Ihr seid alle ...", author="5550301")
    started = time.monotonic()
    action = desk.store.plan(c.id, "hide", priority=2)
    await desk.executor.kick()
    await desk.graph.wait_for_comments(lambda calls: any(k.kind == "hide" for k in calls), 5)
    await desk.executor.drain()
    assert time.monotonic() - started < 5.0
    assert desk.graph.comments[c.platform_id].hidden and not desk.graph.comments[c.platform_id].deleted
    assert desk.status(action) == "sent" and desk.store.get(c.id).hidden == 1
    [evidence] = desk.store.evidence(c.id)
    assert (evidence.text, evidence.author_name, evidence.comment_platform_id) == ("Ihr seid alle ...", "jemand", c.platform_id)
    assert evidence.permalink == "https://www.instagram.com/p/x/" and evidence.captured_at <= desk.store.action(action).done_at
    event = await asyncio.wait_for(desk.events.get(), 2)
    assert event == {"kind": "comment", "comment_id": c.id, "need": 9, "action": "hide", "status": "sent"}


async def test_a_second_private_reply_is_impossible(desk: Desk) -> None:
    c = desk.comment("17800000000000401")
    desk.store.plan(c.id, "private_reply", "Schreib uns hier, wir helfen dir.")
    await desk.executor.kick()
    await desk.executor.drain()
    with pytest.raises(CommentError, match="schon privat geantwortet"):
        desk.store.plan(c.id, "private_reply", "Noch eine Nachricht")
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses, whatever the caller checks
        desk.log.db.execute("INSERT INTO comment_actions (comment_id, kind, text, status, created_at) "
                            "VALUES (?, 'private_reply', 'x', 'pending', 'now')", [c.id])
    assert len(desk.graph.done("private_reply")) == 1


async def test_a_private_reply_whose_answer_was_lost_is_never_sent_again(desk: Desk, tmp_path: Path) -> None:
    c = desk.comment("17800000000000402")
    desk.graph.fail_comments("lost_answer")  # Meta sends it, the answer never arrives
    action = desk.store.plan(c.id, "private_reply", "Schreib uns hier, wir helfen dir.")
    await desk.executor.kick()
    await desk.executor.drain()
    assert desk.status(action) == "unknown" and "nicht noch einmal gesendet" in desk.store.action(action).error
    with pytest.raises(CommentError):
        desk.store.plan(c.id, "private_reply", "Zweiter Versuch")
    desk.executor.recover()  # a restart changes nothing
    await desk.executor.drain()
    assert len([k for k in desk.graph.comment_calls if k.kind == "private_reply"]) == 1


async def test_after_a_crash_in_flight_actions_are_resolved_without_doubles(desk: Desk) -> None:
    await desk.executor.stop()
    a, b, d = desk.comment("17800000000000501"), desk.comment("17800000000000502"), desk.comment("17800000000000503")
    private = desk.store.plan(a.id, "private_reply", "Hallo, hier ist die Polizei.")
    public = desk.store.plan(b.id, "public_reply", "Danke für den Hinweis!")
    hide = desk.store.plan(d.id, "hide")
    # the crash: every request had left, only the public reply had reached Meta
    desk.log.db.execute("UPDATE comment_actions SET status = 'sending'")
    desk.graph.add_comment("17900000000000777", MEDIA, "Danke für den Hinweis!")
    desk.graph.comments[b.platform_id].replies.append("17900000000000777")
    restarted = CommentExecutor(desk.store, desk.executor.client, retry_delays=FAST)
    restarted.start()
    await restarted.drain()
    await restarted.stop()
    assert desk.status(private) == "unknown" and desk.graph.done("private_reply") == []
    assert desk.status(public) == "sent" and desk.store.action(public).platform_id == "17900000000000777"
    assert desk.graph.done("reply") == []  # found under the comment: not posted twice
    assert desk.status(hide) == "sent" and desk.graph.comments[d.platform_id].hidden


async def test_no_private_reply_after_the_7_day_window(desk: Desk) -> None:
    old = desk.comment("17800000000000601", age=timedelta(days=8))
    with pytest.raises(CommentError, match="Älter als 7 Tage"):
        desk.store.plan(old.id, "private_reply", "Hallo")
    almost = desk.comment("17800000000000602", age=timedelta(days=6, hours=23))
    await desk.executor.stop()
    action = desk.store.plan(almost.id, "private_reply", "Hallo")
    desk.clock.offset = timedelta(hours=2)  # the executor gets to it only after the window closed
    await CommentExecutor(desk.store, desk.executor.client, retry_delays=FAST).drain()
    assert desk.status(action) == "failed" and "Älter als 7 Tage" in desk.store.action(action).error
    assert desk.graph.comment_calls == []


async def test_a_comment_deleted_before_the_action(desk: Desk) -> None:
    c = desk.comment("17800000000000701", "Wann kommt ihr?")
    desk.graph.delete_comment(c.platform_id)  # the author deleted it; Meta's webhook has not arrived yet
    public = desk.store.plan(c.id, "public_reply", "Schau in deine Nachrichten.")
    private = desk.store.plan(c.id, "private_reply", "Hallo, hier ist die Polizei.")
    await desk.executor.kick()
    await desk.executor.drain()
    assert desk.status(public) == desk.status(private) == "failed"
    assert "gibt es auf Instagram nicht mehr" in desk.store.action(public).error
    assert desk.store.get(c.id).removed_at and len(desk.graph.comment_calls) == 1  # one try, then nothing more
    assert c.id in [x.id for x in desk.store.list()]  # still in the inbox, with the reason


async def test_a_rate_limit_then_success(desk: Desk) -> None:
    c = desk.comment("17800000000000801")
    desk.graph.fail_comments("rate_limit", "app_rate_limit")
    action = desk.store.plan(c.id, "public_reply", "Danke dir!")
    await desk.executor.kick()
    await desk.graph.wait_for_comments(lambda calls: len(calls) == 3, 5)
    await desk.executor.drain()
    done = desk.store.action(action)
    assert (done.status, done.attempts, done.error) == ("sent", 2, None)
    assert [k.status for k in desk.graph.comment_calls] == [400, 400, 200]


async def test_a_final_error_leaves_a_german_text_for_officers(tmp_path: Path, desk: Desk) -> None:
    await desk.executor.stop()
    c = desk.comment("17800000000000901")
    action = desk.store.plan(c.id, "hide")
    async with aiohttp.ClientSession() as session:
        broken = GraphComments(session, meta_settings(tmp_path, desk.graph, INSTAGRAM_ACCESS_TOKEN="abgelaufen"))
        await CommentExecutor(desk.store, broken, retry_delays=FAST).drain()
    failed = desk.store.action(action)
    assert failed.status == "failed" and "Zugangsschlüssel" in failed.error and failed.attempts == 1
    assert desk.store.get(c.id).hidden == 0 and desk.store.evidence(c.id)  # the evidence stays either way


async def test_through_the_app_an_emergency_comment_is_answered_publicly_and_privately_within_5_s(
        tmp_path: Path, graph: FakeGraphApi) -> None:  # noqa: F811
    from tests.instagram_helpers import ACCOUNT, running
    from bot.web.keys import COMMENTS

    value = {"id": "17800000000001001", "from": {"id": "5551001", "username": "anwohnerin"},
             "media": {"id": MEDIA, "media_product_type": "FEED"}, "text": "Hilfe, bei uns wird gerade eingebrochen!"}
    body = {"object": "instagram", "entry": [{"id": ACCOUNT, "time": int(time.time()), "changes": [{"field": "comments", "value": value}]}]}
    graph.add_comment(value["id"], MEDIA, value["text"], "5551001")  # on the platform: Meta knows its author
    async with running(meta_settings(tmp_path, graph), graph) as bot:
        started = time.monotonic()
        assert (await bot.post(body)).status == 200
        await graph.wait_for_comments(lambda calls: {k.kind for k in calls if k.status == 200} >= {"reply", "private_reply"}, 5)
        assert time.monotonic() - started < 5.0
        desk = bot.app[COMMENTS]
        await desk.executor.drain()
        c = desk.store.by_platform("instagram", "17800000000001001")
        assert c is not None and c.need == 0 and {a.status for a in desk.store.actions(c.id)} == {"sent"}
        [public] = graph.done("reply")
        assert "110" in public.text and c.conversation_id == bot.conversation("5551001").id


async def test_a_send_whose_result_cannot_be_saved_does_not_stay_sending(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    question = desk.comment("17800000000000401", "Kann ich euch privat schreiben?", author="5550401")
    abuse = desk.comment("17800000000000402", "Ihr Versager", author="5550402")
    real_sent = desk.store.action_sent
    locked = {"hide": 1}

    def flaky_sent(action_id: int, platform_id: str | None = None) -> None:
        if desk.store.action(action_id).kind == "hide" and locked["hide"]:
            locked["hide"] -= 1
            raise sqlite3.OperationalError("database is locked")
        real_sent(action_id, platform_id)

    def broken_dm(*args: object, **kwargs: object) -> int:
        raise AssertionError("no conversation")

    monkeypatch.setattr(desk.store, "action_sent", flaky_sent)
    monkeypatch.setattr(desk.store, "open_dm", broken_dm)
    private = desk.store.plan(question.id, "private_reply", "Gern, schreib uns hier.")
    hide = desk.store.plan(abuse.id, "hide", priority=2)
    await desk.executor.kick()
    await desk.executor.drain()
    assert desk.status(private) == "unknown" and "nicht gespeichert" in (desk.store.action(private).error or "")
    assert desk.status(hide) == "sent" and desk.store.get(abuse.id).hidden == 1  # retried, and now saved
    assert len(desk.graph.done("private_reply")) == 1  # never a second private reply
