"""Findings of issue 12 on the web side, each probe repeated over real HTTP on 127.0.0.1.

Bad JSON bodies (a 400, never a 500, nothing lost), a chat cookie that survives a link from another
site while every state-changing call stays JSON-only, the citizen's "end and delete", invisible
characters made visible for officers, and the "Zuletzt beim Bot" list past 200 chats.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from bot.alerts import alert_text
from bot.dispatcher import Event
from bot.handover import Inbound
from bot.settings import Settings
from bot.triage import Triage
from bot.web.visible import visible
from tests.fake_bot_api import FakeBotApi, bot_settings, free_port, running_bot
from tests.web_support import Browser, next_event, served

EMERGENCY = "Hilfe, hier ist ein Einbrecher im Haus!"
NESTED = b'{"text": "hallo", "id": "abcdefgh-1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
JSON = {"Content-Type": "application/json"}


def count(services, where: str = "1") -> int:  # type: ignore[no-untyped-def]
    return services.handover.db.execute(f"SELECT COUNT(*) FROM messages WHERE {where}").fetchone()[0]


# -- bad JSON: 400, never 500 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    NESTED,
    b"[" * 70 + b"]" * 70,
    b'{"text": "hallo \\ud800 du", "id": "abcdefgh-2"}',
    b'{"text": "\\udc00", "id": "abcdefgh-3"}',
    b'{"text": "hallo", "id": "abcdefgh-4", "button": ["report_crime"]}',
    b'{"text": {"nested": "object"}, "id": "abcdefgh-5"}',
    b"\xff\xfe{",
], ids=["nested-100000", "nested-70", "lone-high-surrogate", "lone-low-surrogate", "button-list", "text-object", "not-utf8"])
async def test_bad_json_in_the_web_chat_is_a_400_and_nothing_is_stored(settings: Settings, triage_no_model: Triage, body: bytes) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen:
        await citizen.open_chat()
        response = await citizen.http.post(citizen.url("/chat/messages"), data=body, headers=JSON)
        stored = count(services)
    assert response.status == 400 and stored == 0


async def test_a_meta_webhook_with_nesting_is_a_400_and_a_lone_surrogate_is_stored_replaced(tmp_path: Path) -> None:
    from tests.fake_graph_api import FakeGraphApi
    from tests.instagram_helpers import PAGE_TOKEN, TOKEN, message, meta_settings, notification, running

    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    try:
        async with running(meta_settings(tmp_path, graph), graph) as bot:
            nested = await bot.post(None, raw=b'{"object": "instagram", "entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
            raw = json.dumps(notification(message("ig-surrogate", "Hilfe \ud800 Einbrecher im Haus"))).encode()
            surrogate = await bot.post(None, raw=raw)
            await bot.channel.drain()
            texts = [m.text for m in bot.transcript("ig-surrogate")]
    finally:
        await graph.stop()
    assert nested.status == 400 and surrogate.status == 200
    assert texts[0] == "Hilfe \ufffd Einbrecher im Haus" and texts[1].startswith("🚨")  # acknowledged, so stored and answered


async def test_a_telegram_webhook_with_nesting_is_a_400_and_a_lone_surrogate_is_stored_replaced(
    tmp_path: Path, triage_no_model: Triage
) -> None:
    fake = await FakeBotApi().start()
    port = free_port()
    settings = bot_settings(tmp_path, fake, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
                            TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1")
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1", **JSON}
    try:
        async with running_bot(settings, triage_no_model, port=port) as services:
            await fake.wait_for(lambda: fake.webhook.get("url"))
            url = f"http://127.0.0.1:{port}/telegram/webhook"
            update = {"update_id": 77, "message": fake.message(51, "Hilfe \udc80 Einbrecher im Haus")}
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=b'{"update_id": 76, "message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                                        headers=headers) as response:
                    nested = response.status
                async with session.post(url, data=json.dumps(update).encode(), headers=headers) as response:
                    surrogate = response.status
            await fake.wait_for(lambda: fake.sent(51))
            conv = services.handover.find_conversation("telegram", "51")
            text = services.handover.transcript(conv.id)[0].text
    finally:
        await fake.stop()
    assert (nested, surrogate) == (400, 200)
    assert text == "Hilfe \ufffd Einbrecher im Haus" and fake.sent(51)[0]["plain"].startswith("🚨")


@pytest.mark.parametrize("form", [
    b"text=kaputt%ED%A0%80text&csrf=",  # percent-encoded lone surrogate (not UTF-8)
    b"text=%FF%FEkaputt&csrf=",
], ids=["surrogate-bytes", "not-utf8"])
async def test_inbox_forms_with_broken_encoding_are_stored_readably(settings: Settings, triage_no_model: Triage, form: bytes) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Ich möchte mit einem Menschen sprechen")
        conv = services.handover.conversations(("queued",))[0]
        await officer.login()
        response = await officer.http.post(officer.url(f"/inbox/c/{conv.id}/note"), data=form + officer.csrf.encode(),
                                           headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
        notes = [r[0] for r in services.handover.db.execute("SELECT text FROM notes")]
    assert response.status == 303 and len(notes) == 1 and "kaputt" in notes[0] and "\ufffd" in notes[0]


async def test_a_multipart_inbox_form_with_broken_bytes_is_no_500(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Ich möchte mit einem Menschen sprechen")
        conv = services.handover.conversations(("queued",))[0]
        await officer.login()
        form = aiohttp.FormData()
        form.add_field("csrf", officer.csrf)
        form.add_field("text", b"kaputt \xed\xa0\x80 \xff", content_type="text/plain; charset=utf-8")
        response = await officer.http.post(officer.url(f"/inbox/c/{conv.id}/note"), data=form, allow_redirects=False)
    assert response.status < 500


# -- the chat cookie and JSON-only calls --------------------------------------------------------------------------

async def test_the_chat_cookie_is_lax_and_every_state_changing_call_is_json_from_this_site_only(
    settings: Settings, triage_no_model: Triage
) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen:
        page = await citizen.get("/")
        await citizen.write("Wo ist das Fundbüro?")
        url = citizen.url
        as_form = await citizen.http.post(url("/chat/messages"), data={"text": "hallo", "id": "abcdefgh-9"})
        as_text = await citizen.http.post(url("/chat/messages"), data='{"text": "hallo", "id": "abcdefgh-9"}',
                                          headers={"Content-Type": "text/plain"})
        cross_site = await citizen.http.post(url("/chat/messages"), json={"text": "hallo", "id": "abcdefgh-9"},
                                             headers={"Sec-Fetch-Site": "cross-site"})
        delete_form = await citizen.http.post(url("/chat/delete"), data={"x": "1"})
        delete_cross = await citizen.http.post(url("/chat/delete"), json={}, headers={"Sec-Fetch-Site": "cross-site"})
        arriving = await citizen.http.get(url("/"), headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
        still = await citizen.transcript()
        stored = count(services, "direction = 'in'")
    cookie = page.cookies["streife_chat"]
    assert cookie["samesite"] == "Lax" and cookie["httponly"] and cookie["path"] == "/"
    assert [r.status for r in (as_form, as_text, cross_site, delete_form, delete_cross)] == [415, 415, 403, 415, 403]
    assert arriving.status == 200 and "streife_chat" not in arriving.cookies  # arriving from a link keeps the chat
    assert stored == 1 and len(still["messages"]) == 2


# -- the citizen ends and deletes the chat (M8) -----------------------------------------------------------------

async def test_the_citizen_ends_and_deletes_a_chat_and_it_is_gone(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Danke euch! Kennwort Apfelbaum-4411", button="thanks")
        conv = services.handover.conversations(("bot", "queued"))[0]
        response = await citizen.http.post(citizen.url("/chat/delete"), json={})
        body = await response.json()
        gone = services.handover.find_conversation("webchat", conv.chat_id)
        left = count(services)
        audit = services.handover.db.execute("SELECT actor, action, conversation_id, detail FROM events ORDER BY id").fetchall()
        after = await citizen.http.get(citizen.url("/chat/transcript"))
        await citizen.open_chat()  # a new page: a new, empty chat
        fresh = await citizen.transcript()
    assert response.status == 200 and body["message"].startswith("Der Chat ist beendet und gelöscht")
    assert response.cookies["streife_chat"].value == "" and after.status == 400  # the cookie is gone
    assert gone is None and left == 0 and fresh == {"state": "new", "messages": []}
    assert audit[-1][:3] == ("citizen", "citizen_deleted", None)
    assert "Apfelbaum" not in str(audit) and json.loads(audit[-1][3])["open"] is False
    assert b"Apfelbaum-4411" not in b"".join(p.read_bytes() for p in settings.database_path.parent.glob("streife.sqlite3*"))


async def test_officers_see_that_a_citizen_deleted_an_open_emergency_until_one_marks_it_seen(
    settings: Settings, triage_no_model: Triage
) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen, Browser(server) as officer:
        await officer.login()
        stream = await officer.http.get(officer.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        await citizen.open_chat()
        await citizen.write(EMERGENCY)
        conv = services.handover.conversations(("queued",))[0]
        await citizen.http.post(citizen.url("/chat/delete"), json={})
        event = await next_event(stream)
        while event["kind"] != "deleted":  # message, escalated, sent ... then the deletion
            event = await next_event(stream)
        stream.close()
        queue = await officer.page("/inbox")
        notice = queue[queue.index('class="deleted"'):queue.index("Wartet auf das Team")]
        event_id = int(notice.split('data-deleted="')[1].split('"')[0])
        seen = await officer.post(f"/inbox/deleted/{event_id}/seen")
        after = await officer.page("/inbox")
        audit = [r[0] for r in services.handover.db.execute("SELECT detail FROM events")]
    assert event["kind"] == "deleted" and event["conversation_id"] == conv.id and event["priority"] == 2
    assert "🚨 Notfall" in notice and f"Chat #{conv.id}" in notice and "gelöscht" in notice and "Einbrecher" not in notice
    assert seen.status == 303 and 'class="deleted"' not in after
    assert not any("emergency" in detail or "Einbrecher" in detail for detail in audit)  # no intent, no text


# -- invisible characters where officers read -------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("ruf \u202e011 na", "ruf ⟦U+202E⟧011 na"),
    ("Ein\u200bbrecher\u2066", "Ein⟦U+200B⟧brecher⟦U+2066⟧"),
    ("\ufeffhallo\u200d", "⟦U+FEFF⟧hallo⟦U+200D⟧"),
    ("Familie 👨\u200d👩\u200d👧", "Familie 👨\u200d👩\u200d👧"),  # joiners inside emoji stay
    ("می\u200cخواهم", "می\u200cخواهم"),  # the non-joiner between Persian letters stays
])
def test_invisible_and_direction_characters_are_shown_as_code_points(raw: str, shown: str) -> None:
    assert visible(raw) == shown


async def test_officers_see_hidden_characters_but_the_stored_message_keeps_them(settings: Settings, triage_no_model: Triage) -> None:
    sneaky = "Bitte \u202eMensch\u202c, ich brauche Hilfe\u200b"
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write(sneaky)
        conv = services.handover.conversations(("queued", "bot"))[0]
        await officer.login()
        html = await officer.page(f"/inbox/c/{conv.id}")
        stored = services.handover.transcript(conv.id)[0]
    assert "\u202e" not in html and "\u200b" not in html and "⟦U+202E⟧Mensch⟦U+202C⟧" in html
    assert stored.text == sneaky
    alert = alert_text(Event("escalated", conv, stored), Settings(alert_include_text=True))
    assert "\u202e" not in alert and "⟦U+202E⟧" in alert


# -- "Zuletzt beim Bot" past 200 chats ----------------------------------------------------------------------------

async def test_the_recent_list_shows_the_chats_that_changed_last_however_many_there_are(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        log = services.handover
        for n in range(230):
            log.record_inbound(Inbound("webchat", f"chat-{n:03d}", f"u{n}", "Danke!", platform_id=f"p{n}"))
        oldest = log.find_conversation("webchat", "chat-000")
        await asyncio.sleep(0.01)
        log.update_conversation(oldest.id, language="de")  # the first chat changed last
        await officer.login()
        html = await officer.page("/inbox")
        recent = html[html.index("Zuletzt beim Bot"):]
    ids = [int(i) for i in re.findall(r'href="/inbox/c/(\d+)"', recent)]
    assert ids[0] == oldest.id and len(ids) == 30
    assert ids[1:] == list(range(230, 201, -1))


# -- any bytes in headers and query strings -----------------------------------------------------------------------

async def _raw(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("method, target, header", [
    (b"GET", b"/metrics", b"Authorization: Bearer \xff\xfe\xed\xa0\x80"),
    (b"GET", b"/healthz", b"Authorization: Bearer \xff\xfe"),
    (b"GET", b"/inbox", b"Cookie: streife_session=\xff\xfe\xed\xa0\x80"),
    (b"GET", b"/inbox/events", b"Cookie: streife_session=\xff"),
    (b"GET", b"/chat/transcript", b"Cookie: streife_chat=\xff\xfeabcdefgh"),
    (b"POST", b"/chat/messages", b"Cookie: streife_chat=abcdefgh-\xff"),
    (b"POST", b"/instagram/webhook", b"X-Hub-Signature-256: sha256=\xff\xfe"),
    (b"GET", b"/instagram/webhook?hub.mode=subscribe&hub.verify_token=%ff%fe&hub.challenge=1", b"X-Any: 1"),
    (b"POST", b"/inbox/login", b"Cookie: streife_login=\xff\xfe"),
    (b"POST", b"/inbox/login", b"Cookie: streife_login=\xc3\xa4"),  # "ä": hmac.compare_digest refuses non-ASCII text
], ids=["metrics-bearer", "healthz-bearer", "session-cookie", "events-cookie", "chat-cookie", "chat-post-cookie",
        "meta-signature", "meta-verify-token", "login-cookie", "login-cookie-umlaut"])
async def test_bytes_that_are_not_utf8_in_a_header_are_refused_never_a_500(
    settings: Settings, triage_no_model: Triage, method: bytes, target: bytes, header: bytes
) -> None:
    from tests.web_support import with_settings

    secured = with_settings(settings, metrics_token="metrics-token", instagram_app_secret="app-secret",
                            instagram_verify_token="verify-token")
    async with served(secured, triage_no_model) as (_, server, _):
        body = b'{"text": "hallo", "id": "abcdefgh-1"}'
        status = await _raw(server.port, method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header +
                            b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                            b"\r\nConnection: close\r\n\r\n" + body)
    assert 200 <= status < 500


async def test_deleting_while_the_bot_still_answers_waits_for_the_answer_and_then_deletes_everything(
    settings: Settings, triage_no_model: Triage, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = triage_no_model.decide

    async def slow_decide(*args, **kw):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)  # the model takes its time
        return await decide(*args, **kw)

    monkeypatch.setattr(triage_no_model, "decide", slow_decide)
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as citizen:
        await citizen.open_chat()
        sending = asyncio.ensure_future(citizen.send("Wo ist das Fundbüro?"))
        await asyncio.sleep(0.1)
        deleted = await citizen.http.post(citizen.url("/chat/delete"), json={})
        sent = await sending
        left = count(services)
        conversations = services.handover.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    assert (sent.status, deleted.status) == (202, 200) and left == 0 and conversations == 0
