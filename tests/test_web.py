"""The web app over real HTTP: health checks (a bare one for everyone, the details for operators)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.handover import Inbound, search_index
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.keys import SERVICES
from bot.web.stats_reader import READER, StatsReader
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


@pytest.mark.sqlite_only  # (the FTS5 rewrite: PostgreSQL has no index file to rewrite)
async def test_stopping_the_app_stops_a_search_rewrite_and_the_dashboard_reader_before_the_log_closes(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(search_index, "MERGE_PAGES", 1)  # the rewrite takes many small steps
    log_open_at_close: list[bool] = []
    close = StatsReader.close

    def closing(reader: StatsReader) -> None:
        try:
            log_open_at_close.append(app[SERVICES].handover.db.conn.execute("SELECT 1").fetchone() == (1,))
        except sqlite3.ProgrammingError:  # closed already
            log_open_at_close.append(False)
        close(reader)

    monkeypatch.setattr(StatsReader, "close", closing)
    caplog.set_level(logging.INFO)
    app = create_app(settings, load_model=False)
    async with TestClient(TestServer(app)):
        log = app[SERVICES].handover
        for i in range(300):
            log.record_inbound(Inbound("webchat", f"chat-{i}", f"user-{i}", " ".join(f"wort{i}x{j}" for j in range(40))))
        assert await app[READER].run(log, lambda db: db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]) == 300
        rewrite = search_index.forget_deleted_soon(log)
        assert rewrite is not None
        for _ in range(3):  # a few steps
            await asyncio.sleep(0)
        assert not rewrite.done()  # still rewriting when the service stops
    assert rewrite.cancelled() and log_open_at_close[:1] == [True]
    assert "log was closed" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]
