"""Faults a running bot must survive: no usable NLU model, a database it cannot write.

Everything runs over real HTTP on 127.0.0.1 against a real SQLite file; the database faults are
real SQLite states (PRAGMA query_only: a read-only database; PRAGMA max_page_count at the current
size, filled up: a full disk). SIGKILL under load and Bot API faults: tests/test_telegram*.py and
bench/telegram_load.py (see bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.handover import HandoverLog, Inbound
from bot.settings import ROOT, Settings
from bot.triage import Triage
from bot.web.app import create_app
from bot.web.keys import SERVICES
from bench.rasa_stack import free_port
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import PAGE_TOKEN, TOKEN, meta_settings, message, notification, running
from tests.web_support import METRICS_TOKEN, OPERATOR, Browser, with_settings

EMERGENCY = "Hilfe, bei uns wird gerade eingebrochen!"


def break_database(log: HandoverLog, fault: str) -> None:
    """Make the log's database refuse writes: read-only, or full (no page left for a new message)."""
    if fault == "read_only":
        log.db.execute("PRAGMA query_only = ON")
        return
    log.db.execute(f"PRAGMA max_page_count = {log.db.execute('PRAGMA page_count').fetchone()[0]}")
    n = 0
    for size in (2000, 200, 20, 1):  # fill the pages of every table and index to the last byte SQLite can place
        while True:
            n += 1
            try:
                log.record_inbound(Inbound("filler", f"filler-{n}", f"filler-{n}", "x" * size, platform_id=f"f{n}"))
            except sqlite3.OperationalError as err:
                assert "full" in str(err)
                break


def repair_database(log: HandoverLog) -> None:
    """Writable again (the operator freed space or fixed permissions)."""
    log.db.execute("PRAGMA query_only = OFF")
    log.db.execute("PRAGMA max_page_count = 1073741823")


def count(log: HandoverLog, where: str = "1") -> int:
    """Messages in the log (the filler of a full disk not counted)."""
    return log.db.execute(f"SELECT count(*) FROM messages WHERE channel != 'filler' AND {where}").fetchone()[0]


async def wait_until(predicate, timeout: float = 60.0) -> None:
    """Poll until predicate() holds (bounded)."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("model", ["missing", "corrupt"])
async def test_without_a_usable_model_emergencies_are_escalated_and_the_rest_handed_over(tmp_path: Path, model: str) -> None:
    path = tmp_path / "nlu.tar.gz"
    if model == "corrupt":  # a model archive cut off half way, as after a full disk during training
        real = (ROOT / "models" / "nlu.tar.gz").read_bytes()
        path.write_bytes(real[: len(real) // 2])
    settings = Settings.from_env({"DATABASE_PATH": str(tmp_path / "db.sqlite3"), "MODEL_PATH": str(path),
                                  "METRICS_TOKEN": METRICS_TOKEN}, dotenv=tmp_path / "none.env")
    app = create_app(settings)  # loads the model in the background, as `python -m bot serve` does
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with Browser(server) as anna, Browser(server) as ben:
            await wait_until(lambda: app[SERVICES].model_status()["model_error"] is not None)  # the NLU workers gave up on it
            health = await anna.get("/healthz", headers=OPERATOR)
            body = await health.json()
            assert health.status == 200
            assert body["mode"] == "safety_net" and body["model_version"] is None
            assert path.name in body["model_error"]
            await anna.open_chat()
            await ben.open_chat()
            await anna.write(EMERGENCY)
            await ben.write("Wo finde ich das Fundbüro?")
            emergency, question = (await anna.transcript()), (await ben.transcript())
        assert "110" in emergency["messages"][1]["text"]
        assert emergency["state"] == question["state"] == "queued"
        log = app[SERVICES].handover
        assert sorted(c.priority for c in log.conversations(("queued",))) == [1, 2]  # escalated, handed over
        assert [m.action for m in log.iter_messages("direction = 'in'")] == ["escalate", "handover"]
    finally:
        await server.close()


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
async def test_web_chat_refuses_with_503_while_the_database_cannot_be_written(settings: Settings, triage_no_model: Triage, fault: str) -> None:
    from tests.web_support import served

    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (app, server, services):
        async with Browser(server) as citizen:
            await citizen.open_chat()
            before = count(services.handover)
            break_database(services.handover, fault)
            body = {"text": EMERGENCY, "id": "retry-me-0001"}
            refused = await citizen.http.post(citizen.url("/chat/messages"), json=body)
            assert refused.status == 503
            assert "nicht gespeichert" in await refused.text() and refused.headers["Retry-After"]
            if fault == "read_only":  # (a full page budget still lets /healthz rewrite its row; a full disk would not)
                health = await citizen.get("/healthz", headers=OPERATOR)
                assert health.status == 503 and (await health.json())["database"].startswith("error")
            assert count(services.handover) == before
            repair_database(services.handover)
            accepted = await citizen.http.post(citizen.url("/chat/messages"), json=body)
            again = await citizen.http.post(citizen.url("/chat/messages"), json=body)
            assert (accepted.status, again.status) == (202, 202)
            assert (await again.json())["duplicate"] is True
            messages = (await citizen.transcript())["messages"]
        assert [m["author"] for m in messages][:2] == ["citizen", "bot"] and "110" in messages[1]["text"]
        assert count(services.handover, "direction = 'in'") == 1


async def test_telegram_redelivers_a_webhook_update_until_the_full_database_takes_it(tmp_path: Path, triage_no_model: Triage) -> None:
    fake = await FakeBotApi().start()
    port = free_port()
    settings = bot_settings(tmp_path, fake, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}",
                            TELEGRAM_WEBHOOK_SECRET="fault-test-secret")
    try:
        async with running_bot(settings, triage_no_model, port=port) as services:
            await fake.wait_for(lambda: bool(fake.webhook.get("url")))
            break_database(services.handover, "disk_full")
            update_id = fake.text(4711, EMERGENCY)
            await fake.wait_for(lambda: len(fake.webhook_deliveries) >= 3)
            assert {status for _, status in fake.webhook_deliveries} == {503}
            assert count(services.handover) == 0
            repair_database(services.handover)
            await fake.wait_for(lambda: (update_id, 200) in fake.webhook_deliveries)
            await fake.wait_for(lambda: bool(fake.sent(4711)))
            await asyncio.sleep(0.3)  # a second reply would arrive now
            assert count(services.handover, "direction = 'in'") == 1
            replies = fake.sent(4711)
            assert len(replies) == 1 and "110" in replies[0]["text"]
    finally:
        await fake.stop()


async def test_meta_gets_503_while_the_database_is_full_and_the_redelivery_is_answered_once(tmp_path: Path) -> None:
    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    try:
        async with running(meta_settings(tmp_path, graph), graph) as bot:
            payload = notification(message("5550001", EMERGENCY))
            break_database(bot.log, "disk_full")
            refused = await bot.post(payload)
            assert refused.status == 503
            assert count(bot.log) == 0
            repair_database(bot.log)
            assert (await bot.deliver(payload)).status == 200
            assert (await bot.deliver(payload)).status == 200  # Meta may deliver twice
            await graph.wait_for(1)
            await asyncio.sleep(0.3)  # a second reply would arrive now
            sent = graph.sent()
            assert len(sent) == 1 and "110" in sent[0].text
            assert count(bot.log, "direction = 'in'") == 1
    finally:
        await graph.stop()
