"""/metrics and /healthz over real HTTP: what an operator's Prometheus and uptime check see."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bench.rasa_stack import free_port
from bot.settings import Settings
from bot.triage import Triage
from tests.fake_bot_api import FakeBotApi, bot_settings, running_bot
from tests.web_support import METRICS_TOKEN, OPERATOR, Browser, served, with_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(browser: Browser, **headers: str) -> Samples:
    """GET /metrics and parse it as Prometheus does; every family must be typed. Return {(name, labels): value}."""
    response = await browser.http.get(browser.url("/metrics"), headers=headers or OPERATOR)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        assert family.type != "unknown", f"{family.name} has no TYPE line"
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError when the scrape does not have it."""
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_count_messages_actions_latency_and_the_queue(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (app, server, services):
        async with Browser(server) as anna, Browser(server) as ben, Browser(server) as officer:
            await anna.open_chat()
            await ben.open_chat()
            before = await scrape(officer)
            assert value(before, "streife_queue_length") == 0
            assert value(before, "streife_reply_latency_seconds_count") == 0
            assert ("streife_actions_total", frozenset({"channel": "webchat", "action": "escalate"}.items())) not in before
            await anna.write("Hilfe, bei uns wird gerade eingebrochen!")
            escalated = await scrape(officer)
            assert value(escalated, "streife_actions_total", channel="webchat", action="escalate") == 1
            assert value(escalated, "streife_reply_latency_seconds_count") >= 1  # the 110 prompt's latency observed
            assert value(escalated, "streife_reply_latency_seconds_bucket", le="30.0") >= 1
            assert value(escalated, "streife_reply_latency_seconds_sum") >= 0
            await ben.write("Ich hab eine Frage zu meinem Fahrrad")  # no model: handed over
            metrics = await scrape(officer)
            assert value(metrics, "streife_messages_in_total", channel="webchat") == 2
            assert value(metrics, "streife_actions_total", channel="webchat", action="escalate") == 1
            assert value(metrics, "streife_actions_total", channel="webchat", action="handover") == 1
            replies = value(metrics, "streife_messages_out_total", channel="webchat", author="bot")
            assert replies >= 2
            assert value(metrics, "streife_reply_latency_seconds_count") == replies
            assert value(metrics, "streife_reply_latency_seconds_bucket", le="+Inf") == replies
            assert value(metrics, "streife_queue_length") == 2
            assert value(metrics, "streife_conversations", state="queued", priority="2") == 1
            assert value(metrics, "streife_conversations", state="queued", priority="1") == 1
            assert value(metrics, "streife_queue_oldest_waiting_seconds") >= 0
            assert value(metrics, "streife_handover_waiting_seconds_count") == 0
            assert value(metrics, "streife_model_info", mode="safety_net", version="") == 1
            assert value(metrics, "streife_channel_up", channel="webchat") == 1
            assert value(metrics, "streife_live_streams", audience="webchat") == 0

            assert (await officer.login()).status == 303
            emergency = services.handover.find_conversation("webchat", anna.http.cookie_jar.filter_cookies(
                anna.url("/"))["streife_chat"].value)
            assert (await officer.post(f"/inbox/c/{emergency.id}/claim")).status == 303
            metrics = await scrape(officer)
            assert value(metrics, "streife_queue_length") == 1
            assert value(metrics, "streife_conversations", state="claimed", priority="2") == 1
            assert value(metrics, "streife_handover_waiting_seconds_count") == 1
            assert value(metrics, "streife_handover_waiting_seconds_bucket", le="60.0") == 1


async def test_two_apps_in_one_process_count_apart(settings: Settings, tmp_path: Path, triage_no_model: Triage) -> None:
    other = with_settings(settings, metrics_token=METRICS_TOKEN, database_path=tmp_path / "other.db")
    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (_, first, _s), \
            served(other, triage_no_model) as (_, second, _t):
        async with Browser(first) as anna, Browser(first) as scraper, Browser(second) as other_scraper:
            await anna.open_chat()
            await anna.write("Hilfe, bei uns wird gerade eingebrochen!")
            here, there = await scrape(scraper), await scrape(other_scraper)
    assert value(here, "streife_messages_in_total", channel="webchat") == 1
    assert ("streife_messages_in_total", frozenset({"channel": "webchat"}.items())) not in there
    assert value(there, "streife_reply_latency_seconds_count") == 0
    assert not [m for m in REGISTRY.collect() if m.name.startswith("streife_")]  # never the global registry


async def test_nobody_reads_metrics_without_the_token_or_a_login(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, metrics_token=METRICS_TOKEN), triage_no_model) as (app, server, services):
        async with Browser(server) as citizen:
            await citizen.open_chat()
            await citizen.write("Hilfe, bei uns wird gerade eingebrochen!")
            answers = [await citizen.http.get(citizen.url("/metrics"), headers=headers) for headers in
                       ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS_TOKEN}"})]
            bodies = [await answer.text() for answer in answers]
    assert [answer.status for answer in answers] == [401, 401, 401]
    assert not any("streife_" in body for body in bodies)


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
                async with http.get(f"http://127.0.0.1:{port}/metrics", headers=OPERATOR) as response:
                    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
                assert {s.labels["channel"]: s.value for s in families["streife_channel_up"].samples} == {"telegram": 0, "webchat": 1}
                assert {"channel": "telegram", "state": "connecting"} in [s.labels for s in families["streife_channel_state"].samples]
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
