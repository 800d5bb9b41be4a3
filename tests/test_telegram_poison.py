"""M4: one unparseable update must not stop Telegram polling, and /healthz tells the truth about the poller.

Against the fake Bot API on 127.0.0.1 (tests/fake_bot_api.py): updates python-telegram-bot cannot
read (a date that is no number, a chat that is no object), then ordinary ones; getUpdates failing
for a while; the token rejected.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, free_port, running_bot
from tests.web_support import METRICS_TOKEN

EMERGENCY = "Hilfe, hier ist ein Einbrecher im Haus!"


@pytest.fixture
async def fake() -> FakeBotApi:
    api = await FakeBotApi().start()
    yield api
    await api.stop()


async def telegram_health(port_url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{port_url}/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as response:
            return await response.json()


async def test_polling_survives_unreadable_updates_and_keeps_what_they_say(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, METRICS_TOKEN=METRICS_TOKEN)
    async with running_bot(settings, triage_no_model, port=port) as services:
        readable = fake.message(41, EMERGENCY)
        readable["date"] = "gestern"  # PTB cannot read this update; its text is plain
        fake.inject({"message": readable})
        broken = fake.message(43, "Wo ist die Wache?")
        broken["chat"] = "kein Objekt"  # nothing to answer: recorded in the audit
        poison_id = fake.inject({"message": broken})
        fake.text(42, "/help")  # an ordinary update right behind them
        await fake.wait_for(lambda: fake.sent(42) and fake.sent(41), timeout=15)
        conv = services.handover.find_conversation("telegram", "41")
        stored = services.handover.transcript(conv.id)
        audit = [json.loads(d) for (d,) in services.handover.db.execute(
            "SELECT detail FROM events WHERE action = 'unreadable_update' ORDER BY id")]
        healthy = await telegram_health(f"http://127.0.0.1:{port}")
        fake.text(42, "/help")  # still polling
        await fake.wait_for(lambda: len(fake.sent(42)) == 2, timeout=15)
        assert poison_id not in [u["update_id"] for u in fake.updates]  # confirmed: never fetched again
    assert "110" in fake.sent(41)[0]["plain"]  # the emergency inside the unreadable update was answered
    assert stored[0].text == EMERGENCY and stored[0].meta.get("unreadable") and stored[0].action == "escalate"
    assert conv.state == "queued" and conv.priority == 2  # kept for the officers
    assert [(a["kept"], a["error"]) for a in audit] == [(True, "TypeError"), (False, "TypeError")]
    assert "kein Objekt" not in json.dumps(audit) and "43" not in json.dumps(audit)  # no text, no ids in the audit
    assert healthy["channels"]["telegram"] == "connected"


async def test_healthz_says_when_polling_fails_and_when_it_stopped(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with running_bot(bot_settings(tmp_path, fake, METRICS_TOKEN=METRICS_TOKEN), triage_no_model, port=port):
        await fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=10)
        assert (await telegram_health(url))["channels"]["telegram"] == "connected"
        fake.fail("getUpdates", 502, times=None)
        fake._notify()  # end the long poll now, as Telegram would on a restart
        deadline = time.monotonic() + 15
        while (await telegram_health(url))["channels"]["telegram"] == "connected" and time.monotonic() < deadline:
            await fake.wait_for(lambda: True)
        failing = (await telegram_health(url))["channels"]["telegram"]
        fake.clear_faults()
        fake.text(44, "/help")
        await fake.wait_for(lambda: fake.sent(44), timeout=40)
        recovered = (await telegram_health(url))["channels"]["telegram"]
        fake.fail("getUpdates", 401, times=None)  # the token was revoked
        fake._notify()
        deadline = time.monotonic() + 40
        while not (await telegram_health(url))["channels"]["telegram"].startswith("stopped") and time.monotonic() < deadline:
            await fake.wait_for(lambda: True)
        stopped = (await telegram_health(url))["channels"]["telegram"]
    assert failing == "failing: NetworkError: Internal Server Error", failing  # (the fake says so for a 502)
    assert recovered == "connected"
    assert stopped.startswith("stopped:"), stopped
