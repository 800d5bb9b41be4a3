"""A running bot picks up a newly trained model without a restart; a broken one is refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.handover import Inbound
from bot.services import Services
from bot.settings import Settings
from bot.web.app import create_app
from nlu.model import ModelError, ModelHolder, NluModel
from nlu.reload import SmokeSet, SmokeTestError, smoke_test
from tests.tiny_data import train_tiny

GOOD_INTENTS = ("greet", "bike_theft", "emergency", "self_harm")
WAIT = 180.0  # seconds: an upper bound for loading a small model on a busy machine, not a speed claim


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small good model, one that never learned emergencies, and a file that is not a model."""
    root = tmp_path_factory.mktemp("models")
    good = train_tiny(root / "good", GOOD_INTENTS)
    blind = train_tiny(root / "blind", ("greet", "bike_theft"))
    broken = root / "broken.tar.gz"
    broken.write_bytes(b"this is not a model archive\n" * 100)
    return {"good": good, "blind": blind, "broken": broken, "data": root / "good" / "data"}


@pytest.fixture
def watch_seconds() -> float:
    """How often the bot looks at the model file (0: only on SIGHUP); tests override it."""
    return 0


@pytest.fixture
async def running(tmp_path: Path, tiny_models: dict[str, Path], watch_seconds: float) -> AsyncIterator[tuple[Services, str]]:
    """The bot serving on 127.0.0.1 with the good small model."""
    model_path = tmp_path / "nlu.tar.gz"
    shutil.copy(tiny_models["good"], model_path)
    settings = Settings.from_env(
        {
            "DATABASE_PATH": str(tmp_path / "streife.sqlite3"),
            "MODEL_PATH": str(model_path),
            "DATA_DIR": str(tiny_models["data"]),
            "MODEL_WATCH_SECONDS": str(watch_seconds),
        },
        dotenv=tmp_path / "none.env",
    )
    services = Services.build(settings)
    services.models.swap(NluModel.load(model_path))
    runner = web.AppRunner(create_app(settings, services))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield services, f"http://127.0.0.1:{port}"
    await runner.cleanup()
    services.handover.close()


async def health(base: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as resp:
        return await resp.json()


async def until(condition, seconds: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition the bot reaches on its own (a model load), failing after `seconds`."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bot did not get there in time")


def replace_file(source: Path, target: Path) -> None:
    """Put a new model in place the way `make train` does: write beside it, then rename."""
    shutil.copy(source, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)


async def greet_many(services: Services, stop: asyncio.Event) -> list[tuple[str | None, str | None]]:
    """Citizens keep writing 'hallo' (each in their own chat) until `stop`; return (intent, action) per message."""
    results, n = [], 0
    while not stop.is_set() or n < 3:
        n += 1
        replies = await services.dispatcher.handle(Inbound("webchat", f"chat-{n}", f"user-{n}", "hallo", platform_id=f"m{n}"))
        inbound = services.handover.message(replies[0].reply_to) if replies else None
        results.append((inbound.intent, inbound.action) if inbound else (None, None))
        await asyncio.sleep(0.05)
    return results


async def test_sighup_swaps_the_model_while_messages_keep_flowing(running: tuple[Services, str], tiny_models: dict[str, Path]) -> None:
    services, base = running
    old = services.models.model
    before = await health(base)
    replace_file(tiny_models["good"], services.settings.model_path)
    stop = asyncio.Event()
    citizens = asyncio.create_task(greet_many(services, stop))
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: services.models.model is not old)
    stop.set()
    results = await citizens
    assert results and set(results) == {("greet", "answer")}  # every message answered by a model, none lost
    after = await health(base)
    assert after["mode"] == "nlu" and after["model_rejected"] is None
    assert after["model_version"] != before["model_version"]
    decision = await services.triage.decide("mein fahrrad wurde geklaut")
    assert (decision.intent, decision.source) == ("bike_theft", "model")


@pytest.mark.parametrize("watch_seconds", [0.2])
async def test_a_broken_or_blind_model_is_refused_and_the_old_one_keeps_serving(
    running: tuple[Services, str], tiny_models: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    services, base = running
    old = services.models.model
    target = services.settings.model_path
    replace_file(tiny_models["broken"], target)
    await until(lambda: services.models.rejected is not None)
    assert services.models.model is old
    assert "cannot load NLU model" in str((await health(base))["model_rejected"])
    assert "model reload refused" in caplog.text

    services.models.rejected = None
    replace_file(tiny_models["blind"], target)
    await until(lambda: services.models.rejected is not None)
    assert services.models.model is old
    assert "does not escalate" in str(services.models.rejected)
    replies = await services.dispatcher.handle(Inbound("webchat", "c1", "u1", "hallo", platform_id="x1"))
    assert services.handover.message(replies[0].reply_to).intent == "greet"

    replace_file(tiny_models["good"], target)  # the trainers fix it: the watch picks up the good one
    await until(lambda: services.models.model is not old)
    assert (await health(base))["model_rejected"] is None


def test_the_smoke_test_reads_the_model_alone(tiny_models: dict[str, Path]) -> None:
    smoke = SmokeSet.from_data(tiny_models["data"])
    assert "hilfe einbrecher" in smoke.escalate and "hallo" in smoke.ordinary
    blind = NluModel.load(tiny_models["blind"])
    with pytest.raises(SmokeTestError, match="does not escalate"):
        smoke_test(blind, smoke, threshold=0.35)
    holder = ModelHolder()
    with pytest.raises(ModelError):
        holder.reload(tiny_models["blind"], lambda m: smoke_test(m, smoke, 0.35))
    assert holder.model is None and "does not escalate" in str(holder.rejected)
