"""The officers' inbox over real HTTP: login, guard, CSRF, lockout, queue, conversation, actions."""

from __future__ import annotations

import re

import pytest

from bot.channels.base import SendError
from bot.handover import Conversation, Message
from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import PASSWORD, Browser, csrf_of, next_event, served


def settings_with(settings: Settings, **env: str) -> Settings:
    return Settings.from_env({"DATABASE_PATH": str(settings.database_path), **env}, dotenv=settings.database_path.parent / "none.env")


async def test_first_start_creates_an_officer_and_prints_the_password_once(settings: Settings, triage_no_model: Triage, capsys: pytest.CaptureFixture[str]) -> None:
    async with served(settings, triage_no_model) as (_, server, _):
        password = re.search(r"'officer' with password: (\S+)", capsys.readouterr().out)[1]
        async with Browser(server) as officer:
            assert (await officer.login("officer", password)).status == 303
    async with served(settings, triage_no_model):
        assert "password" not in capsys.readouterr().out


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/inbox", 303), ("GET", "/inbox/queue", 303), ("GET", "/inbox/c/1", 303),
    ("GET", "/inbox/events", 401), ("POST", "/inbox/c/1/claim", 401), ("POST", "/inbox/logout", 401),
])
async def test_no_inbox_page_without_login(settings: Settings, triage_no_model: Triage, method: str, path: str, status: int) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as stranger:
        response = await (stranger.get(path) if method == "GET" else stranger.post(path, csrf=False))
    assert response.status == status
    if status == 303:
        assert response.headers["Location"] == f"/inbox/login?next={path}"


async def test_forms_without_the_csrf_token_are_refused(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        page = await officer.get("/inbox/login")
        assert csrf_of(await page.text())
        assert (await officer.post("/inbox/login", {"name": "anna", "password": PASSWORD}, csrf=False)).status == 403
        assert (await officer.login()).status == 303
        await citizen.open_chat()
        await citizen.write("Ich will mit einem Menschen reden")
        conv = services.handover.conversations(("queued",))[0]
        refused = await officer.post(f"/inbox/c/{conv.id}/claim", csrf=False)
        forged = await officer.post(f"/inbox/c/{conv.id}/claim", {"csrf": "forged"}, csrf=False)
        assert refused.status == 403 and forged.status == 403
        assert services.handover.conversation(conv.id).state == "queued"


async def test_wrong_passwords_lock_the_account(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as officer:
        statuses = [(await officer.login("anna", f"falsch-{n}")).status for n in range(5)]
        locked = await officer.login("anna", PASSWORD)
        assert statuses == [401, 401, 401, 401, 429]
        assert locked.status == 429 and "Zu viele Anmeldeversuche" in await locked.text()
        assert int(locked.headers["Retry-After"]) > 600
        other = await officer.login("officer", "auch-falsch-123")
        assert other.status == 401
        actions = [r[0] for r in services.handover.db.execute("SELECT action FROM events WHERE actor = 'anna' ORDER BY id")]
        assert actions[-2:] == ["login_failed", "login_locked"]


@pytest.mark.parametrize("public_url, secure", [("", False), ("https://streife.example", True)])
async def test_the_session_cookie_is_httponly_and_samesite_strict(settings: Settings, triage_no_model: Triage, public_url: str, secure: bool) -> None:
    async with served(settings_with(settings, PUBLIC_URL=public_url), triage_no_model) as (_, server, _), Browser(server) as officer:
        form = await officer.get("/inbox/login")
        login_cookie = form.cookies["streife_login"]
        officer.http.cookie_jar.update_cookies({"streife_login": login_cookie.value})  # a TLS proxy would pass it on
        officer.csrf = csrf_of(await form.text())
        response = await officer.post("/inbox/login", {"name": "anna", "password": PASSWORD})
    cookie = response.cookies["streife_session"]
    assert response.status == 303
    for c in (cookie, login_cookie):
        assert c["httponly"] and c["samesite"] == "Strict" and bool(c["secure"]) == secure


async def test_logout_ends_the_session(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as officer:
        await officer.login()
        token = officer.http.cookie_jar.filter_cookies(officer.url("/inbox"))["streife_session"].value
        assert (await officer.post("/inbox/logout")).status == 303
        officer.http.cookie_jar.update_cookies({"streife_session": token})  # an old cookie replayed
        assert (await officer.get("/inbox")).status == 303


async def test_the_queue_shows_emergencies_first_then_the_longest_waiting(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        for words in ("Mensch bitte", "Ich brauche jemanden echt", "Hilfe, hier ist ein Einbrecher im Haus!"):
            async with Browser(server) as citizen:
                await citizen.open_chat()
                await citizen.write(words)
        await officer.login()
        html = await officer.page("/inbox")
    rows = re.findall(r'<tr class="(\w+)" data-conversation="(\d+)">', html)
    assert rows == [("emergency", "3"), ("handover", "1"), ("handover", "2")]
    assert "🚨 Notfall" in html and re.search(r'class="waited"[^>]*>\d+ s<', html)


async def test_citizen_text_is_always_escaped(settings: Settings, triage_no_model: Triage) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write(attack)
        await officer.login()
        conv = services.handover.find_conversation("webchat", citizen.http.cookie_jar.filter_cookies(citizen.url("/"))["streife_chat"].value)
        html = await officer.page(f"/inbox/c/{conv.id}")
        response = await officer.get(f"/inbox/c/{conv.id}")
    assert attack not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_claim_reply_note_close_as_the_citizen_and_the_audit_trail_see_it(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("Ich möchte bitte mit einem Menschen sprechen")
        conv = services.handover.conversations(("queued",))[0]
        await officer.login()
        assert (await officer.post(f"/inbox/c/{conv.id}/claim")).status == 303
        claimed = services.handover.conversation(conv.id)
        await citizen.write("Hallo? Ist da wer?")
        quiet = await citizen.transcript()
        assert (await officer.post(f"/inbox/c/{conv.id}/reply", {"text": "Hallo, hier ist Anna vom Team."})).status == 303
        assert (await officer.post(f"/inbox/c/{conv.id}/note", {"text": "Bürgerin wirkt ruhig, kein Notfall."})).status == 303
        view = await officer.page(f"/inbox/c/{conv.id}")
        after_reply = await citizen.transcript()
        assert (await officer.post(f"/inbox/c/{conv.id}/close")).status == 303
        closed = services.handover.conversation(conv.id)
        await citizen.write("Danke!", button="thanks")
        final = await citizen.transcript()
        events = [r[0] for r in services.handover.db.execute("SELECT action FROM events WHERE conversation_id = ? ORDER BY id", [conv.id])]
    assert (claimed.state, claimed.officer) == ("claimed", "anna")
    assert [m["author"] for m in quiet["messages"]][-2:] == ["bot", "citizen"]  # the bot kept quiet
    assert after_reply["messages"][-1] == {"id": after_reply["messages"][-1]["id"], "author": "officer", "text": "Hallo, hier ist Anna vom Team.", "buttons": []}
    assert "Bürgerin wirkt ruhig" in view and "Interne Notiz" in view
    assert all("Bürgerin wirkt ruhig" not in m["text"] for m in final["messages"])
    assert closed.state == "closed" and closed.priority == 0
    texts = [m["text"] for m in final["messages"]]
    assert texts[-3].startswith("Das Team hat den Chat beendet.")
    assert final["messages"][-1]["author"] == "bot" and final["state"] == "closed"
    assert events == ["queue", "claim", "reply", "note", "close"]


async def test_relabelling_a_citizen_message_is_stored_for_the_trainers(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write("mein fahrrad ist weg")
        conv = services.handover.conversations(("queued",))[0]
        first = services.handover.transcript(conv.id)[0]
        await officer.login()
        html = await officer.page(f"/inbox/c/{conv.id}")
        assert html.count('<option value="bike_theft"') == 1
        ok = await officer.post(f"/inbox/c/{conv.id}/relabel", {"message_id": str(first.id), "intent": "bike_theft"})
        bad = await officer.post(f"/inbox/c/{conv.id}/relabel", {"message_id": str(first.id), "intent": "pizza"})
        relabelled = services.handover.message(first.id)
    assert ok.status == 303 and bad.status == 400
    assert relabelled.meta["relabel"] == "bike_theft" and relabelled.meta["relabelled_by"] == "anna"


class BlockedSender:
    """A channel whose platform refuses the message for good (the citizen blocked the bot)."""

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        raise SendError("403 Forbidden: bot was blocked by the user", final=True)


async def test_the_conversation_shows_delivery_failures_and_the_channel_notice(settings: Settings, triage_no_model: Triage) -> None:
    from bot.handover import Inbound

    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        services.dispatcher.senders["telegram"] = BlockedSender()
        await services.dispatcher.handle(Inbound("telegram", "42", "42", "Mensch", platform_id="1"))
        conv = services.handover.find_conversation("telegram", "42")
        services.handover.update_conversation(conv.id, meta={"channel_notice": "Dieser Chat kann auf Telegram nicht mehr beantwortet werden"})
        await officer.login()
        await officer.post(f"/inbox/c/{conv.id}/reply", {"text": "Hallo!"})
        html = await officer.page(f"/inbox/c/{conv.id}")
    assert "⚠️ Dieser Chat kann auf Telegram nicht mehr beantwortet werden" in html
    assert html.count("fehlgeschlagen") == 2 and "Fehler: 403 Forbidden: bot was blocked by the user" in html


async def test_an_emergency_reaches_the_inbox_stream_at_once(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        await officer.login()
        stream = await officer.http.get(officer.url("/inbox/events"))
        await next_event(stream, "hello")
        await citizen.open_chat()
        await citizen.write("Hilfe, hier ist ein Einbrecher im Haus!")
        events = [await next_event(stream) for _ in range(2)]
        stream.close()
        conv = services.handover.conversations(("queued",))[0]
    assert [e["kind"] for e in events] == ["message", "escalated"]
    assert events[1] == {"kind": "escalated", "conversation_id": conv.id, "state": "queued", "priority": 2, "escalated": True}


@pytest.mark.parametrize("target, lands_on", [("/inbox/c/7", "/inbox/c/7"), ("//evil.example/inbox", "/inbox"), ("https://evil.example", "/inbox")])
async def test_after_login_the_officer_lands_on_the_linked_inbox_page_never_elsewhere(settings: Settings, triage_no_model: Triage, target: str, lands_on: str) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as officer:
        page = await officer.get(f"/inbox/login?next={target}")
        officer.csrf = csrf_of(await page.text())
        response = await officer.post("/inbox/login", {"name": "anna", "password": PASSWORD, "next": target})
    assert response.status == 303 and response.headers["Location"] == lands_on
