"""The web app over real HTTP: health check."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings
from bot.web.app import create_app


async def test_healthz_reports_safety_net_mode_without_a_model(settings: Settings) -> None:
    app = create_app(settings, load_model=False)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        body = await response.json()
    assert response.status == 200
    assert body["mode"] == "safety_net" and body["database"] == "writable"
