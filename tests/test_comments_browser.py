"""Comments under a post in a real browser (Debian's Chromium via Playwright), through the signed webhook.

An emergency, an insult and a question arrive as Instagram `comments` webhooks; the real model and the
comment policy decide; the executor talks to the fake Graph API. The officer, already on the comments
page, sees them arrive live and sorted by need, the insult hidden with its evidence kept, and the
question answered by a private reply whose DM links back to the comment.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from bot.channels.meta_webhook import sign
from bot.triage import Triage
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import ACCOUNT, SECRET, graph, meta_settings, now_ms  # noqa: F401 (graph: a fixture)
from tests.test_browser_e2e import ARGS, CHROMIUM
from tests.web_support import PASSWORD, served

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium missing: run `make browser`")
MEDIA = "17900000000000777"
STEP_MS = 8000  # per step; the model and the executor answer in well under a second on an idle machine


def comment_webhook(comment_id: str, user: str, username: str, text: str) -> bytes:
    """An Instagram `comments` change as Meta sends it (one entry, one change)."""
    value = {"id": comment_id, "from": {"id": user, "username": username}, "text": text,
             "media": {"id": MEDIA, "media_product_type": "FEED"}}
    body = {"object": "instagram", "entry": [{"id": ACCOUNT, "time": now_ms(), "changes": [{"field": "comments", "value": value}]}]}
    return json.dumps(body).encode()


async def test_emergency_insult_and_question_under_a_post(tmp_path: Path, graph: FakeGraphApi, triage_model: Triage) -> None:  # noqa: F811
    from playwright.async_api import async_playwright, expect

    comments = [  # (comment id, author id, username, text), in the order they arrive
        ("17850000000000001", "5300000001", "radler_kim", "Mir wurde heute mein Fahrrad am Bahnhof geklaut, was muss ich jetzt machen?"),
        ("17850000000000002", "5300000002", "anon_hater", "ihr bullen seid scheiße, acab"),
        ("17850000000000003", "5300000003", "nachbarin_x", "Hilfe! Bei mir ist gerade jemand eingebrochen, er ist noch im Haus"),
    ]
    for comment_id, user, _, text in comments:
        graph.add_comment(comment_id, MEDIA, text, author_id=user)
    question, insult, emergency = (c[0] for c in comments)

    async with served(meta_settings(tmp_path, graph), triage_model) as (_, server, services), async_playwright() as p, \
            aiohttp.ClientSession() as meta:
        # this client's link to the worker is up before the first comment (else the model may be skipped)
        assert await triage_model.parser.wait_ready(60)  # type: ignore[union-attr]
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            base = str(server.make_url("/")).rstrip("/")
            officer = await (await browser.new_context()).new_page()
            officer.set_default_timeout(STEP_MS)
            await officer.goto(f"{base}/inbox/kommentare")
            await officer.fill("input[name=name]", "anna")
            await officer.fill("input[name=password]", PASSWORD)
            await officer.click("button[type=submit]")
            await expect(officer).to_have_url(f"{base}/inbox/kommentare")
            await expect(officer.locator("body[data-live=on]")).to_have_count(1)
            await officer.evaluate("window.notReloaded = true")

            for comment_id, user, username, text in comments:
                body = comment_webhook(comment_id, user, username, text)
                async with meta.post(f"{base}/instagram/webhook", data=body, headers={
                        "Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}) as response:
                    assert response.status == 200

            articles = officer.locator("#comments-live section article.comment")  # arrive live, sorted by need
            await expect(articles).to_have_count(3)
            await expect(articles.nth(0)).to_contain_text("eingebrochen")
            await expect(articles.nth(0)).to_have_attribute("data-need", "0")
            await expect(articles.nth(1)).to_contain_text("Fahrrad")
            await expect(articles.nth(1)).to_have_attribute("data-need", "1")
            await expect(articles.nth(2)).to_contain_text("acab")
            await expect(articles.nth(2)).to_have_attribute("data-need", "2")
            await expect(officer.locator("#alert-banner")).to_be_visible()
            assert await officer.evaluate("window.notReloaded === true")

            # the emergency: a public 110 reply and the private reply with the full text, both done
            await expect(articles.nth(0).locator(".did-public_reply .status")).to_have_text("erledigt")
            await expect(articles.nth(0).locator(".did-private_reply .status")).to_have_text("erledigt")
            # the insult: hidden by the policy, with the evidence kept
            abuse = articles.nth(2)
            await expect(abuse.locator(".badge.hidden")).to_have_text("ausgeblendet")
            await expect(abuse.locator(".badge.evidence")).to_be_visible()
            await abuse.locator("button[data-action=complaint]").click()
            abuse = officer.locator("article[data-need='2']")
            await expect(abuse.locator(".badge.complaint")).to_contain_text("für Strafanzeige vorgemerkt")
            # the question: answered by a private reply; the DM it opened links back to the comment
            answered = articles.nth(1)
            await expect(answered.locator(".did-private_reply .status")).to_have_text("erledigt")
            await answered.locator(".dm-link a").click()
            await expect(officer.locator(".comment-link")).to_contain_text("Fahrrad")
            await officer.locator(".comment-link a").click()
            await expect(officer.locator("#private-reason")).to_have_text("Auf diesen Kommentar wurde schon privat geantwortet.")
            await expect(officer.locator(".public-warning")).to_contain_text("Alle können diese Antwort lesen")

            hidden = {c.target for c in graph.done("hide")}
            privately = {c.target for c in graph.done("private_reply")}
            public = [c for c in graph.done("reply") if c.target == emergency]
            assert hidden == {insult} and privately == {question, emergency}
            assert public and "110" in public[0].text
            store = services.handover
            complaint = store.db.execute("SELECT complaint, captured_by FROM evidence").fetchall()
            assert [tuple(r) for r in complaint] == [(1, "bot")]
            assert "anna" in [r[0] for r in store.db.execute("SELECT actor FROM events WHERE action = 'comment_complaint'")]
        finally:
            await browser.close()
