"""Helpers for tests that drive the web app over real HTTP: a served app, a citizen, an officer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.handover import HandoverLog
from bot.services import Services
from bot.settings import Settings
from bot.triage import Triage
from bot.web.app import create_app
from bot.web.keys import OFFICERS

PASSWORD = "richtig-geheim-42"
METRICS_TOKEN = "metrics-token-for-tests"
OPERATOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # what an operator's Prometheus sends
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def build_services(settings: Settings, triage: Triage) -> Services:
    """Services on the settings' database with the given triage (model or none)."""
    handover = HandoverLog.open(settings.database_path)
    return Services(settings, triage, handover, Dispatcher(handover, triage, {"webchat": LogOnlySender()}))


def with_settings(settings: Settings, **changes: Any) -> Settings:
    """The same settings with some fields changed (e.g. metrics_token, trusted_proxies, webchat limits)."""
    return dataclasses.replace(settings, **changes)


def from_address(address: str) -> dict[str, str]:
    """Headers of a request that reached the app through a trusted proxy from `address`."""
    return {"X-Forwarded-For": address}


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match[1]


@asynccontextmanager
async def served(settings: Settings, triage: Triage) -> AsyncIterator[tuple[web.Application, TestServer, Services]]:
    """The app on a free 127.0.0.1 port, with an officer account 'anna'."""
    services = build_services(settings, triage)
    app = create_app(settings, services, load_model=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        app[OFFICERS].add("anna", PASSWORD)
        yield app, server, services
    finally:
        await server.close()
        services.handover.close()


class Browser:
    """One person's HTTP client with their own cookies (a citizen or an officer)."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> "Browser":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        response = await self.http.get(self.url(path), allow_redirects=False, **kw)
        await response.read()
        return response

    async def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True, **kw: Any) -> aiohttp.ClientResponse:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        response = await self.http.post(self.url(path), data=form, allow_redirects=False, **kw)
        await response.read()
        return response

    # -- officer -----------------------------------------------------------------------

    async def login(self, name: str = "anna", password: str = PASSWORD, **kw: Any) -> aiohttp.ClientResponse:
        """Fill in the login form; on success keep the session's CSRF token."""
        page = await self.get("/inbox/login")
        self.csrf = csrf_of(await page.text())
        response = await self.post("/inbox/login", {"name": name, "password": password}, **kw)
        if response.status == 303:
            inbox = await self.get("/inbox")
            self.csrf = csrf_of(await inbox.text())
        return response

    async def page(self, path: str) -> str:
        response = await self.get(path)
        assert response.status == 200, (path, response.status)
        return await response.text()

    # -- citizen -----------------------------------------------------------------------

    async def open_chat(self) -> None:
        assert (await self.get("/")).status == 200

    async def write(self, text: str, button: str | None = None, message_id: str | None = None) -> dict[str, Any]:
        """Send a chat message as the web chat page does."""
        body = {"text": text, "id": message_id or str(uuid.uuid4()), **({"button": button} if button else {})}
        response = await self.http.post(self.url("/chat/messages"), json=body)
        assert response.status == 202, await response.text()
        return await response.json()

    async def send(self, text: str, message_id: str | None = None, **kw: Any) -> aiohttp.ClientResponse:
        """POST a chat message and return the response, whatever its status."""
        body = {"text": text, "id": message_id or str(uuid.uuid4())}
        response = await self.http.post(self.url("/chat/messages"), json=body, **kw)
        await response.read()
        return response

    async def transcript(self) -> dict[str, Any]:
        response = await self.http.get(self.url("/chat/transcript"))
        assert response.status == 200
        return await response.json()


async def next_event(response: aiohttp.ClientResponse, name: str = "update", timeout: float = 10) -> dict[str, Any]:
    """Read server-sent events until one called `name` arrives; return its data."""
    async def read() -> dict[str, Any]:
        event = ""
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == name:
                return json.loads(line[len("data: "):])
    return await asyncio.wait_for(read(), timeout)
