"""The handover log on PostgreSQL: what only a shared database can show (two instances, an outage)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.handover import HandoverLog, Inbound
from bot.handover.pg import translate
from bot.triage import Triage
from tests.pg import available, start_server

pytestmark = pytest.mark.skipif(not available(), reason="PostgreSQL binaries not installed")
EMERGENCY = "Hilfe, er hat ein Messer und sticht auf meinen Bruder ein"


def test_the_sqlite_dialect_is_translated_and_literals_are_left_alone() -> None:
    ids = frozenset({"messages"})
    sql, returning = translate("INSERT INTO messages (text) VALUES (?)", ids)
    assert sql == "INSERT INTO messages (text) VALUES (%s) RETURNING id" and returning
    sql, _ = translate("SELECT 1 FROM messages WHERE text LIKE '100%?' AND id = ?", ids)
    assert sql == "SELECT 1 FROM messages WHERE text LIKE '100%%?' AND id = %s"
    sql, returning = translate("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", ids)
    assert sql == "INSERT INTO kv (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING" and not returning
    assert translate("SELECT * FROM t WHERE id IN () AND x NOT IN ()", ids)[0] == \
        "SELECT * FROM t WHERE id = ANY('{}') AND x <> ALL('{}')"


def test_two_instances_store_a_delivery_that_reached_both_once(pg_url: str) -> None:
    first, second = HandoverLog.open(pg_url), HandoverLog.open(pg_url)
    try:
        inbound = Inbound("instagram", "ig-7", "ig-7", "Hallo, wo ist die Wache?", platform_id="mid.1")
        results: list[object] = []
        barrier = threading.Barrier(2)

        def store(log: HandoverLog) -> None:
            barrier.wait()
            results.append(log.record_inbound(inbound))

        threads = [threading.Thread(target=store, args=(log,)) for log in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(r is None for r in results) == [False, True]  # one stored it, the other saw a duplicate
        assert len(first.transcript(first.find_conversation("instagram", "ig-7").id)) == 1
    finally:
        first.close()
        second.close()


def test_a_chats_first_messages_on_two_instances_at_once_make_one_conversation(pg_url: str) -> None:
    logs = [HandoverLog.open(pg_url) for _ in range(2)]
    try:
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def store(log: HandoverLog, n: int) -> None:
            barrier.wait()
            try:
                log.record_inbound(Inbound("telegram", "42", "42", f"Nachricht {n}", platform_id=f"u{n}"))
            except BaseException as err:  # (the test fails below with the error)
                errors.append(err)

        threads = [threading.Thread(target=store, args=(log, n)) for n, log in enumerate(logs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        count = logs[0].db.execute("SELECT COUNT(*) FROM conversations WHERE chat_id = '42'").fetchone()[0]
        assert count == 1
        assert len(logs[0].transcript(logs[0].find_conversation("telegram", "42").id)) == 2
    finally:
        for log in logs:
            log.close()


def test_two_instances_starting_at_once_create_the_schema_once(pg_url: str) -> None:
    logs: list[HandoverLog] = []
    barrier = threading.Barrier(3)

    def open_log() -> None:
        barrier.wait()
        logs.append(HandoverLog.open(pg_url))

    threads = [threading.Thread(target=open_log) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(logs) == 3
    versions = logs[0].db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [v[0] for v in versions] == list(range(1, len(versions) + 1))
    assert len({log._key for log in logs}) == 1  # the same pseudonyms on every instance
    for log in logs:
        log.close()


async def test_an_emergency_while_postgresql_is_down_is_answered_and_recorded_when_it_is_back(
        tmp_path: Path, triage_no_model: Triage) -> None:
    server = start_server(Path(tempfile.mkdtemp(prefix="streife-pg-")) / "pg")  # (pytest's tmp_path: not for user postgres)
    try:
        log = HandoverLog.open(server.create_database("outage"))
        dispatcher = Dispatcher(log, triage_no_model, {"webchat": LogOnlySender()})
        await dispatcher.handle(Inbound("webchat", "c1", "u1", "Hallo"))
        server.stop()  # the database goes away (a crash: connections are cut)
        with pytest.raises(sqlite3.OperationalError):
            log.find_conversation("webchat", "c1")
        answered = await dispatcher.take(Inbound("webchat", "c1", "u1", EMERGENCY, platform_id="e1"))
        await answered.sent.wait()  # the 110 reply went out without the database
        assert answered.decision.escalated and "110" in answered.replies[0][0]
        server.start()
        for _ in range(50):  # the recovery loop's rounds; the connection is opened again after its pause
            with contextlib.suppress(sqlite3.OperationalError):
                if await dispatcher.recovery.run_once(everything_due=True):
                    break
            await asyncio.sleep(0.1)
        conv = log.find_conversation("webchat", "c1")
        texts = [m.text for m in log.transcript(conv.id)]
        assert EMERGENCY in texts and any("110" in t for t in texts)
        assert log.conversation(conv.id).state == "queued" and log.conversation(conv.id).priority == 2
        log.close()
    finally:
        server.stop()


async def test_a_message_with_a_nul_character_is_stored_and_an_emergency_in_it_answered(
        pg_url: str, triage_no_model: Triage) -> None:
    log = HandoverLog.open(pg_url)  # (PostgreSQL's text cannot hold NUL; platforms can send one)
    dispatcher = Dispatcher(log, triage_no_model, {"telegram": LogOnlySender()})
    replies = await dispatcher.handle(Inbound("telegram", "5", "5", "Hilfe\x00 er hat ein Messer und sticht zu", platform_id="n1"))
    assert replies and replies[0].text.startswith("🚨")
    assert log.transcript(replies[0].conversation_id)[0].text == "Hilfe\ufffd er hat ein Messer und sticht zu"
    log.close()
