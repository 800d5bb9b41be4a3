"""The web app over real HTTP: health checks (a bare one for everyone, the details for operators)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings
from bot.web.app import create_app
from tests.web_support import METRICS_TOKEN, OPERATOR, with_settings


async def test_healthz_reports_safety_net_mode_without_a_model(settings: Settings) -> None:
    app = create_app(with_settings(settings, metrics_token=METRICS_TOKEN), load_model=False)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz", headers=OPERATOR)
        body = await response.json()
    assert response.status == 200
    assert body["mode"] == "safety_net" and body["database"] == "writable"


async def test_everyone_gets_a_bare_liveness_answer_and_nothing_about_the_insides(settings: Settings) -> None:
    app = create_app(with_settings(settings, metrics_token=METRICS_TOKEN), load_model=False)
    async with TestClient(TestServer(app)) as client:
        answers = {}
        for path, headers in [("/healthz", {}), ("/livez", {}), ("/healthz", {"Authorization": "Bearer wrong"}),
                              ("/healthz", {"Authorization": f"Basic {METRICS_TOKEN}"})]:
            response = await client.get(path, headers=headers)
            answers[(path, str(headers))] = (response.status, await response.json())
        metrics = await client.get("/metrics")
        refused = await metrics.text()
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        right = await client.get("/metrics", headers=OPERATOR)
    assert all(answer == (200, {"status": "ok"}) for answer in answers.values()), answers
    assert (metrics.status, wrong.status, right.status) == (401, 401, 200)
    assert metrics.headers["WWW-Authenticate"].startswith("Bearer") and "streife_queue_length" not in refused
