"""Helpers for the Mastodon tests: the app on 127.0.0.1 reading from the fake instance (tests/fake_mastodon.py)."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.mastodon import MASTODON, MastodonChannel
from bot.handover import Conversation, HandoverLog, Message
from bot.services import Services
from bot.settings import Settings
from bot.web.app import create_app
from bot.web.keys import SERVICES
from tests.fake_mastodon import FakeMastodon, Posted



def mastodon_settings(folder: Path, fake: FakeMastodon, **env: str) -> Settings:
    """Settings with the Mastodon channel pointed at the fake."""
    base = {"DATABASE_PATH": str(folder / "streife.sqlite3"), "MASTODON_BASE_URL": fake.url,
            "MASTODON_ACCESS_TOKEN": fake.token, "MASTODON_POLL_SECONDS": "0.2"}
    return Settings.from_env({**base, **env}, dotenv=folder / "none.env")


@dataclass
class Running:
    """The app under test (no NLU model: the safety net and the rules answer) and the fake it talks to."""

    client: TestClient
    app: web.Application
    fake: FakeMastodon

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def log(self) -> HandoverLog:
        return self.services.handover

    @property
    def channel(self) -> MastodonChannel:
        return self.app[MASTODON]

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until the channel streams (or polls, when the stream is refused)."""
        deadline = time.monotonic() + timeout
        while self.channel.mode not in ("streaming", "polling"):
            assert time.monotonic() < deadline, f"the Mastodon channel did not start: {self.channel.health()}"
            await asyncio.sleep(0.02)

    async def replies(self, count: int, acct: str | None = None, timeout: float = 10.0) -> list[Posted]:
        """Wait until `count` statuses went to `acct` (all citizens if None), then let the channel settle."""
        await self.fake.wait_for(lambda: len(self.fake.replies(acct)) >= count, timeout)
        await self.channel.drain()
        return self.fake.replies(acct)

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `condition()` holds on the bot's side (checked every 20 ms)."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting"
            await asyncio.sleep(0.02)

    async def settle(self, seconds: float = 0.3) -> None:
        """Let streamed events and background replies finish."""
        await asyncio.sleep(seconds)
        await self.channel.drain()

    def conversation(self, acct: str) -> Conversation:
        conv = self.log.find_conversation("mastodon", acct)
        assert conv is not None, f"no Mastodon conversation with {acct}"
        return conv

    def transcript(self, acct: str) -> list[Message]:
        return self.log.transcript(self.conversation(acct).id)


@asynccontextmanager
async def running(settings: Settings, fake: FakeMastodon) -> AsyncIterator[Running]:
    """The whole app on 127.0.0.1 with the Mastodon channel reading from the fake."""
    app = create_app(settings, load_model=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        bot = Running(client, app, fake)
        await bot.ready()
        yield bot
