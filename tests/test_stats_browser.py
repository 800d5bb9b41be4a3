"""The dashboard in a real browser (Debian's Chromium via Playwright): the charts draw, under the page's CSP, and print."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bot.responses import Responses
from bot.settings import Settings
from bot.triage import Triage
from tests.test_stats import _comments, build_log
from tests.web_support import PASSWORD, served, with_settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_MS = 5000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")

PIXELS = """async (data) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + data;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, img.width, img.height).data;
  const colours = new Set();
  let inked = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] < 235 || px[i + 1] < 235 || px[i + 2] < 235) inked++;
    colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  }
  return {width: img.width, height: img.height, inked: inked, colours: colours.size};
}"""


async def test_the_dashboard_draws_its_charts_and_prints(settings: Settings, triage_no_model: Triage,
                                                       responses: Responses, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    settings = with_settings(settings, duty_hours="Mo-Fr 08:00-16:00", timezone="Europe/Berlin")
    log, clock = build_log(settings.database_path, responses)
    _comments(log, clock)  # comments under posts too
    log.close()
    async with served(settings, triage_no_model) as (_, server, _), async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            base = str(server.make_url("/")).rstrip("/")
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_MS)
            page = await context.new_page()
            blocked: list[str] = []
            page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
            await page.goto(f"{base}/inbox/stats?from=2026-11-02&to=2026-11-03")
            await page.fill("input[name=name]", "anna")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Statistik")
            await page.fill("input[name=from]", "2026-11-02")
            await page.fill("input[name=to]", "2026-11-03")
            await page.click("form.stats-period button")
            await expect(page.locator(".stats-period-text")).to_contain_text("02.11.2026 bis 03.11.2026")
            await expect(page.locator("figure.chart svg")).to_have_count(8)
            await expect(page.locator("#table-comment-outcomes")).to_contain_text("Verborgen/gelöscht (Beleidigung)")
            assert await page.locator("#chart-comments svg .series rect").count() >= 5  # bars for the comments' outcomes

            sizes = await page.locator("figure.chart svg").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
            assert all(w > 300 and h > 100 for w, h in sizes), sizes
            fill = await page.locator("#chart-messages svg .series rect").first.evaluate("e => getComputedStyle(e).fill")
            assert "stats-fill-" in fill  # the charts' stylesheet applies: hatch patterns, not colour alone
            titles = await page.locator("figure.chart svg > title").all_text_contents()
            assert "Warteschlange über den Tag (jeweils zur vollen Stunde)" in titles

            shot = tmp_path / "stats.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            chart_shot = await page.locator("#chart-messages").screenshot()
            blank = await context.new_page()  # decode the PNGs in a page of its own (no CSP there)
            whole = await blank.evaluate(PIXELS, base64.b64encode(shot.read_bytes()).decode())
            chart = await blank.evaluate(PIXELS, base64.b64encode(chart_shot).decode())
            assert whole["height"] > 1500 and whole["inked"] > 0.05 * whole["width"] * whole["height"], whole
            assert chart["colours"] > 20 and chart["inked"] > 5000, chart  # bars, patterns, axis text: not an empty box

            await page.emulate_media(media="print")
            assert await page.locator("form.stats-period").is_hidden()  # the form is not printed
            pdf = await page.pdf(format="A4", print_background=True)
            (tmp_path / "stats.pdf").write_bytes(pdf)
            print(f"pdf: {tmp_path / 'stats.pdf'} ({len(pdf)} bytes)")
            assert pdf.startswith(b"%PDF") and len(pdf) > 20_000 and pdf.count(b"/Type /Page") >= 2
            assert blocked == [], blocked  # nothing the page needs is refused by its Content-Security-Policy
        finally:
            await browser.close()
