"""End to end in a real browser (Debian's Chromium via Playwright): citizen and officer on one emergency."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import PASSWORD, served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")


async def test_an_emergency_goes_from_the_web_chat_to_an_officer_and_back_to_the_bot(settings: Settings, triage_model: Triage) -> None:
    from playwright.async_api import async_playwright, expect

    async with served(settings, triage_model) as (_, server, services), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            base = str(server.make_url("/")).rstrip("/")
            officer = await (await browser.new_context()).new_page()
            citizen = await (await browser.new_context()).new_page()

            await officer.goto(f"{base}/inbox")
            await officer.fill("input[name=name]", "anna")
            await officer.fill("input[name=password]", PASSWORD)
            await officer.click("button[type=submit]")
            await expect(officer.locator("body[data-live=on]")).to_have_count(1)
            await officer.evaluate("window.notReloaded = true")

            await citizen.goto(base + "/")
            await expect(citizen.locator("body[data-live=on]")).to_have_count(1)
            await citizen.fill("#text", "Hilfe! Bei mir ist gerade jemand eingebrochen, er ist noch im Haus")
            await citizen.press("#text", "Enter")
            await expect(citizen.locator(".messages li.bot").last).to_contain_text("110")

            row = officer.locator("tr.emergency")  # arrives live, the page is not reloaded
            await expect(row).to_contain_text("🚨 Notfall")
            await expect(officer.locator("#alert-banner")).to_be_visible()
            assert await officer.evaluate("window.notReloaded === true")

            await row.locator("a").click()
            await expect(officer.locator(".msg.in").first).to_contain_text("eingebrochen")
            await expect(officer.locator(".msg.in .intent").first).to_have_text("emergency")
            await officer.click("#claim")
            await expect(officer.locator("#conv-state")).to_have_text("In Bearbeitung")
            await officer.fill("#reply-text", "Hier ist Anna von der Polizei. Hast du die 110 schon angerufen?")
            await officer.click("form.reply button")

            await expect(citizen.locator(".messages li.officer")).to_contain_text("Hast du die 110 schon angerufen?")

            await officer.goto(officer.url)  # back to the conversation, then hand it back
            await officer.click("#close")
            await expect(officer).to_have_url(f"{base}/inbox")
            await expect(citizen.locator(".messages li.bot").last).to_contain_text("Das Team hat den Chat beendet")

            await citizen.fill("#text", "Wie wird das Wetter morgen?")
            await citizen.press("#text", "Enter")
            button = citizen.locator("#buttons button", has_text="Anzeige erstatten")
            await button.click()
            await expect(citizen.locator(".messages li.citizen").last).to_have_text("Du📝 Anzeige erstatten")
            await expect(citizen.locator(".messages li.bot").last).to_contain_text("Anzeige")
            conv = services.handover.conversations(("closed",))[0]
            last = services.handover.transcript(conv.id)[-1]
            assert (conv.state, last.author, last.status) == ("closed", "bot", "sent")
        finally:
            await browser.close()
