"""The one recovery loop and a busy database, over real HTTP on 127.0.0.1 against a real SQLite file.

- M3: a message stored but whose second write failed (a full disk) is answered without a restart;
  an emergency in that state is answered at once and recorded once the database takes writes again.
- A second process holding the write lock (a real sqlite3 connection in BEGIN IMMEDIATE) neither
  freezes the server nor delays an emergency: the reply comes within 1 s, /healthz answers meanwhile,
  and every record is written when the lock clears (web chat and Telegram).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from bot.handover import HandoverLog, Inbound
from bot.recovery import Recovery, backoff
from bot.settings import Settings
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import PAGE_TOKEN, TOKEN, message, meta_settings, notification, running
from tests.test_faults import break_database, repair_database, wait_until
from tests.web_support import METRICS_TOKEN, OPERATOR, Browser, served, with_settings

EMERGENCY = "Hilfe, bei uns wird gerade eingebrochen!"
IMAGE = [{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=9"}}]


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding SQLite's write lock until the block ends."""
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO kv (key, value) VALUES ('other-process', 'busy') ON CONFLICT(key) DO UPDATE SET value = 'busy'")
    try:
        yield other
    finally:
        other.execute("COMMIT")
        other.close()


@pytest.fixture
async def graph() -> FakeGraphApi:
    fake = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    yield fake
    await fake.stop()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("text, urgent", [("Wo finde ich das Fundbüro?", False), (EMERGENCY, True)])
async def test_a_message_whose_second_write_failed_is_answered_without_a_restart(
    tmp_path: Path, graph: FakeGraphApi, text: str, urgent: bool
) -> None:
    async with running(meta_settings(tmp_path, graph), graph) as bot:
        await bot.deliver(notification(message("7001", "", attachments=IMAGE)))  # the chat exists, the bot has it
        conv = bot.conversation("7001")
        before = len(graph.sent())
        lock = bot.services.dispatcher._locks[conv.id]
        await lock.acquire()  # hold the answer back until the disk is full
        assert (await bot.post(notification(message("7001", text)))).status == 200  # stored: the first write
        break_database(bot.log, "disk_full")
        lock.release()
        await bot.channel.drain()  # the second write (the decision and the reply) failed
        inbound = [m for m in bot.transcript("7001") if m.direction == "in"][-1]
        assert inbound.status == "received"
        if urgent:  # the 110 reply did not wait for the database
            await graph.wait_for(before + 1, timeout=2)
            assert "110" in graph.sent()[-1].text
        else:
            await asyncio.sleep(1.5)
            assert len(graph.sent()) == before  # nothing to send while the database refuses
        repair_database(bot.log)  # the operator frees space; nobody restarts the service
        await wait_until(lambda: bot.log.message(inbound.id).status == "processed", timeout=40)
        await wait_until(lambda: bot.transcript("7001")[-1].status == "sent", timeout=40)
        await asyncio.sleep(0.5)
        transcript = bot.transcript("7001")
        priority = bot.conversation("7001").priority
    assert len(graph.sent()) == before + 1  # answered exactly once
    assert [(m.author, m.status) for m in transcript[-2:]] == [("citizen", "processed"), ("bot", "sent")]
    assert transcript[-1].platform_id and transcript[-1].text == graph.sent()[-1].text
    assert priority == (2 if urgent else 1)


@pytest.mark.sqlite_only
async def test_a_locked_database_neither_freezes_the_server_nor_delays_an_emergency(settings: Settings, triage_no_model: Triage) -> None:
    settings = with_settings(settings, metrics_token=METRICS_TOKEN)
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as citizen, Browser(server) as other:
        await citizen.open_chat()
        await other.open_chat()
        with write_lock(settings.database_path):
            started = time.monotonic()
            ordinary = asyncio.create_task(other.send("Wo finde ich das Fundbüro?"))  # waits for the lock, off the loop
            taken = await citizen.send(EMERGENCY)
            transcript = await citizen.transcript()
            answered = time.monotonic() - started
            health_started = time.monotonic()
            health = await citizen.get("/healthz", headers=OPERATOR)
            health_s = time.monotonic() - health_started
            live_s = []
            for _ in range(5):  # the loop stays free while the ordinary message waits
                t = time.monotonic()
                assert (await citizen.get("/livez")).status == 200
                live_s.append(time.monotonic() - t)
                await asyncio.sleep(0.2)
            refused = await ordinary
            stored_while_locked = services.handover.find_conversation("webchat", citizen.http.cookie_jar.filter_cookies(citizen.url("/"))["streife_chat"].value)
            await asyncio.sleep(1.0)  # a few seconds of lock in all
        chat = citizen.http.cookie_jar.filter_cookies(citizen.url("/"))["streife_chat"].value
        await wait_until(lambda: services.handover.find_conversation("webchat", chat) is not None, timeout=10)
        conv = services.handover.find_conversation("webchat", chat)
        await wait_until(lambda: not services.dispatcher.unwritten, timeout=10)
        stored = services.handover.transcript(conv.id)
        after = await citizen.transcript()
        retried = await other.send("Wo finde ich das Fundbüro?")
    assert taken.status == 202 and answered < 1.0, answered
    assert [m["author"] for m in transcript["messages"]] == ["citizen", "bot"] and "110" in transcript["messages"][1]["text"]
    assert health_s < 1.0 and health.status in (200, 503)  # it answers (and says the database is not writable)
    assert max(live_s) < 0.5, live_s
    assert refused.status == 503 and stored_while_locked is None
    assert [(m.author, m.status, m.action) for m in stored] == [("citizen", "processed", "escalate"), ("bot", "sent", None)]
    assert (conv.state, conv.priority, conv.reason) == ("queued", 2, "emergency")
    assert [m["author"] for m in after["messages"]] == ["citizen", "bot"]  # once, from the log now
    assert retried.status == 202


@pytest.mark.sqlite_only
async def test_a_telegram_emergency_is_answered_while_the_database_is_locked_and_recorded_once(tmp_path: Path, triage_no_model: Triage) -> None:
    fake = await FakeBotApi().start()
    try:
        settings = bot_settings(tmp_path, fake)
        async with running_bot(settings, triage_no_model) as services:
            fake.text(31, "/help")
            await fake.wait_for(lambda: fake.sent(31))
            with write_lock(settings.database_path):
                fake.text(31, EMERGENCY)
                started = time.monotonic()
                await fake.wait_for(lambda: len(fake.sent(31)) == 2, timeout=5)
                answered = time.monotonic() - started
                await asyncio.sleep(1.5)
            conv = services.handover.find_conversation("telegram", "31")
            await wait_until(lambda: services.handover.transcript(conv.id)[-1].direction == "out"
                             and services.handover.transcript(conv.id)[-1].status == "sent", timeout=15)
            polls = len(fake.calls_of("getUpdates"))
            await fake.wait_for(lambda: len(fake.calls_of("getUpdates")) > polls + 1, timeout=30)  # settled
            transcript = services.handover.transcript(conv.id)
    finally:
        await fake.stop()
    assert answered < 1.0, answered
    assert "110" in fake.sent(31)[1]["plain"] and len(fake.sent(31)) == 2  # once, though its update was taken from memory
    assert [(m.author, m.status) for m in transcript][-2:] == [("citizen", "processed"), ("bot", "sent")]
    assert transcript[-1].platform_id == str(fake.sent(31)[1]["message_id"])


async def test_a_round_sends_escalations_first_and_backs_off_the_rest(handover: HandoverLog, triage_no_model: Triage) -> None:
    from bot.channels.base import SendError
    from bot.dispatcher import Dispatcher

    order: list[str] = []

    class Flaky:
        def __init__(self) -> None:
            self.down = True

        async def send(self, conversation, message) -> str:
            if self.down:
                raise SendError("platform down")
            order.append(message.text[:8])
            return f"p{message.id}"

    flaky = Flaky()
    dispatcher = Dispatcher(handover, triage_no_model, {"telegram": flaky})
    await dispatcher.handle(Inbound("telegram", "1", "1", "Mensch", platform_id="a"))
    await dispatcher.handle(Inbound("telegram", "2", "2", EMERGENCY, platform_id="b"))
    assert len(handover.pending_outbound()) == 2
    recovery: Recovery = dispatcher.recovery
    flaky.down = False
    assert await recovery.run_once() == 0  # both just failed: each waits for its backoff
    dispatcher.failed_at = {k: v - backoff(1, urgent=True) for k, v in dispatcher.failed_at.items()}
    assert await recovery.run_once() == 1  # the escalation's backoff is short
    assert order[0].startswith("🚨")
    dispatcher.failed_at = {k: v - backoff(1) for k, v in dispatcher.failed_at.items()}
    assert await recovery.run_once() == 1 and len(order) == 2 and not handover.pending_outbound()
