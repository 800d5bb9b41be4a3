"""Telegram in webhook mode (secret checked on every request) and Telegram Business connections."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, free_port, running_bot


@pytest.fixture
async def fake() -> FakeBotApi:
    api = await FakeBotApi().start()
    yield api
    await api.stop()



async def test_webhook_mode_sets_the_secret_and_answers_what_telegram_posts(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}", TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1")
    async with running_bot(settings, triage_no_model, port=port):
        await fake.wait_for(lambda: fake.webhook.get("url"))
        assert fake.webhook["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
        assert fake.webhook["secret_token"] == "s3cret-Token_1"
        fake.text(31, "Hilfe, Einbrecher!")
        await fake.wait_for(lambda: fake.sent(31))
        assert fake.sent(31)[0]["plain"].startswith("🚨")
    assert not fake.calls_of("getUpdates", None)


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                                     {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_"}])
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_recorded(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage, headers: dict
) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
                            TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1")
    update = {"update_id": 1, "message": fake.message(32, "Hilfe, Einbrecher!")}
    async with running_bot(settings, triage_no_model, port=port) as services:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update, headers=headers) as response:
                assert response.status == 403
        assert services.handover.find_conversation("telegram", "32") is None
    assert not fake.sent()


async def test_malformed_json_is_a_400_and_a_generated_secret_is_kept(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/")
    async with running_bot(settings, triage_no_model, port=port) as services:
        await fake.wait_for(lambda: fake.webhook.get("url"))
        secret = fake.webhook["secret_token"]
        assert len(secret) >= 32 and services.handover.get_value("telegram:webhook_secret") == secret
        async with aiohttp.ClientSession() as session:
            for body in ("{not json", "[1, 2]", '{"update_id": "x"}',
                         '{"update_id": 5, "message": {"message_id": 1, "date": 0, "chat": null}}'):
                async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", data=body,
                                        headers={"X-Telegram-Bot-Api-Secret-Token": secret,
                                                 "Content-Type": "application/json"}) as response:
                    assert response.status == 400
    async with running_bot(settings, triage_no_model, port=port):
        await fake.wait_for(lambda: len(fake.calls_of("setWebhook")) == 2)
        assert fake.calls_of("setWebhook")[1].params["secret_token"] == secret


async def test_business_messages_are_answered_through_the_connection_that_may_reply(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage
) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.connect_business("bc-isabel", owner_id=900, can_reply=True)
        fake.connect_business("bc-readonly", owner_id=901, can_reply=False)
        fake.business_text("bc-isabel", 41, "Hilfe, Einbrecher!")
        fake.business_text("bc-isabel", 41, "Ich bin dran, bleib ruhig.", from_id=900)  # the officer herself
        fake.business_text("bc-readonly", 42, "Hallo?")
        fake.text(43, "/help")  # once this is answered, everything before was handled
        await fake.wait_for(lambda: fake.sent(41) and fake.sent(43))
        conv = services.handover.find_conversation("telegram", "biz:bc-isabel:41")
        assert conv.meta["business_connection_id"] == "bc-isabel"
        assert [m.author for m in services.handover.transcript(conv.id)] == ["citizen", "bot"]
        assert services.handover.find_conversation("telegram", "biz:bc-readonly:42") is None
    reply = fake.sent(41)
    assert len(reply) == 1 and reply[0]["business_connection_id"] == "bc-isabel" and reply[0]["plain"].startswith("🚨")
    assert not fake.sent(42)
