"""Helpers for the X tests: the app and the fake X API on 127.0.0.1, signed webhook deliveries."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.x import X, XChannel
from bot.channels.x_webhook import SIGNATURE_HEADER, sign
from bot.handover import Conversation, HandoverLog, Message
from bot.services import Services
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.keys import SERVICES
from tests.fake_x_api import ACCESS_SECRET, ACCESS_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, FakeXApi


def x_settings(tmp_path: Path, api: FakeXApi, **env: str) -> Settings:
    """Settings with X pointed at the fake X API."""
    base = {
        "DATABASE_PATH": str(tmp_path / "streife.sqlite3"), "X_CONSUMER_KEY": CONSUMER_KEY,
        "X_CONSUMER_SECRET": CONSUMER_SECRET, "X_ACCESS_TOKEN": ACCESS_TOKEN, "X_ACCESS_TOKEN_SECRET": ACCESS_SECRET,
        "X_API_BASE_URL": api.url,
    }
    return Settings.from_env({**base, **env}, dotenv=tmp_path / "none.env")


@dataclass
class Running:
    """The app under test, a real HTTP client on it, and the fake X API it sends to."""

    client: TestClient
    app: web.Application
    api: FakeXApi

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def log(self) -> HandoverLog:
        return self.services.handover

    @property
    def channel(self) -> XChannel:
        return self.app[X]

    @property
    def webhook_url(self) -> str:
        return str(self.client.make_url("/x/webhook"))

    async def post(self, payload: Any, secret: str | None = CONSUMER_SECRET, raw: bytes | None = None) -> ClientResponse:
        """POST a webhook body as X does (signed with `secret`; None: unsigned)."""
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        return await self.client.post("/x/webhook", data=body, headers=headers)

    async def deliver(self, payload: Any) -> ClientResponse:
        """POST a signed body, then wait until every reply to it went out."""
        response = await self.post(payload)
        await self.channel.drain()
        return response

    def conversation(self, user: str) -> Conversation:
        conv = self.log.find_conversation("x", user)
        assert conv is not None, f"no X conversation with {user}"
        return conv

    def transcript(self, user: str) -> list[Message]:
        return self.log.transcript(self.conversation(user).id)


@asynccontextmanager
async def running(settings: Settings, api: FakeXApi) -> AsyncIterator[Running]:
    """The whole app on 127.0.0.1 (no NLU model: the safety net and the topic buttons answer)."""
    app = create_app(settings, load_model=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Running(client, app, api)


@pytest.fixture
async def xapi() -> AsyncIterator[FakeXApi]:
    """The fake X API on 127.0.0.1 (import this fixture into a test module to use it)."""
    fake = await FakeXApi().start()
    yield fake
    await fake.stop()
