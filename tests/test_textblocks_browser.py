"""Reply templates in a real browser (Debian's Chromium via Playwright): "/" + one key + Enter, then send."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import PASSWORD, served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_MS = 5000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")


async def test_an_officer_inserts_a_template_with_two_keys_after_the_slash_and_the_citizen_reads_it(
        settings: Settings, triage_no_model: Triage) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=STEP_MS)
    async with served(settings, triage_no_model) as (_, server, services), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=15000)
        try:
            base = str(server.make_url("/")).rstrip("/")
            citizen = await (await browser.new_context()).new_page()
            officer = await (await browser.new_context()).new_page()
            for page in (citizen, officer):
                page.set_default_timeout(STEP_MS)

            await citizen.goto(base + "/")
            await expect(citizen.locator("body[data-live=on]")).to_have_count(1)
            await citizen.fill("#text", "Wann ist bei euch jemand da? Ich will mit einem Menschen reden")
            await citizen.press("#text", "Enter")
            await expect(citizen.locator(".messages li.citizen")).to_have_count(1)
            conv = services.handover.conversations(("queued",))[0]
            first = services.handover.transcript(conv.id)[0]
            services.handover.relabel(first.id, "station_contact", "ben")  # the chat is about office hours

            await officer.goto(f"{base}/inbox/c/{conv.id}")
            await officer.fill("input[name=name]", "anna")
            await officer.fill("input[name=password]", PASSWORD)
            await officer.click("button[type=submit]")
            await expect(officer.locator("body[data-live=on]")).to_have_count(1)
            await expect(officer.locator(".textblock-picker[data-ready=true]")).to_have_count(1)
            await expect(officer.locator("form.reply button")).to_have_count(1)  # the send button, as before

            reply = officer.locator("#reply-text")
            await reply.focus()
            await officer.keyboard.type("Hallo! ")
            await officer.keyboard.press("/")
            await officer.keyboard.press("d")  # "danke" and "dienstzeiten": the one for the chat's topic comes first
            await expect(officer.locator("#textblock-suggest li").first).to_contain_text("/dienstzeiten")
            await officer.keyboard.press("Enter")
            value = await reply.input_value()
            assert value.startswith("Hallo! Wir lesen hier Mo–Fr 08:00–16:00 Uhr mit.")
            assert "{" not in value and "/d" not in value
            await expect(officer.locator("#textblock-suggest")).to_be_hidden()

            # a live update swaps the transcript in; the reply box keeps what the officer typed
            refreshed = await officer.evaluate("document.body.dataset.refreshed || ''")
            await citizen.fill("#text", "Hallo?")
            await citizen.press("#text", "Enter")
            await expect(officer.locator(".msg.in")).to_have_count(2)
            assert await officer.evaluate("document.body.dataset.refreshed || ''") != refreshed
            assert await reply.input_value() == value

            await officer.click("form.reply button")
            await expect(citizen.locator(".messages li.officer")).to_contain_text("Wir lesen hier Mo–Fr 08:00–16:00 Uhr mit.")
            sent = [m for m in services.handover.transcript(conv.id) if m.author == "officer"]
            assert [m.text for m in sent] == [value.strip()]

            # with the mouse: pick from the list under the reply box
            await officer.goto(f"{base}/inbox/c/{conv.id}")
            await expect(officer.locator(".textblock-picker[data-ready=true]")).to_have_count(1)
            await officer.select_option("#textblock-select", label="/onlinewache · Anzeige online erstatten (DE)")
            await officer.click("#textblock-insert")
            assert (await officer.locator("#reply-text").input_value()).startswith(
                "Eine Anzeige kannst du jederzeit online erstatten, über die Onlinewache deiner Landespolizei.")
        finally:
            await browser.close()
