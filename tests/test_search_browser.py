"""Search in a real browser (Debian's Chromium via Playwright): find a chat, open it at the hit, see the citizen's history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.handover import Inbound
from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import PASSWORD, served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_MS = 5000
SHOTS = Path(__file__).resolve().parent.parent / "bench" / "out" / "screenshots"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")


async def test_an_officer_finds_last_weeks_scooter_chat_and_opens_it_at_the_hit(settings: Settings, triage_no_model: Triage) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=STEP_MS)
    async with served(settings, triage_no_model) as (_, server, services), async_playwright() as p:
        log = services.handover

        def write(chat: str, user: str, text: str) -> tuple[int, int]:
            stored = log.record_inbound(Inbound("webchat", chat, user, text))
            log.record_decision(stored.message.id, None, None, "answer")  # decided: the app's recovery leaves it alone
            return stored.conversation.id, stored.message.id

        earlier, _ = write("w1", "same", "Letzte Woche war schon mal was mit dem Nachbarn")
        write("w2", "same", "Hallo, ich habe eine Frage")
        conv, hit = write("w2", "same", "Mein E-Roller wurde <b>vor</b> dem Bahnhof geklaut")
        write("w3", "other", "Ein Roller steht seit Wochen im Hof")
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=15000)
        try:
            base = str(server.make_url("/")).rstrip("/")
            officer = await (await browser.new_context()).new_page()
            officer.set_default_timeout(STEP_MS)
            await officer.goto(f"{base}/inbox/suche")
            await officer.fill("input[name=name]", "anna")
            await officer.fill("input[name=password]", PASSWORD)
            await officer.click("button[type=submit]")

            await officer.fill("input[name=q]", 'roller "bahnhof" (')
            await officer.select_option("select[name=kanal]", "webchat")
            await officer.click("form.search button[type=submit]")
            hits = officer.locator("li.hit")
            await expect(hits).to_have_count(1)  # both words are needed: the other roller is not at a station
            first = hits.first
            await expect(first.locator("mark")).to_have_text(["Roller", "Bahnhof"])
            await expect(first.locator(".snippet")).to_contain_text("<b>vor</b> dem")  # shown as text, not obeyed
            SHOTS.mkdir(parents=True, exist_ok=True)
            await officer.screenshot(path=str(SHOTS / "search_results.png"), full_page=True)
            assert (SHOTS / "search_results.png").stat().st_size > 10_000

            await officer.fill("input[name=q]", "roller")
            await officer.fill("input[name=von]", "2030-01-02")
            await officer.fill("input[name=bis]", "2030-01-01")
            await officer.click("form.search button[type=submit]")
            await expect(officer.locator(".search-error")).to_contain_text("„Von“ liegt nach „Bis“")
            await officer.go_back()

            await first.locator("a").click()
            await expect(officer).to_have_url(f"{base}/inbox/c/{conv}?treffer={hit}&q=roller+%22bahnhof%22+%28#m{hit}")
            message = officer.locator(f"#m{hit}")
            await expect(message).to_have_class(re.compile(r"\bsearch-hit\b"))
            await expect(message.locator(".text mark")).to_have_text(["Roller", "Bahnhof"])
            assert await message.evaluate("m => getComputedStyle(m).outlineStyle") == "solid"
            history = officer.locator("section.history li")
            await expect(history).to_have_count(1)
            await expect(history).to_contain_text("Letzte Woche war schon mal was mit dem Nachbarn")
            shot = SHOTS / "search_hit.png"
            await officer.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshots: {SHOTS / 'search_results.png'} {shot}")
            await history.locator("a").click()
            await expect(officer).to_have_url(f"{base}/inbox/c/{earlier}")
        finally:
            await browser.close()
