"""The web chat in a real browser (Debian's Chromium via Playwright): a busy server, a link from another site, ending the chat."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Busy:
    """The database is busy for the first `times` messages (the storage middleware answers 503), then fine."""

    def __init__(self, handle: Any, times: int) -> None:
        self.handle, self.times, self.calls = handle, times, 0

    async def __call__(self, inbound: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise sqlite3.OperationalError("database is locked")
        return await self.handle(inbound)


async def test_a_busy_server_keeps_the_typed_text_and_the_page_sends_it_again(
    settings: Settings, triage_no_model: Triage, chromium: Any
) -> None:
    from playwright.async_api import expect

    async with served(settings, triage_no_model) as (_, server, services):
        busy = Busy(services.dispatcher.handle, times=2)
        services.dispatcher.handle = busy  # type: ignore[method-assign]
        page = await (await chromium.new_context()).new_page()
        await page.goto(str(server.make_url("/")))
        await expect(page.locator("body[data-live=on]")).to_have_count(1)
        await page.fill("#text", "Mein Fahrrad wurde gestohlen, was nun?")
        await page.press("#text", "Enter")
        await expect(page.locator("body[data-retries='1']")).to_have_count(1)
        assert await page.input_value("#text") == "Mein Fahrrad wurde gestohlen, was nun?"  # kept while it fails
        await expect(page.locator("#status")).to_contain_text("neuer Versuch")
        await expect(page.locator(".messages li.citizen")).to_have_text(["DuMein Fahrrad wurde gestohlen, was nun?"], timeout=15000)
        await expect(page.locator("#text")).to_have_value("")
        stored = [m.text for m in services.handover.iter_messages("direction = 'in'")]
    assert busy.calls == 3 and stored == ["Mein Fahrrad wurde gestohlen, was nun?"]  # sent again, stored once


async def test_over_a_limit_the_text_stays_and_the_page_says_why(settings: Settings, triage_no_model: Triage, chromium: Any) -> None:
    from playwright.async_api import expect

    from tests.web_support import with_settings

    async with served(with_settings(settings, webchat_messages_per_minute=1), triage_no_model) as (_, server, _):
        page = await (await chromium.new_context()).new_page()
        await page.goto(str(server.make_url("/")))
        await expect(page.locator("body[data-live=on]")).to_have_count(1)
        await page.fill("#text", "Wo ist das Fundbüro?")
        await page.press("#text", "Enter")
        await expect(page.locator(".messages li.citizen")).to_have_count(1)
        await page.fill("#text", "Und wann hat es offen?")
        await page.press("#text", "Enter")
        await expect(page.locator("#status")).to_contain_text("sehr viele Nachrichten")
        assert await page.input_value("#text") == "Und wann hat es offen?"


async def test_a_citizen_coming_back_through_a_link_on_another_site_sees_the_chat(
    settings: Settings, triage_no_model: Triage, chromium: Any
) -> None:
    """M7: with a SameSite=Strict cookie this navigation arrived without the cookie and showed an empty chat."""
    from playwright.async_api import expect

    async with served(settings, triage_no_model) as (_, server, _):
        chat = str(server.make_url("/"))

        async def elsewhere(request: web.Request) -> web.Response:
            return web.Response(text=f'<!doctype html><a id="go" href="{chat}">Zum Chat der Polizei</a>', content_type="text/html")

        other_site = web.Application()
        other_site.router.add_get("/", elsewhere)
        async with TestServer(other_site, host="127.0.0.2") as other:  # another site: another host
            page = await (await chromium.new_context()).new_page()
            await page.goto(chat)
            await expect(page.locator("body[data-live=on]")).to_have_count(1)
            await page.fill("#text", "Ich möchte bitte mit einem Menschen sprechen")
            await page.press("#text", "Enter")
            await expect(page.locator(".messages li.bot")).to_have_count(1)
            await page.goto(str(other.make_url("/")))
            await page.click("#go")
            await expect(page).to_have_url(chat)
            await expect(page.locator(".messages li.citizen")).to_contain_text("mit einem Menschen sprechen")


async def test_the_citizen_ends_the_chat_and_everything_is_gone(settings: Settings, triage_no_model: Triage, chromium: Any) -> None:
    from playwright.async_api import expect

    async with served(settings, triage_no_model) as (_, server, services):
        page = await (await chromium.new_context()).new_page()
        await page.goto(str(server.make_url("/")))
        await expect(page.locator("body[data-live=on]")).to_have_count(1)
        await page.fill("#text", "Mein Freund kontrolliert mein Handy, ich habe Angst")
        await page.press("#text", "Enter")
        await expect(page.locator(".messages li.bot")).not_to_have_count(0)
        await page.click("#end-chat")
        await expect(page.locator("#end-confirm")).to_be_visible()
        await page.click("#end-yes")
        await expect(page.locator("#ended")).to_contain_text("Der Chat ist beendet und gelöscht")
        await expect(page.locator(".messages li")).to_have_count(0)
        await expect(page.locator("#composer")).to_be_hidden()
        assert services.handover.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        await page.click("text=Neuen Chat beginnen")
        await expect(page.locator("body[data-live=on]")).to_have_count(1)
        await expect(page.locator(".messages li")).to_have_count(0)
        cookies = [c["value"] for c in await page.context.cookies() if c["name"] == "streife_chat"]
        conversations = services.handover.db.execute("SELECT chat_id FROM conversations").fetchall()
    assert len(cookies) == 1 and conversations == []  # a new chat id, and nothing left of the old one


async def test_when_live_streams_are_full_the_page_says_so_and_still_shows_replies(
    settings: Settings, triage_no_model: Triage, chromium: Any
) -> None:
    from playwright.async_api import expect

    from bot.web.keys import STATES
    from tests.web_support import with_settings

    async with served(with_settings(settings, webchat_streams=1), triage_no_model) as (app, server, services):
        first = await (await chromium.new_context()).new_page()
        await first.goto(str(server.make_url("/")))
        await expect(first.locator("body[data-live=on]")).to_have_count(1)
        second = await (await chromium.new_context()).new_page()
        await second.goto(str(server.make_url("/")))
        await expect(second.locator("#status")).to_contain_text("Live-Anzeige ist gerade ausgelastet")
        await second.fill("#text", "Ich möchte bitte mit einem Menschen sprechen")
        await second.press("#text", "Enter")
        await expect(second.locator(".messages li.bot")).to_have_count(1)
        conv = services.handover.conversations(("queued",))[0]
        reply = app[STATES].reply(conv.id, "anna", "Hallo, hier ist Anna vom Team.")
        await services.dispatcher.deliver([reply])
        await expect(second.locator(".messages li.officer")).to_contain_text("hier ist Anna", timeout=15000)  # polled
