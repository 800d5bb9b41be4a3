"""The service asks NLU worker processes (Rasa on its own Python) and never waits on them for an emergency."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from aiohttp.test_utils import TestServer

from bot.handover import Inbound
from bot.services import Services
from bot.settings import Settings
from bot.web.app import NLU, create_app
from bot.web.keys import SERVICES
from tests.conftest import MODEL, ROOT
from tests.web_support import METRICS_TOKEN, OPERATOR

WAIT = 240.0  # seconds: an upper bound for a model load on a busy two-core machine, not a speed claim
EMERGENCY = "hilfe da ist ein einbrecher in unserer wohnung"


@asynccontextmanager
async def service(settings: Settings, **env: str) -> AsyncIterator[tuple[Services, TestServer]]:
    """The whole service with its own supervised NLU workers, on a free 127.0.0.1 port."""
    settings = dataclasses.replace(settings, model_path=MODEL, metrics_token=METRICS_TOKEN, **env)  # type: ignore[arg-type]
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield app[SERVICES], server
    finally:
        await server.close()


async def health(server: TestServer) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/healthz"), headers=OPERATOR) as resp:
        return await resp.json()


async def until_ready(server: TestServer, ready: bool = True) -> dict[str, object]:
    for _ in range(int(WAIT * 10)):
        body = await health(server)
        if (body["mode"] == "nlu") == ready:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"the NLU workers did not become {'ready' if ready else 'unready'} in time")


async def say(services: Services, text: str, n: int) -> tuple[str, str, str]:
    """A citizen writes; (action, decision source as stored intent, reply text)."""
    replies = await services.dispatcher.handle(Inbound("webchat", f"chat-{n}", f"user-{n}", text, platform_id=f"m{n}"))
    assert replies, "no reply"
    inbound = services.handover.message(replies[0].reply_to)
    return inbound.action or "", inbound.intent or "", "\n".join(r.text for r in replies)


async def test_an_emergency_is_answered_before_the_model_has_loaded_then_the_workers_answer(settings: Settings) -> None:
    async with service(settings, nlu_workers=2) as (services, server):
        started = asyncio.get_running_loop().time()
        action, _, reply = await say(services, EMERGENCY, 1)
        assert action == "escalate" and "110" in reply.split("\n")[0]
        assert asyncio.get_running_loop().time() - started < 1.0
        body = await until_ready(server)
        assert body["workers"] == 2 and str(body["model_version"]).startswith("nlu.tar.gz@")
        action, intent, _ = await say(services, "mein fahrrad wurde geklaut was soll ich tun", 2)
        assert (action, intent) == ("answer", "bike_theft")


async def test_a_killed_worker_is_started_again_and_emergencies_never_wait(settings: Settings) -> None:
    async with service(settings, nlu_workers=1) as (services, server):
        await until_ready(server)
        supervisor = server.app[NLU]
        (pid,) = supervisor.pids()
        os.kill(pid, signal.SIGKILL)
        await until_ready(server, ready=False)
        action, _, reply = await say(services, EMERGENCY, 1)  # while the worker is gone
        assert action == "escalate" and "110" in reply
        action, _, reply = await say(services, "wie lange dauert eine anzeige", 2)  # no model: a person takes it
        assert action == "handover" and "110" in reply
        await until_ready(server)
        assert supervisor.restarts == 1 and supervisor.pids() != [pid]
        action, intent, _ = await say(services, "mein fahrrad wurde geklaut was soll ich tun", 3)
        assert (action, intent) == ("answer", "bike_theft")


async def test_a_parse_past_its_deadline_is_decided_without_the_model(settings: Settings) -> None:
    async with service(settings, nlu_workers=1, nlu_deadline=0.001) as (services, server):
        await until_ready(server)
        action, _, reply = await say(services, "mein fahrrad wurde geklaut was soll ich tun", 1)
        assert action == "handover" and "110" in reply  # to a person, with the 110 line
        assert (await health(server))["deadline_misses"] >= 1
        action, _, _ = await say(services, EMERGENCY, 2)
        assert action == "escalate"


def test_the_service_never_imports_rasa() -> None:
    code = (
        "import sys, bot.web.app, bot.cli, bot.admin_cli, bot.serve, bot.channels.telegram_app; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rasa', 'tensorflow', 'sklearn')]; "
        "assert not bad, bad; print(sys.version_info[:2])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert tuple(int(x) for x in out.strip(" ()\n").split(",")) >= (3, 11)


def test_the_workers_python_is_the_nlu_environments(settings: Settings) -> None:
    assert Path(settings.nlu_python) == ROOT / ".venv-nlu" / "bin" / "python"
    out = subprocess.run([str(settings.nlu_python), "-c", "import sys, rasa; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 10)"
