"""Officer alerts against a fake Telegram Bot API on 127.0.0.1 that records sendMessage."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.alerts import OfficerAlerts
from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.handover import HandoverLog, Inbound
from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import Browser, served

TOKEN = "123456:TEST-token"
CHAT = "-1001234"


class FakeBotApi:
    """Speaks the Bot API's sendMessage: {"ok": true, "result": Message} or an error with error_code."""

    def __init__(self, failures: list[tuple[int, dict[str, Any]]] | None = None) -> None:
        self.failures = list(failures or [])
        self.requests: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self.send_message)
        self.server = TestServer(app, host="127.0.0.1")

    async def send_message(self, request: web.Request) -> web.Response:
        """Record the call; fail as told, else answer like Telegram."""
        body = await request.json()
        self.requests.append({"token": request.match_info["token"], **body})
        if self.failures:
            status, payload = self.failures.pop(0)
            return web.json_response({"ok": False, "error_code": status, **payload}, status=status)
        self.sent.append(body)
        self.arrived.set()
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent), "date": 0, "chat": {"id": int(body["chat_id"]), "type": "group"}, "text": body["text"]}})

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/bot"))

    async def wait(self, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.sent) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(until(), timeout)
        return self.sent


@asynccontextmanager
async def fake_bot_api(failures: list[tuple[int, dict[str, Any]]] | None = None) -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi(failures)
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


def alert_settings(settings: Settings, fake: FakeBotApi, include_text: bool = False) -> Settings:
    env = {"DATABASE_PATH": str(settings.database_path), "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": fake.base_url,
           "OFFICER_ALERT_CHAT_ID": CHAT, "ALERT_INCLUDE_TEXT": "true" if include_text else "false",
           "PUBLIC_URL": "http://streife.example"}
    return Settings.from_env(env, dotenv=settings.database_path.parent / "none.env")


@asynccontextmanager
async def alerting(settings: Settings, handover: HandoverLog, triage: Triage, backoff: tuple[float, ...] = (0.01,)) -> AsyncIterator[tuple[Dispatcher, OfficerAlerts]]:
    async with aiohttp.ClientSession() as session:
        alerts = OfficerAlerts(settings, session, backoff_s=backoff)
        dispatcher = Dispatcher(handover, triage, {"webchat": LogOnlySender()})
        dispatcher.listeners.append(alerts.on_event)
        yield dispatcher, alerts
        await alerts.drain()


async def test_an_emergency_alerts_the_officers_with_a_link_but_without_the_citizens_words(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    async with fake_bot_api() as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, _):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "Hilfe, mein Ex steht mit einem Messer vor der Tür"))
            sent = await fake.wait()
    conv = handover.find_conversation("webchat", "c1")
    assert fake.requests[0]["token"] == TOKEN
    assert sent[0]["chat_id"] == CHAT
    assert sent[0]["text"].startswith("🚨 NOTFALL")
    assert f"http://streife.example/inbox/c/{conv.id}" in sent[0]["text"]
    assert "Messer" not in sent[0]["text"] and conv.citizen in sent[0]["text"]


async def test_with_alert_include_text_the_citizens_words_are_in_the_alert(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    async with fake_bot_api() as fake:
        async with alerting(alert_settings(settings, fake, include_text=True), handover, triage_no_model) as (dispatcher, _):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "Hilfe, mein Ex steht mit einem Messer vor der Tür"))
            sent = await fake.wait()
    assert "Wortlaut der Person" in sent[0]["text"] and "<code>Hilfe, mein Ex steht mit einem Messer vor der Tür</code>" in sent[0]["text"]


async def test_a_citizen_cannot_fake_lines_or_links_in_an_alert(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    from tests.fake_bot_api import html_to_text  # what Telegram shows for an HTML message (and whether it parses)

    attack = ("Hilfe, Einbrecher!\nIm Posteingang: https://streife.evil/inbox/c/1\r\n🚨 NOTFALL im Chat\u2028"
              "<a href=\"https://evil.example\">Chat öffnen</a> &amp; \u202egnitset\u200b")
    async with fake_bot_api() as fake:
        async with alerting(alert_settings(settings, fake, include_text=True), handover, triage_no_model) as (dispatcher, _):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", attack))
            sent = await fake.wait()
    conv = handover.find_conversation("webchat", "c1")
    assert sent[0]["parse_mode"] == "HTML"
    shown = html_to_text(sent[0]["text"]).splitlines()
    assert shown[0] == "🚨 NOTFALL im Chat" and sum("NOTFALL" in line for line in shown) == 2  # the fake one stays inside the quote
    assert len(shown) == 5 and shown[-1] == f"Im Posteingang: http://streife.example/inbox/c/{conv.id}"
    assert shown[2].startswith("Wortlaut der Person")
    quoted = shown[3]
    assert "<code>" in sent[0]["text"] and "<a href" not in sent[0]["text"]  # the citizen's tag is text, not a link
    assert "https[:]//streife.evil" in quoted and "https://" not in quoted and " ⏎ " in quoted
    assert "⟦U+202E⟧gnitset⟦U+200B⟧" in quoted and "\u202e" not in sent[0]["text"] and "&amp;amp;" in sent[0]["text"]


async def test_one_clients_many_emergencies_are_summed_up_and_a_real_one_still_alerts_at_once(
    settings: Settings, handover: HandoverLog, triage_no_model: Triage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.alerts

    monkeypatch.setattr(bot.alerts, "SUMMARY_DELAY_S", 0.3)
    async with fake_bot_api() as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, alerts):
            for n in range(10):  # one web chat client, ten chats, ten emergencies
                await dispatcher.handle(Inbound("webchat", f"flood-{n}", f"flood-{n}", "Hilfe, Einbrecher!", source="203.0.113.7"))
            await dispatcher.handle(Inbound("webchat", "real", "real", "Mein Vater atmet nicht mehr, hilfe!", source="198.51.100.2"))
            real = handover.find_conversation("webchat", "real")
            await fake.wait(4)
            first = [s["text"] for s in fake.sent[:4]]
            await fake.wait(5)
    texts = [s["text"] for s in fake.sent]
    assert len(texts) == 5 and sum(t.endswith(f"/inbox/c/{real.id}") for t in first) == 1  # the real one among the first four
    assert texts[-1].startswith("🚨 7 weitere Notfälle von derselben Person (Web-Chat, derselbe Anschluss)")


async def test_a_handover_alerts_once_per_queuing(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    async with fake_bot_api() as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, alerts):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "Mensch"))
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "Mensch!!"))
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "hallo??"))
            await alerts.drain()
    assert [s["text"].splitlines()[0] for s in fake.sent] == ["🙋 Neuer Chat für das Team"]


@pytest.mark.parametrize("failures", [
    [(500, {"description": "Internal Server Error"})],
    [(429, {"description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})],
    [(502, {"description": "Bad Gateway"}), (502, {"description": "Bad Gateway"})],
])
async def test_a_failed_alert_is_retried_until_it_arrives(settings: Settings, handover: HandoverLog, triage_no_model: Triage, failures: list) -> None:
    async with fake_bot_api(failures) as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, _):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "hilfe einbrecher"))
            sent = await fake.wait()
    assert len(fake.requests) == len(failures) + 1 and len(sent) == 1


async def test_a_broken_bot_api_never_holds_back_the_citizens_110_reply(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    failures = [(500, {"description": "down"})] * 10
    async with fake_bot_api(failures) as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, alerts):
            replies = await dispatcher.handle(Inbound("webchat", "c1", "u1", "hilfe einbrecher"))
            results = await asyncio.gather(*alerts.tasks)
    assert "110" in replies[0].text and replies[0].status == "sent"
    assert results == [False] and fake.sent == [] and len(fake.requests) == 4


async def test_a_rejected_alert_is_not_retried(settings: Settings, handover: HandoverLog, triage_no_model: Triage) -> None:
    async with fake_bot_api([(400, {"description": "Bad Request: chat not found"})]) as fake:
        async with alerting(alert_settings(settings, fake), handover, triage_no_model) as (dispatcher, _):
            await dispatcher.handle(Inbound("webchat", "c1", "u1", "hilfe einbrecher"))
    assert len(fake.requests) == 1 and fake.sent == []


async def test_the_served_app_alerts_when_a_web_chat_citizen_reports_an_emergency(settings: Settings, triage_no_model: Triage) -> None:
    from tests.fake_bot_api import FakeBotApi as FullBotApi  # getMe and getUpdates too: the Telegram channel runs

    telegram = await FullBotApi().start()
    try:
        env = {"DATABASE_PATH": str(settings.database_path), "TELEGRAM_BOT_TOKEN": telegram.token,
               "TELEGRAM_API_BASE_URL": telegram.base_url, "OFFICER_ALERT_CHAT_ID": CHAT}
        app_settings = Settings.from_env(env, dotenv=settings.database_path.parent / "none.env")
        async with served(app_settings, triage_no_model) as (_, server, _), Browser(server) as citizen:
            await citizen.open_chat()
            await citizen.write("Da prügeln sich zwei, einer blutet stark!")
            await telegram.wait_for(lambda: bool(telegram.sent(int(CHAT))))
            sent = telegram.sent(int(CHAT))
    finally:
        await telegram.stop()
    assert len(sent) == 1 and sent[0]["plain"].startswith("🚨 NOTFALL") and "webchat" in sent[0]["plain"]
