"""Instagram DMs and Messenger over real HTTP: Meta's webhook in, the fake Graph API out.

Payloads follow Meta's documentation (see tests/instagram_helpers.py for the pages):
https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.responses import Responses
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import (  # noqa: F401 (graph: fixture)
    ACCOUNT, PAGE, PAGE_TOKEN, SECRET, TOKEN, VERIFY, Running, echo, message, graph, meta_settings, notification, now_ms, running,
)


@pytest.fixture
async def bot(tmp_path: Path, graph: FakeGraphApi) -> AsyncIterator[Running]:
    async with running(meta_settings(tmp_path, graph), graph) as app:
        yield app


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}, 200, "1158201444"),
        ({"hub.mode": "subscribe", "hub.verify_token": "guessed", "hub.challenge": "1158201444"}, 403, None),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}, 403, None),
        ({"hub.challenge": "1158201444"}, 403, None),
    ],
)
async def test_verification_echoes_the_challenge_only_for_the_right_token(bot: Running, query: dict, status: int, body: str | None) -> None:
    response = await bot.client.get("/instagram/webhook", params=query)
    assert response.status == status
    if body is not None:
        assert await response.text() == body


async def test_a_signed_message_is_stored_acknowledged_and_answered(bot: Running) -> None:
    response = await bot.deliver(notification(message("5551", "Hallo, ich hab da mal eine Frage", mid="m-hallo")))
    assert response.status == 200
    [call] = bot.graph.calls
    assert (call.account, call.version, call.token, call.recipient) == (ACCOUNT, "v21.0", TOKEN, "5551")
    assert call.body["messaging_type"] == "RESPONSE"
    assert "Bot" in call.text  # first contact: the bot says it is a bot (Meta's rule for Germany)
    citizen, reply = bot.transcript("5551")
    assert (citizen.author, citizen.text, citizen.platform_id, citizen.status) == ("citizen", "Hallo, ich hab da mal eine Frage", "m-hallo", "processed")
    assert (reply.author, reply.status, reply.text) == ("bot", "sent", call.text)
    assert reply.platform_id and reply.platform_id.startswith("aWdfZAG1")


@pytest.mark.parametrize("signature", [None, "wrong-secret", "tampered"])
async def test_forged_and_unsigned_requests_are_refused_and_nothing_happens(bot: Running, signature: str | None) -> None:
    payload = notification(message("5552", "hilfe einbrecher"))
    if signature == "tampered":  # signed correctly, then changed on the way
        body = json.dumps(payload).encode()
        from bot.channels.meta_webhook import sign

        response = await bot.client.post(
            "/instagram/webhook", data=body.replace(b"hilfe", b"HILFE"), headers={"X-Hub-Signature-256": sign(SECRET, body)}
        )
    else:
        response = await bot.post(payload, secret=None if signature is None else signature)
    await bot.channel.drain()
    assert response.status == 403
    assert bot.log.find_conversation("instagram", "5552") is None
    assert bot.graph.calls == []


async def test_malformed_json_with_a_valid_signature_is_a_bad_request(bot: Running) -> None:
    response = await bot.post(None, raw=b'{"object": "instagram", "entry": [')
    assert response.status == 400
    assert bot.graph.calls == []


async def test_an_emergency_is_answered_with_110_first(bot: Running) -> None:
    await bot.deliver(notification(message("5553", "Hilfe, da ist ein Einbrecher in unserem Haus!")))
    [call] = bot.graph.calls
    assert call.text.startswith("🚨") and call.text.index("110") < call.text.index("Bot")
    conv = bot.conversation("5553")
    assert (conv.state, conv.priority) == ("queued", 2)


async def test_the_bots_own_echo_is_not_answered_but_an_officers_echo_from_the_app_is_recorded(bot: Running) -> None:
    await bot.deliver(notification(message("5554", "Ich möchte mit einem Menschen sprechen")))
    [call] = bot.graph.calls
    bot_reply = bot.transcript("5554")[-1]
    isabel = "Hi, hier ist Isabel von der Polizei. Worum geht es?"
    responses = [
        await bot.deliver(notification(echo("5554", call.text.split("\n\n")[0], bot_reply.platform_id or "", app_id=1517776481860111))),
        await bot.deliver(notification(echo("5554", isabel, "m-isabel", app_id=124024574287414))),
        await bot.deliver(notification(echo("5554", isabel, "m-isabel"))),  # redelivered by Meta
    ]
    assert [r.status for r in responses] == [200, 200, 200]
    assert len(bot.graph.calls) == 1  # no echo was answered
    transcript = bot.transcript("5554")
    assert [(m.author, m.status) for m in transcript] == [("citizen", "processed"), ("bot", "sent"), ("officer", "sent")]
    assert (transcript[-1].text, transcript[-1].platform_id) == (isabel, "m-isabel")
    assert bot.conversation("5554").with_officer


async def test_an_echo_arriving_while_the_bot_still_sends_is_recognised_as_the_bots(bot: Running) -> None:
    await bot.deliver(notification(message("5560", "", attachments=[{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}])))
    conv = bot.conversation("5560")
    pending = bot.log.add_outbound(conv.id, "Noch eine Nachricht vom Bot.", "bot")  # stored, not yet confirmed by Meta
    await bot.deliver(notification(echo("5560", "Noch eine Nachricht vom Bot.", "m-unknown-yet")))
    assert [m.id for m in bot.transcript("5560") if m.author == "officer"] == []
    assert bot.log.message(pending).status == "pending"


async def test_a_duplicate_mid_is_answered_once(bot: Running) -> None:
    payload = notification(message("5555", "Wo ist die nächste Wache?", mid="m-twice"))
    first, second = await bot.deliver(payload), await bot.deliver(payload)
    assert first.status == second.status == 200
    assert len(bot.graph.calls) == 1
    assert [m.author for m in bot.transcript("5555")] == ["citizen", "bot"]


async def test_an_image_without_text_gets_the_text_only_note(bot: Running) -> None:
    image = [{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17"}}]
    await bot.deliver(notification(message("5556", "", attachments=image)))
    [call] = bot.graph.calls
    assert "nur Text lesen" in call.text
    citizen = bot.transcript("5556")[0]
    assert (citizen.kind, citizen.text, citizen.meta["attachments"][0]["type"]) == ("photo", "", "image")


async def test_a_batch_of_entries_and_events_is_handled_completely(bot: Running) -> None:
    story = [{"type": "story_mention", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=99"}}]
    read = {"sender": {"id": "5561"}, "recipient": {"id": ACCOUNT}, "timestamp": now_ms(), "read": {"mid": "m-old"}}
    reaction = {"sender": {"id": "5561"}, "recipient": {"id": ACCOUNT}, "timestamp": now_ms(),
                "reaction": {"mid": "m-old", "action": "react", "reaction": "love", "emoji": "❤️"}}
    payload = notification(message("5561", "Hallo?", future_field={"x": 1}), read, reaction)
    payload["entry"].append({"id": ACCOUNT, "time": now_ms(), "messaging": [message("5562", "", attachments=story),
                             message("5563", "Schöne Story!", reply_to={"story": {"url": "https://cdn/s/1", "id": "s1"}})]})
    payload["entry"].append({"id": ACCOUNT, "time": now_ms(), "changes": [{"field": "comments", "value": {"id": "c1"}}]})
    response = await bot.deliver(payload)
    assert response.status == 200
    assert sorted(c.recipient for c in bot.graph.calls) == ["5561", "5562", "5563"]
    assert [bot.transcript(u)[0].kind for u in ("5561", "5562", "5563")] == ["text", "story_mention", "text"]
    assert bot.transcript("5563")[0].meta["story_reply"] == {"url": "https://cdn/s/1", "id": "s1"}


async def test_a_quick_reply_topic_is_answered_as_that_topic(bot: Running, responses: Responses) -> None:
    await bot.deliver(notification(message("5557", "🚲 Fahrrad geklaut", quick_reply={"payload": "topic:bike_theft"})))
    [call] = bot.graph.calls
    assert responses.intent("bike_theft", "de") in call.text
    assert (bot.transcript("5557")[0].intent, bot.conversation("5557").state) == ("bike_theft", "bot")


async def test_messenger_uses_the_same_path_with_its_own_channel_and_page_token(bot: Running) -> None:
    event = message("2900001", "Hallo Polizei")
    event["recipient"]["id"] = PAGE
    await bot.deliver(notification(event, obj="page", account=PAGE))
    [call] = bot.graph.calls
    assert (call.account, call.token, call.recipient) == ("me", PAGE_TOKEN, "2900001")
    assert bot.log.find_conversation("instagram", "2900001") is None
    assert [m.author for m in bot.transcript("2900001", "messenger")] == ["citizen", "bot"]


async def test_the_disclosure_comes_again_after_a_long_pause(bot: Running) -> None:
    topic = {"quick_reply": {"payload": "topic:lost_found"}}
    await bot.deliver(notification(message("5558", "Verloren & gefunden", **topic)))
    await bot.deliver(notification(message("5558", "Verloren & gefunden", **topic)))
    replies = bot.transcript("5558")
    assert ["Bot" in m.text for m in replies if m.author == "bot"] == [True, False]
    for m in replies:  # a day and a bit passes
        bot.log.db["messages"].update(m.id, {"created_at": "2020-01-01T00:00:00.000+00:00"})
    await bot.deliver(notification(message("5558", "Verloren & gefunden", **topic)))
    assert "Bot" in bot.graph.calls[-1].text


def test_returning_a_chat_to_the_bot_says_it_is_a_bot(responses: Responses) -> None:
    assert "Bot" in responses.system_text("returned_to_bot", "de")
    assert "bot" in responses.system_text("returned_to_bot", "en")
