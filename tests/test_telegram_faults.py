"""Telegram under faults: 429, 5xx, dropped connections, slow answers, blocked users, confirmed offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot


@pytest.fixture
async def fake() -> FakeBotApi:
    api = await FakeBotApi().start()
    yield api
    await api.stop()


async def test_a_reply_survives_429_500_and_a_dropped_connection_and_arrives_once(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage
) -> None:
    fake.fail("sendMessage", 429, retry_after=1)
    fake.fail("sendMessage", 500, times=2)
    fake.drop("sendMessage")
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(21, "Hilfe, Einbrecher!")
        await fake.wait_for(lambda: fake.sent(21), timeout=20)
        assert [c.outcome for c in fake.calls_of("sendMessage", None)] == ["error 429", "error 500", "error 500", "dropped", "ok"]

        def last_reply():  # the fake has answered; the bot records the send when that answer arrives
            return services.handover.transcript(services.handover.find_conversation("telegram", "21").id)[-1]

        await fake.wait_for(lambda: last_reply().status != "pending", timeout=20)
        reply = last_reply()
        assert (reply.status, reply.platform_id) == ("sent", str(fake.sent(21)[0]["message_id"]))


async def test_polling_rides_out_a_broken_and_a_slow_get_updates(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    fake.fail("getUpdates", 502)
    fake.drop("getUpdates")
    fake.slow("getUpdates", 0.5, times=2)
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model):
        fake.text(22, "/help")
        await fake.wait_for(lambda: fake.sent(22), timeout=20)
    assert len(fake.sent(22)) == 1


async def test_a_blocked_bot_gives_up_at_once_and_marks_the_reply_failed(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    fake.blocked.add(23)
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(23, "/help")
        await fake.wait_for(lambda: fake.calls_of("sendMessage", "error 403"))
        conv = services.handover.find_conversation("telegram", "23")
        await fake.wait_for(lambda: services.handover.transcript(conv.id)[-1].status == "failed")
    assert len(fake.calls_of("sendMessage", None)) == 1


async def test_an_update_is_confirmed_once_stored_and_its_reply_still_arrives(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    fake.hold("sendMessage")
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        first = fake.text(24, "/help")
        await fake.wait_for(lambda: fake.calls_of("sendMessage", "held"))
        fake.text(25, "/help")  # the bot polls again while the first reply hangs
        await fake.wait_for(lambda: len(fake.calls_of("sendMessage", "held")) == 2)
        conv = services.handover.find_conversation("telegram", "24")
        assert services.handover.transcript(conv.id)[0].text == "/help"  # stored before it was confirmed
        polls = len(fake.calls_of("getUpdates"))
        await fake.wait_for(lambda: len(fake.calls_of("getUpdates")) > polls)
        assert first not in [u["update_id"] for u in fake.updates]  # confirmed: not fetched and parsed again
        fake.release("sendMessage")
        await fake.wait_for(lambda: fake.sent(24) and fake.sent(25))
    assert [len(fake.sent(c)) for c in (24, 25)] == [1, 1]


async def test_long_replies_are_split_and_html_is_escaped(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    text = "<b>Hinweis</b> & Tipps für dich: " + " ".join(f"Satz{i} <mit> &Zeichen;" for i in range(700))
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(27, "/help")
        await fake.wait_for(lambda: fake.sent(27))
        conv = services.handover.find_conversation("telegram", "27")
        reply = services.handover.add_outbound(conv.id, text, "officer", officer="isabel")
        await services.dispatcher.deliver([reply])
        assert services.handover.message(reply).status == "sent"
    parts = [p["plain"] for p in fake.sent(27)[1:]]
    assert len(parts) == 5 and all(len(p) <= 4096 for p in parts)  # 16,800 characters
    assert " ".join(parts).split() == text.split()


async def test_replies_keep_their_order_per_chat_through_429_500_slow_and_dropped_sends(
    tmp_path: Path, fake: FakeBotApi, triage_model: Triage
) -> None:
    questions = ["Wie kann ich eine Anzeige erstatten?", "Mein Fahrrad wurde geklaut, was nun?",
                 "Wo ist die nächste Polizeiwache?", "Wie werde ich Polizist?"]
    fake.fail("sendMessage", 429, retry_after=1)
    fake.fail("sendMessage", 500, times=2)
    fake.drop("sendMessage")
    fake.slow("sendMessage", 0.4, times=2)
    async with running_bot(bot_settings(tmp_path, fake), triage_model) as services:
        for text in questions:
            fake.text(28, text)
            fake.text(29, text)
        await fake.wait_for(lambda: len(fake.sent(28)) == len(fake.sent(29)) == len(questions), timeout=40)
        for chat in ("28", "29"):
            messages = services.handover.transcript(services.handover.find_conversation("telegram", chat).id)
            inbound = [m for m in messages if m.direction == "in"]
            outbound = [m for m in messages if m.direction == "out"]
            assert [m.text for m in inbound] == questions
            assert [m.reply_to for m in outbound] == [m.id for m in inbound]  # one reply per question, in order
            assert [p["plain"] for p in fake.sent(int(chat))] == [m.text for m in outbound]  # delivered in that order
    outcomes = [c.outcome for c in fake.calls_of("sendMessage", None)]
    assert {"error 429", "error 500", "dropped"} <= set(outcomes)
