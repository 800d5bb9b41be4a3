"""Telegram end to end: the real PTB client against the fake Bot API server, the whole app on 127.0.0.1."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bot.handover import HandoverLog
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot


@pytest.fixture
async def fake() -> FakeBotApi:
    api = await FakeBotApi().start()
    yield api
    await api.stop()


def transcript(services, chat: str) -> list[tuple]:
    """(direction, kind, text start, intent, action, status) of a chat's messages."""
    conv = services.handover.find_conversation("telegram", chat)
    return [(m.direction, m.kind, m.intent, m.action, m.status) for m in services.handover.transcript(conv.id)]


async def test_a_conversation_is_answered_in_order_and_recorded(tmp_path: Path, fake: FakeBotApi, triage_model: Triage) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_model) as services:
        fake.text(42, "Hallo")
        fake.text(42, "Wie kann ich eine Anzeige erstatten?")
        await fake.wait_for(lambda: len(fake.sent(42)) == 2)
        first, second = (p["plain"] for p in fake.sent(42))
        assert "Bot" in first and "Hallo" in first  # greeting with the bot disclosure
        assert "Anzeige" in second and "Bot" not in second
        await fake.wait_for(lambda: transcript(services, "42")[-1][-1] == "sent")
        messages = services.handover.transcript(services.handover.find_conversation("telegram", "42").id)
        inbound = [m for m in messages if m.direction == "in"]
        outbound = [m for m in messages if m.direction == "out"]
        assert [(m.text, m.intent, m.action) for m in inbound] == [
            ("Hallo", "greet", "answer"), ("Wie kann ich eine Anzeige erstatten?", "report_crime", "answer")]
        assert [(m.reply_to, m.status, m.text) for m in outbound] == [
            (inbound[0].id, "sent", first), (inbound[1].id, "sent", second)]
        assert 0.5 < inbound[1].confidence <= 1.0


async def test_an_emergency_gets_the_110_prompt_first_and_goes_to_the_top_of_the_queue(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage
) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(7, "Hilfe, bei mir wird gerade eingebrochen!")
        await fake.wait_for(lambda: fake.sent(7))
        reply = fake.sent(7)[0]["plain"]
        assert reply.startswith("🚨") and "110" in reply.split("\n")[0]
        conv = services.handover.find_conversation("telegram", "7")
        assert (conv.state, conv.priority) == ("queued", 2)


async def test_start_shows_topics_and_a_pressed_button_is_answered_like_the_message(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage
) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(5, "/start")
        await fake.wait_for(lambda: fake.sent(5))
        menu = fake.sent(5)[0]
        assert "Bot" in menu["plain"]
        buttons = [b for row in menu["reply_markup"]["inline_keyboard"] for b in row]
        assert {"text": "🚲 Fahrrad geklaut", "callback_data": "topic:bike_theft"} in buttons
        assert buttons[-1] == {"text": "🙋 Mit einem Menschen sprechen", "callback_data": "topic:human_handoff"}
        fake.press(5, "topic:bike_theft")
        await fake.wait_for(lambda: len(fake.sent(5)) == 2)
        assert "Fahrrad" in fake.sent(5)[1]["plain"] or "Rad" in fake.sent(5)[1]["plain"]
        assert len(fake.calls_of("answerCallbackQuery")) == 1
        assert transcript(services, "5")[2] == ("in", "button", "bike_theft", "answer", "processed")
        fake.press(5, "topic:human_handoff")
        await fake.wait_for(lambda: len(fake.sent(5)) == 3)
        assert services.handover.find_conversation("telegram", "5").state == "queued"


@pytest.mark.parametrize(("command", "expected"), [("/help", "110"), ("/mensch", "übernimmt")])
async def test_help_and_mensch(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage, command: str, expected: str) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(6, command)
        await fake.wait_for(lambda: fake.sent(6))
        assert expected in fake.sent(6)[0]["plain"]
        assert (services.handover.find_conversation("telegram", "6").state == "queued") == (command == "/mensch")


@pytest.mark.parametrize(("kind", "expected", "detail"), [
    ("photo", "nur Text", {"file_id": "p-large"}),
    ("voice", "Sprachnachrichten", {"file_id": "vo1"}),
    ("sticker", "nur Text", {"file_id": "s1"}),
    ("location", "110", {"location": [49.44, 7.77]}),
    ("contact", "110", {"contact": "+4915100000"}),
])
async def test_non_text_gets_a_clear_answer_and_is_recorded_for_officers(
    tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage, kind: str, expected: str, detail: dict
) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.media(8, kind)
        await fake.wait_for(lambda: fake.sent(8))
        assert expected in fake.sent(8)[0]["plain"]
        conv = services.handover.find_conversation("telegram", "8")
        item = services.handover.transcript(conv.id)[0]
        assert (item.kind, item.meta) == (kind, detail)


async def test_a_photo_caption_is_read_like_text(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model):
        fake.media(9, "photo", caption="Er hat ein Messer und bedroht mich")
        await fake.wait_for(lambda: fake.sent(9))
        assert fake.sent(9)[0]["plain"].startswith("🚨")


async def test_group_messages_get_no_answer_and_leave_no_trace(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(-1001, "Hilfe, Einbrecher!", chat_type="supergroup", user_id=77)
        fake.text(-1002, "/start", chat_type="group", user_id=77)
        fake.text(11, "/help")  # a private chat after them: once it is answered, the groups were seen
        await fake.wait_for(lambda: fake.sent(11))
        await fake.wait_for(lambda: not fake.updates or fake.updates[0]["update_id"] > min(fake.injected_at), 15)
        assert [p["chat_id"] for p in fake.sent()] == ["11"]
        rows = services.handover.db.execute("SELECT channel, chat_id FROM conversations").fetchall()
        assert rows == [("telegram", "11")]


async def test_an_edited_message_is_handled_as_new_text(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    async with running_bot(bot_settings(tmp_path, fake), triage_no_model) as services:
        fake.text(12, "/help", message_id=500)
        await fake.wait_for(lambda: fake.sent(12))
        fake.edit(12, 500, "Hilfe, Einbrecher im Haus!")
        await fake.wait_for(lambda: len(fake.sent(12)) == 2)
        assert fake.sent(12)[1]["plain"].startswith("🚨")
        edited = [m for m in services.handover.transcript(services.handover.find_conversation("telegram", "12").id) if m.meta.get("edited")]
        assert len(edited) == 1 and edited[0].intent == "emergency"


async def test_a_redelivered_update_is_not_answered_twice(tmp_path: Path, fake: FakeBotApi, triage_no_model: Triage) -> None:
    settings = bot_settings(tmp_path, fake)
    async with running_bot(settings, triage_no_model) as services:
        update_id = fake.text(13, "Hilfe, Einbrecher!")
        await fake.wait_for(lambda: fake.sent(13))
    with_offset_lost = HandoverLog.open(settings.database_path)
    with_offset_lost.set_value("telegram:offset", "0")  # as if the confirmation never reached Telegram
    with_offset_lost.close()
    fake.redeliver(update_id)
    async with running_bot(settings, triage_no_model):
        fake.text(14, "/help")
        await fake.wait_for(lambda: fake.sent(14))
        await fake.wait_for(lambda: update_id not in [u["update_id"] for u in fake.updates])
    assert len(fake.sent(13)) == 1


async def test_the_check_sends_an_inline_keyboard_and_both_buttons_work(tmp_path: Path, fake: FakeBotApi, triage_model: Triage) -> None:
    asking = copy.copy(triage_model)
    asking.check_threshold = 0.0  # the check band stretched down to 0: what the model does not escalate gets "in danger?"
    async with running_bot(bot_settings(tmp_path, fake), asking) as services:
        fake.text(15, "Mein Fahrrad wurde geklaut, was soll ich jetzt tun?")
        await fake.wait_for(lambda: fake.sent(15))
        asked = fake.sent(15)[0]
        (danger, safe), = asked["reply_markup"]["inline_keyboard"]
        fake.press(15, safe["callback_data"])
        await fake.wait_for(lambda: len(fake.sent(15)) == 2)
        state_after_no = services.handover.find_conversation("telegram", "15").state
        fake.press(15, danger["callback_data"])
        await fake.wait_for(lambda: len(fake.sent(15)) == 3)
        conv = services.handover.find_conversation("telegram", "15")
    assert asked["plain"].startswith("Hinweis: Ich bin ein Bot") and "Bist du oder ist jemand gerade in Gefahr?" in asked["plain"]
    assert asked["plain"].count("Im Notfall ruf bitte immer die 110 an.") == 1
    assert danger["text"] == "🚨 Ja, gerade in Gefahr" and danger["callback_data"] in ("topic:emergency", "topic:self_harm")
    assert safe == {"text": "Nein", "callback_data": "topic:not_in_danger"}
    no_reply, danger_reply = fake.sent(15)[1]["plain"], fake.sent(15)[2]["plain"]
    assert no_reply.startswith("Gut, danke für deine Antwort.") and "Rahmennummer" in no_reply and state_after_no == "bot"
    assert danger_reply.startswith("🚨 Wenn du in Gefahr bist: Ruf jetzt die 110 an.")
    assert (conv.state, conv.priority) == ("queued", 2)
