"""Helpers for the Instagram/Messenger tests: the app and the fake Graph API on 127.0.0.1, Meta-shaped payloads.

Webhook payloads are shaped as in Meta's documentation:
- messages, attachments, story replies, quick replies, reactions, reads:
  https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
  https://developers.facebook.com/documentation/instagram-platform/webhooks/examples
- echoes (is_echo, app_id): https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/message-echoes
- quick replies: https://developers.facebook.com/documentation/business-messaging/instagram-messaging/features/quick-replies
"""

from __future__ import annotations

import itertools
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.instagram import INSTAGRAM, MetaChannel
from bot.channels.meta_webhook import sign
from bot.handover import Conversation, HandoverLog, Message
from bot.services import Services
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.keys import SERVICES
from tests.fake_graph_api import FakeGraphApi

SECRET = "app-secret-for-tests"
VERIFY = "verify-token-for-tests"
TOKEN = "ig-access-token"
PAGE_TOKEN = "page-access-token"
ACCOUNT = "17841400000000001"  # the police account's Instagram professional account id (IGID)
PAGE = "104000000000001"  # the Facebook Page id
_mids = itertools.count(1)


def now_ms() -> int:
    return int(time.time() * 1000)


def meta_settings(tmp_path: Path, graph: FakeGraphApi, **env: str) -> Settings:
    """Settings with Instagram and Messenger pointed at the fake Graph API."""
    base = {
        "DATABASE_PATH": str(tmp_path / "streife.sqlite3"), "INSTAGRAM_VERIFY_TOKEN": VERIFY,
        "INSTAGRAM_APP_SECRET": SECRET, "INSTAGRAM_ACCESS_TOKEN": TOKEN, "INSTAGRAM_ACCOUNT_ID": ACCOUNT,
        "MESSENGER_ACCESS_TOKEN": PAGE_TOKEN, "GRAPH_API_BASE_URL": graph.url, "GRAPH_API_VERSION": "v21.0",
    }
    return Settings.from_env({**base, **env}, dotenv=tmp_path / "none.env")


def message(user: str, text: str = "", mid: str | None = None, **fields: Any) -> dict[str, Any]:
    """One messaging event from a citizen (an IGSID) to the account."""
    body: dict[str, Any] = {"mid": mid or f"aWdfZAG1faXRlbToxOklHTWVzc2FnZUlE{next(_mids)}"}
    if text:
        body["text"] = text
    body.update(fields)
    return {"sender": {"id": user}, "recipient": {"id": ACCOUNT}, "timestamp": now_ms(), "message": body}


def echo(user: str, text: str, mid: str, app_id: int | None = None) -> dict[str, Any]:
    """A message the account itself sent (by this bot, or by an officer in the Instagram app)."""
    body: dict[str, Any] = {"mid": mid, "text": text, "is_echo": True}
    if app_id is not None:
        body["app_id"] = app_id
    return {"sender": {"id": ACCOUNT}, "recipient": {"id": user}, "timestamp": now_ms(), "message": body}


def notification(*events: dict[str, Any], obj: str = "instagram", account: str = ACCOUNT) -> dict[str, Any]:
    """A webhook body with one entry holding these events."""
    return {"object": obj, "entry": [{"id": account, "time": now_ms(), "messaging": list(events)}]}


@dataclass
class Running:
    """The app under test, a real HTTP client on it, and the fake Graph API it sends to."""

    client: TestClient
    app: web.Application
    graph: FakeGraphApi

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def log(self) -> HandoverLog:
        return self.services.handover

    @property
    def channel(self) -> MetaChannel:
        return self.app[INSTAGRAM]

    async def post(self, payload: Any, secret: str | None = SECRET, raw: bytes | None = None) -> ClientResponse:
        """POST a webhook body as Meta does (signed with `secret`; None: unsigned)."""
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = sign(secret, body)
        return await self.client.post("/instagram/webhook", data=body, headers=headers)

    async def deliver(self, payload: Any) -> ClientResponse:
        """POST a signed body, then wait until every reply to it went out."""
        response = await self.post(payload)
        await self.channel.drain()
        return response

    def conversation(self, user: str, channel: str = "instagram") -> Conversation:
        conv = self.log.find_conversation(channel, user)
        assert conv is not None, f"no {channel} conversation with {user}"
        return conv

    def transcript(self, user: str, channel: str = "instagram") -> list[Message]:
        return self.log.transcript(self.conversation(user, channel).id)


@asynccontextmanager
async def running(settings: Settings, graph: FakeGraphApi) -> AsyncIterator[Running]:
    """The whole app on 127.0.0.1 (no NLU model: the safety net and the topic buttons answer)."""
    app = create_app(settings, load_model=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Running(client, app, graph)


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    """The fake Graph API on 127.0.0.1 (import this fixture into a test module to use it)."""
    fake = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    yield fake
    await fake.stop()
