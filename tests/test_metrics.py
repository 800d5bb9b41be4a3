"""/metrics and /healthz over real HTTP: what an operator's Prometheus and uptime check see."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from bench.rasa_stack import free_port
from bot.settings import Settings
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot
from tests.web_support import METRICS_TOKEN, OPERATOR, Browser, served, with_settings

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|\+Inf|NaN)$')


async def scrape(browser: Browser) -> dict[str, float]:
    """GET /metrics; every line must be a comment or a valid sample. Return {name{labels}: value}."""
    response = await browser.http.get(browser.url("/metrics"), headers=OPERATOR)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, typed = {}, set()
    for line in (await response.text()).splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        base = re.sub(r"_(bucket|sum|count)$", "", match[1])
        assert match[1] in typed or base in typed, f"{match[1]} has no TYPE line"
        samples[match[1] + (match[2] or "")] = float(match[4])
    return samples


async def test_metrics_count_messages_actions_latency_and_the_queue(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (app, server, services):
        async with Browser(server) as anna, Browser(server) as ben, Browser(server) as officer:
            await anna.open_chat()
            await ben.open_chat()
            before = await scrape(officer)
            assert before["streife_queue_length"] == 0
            await anna.write("Hilfe, bei uns wird gerade eingebrochen!")
            await ben.write("Ich hab eine Frage zu meinem Fahrrad")  # no model: handed over
            metrics = await scrape(officer)
            assert metrics['streife_messages_in_total{channel="webchat"}'] == 2
            assert metrics['streife_actions_total{channel="webchat",action="escalate"}'] == 1
            assert metrics['streife_actions_total{channel="webchat",action="handover"}'] == 1
            replies = metrics['streife_messages_out_total{channel="webchat",author="bot"}']
            assert replies >= 2
            assert metrics["streife_reply_latency_seconds_count"] == replies
            assert metrics['streife_reply_latency_seconds_bucket{le="+Inf"}'] == replies
            assert metrics["streife_queue_length"] == 2
            assert metrics['streife_conversations{state="queued",priority="2"}'] == 1
            assert metrics['streife_conversations{state="queued",priority="1"}'] == 1
            assert metrics["streife_queue_oldest_waiting_seconds"] >= 0
            assert metrics["streife_handover_waiting_seconds_count"] == 0

            assert (await officer.login()).status == 303
            emergency = services.handover.find_conversation("webchat", anna.http.cookie_jar.filter_cookies(
                anna.url("/"))["streife_chat"].value)
            assert (await officer.post(f"/inbox/c/{emergency.id}/claim")).status == 303
            metrics = await scrape(officer)
            assert metrics["streife_queue_length"] == 1
            assert metrics['streife_conversations{state="claimed",priority="2"}'] == 1
            assert metrics["streife_handover_waiting_seconds_count"] == 1
            assert metrics['streife_handover_waiting_seconds_bucket{le="60"}'] == 1


async def test_healthz_lists_the_web_chat_as_connected(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (app, server, services):
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/healthz"), headers=OPERATOR) as response:
                body = await response.json()
    assert response.status == 200
    assert body["channels"] == {"webchat": "connected"}
    assert body["mode"] == "safety_net" and body["database"] == "writable"


async def test_healthz_shows_telegram_connecting_until_the_bot_api_answers(tmp_path: Path, triage_no_model: Triage) -> None:
    fake = await FakeBotApi().start()
    fake.hold("getMe")
    port = free_port()
    try:
        async with running_bot(with_settings(bot_settings(tmp_path, fake), metrics_token=METRICS_TOKEN), triage_no_model, port=port):
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz", headers=OPERATOR) as response:
                    assert (await response.json())["channels"]["telegram"] == "connecting"
                fake.release("getMe")
                await fake.wait_for(lambda: bool(fake.calls_of("deleteWebhook")))
                async with http.get(f"http://127.0.0.1:{port}/healthz", headers=OPERATOR) as response:
                    assert (await response.json())["channels"] == {"telegram": "connected", "webchat": "connected"}
    finally:
        await fake.stop()


async def test_a_logged_in_officer_reads_metrics_and_health_without_the_token(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as officer:
        before = [(await officer.get(path)).status for path in ("/metrics",)]
        bare = await (await officer.get("/healthz")).json()
        await officer.login()
        metrics = await officer.get("/metrics")
        detailed = await (await officer.get("/healthz")).json()
    assert before == [401] and bare == {"status": "ok"}
    assert metrics.status == 200 and "streife_queue_length 0" in await metrics.text()
    assert detailed["database"] == "writable" and detailed["channels"] == {"webchat": "connected"}
