"""X direct messages over real HTTP: X's webhook in (CRC, signatures, DM events), the fake X API out.

Payloads follow https://docs.x.com/x-api/account-activity/introduction; CRC and signature
https://docs.x.com/x-api/webhooks/quickstart (see tests/fake_x_api.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from bot.responses import Responses
from tests.fake_x_api import ACCOUNT, CONSUMER_SECRET, FakeXApi, activity, dm_event, xaa
from tests.x_helpers import Running, running, x_settings, xapi  # noqa: F401 (xapi: fixture)

CITIZEN = "2000000000000000001"
PHOTO = {"id": 1, "id_str": "1", "type": "photo", "url": "https://t.co/Ph0to1", "display_url": "pic.x.com/Ph0to1",
         "media_url_https": "https://ton.x.com/1.1/ton/data/dm/1/1/Ph0to1.jpg"}


@pytest.fixture
async def bot(tmp_path: Path, xapi: FakeXApi) -> AsyncIterator[Running]:
    async with running(x_settings(tmp_path, xapi), xapi) as app:
        yield app


def expected_crc(token: str) -> str:
    """The CRC answer as X's documentation computes it."""
    return "sha256=" + base64.b64encode(hmac.new(CONSUMER_SECRET.encode(), token.encode(), hashlib.sha256).digest()).decode()


# -- challenge-response check --------------------------------------------------------------------


@pytest.mark.parametrize("token", ["9b4507b3-9040-4669-9ca3-6b94edb50553", "challenge_string", "Zm9vYmFy+/8="])
async def test_the_crc_is_answered_with_the_hmac_of_the_token(bot: Running, token: str) -> None:
    response = await bot.client.get("/x/webhook", params={"crc_token": token})
    assert response.status == 200 and response.content_type == "application/json"
    assert await response.json() == {"response_token": expected_crc(token)}


@pytest.mark.parametrize(
    "query",
    [
        "",  # no token
        "crc_token=",
        "crc_token=abc&crc_token=def",  # two tokens: which one would X check?
        "crc_token=" + "A" * 300,
        "crc_token=%7B%22for_user_id%22%3A%221%22%7D",  # a JSON body: the answer would be that body's signature
        "crc_token=%00%FF%FE",
    ],
)
async def test_forged_crc_requests_get_400_and_no_response_token(bot: Running, query: str) -> None:
    response = await bot.client.get(f"/x/webhook?{query}")
    assert response.status == 400
    assert "response_token" not in await response.text()


async def test_the_crc_cannot_be_used_to_sign_a_forged_dm(bot: Running) -> None:
    forged = json.dumps(activity(dm_event(CITIZEN, text="hilfe einbrecher"))).encode()
    oracle = await bot.client.get("/x/webhook", params={"crc_token": forged.decode()})
    assert oracle.status == 400
    token = base64.b64encode(b"a challenge from X").decode()  # X-shaped: its answer signs the token, never a body
    answer = (await (await bot.client.get("/x/webhook", params={"crc_token": token})).json())["response_token"]
    replayed = await bot.client.post("/x/webhook", data=forged, headers={"x-twitter-webhooks-signature": answer})
    as_body = await bot.client.post("/x/webhook", data=token.encode(), headers={"x-twitter-webhooks-signature": answer})
    assert (replayed.status, as_body.status) == (403, 400)
    assert bot.log.find_conversation("x", CITIZEN) is None and bot.api.calls == []


async def test_without_a_consumer_secret_the_webhook_refuses_everything(tmp_path: Path, xapi: FakeXApi) -> None:
    async with running(x_settings(tmp_path, xapi, X_CONSUMER_SECRET=""), xapi) as bot:
        crc = await bot.client.get("/x/webhook", params={"crc_token": "abc"})
        post = await bot.post(activity(dm_event(CITIZEN, text="Hallo")), secret="")
        assert (crc.status, post.status) == (403, 403)
        assert bot.log.find_conversation("x", CITIZEN) is None


# -- signatures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, "wrong-secret", "tampered", "hex", "empty"])
async def test_forged_and_unsigned_posts_get_403_and_nothing_is_stored(bot: Running, signature: str | None) -> None:
    body = json.dumps(activity(dm_event(CITIZEN, text="hilfe einbrecher"))).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "wrong-secret":
        headers["x-twitter-webhooks-signature"] = expected_crc("x")
    elif signature == "tampered":  # signed correctly, then changed on the way
        headers["x-twitter-webhooks-signature"] = "sha256=" + base64.b64encode(
            hmac.new(CONSUMER_SECRET.encode(), body, hashlib.sha256).digest()).decode()
        body = body.replace(b"hilfe", b"HILFE")
    elif signature == "hex":  # the right HMAC, hex-encoded as other platforms do
        headers["x-twitter-webhooks-signature"] = "sha256=" + hmac.new(CONSUMER_SECRET.encode(), body, hashlib.sha256).hexdigest()
    elif signature == "empty":
        headers["x-twitter-webhooks-signature"] = ""
    response = await bot.client.post("/x/webhook", data=body, headers=headers)
    await bot.channel.drain()
    assert response.status == 403
    assert bot.log.find_conversation("x", CITIZEN) is None
    assert bot.api.calls == []


async def test_malformed_json_with_a_valid_signature_is_a_bad_request(bot: Running) -> None:
    response = await bot.post(None, raw=b'{"for_user_id": "1", "direct_message_events": [')
    assert response.status == 400
    assert bot.api.calls == []


# -- direct messages in ---------------------------------------------------------------------------


async def test_a_signed_dm_is_stored_acknowledged_and_answered_through_the_v2_endpoint(bot: Running) -> None:
    event = dm_event(CITIZEN, text="Hallo, ich hab da mal eine Frage", event_id="1800000000000000001")
    response = await bot.deliver(activity(event))
    assert response.status == 200
    [call] = bot.api.calls
    assert (call.status, call.participant) == (201, CITIZEN)  # the fake checked the OAuth 1.0a signature
    assert "Bot" in call.text  # first contact: the bot says it is a bot
    citizen, reply = bot.transcript(CITIZEN)
    assert (citizen.author, citizen.text, citizen.platform_id, citizen.status) == (
        "citizen", "Hallo, ich hab da mal eine Frage", "1800000000000000001", "processed")
    assert (reply.author, reply.status, reply.text, reply.platform_id) == ("bot", "sent", call.text, call.event_id)


async def test_the_citizen_is_a_pseudonym_and_no_name_or_handle_is_stored(bot: Running, tmp_path: Path) -> None:
    await bot.deliver(activity(dm_event(CITIZEN, text="Hallo")))
    conv = bot.conversation(CITIZEN)
    assert conv.citizen != CITIZEN and CITIZEN not in conv.citizen
    dump = "\n".join(sqlite3.connect(tmp_path / "streife.sqlite3").iterdump())
    assert f"handle_{CITIZEN}" not in dump and f"Name {CITIZEN}" not in dump


async def test_an_emergency_is_answered_with_110_first_and_queued_on_top(bot: Running) -> None:
    await bot.deliver(activity(dm_event(CITIZEN, text="Hilfe, da ist ein Einbrecher in unserem Haus!")))
    [call] = bot.api.calls
    assert call.text.startswith("🚨") and call.text.index("110") < call.text.index("Bot")
    conv = bot.conversation(CITIZEN)
    assert (conv.state, conv.priority) == ("queued", 2)


async def test_a_redelivered_event_is_answered_once(bot: Running) -> None:
    payload = activity(dm_event(CITIZEN, text="Wo ist die nächste Wache?", event_id="1800000000000000002"))
    first, second = await bot.deliver(payload), await bot.deliver(payload)
    assert first.status == second.status == 200
    assert len(bot.api.calls) == 1
    assert [m.author for m in bot.transcript(CITIZEN)] == ["citizen", "bot"]


async def test_a_photo_without_words_gets_the_text_only_note(bot: Running) -> None:
    await bot.deliver(activity(dm_event(CITIZEN, text="https://t.co/Ph0to1", media=PHOTO)))
    [call] = bot.api.calls
    assert "nur Text lesen" in call.text
    citizen = bot.transcript(CITIZEN)[0]
    assert (citizen.kind, citizen.text, citizen.meta["attachments"][0]["type"]) == ("photo", "", "photo")


async def test_words_with_a_photo_and_links_are_read_with_the_links_expanded(bot: Running) -> None:
    urls = [{"url": "https://t.co/L1nk", "expanded_url": "https://shop.example/angebot", "indices": [26, 43]}]
    await bot.deliver(activity(dm_event(CITIZEN, text="Ist dieser Shop seriös? https://t.co/L1nk https://t.co/Ph0to1",
                                        media=PHOTO, urls=urls)))
    assert bot.transcript(CITIZEN)[0].text == "Ist dieser Shop seriös? https://shop.example/angebot"


async def test_a_typed_topic_label_is_answered_as_that_topic(bot: Running, responses: Responses) -> None:
    label = next(label for label, intent in responses.topic_buttons("de") if intent == "bike_theft")
    await bot.deliver(activity(dm_event(CITIZEN, text=label.upper())))  # typed back, without its emoji's help
    [call] = bot.api.calls
    assert responses.intent("bike_theft", "de").strip() in call.text
    assert (bot.transcript(CITIZEN)[0].intent, bot.conversation(CITIZEN).state) == ("bike_theft", "bot")


async def test_the_x_activity_api_envelope_is_read_too(bot: Running) -> None:
    response = await bot.deliver(xaa(dm_event(CITIZEN, text="Hallo aus der neuen API")))
    ignored = await bot.deliver({"data": {"event_type": "post.mention.create", "filter": {"user_id": ACCOUNT}, "payload": {}}})
    assert (response.status, ignored.status) == (200, 200)
    assert [c.participant for c in bot.api.calls] == [CITIZEN]


# -- the account's own messages ---------------------------------------------------------------------


@pytest.mark.parametrize("echo_first", [False, True])
async def test_the_bots_own_dm_echoed_by_x_is_not_recorded_again_nor_answered(bot: Running, echo_first: bool) -> None:
    bot.api.echo_to, bot.api.echo_first = bot.webhook_url, echo_first
    await bot.deliver(activity(dm_event(CITIZEN, text="Ich möchte mit einem Menschen sprechen")))
    await asyncio.sleep(0.3)  # the echo's delivery
    await bot.channel.drain()
    assert len(bot.api.calls) == 1
    assert [(m.author, m.status) for m in bot.transcript(CITIZEN)] == [("citizen", "processed"), ("bot", "sent")]


async def test_an_officers_dm_from_the_x_app_is_recorded_hands_over_and_is_never_triaged(bot: Running) -> None:
    await bot.deliver(activity(dm_event(CITIZEN, text="Hallo")))
    isabel = dm_event(ACCOUNT, CITIZEN, text="Hi, hier ist Isabel von der Polizei. Hilfe ist unterwegs?", event_id="1800000000000000003")
    responses = [await bot.deliver(activity(isabel)), await bot.deliver(activity(isabel))]  # redelivered by X
    assert [r.status for r in responses] == [200, 200]
    assert len(bot.api.calls) == 1  # nothing answered the officer's words (they even contain "Hilfe")
    transcript = bot.transcript(CITIZEN)
    assert [(m.author, m.status) for m in transcript] == [("citizen", "processed"), ("bot", "sent"), ("officer", "sent")]
    assert (transcript[-1].platform_id, transcript[-1].intent) == ("1800000000000000003", None)
    assert bot.conversation(CITIZEN).with_officer


# -- bad input: wrong types never crash ------------------------------------------------------------


def _event(**changes: Any) -> dict[str, Any]:
    event = dm_event(CITIZEN, text="Hallo")
    for path, value in changes.items():
        target = event
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return event


@pytest.mark.parametrize(
    ("body", "status", "stored"),
    [
        ([1, 2], 400, False),
        ("text", 400, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": {"0": {}}}, 400, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": ["x", 5, None, []]}, 200, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(type="message_delete")]}, 200, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create__sender_id=["1"])]}, 200, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create__sender_id="../../2/users/me")]}, 200, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(id={"id": 1})]}, 200, False),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create="dm")]}, 200, False),
        ({"for_user_id": "1500000000000000999", "direct_message_events": [_event()]}, 200, False),  # another account's
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create__message_data__text=["Hallo"])]}, 200, True),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create__message_data=None)]}, 200, True),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(created_timestamp="gestern")]}, 200, True),
        ({"for_user_id": ACCOUNT, "direct_message_events": [_event(message_create__message_data__attachment=7)]}, 200, True),
        ({"for_user_id": 1500000000000000001, "direct_message_events": [_event(id=1800000000000000009)]}, 200, True),
        ({"for_user_id": ACCOUNT, "direct_message_indicate_typing_events": [{"sender_id": CITIZEN}]}, 200, False),
        ({"data": {"event_type": "dm.received", "payload": "nope"}}, 200, False),
    ],
)
async def test_bodies_with_wrong_types_get_a_clear_4xx_or_a_decision(bot: Running, body: Any, status: int, stored: bool) -> None:
    response = await bot.deliver(body)
    assert response.status == status
    conv = bot.log.find_conversation("x", CITIZEN)
    assert (conv is not None) == stored
    if stored:  # a decision: the citizen got an answer (a note that the bot reads text, or a reply)
        assert [c.participant for c in bot.api.calls] == [CITIZEN]
        assert [m.author for m in bot.transcript(CITIZEN)] == ["citizen", "bot"]
