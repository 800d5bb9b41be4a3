"""The web chat over real HTTP: a citizen writes, the bot and officers answer, the page learns of it live."""

from __future__ import annotations

import copy
import uuid

import aiohttp

from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import Browser, next_event, served


async def test_a_new_browser_gets_its_own_chat_and_the_bot_answers(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen, Browser(server) as other:
        page = await citizen.get("/")
        await other.open_chat()
        await citizen.write("Hilfe, hier ist ein Einbrecher im Haus!")
        mine, theirs = await citizen.transcript(), await other.transcript()
    cookie = page.cookies["streife_chat"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"  # a link from another site keeps the chat (M7)
    assert [m["author"] for m in mine["messages"]] == ["citizen", "bot"]
    assert mine["messages"][1]["text"].startswith("🚨") and mine["state"] == "queued"
    assert theirs == {"state": "new", "messages": []}


async def test_a_message_sent_twice_with_the_same_id_is_answered_once(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as citizen:
        await citizen.open_chat()
        message_id = str(uuid.uuid4())
        first = await citizen.write("Danke euch!", button="thanks", message_id=message_id)
        again = await citizen.write("Danke euch!", button="thanks", message_id=message_id)
        transcript = await citizen.transcript()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert [m["author"] for m in transcript["messages"]] == ["citizen", "bot"]


async def test_topic_buttons_are_offered_and_pressing_one_answers_that_topic(settings: Settings, triage_model: Triage) -> None:
    async with served(settings, triage_model) as (_, server, _), Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Wie wird das Wetter morgen?")
        offered = (await citizen.transcript())["messages"][-1]["buttons"]
        label, intent = next(b for b in offered if b[1] == "report_crime")
        await citizen.write(label, button=intent)
        after = await citizen.transcript()
    assert ["📝 Anzeige erstatten", "report_crime"] in offered and ["🙋 Mit einem Menschen sprechen", "human_handoff"] in offered
    assert after["messages"][-2]["text"] == "📝 Anzeige erstatten" and after["messages"][-1]["author"] == "bot"
    assert "Anzeige" in after["messages"][-1]["text"] and after["messages"][-1]["buttons"] == []
    assert after["messages"][1]["buttons"] == []  # older replies no longer offer buttons


async def test_requests_a_page_would_never_send_are_refused(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen:
        url = citizen.url("/chat/messages")
        no_cookie = await citizen.http.post(url, json={"text": "hallo", "id": str(uuid.uuid4())})
        await citizen.open_chat()
        as_form = await citizen.http.post(url, data={"text": "hallo", "id": str(uuid.uuid4())})
        no_id = await citizen.http.post(url, json={"text": "hallo"})
        empty = await citizen.http.post(url, json={"text": "  ", "id": str(uuid.uuid4())})
        bad_button = await citizen.http.post(url, json={"text": "x", "button": "pizza", "id": str(uuid.uuid4())})
        stored = services.handover.conversations()
    assert [r.status for r in (no_cookie, as_form, no_id, empty, bad_button)] == [400, 415, 400, 400, 400]
    assert stored == []


async def test_the_citizen_page_learns_of_an_officer_reply_at_once(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen, Browser(server) as officer:
        await citizen.open_chat()
        await citizen.write("Ich möchte bitte mit einem Menschen sprechen")
        stream = await citizen.http.get(citizen.url("/chat/events"), timeout=aiohttp.ClientTimeout(total=30))
        await next_event(stream, "hello")
        conv = services.handover.conversations(("queued",))[0]
        await officer.login()
        await officer.post(f"/inbox/c/{conv.id}/claim")
        await officer.post(f"/inbox/c/{conv.id}/note", {"text": "nur intern"})
        await officer.post(f"/inbox/c/{conv.id}/reply", {"text": "Hallo, hier ist Anna."})
        event = await next_event(stream)
        stream.close()
        transcript = await citizen.transcript()
    assert event["kind"] in ("sent", "officer")
    assert transcript["messages"][-1]["author"] == "officer" and transcript["messages"][-1]["text"] == "Hallo, hier ist Anna."
    assert all(m["text"] != "nur intern" for m in transcript["messages"])


async def test_the_chat_page_is_served_with_its_script_and_no_inline_code(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as citizen:
        page = await citizen.get("/")
        html = await page.text()
        script = await citizen.get("/static/webchat.js")
    assert '<script src="/static/webchat.js" defer></script>' in html and "onclick" not in html
    assert script.status == 200 and "EventSource" in await script.text()
    assert "110" in html


def always_asks(triage: Triage) -> Triage:
    """The real triage with the check band stretched down to 0: what the model does not escalate gets "in danger?"."""
    asking = copy.copy(triage)
    asking.check_threshold = 0.0
    return asking


async def test_the_check_offers_two_buttons_and_in_danger_now_gives_the_110_prompt(settings: Settings, triage_model: Triage) -> None:
    async with served(settings, always_asks(triage_model)) as (_, server, services), Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Wo ist die nächste Polizeiwache?")
        asked = await citizen.transcript()
        danger, safe = asked["messages"][-1]["buttons"]
        await citizen.write(danger[0], button=danger[1])
        after = await citizen.transcript()
        conv = services.handover.conversations()[0]
    question = asked["messages"][-1]["text"]
    assert "\n\nBist du oder ist jemand gerade in Gefahr?" in question and question.count("Im Notfall ruf bitte immer die 110 an.") == 1
    assert danger[0] == "🚨 Ja, gerade in Gefahr" and danger[1] in ("emergency", "self_harm")
    assert safe == ["Nein", "not_in_danger"]
    assert asked["state"] == "bot"  # a check alone goes to no queue
    assert after["messages"][-1]["text"].startswith("🚨 Wenn du in Gefahr bist: Ruf jetzt die 110 an.")
    assert (after["state"], conv.priority) == ("queued", 2)


async def test_no_to_the_check_gets_thanks_and_the_answer_to_the_question(settings: Settings, triage_model: Triage) -> None:
    async with served(settings, always_asks(triage_model)) as (_, server, services), Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Mein Fahrrad wurde geklaut, was soll ich jetzt tun?")
        safe = (await citizen.transcript())["messages"][-1]["buttons"][1]
        await citizen.write(safe[0], button=safe[1])
        after = await citizen.transcript()
        conv = services.handover.conversations()[0]
        inbound = [(m.intent, m.action) for m in services.handover.transcript(conv.id) if m.direction == "in"]
    reply = after["messages"][-1]["text"]
    assert reply.startswith("Gut, danke für deine Antwort.") and "Rahmennummer" in reply
    assert after["state"] == "bot" and after["messages"][-1]["buttons"] == []
    assert [action for _, action in inbound] == ["check", "answer"] and inbound[1][0] == "bike_theft"
