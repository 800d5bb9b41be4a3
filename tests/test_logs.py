"""Logs carry pseudonyms, never platform ids; no message text at INFO; LOG_LEVEL is honoured.

A real conversation on each channel (web chat, Telegram against the fake Bot API, Instagram against
the fake Graph API), with a failed send and a redelivery so that the warning paths log too; and
`python -m bot serve` as its own process at LOG_LEVEL=INFO and WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import pytest

from bot.settings import ROOT, Settings
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot, serve_env
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import PAGE_TOKEN, TOKEN, message, meta_settings, notification, running
from tests.web_support import Browser, served

MARKER = "Zitronenfalter"  # a word only the citizens write
TELEGRAM_CHAT = 918273645
INSTAGRAM_USER = "5550918273"


def leaks(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> list[str]:
    """Log lines that show a platform id (any level, our loggers) or a citizen's text (INFO and above, any logger)."""
    found = []
    for record in caplog.records:
        line = record.getMessage() + (f" {record.exc_text}" if record.exc_text else "")
        ours = record.name.startswith("bot")
        if (ours or record.levelno >= logging.INFO) and any(s in line for s in secrets):
            found.append(f"{record.levelname} {record.name}: {line}")
        if record.levelno >= logging.INFO and MARKER in line:
            found.append(f"{record.levelname} {record.name}: {line}")
    return found


async def test_a_web_chat_conversation_logs_no_ids_and_no_texts(settings: Settings, triage_no_model: Triage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with served(settings, triage_no_model) as (_, server, _services), Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write(f"Hallo, {MARKER} hier")
        await citizen.write(f"Hilfe, Einbrecher! {MARKER}", message_id="client-message-0001")
        await citizen.write(f"Hilfe, Einbrecher! {MARKER}", message_id="client-message-0001")  # sent twice
        cookie = citizen.http.cookie_jar.filter_cookies(citizen.url("/"))["streife_chat"].value
    assert caplog.records and leaks(caplog, [cookie, "client-message-0001"]) == []


async def test_a_telegram_conversation_logs_pseudonyms_only(tmp_path: Path, triage_no_model: Triage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = await FakeBotApi().start()
    try:
        fake.fail("sendMessage", 500)  # a warning with the chat in it
        async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
            fake.text(TELEGRAM_CHAT, f"Hilfe, Einbrecher! {MARKER}")
            update = fake.text(TELEGRAM_CHAT, f"Noch was: {MARKER}")
            await fake.wait_for(lambda: len(fake.sent(TELEGRAM_CHAT)) >= 1, timeout=20)
            fake.redeliver(update)  # a duplicate is logged
            await asyncio.sleep(1.5)
            citizen = services.handover.find_conversation("telegram", str(TELEGRAM_CHAT)).citizen
    finally:
        await fake.stop()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot")]
    assert any(citizen in line for line in ours)  # the pseudonym stands in for the chat
    assert leaks(caplog, [str(TELEGRAM_CHAT)]) == []


async def test_an_instagram_conversation_logs_pseudonyms_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    try:
        async with running(meta_settings(tmp_path, graph), graph) as bot:
            graph.fail_next("server_error", "server_error", "server_error")
            payload = notification(message(INSTAGRAM_USER, f"Hilfe, Einbrecher! {MARKER}"))
            await bot.deliver(payload)
            await bot.deliver(payload)  # Meta delivers twice
            await bot.deliver(notification(message(INSTAGRAM_USER, f"Und noch: {MARKER}")))
    finally:
        await graph.stop()
    assert any("send to in-" in r.getMessage() for r in caplog.records)  # the failed send named the pseudonym
    assert leaks(caplog, [INSTAGRAM_USER]) == []


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
async def test_log_level_is_honoured_by_the_service(tmp_path: Path, level: str) -> None:
    fake = await FakeBotApi().start()
    env = serve_env(fake, tmp_path, LOG_LEVEL=level, MODEL_PATH=str(tmp_path / "missing.tar.gz"))
    bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=60)
        fake.text(TELEGRAM_CHAT, f"Hallo, {MARKER}")
        await fake.wait_for(lambda: fake.sent(TELEGRAM_CHAT), timeout=30)
    finally:
        bot.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(bot.communicate(), 60)
        await fake.stop()
    text = stderr.decode()
    assert MARKER not in text and str(TELEGRAM_CHAT) not in text
    if level == "INFO":
        assert " INFO bot.channels.telegram_app: polling Telegram as @streife_test_bot" in text
    else:
        assert " INFO " not in text and " DEBUG " not in text
