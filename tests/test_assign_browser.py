"""In Chromium, two officers in two browser contexts: anna assigns a chat to ben, ben sees it live and replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from bot.triage import Triage
from bot.web.keys import OFFICERS
from tests.web_support import PASSWORD, Browser, served

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BEN = "bens-langes-passwort"
STEP_MS = 5000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")


async def test_anna_assigns_a_chat_to_ben_who_sees_it_live_and_replies(settings: Settings, triage_no_model: Triage) -> None:
    from playwright.async_api import async_playwright, expect

    async with served(settings, triage_no_model) as (app, server, services), async_playwright() as p, \
            Browser(server) as citizen:
        app[OFFICERS].add("ben", BEN)
        await citizen.open_chat()
        await citizen.write("Ich möchte bitte mit jemandem vom Team sprechen")
        conv = services.handover.conversations(("queued",))[0]
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            base = str(server.make_url("/")).rstrip("/")
            pages = {}
            for name, password in (("ben", BEN), ("anna", PASSWORD)):
                page = await (await browser.new_context()).new_page()
                page.set_default_timeout(STEP_MS)
                await page.goto(f"{base}/inbox")
                await page.fill("input[name=name]", name)
                await page.fill("input[name=password]", password)
                await page.click("button[type=submit]")
                await expect(page.locator("body[data-live=on]")).to_have_count(1)
                pages[name] = page
            anna, ben = pages["anna"], pages["ben"]
            await ben.evaluate("window.notReloaded = true")

            await anna.goto(f"{base}/inbox/c/{conv.id}")
            await expect(anna.locator("body[data-live=on]")).to_have_count(1)
            await expect(ben.locator("#presence")).to_contain_text("anna ● live")  # live in the header
            await expect(anna.locator("#presence")).to_contain_text("anna (du) ● live")
            await expect(anna.locator("#assign-to option").first).to_have_text("ben")  # colleagues first, yourself last
            await anna.select_option("#assign-to", "ben")
            await anna.click("#assign")
            await expect(anna.locator("#assigned")).to_contain_text("anna hat diesen Chat ben zugewiesen")

            notice = ben.locator("#assigned-notice")  # arrives live, the page is not reloaded
            await expect(notice).to_contain_text(f"anna hat dir Chat #{conv.id} zugewiesen")
            await expect(ben.locator(f"tr[data-conversation='{conv.id}']")).to_contain_text("(von anna zugewiesen)")
            assert await ben.evaluate("window.notReloaded === true")

            await notice.locator("a").click()
            await expect(ben.locator("#assigned")).to_contain_text("anna hat diesen Chat dir zugewiesen")
            await expect(ben.locator("#conv-state")).to_have_text("In Bearbeitung")
            await ben.fill("#reply-text", "Hallo, hier ist Ben von der Polizei. Worum geht es?")
            await ben.click("form.reply button")
            await expect(ben.locator(".msg.officer").last).to_contain_text("hier ist Ben")
        finally:
            await browser.close()
        last = (await citizen.transcript())["messages"][-1]
        after = services.handover.conversation(conv.id)
    assert (last["author"], after.state, after.officer) == ("officer", "claimed", "ben")
    assert "hier ist Ben" in last["text"]
