"""An NLU worker picks up a newly trained model without a restart; a broken one is refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import AsyncIterator

import subprocess
import sys
from dataclasses import dataclass

import pytest

from bot.nlu_client import NluClient
from nlu.model import ModelError, ModelHolder, NluModel
from nlu.reload import SmokeSet, SmokeTestError, smoke_test
from tests.conftest import ROOT
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
    """How often the worker looks at the model file (0: only on SIGHUP); tests override it."""
    return 0


@dataclass
class Running:
    """An NLU worker process serving a copy of the good small model, and a client of it."""

    proc: subprocess.Popen[bytes]
    client: NluClient
    model_path: Path

    @property
    def status(self) -> dict[str, object]:
        return self.client.links[0].status


@pytest.fixture
async def running(tmp_path: Path, tiny_models: dict[str, Path], watch_seconds: float) -> AsyncIterator[Running]:
    """`python -m nlu.worker` on a Unix socket with the good small model, as the service starts it."""
    model_path = tmp_path / "nlu.tar.gz"
    shutil.copy(tiny_models["good"], model_path)
    sock = tmp_path / "worker.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nlu.worker", "--socket", str(sock), "--model", str(model_path),
         "--data", str(tiny_models["data"]), "--watch", str(watch_seconds), "--exit-with-stdin"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    client = NluClient([sock], deadline=WAIT)
    try:
        assert await client.wait_ready(WAIT), "the worker did not load the model"
        yield Running(proc, client, model_path)
    finally:
        await client.close()
        proc.terminate()
        proc.communicate(timeout=30)


async def until(condition, client: NluClient, seconds: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition the worker reaches on its own (a model load), failing after `seconds`."""
    for _ in range(int(seconds * 10)):
        await client.refresh()
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not get there in time")


def replace_file(source: Path, target: Path) -> None:
    """Put a new model in place the way `make train` does: write beside it, then rename."""
    shutil.copy(source, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)


async def greet_many(client: NluClient, stop: asyncio.Event) -> list[str | None]:
    """Citizens keep writing 'hallo' until `stop`; the intent of each parse (None: no answer)."""
    results, n = [], 0
    while not stop.is_set() or n < 3:
        n += 1
        parse = await client.parse("hallo")
        results.append(parse.intent if parse else None)
        await asyncio.sleep(0.05)
    return results


async def test_sighup_swaps_the_model_while_messages_keep_flowing(running: Running, tiny_models: dict[str, Path]) -> None:
    before = running.status["model"]
    replace_file(tiny_models["good"], running.model_path)
    stop = asyncio.Event()
    citizens = asyncio.create_task(greet_many(running.client, stop))
    os.kill(running.proc.pid, signal.SIGHUP)
    await until(lambda: running.status.get("model") not in (None, before), running.client)
    stop.set()
    results = await citizens
    assert results and set(results) == {"greet"}  # every message parsed by a model, none lost
    assert running.status["loaded"] and running.status["rejected"] is None
    parse = await running.client.parse("mein fahrrad wurde geklaut")
    assert parse is not None and parse.intent == "bike_theft"


@pytest.mark.parametrize("watch_seconds", [0.2])
async def test_a_broken_or_blind_model_is_refused_and_the_old_one_keeps_serving(
    running: Running, tiny_models: dict[str, Path]
) -> None:
    old = running.status["model"]
    replace_file(tiny_models["broken"], running.model_path)
    await until(lambda: running.status.get("rejected") is not None, running.client)
    assert running.status["model"] == old
    assert "cannot load NLU model" in str(running.status["rejected"])

    replace_file(tiny_models["blind"], running.model_path)
    await until(lambda: "does not escalate" in str(running.status.get("rejected")), running.client)
    assert running.status["model"] == old
    parse = await running.client.parse("hallo")
    assert parse is not None and parse.intent == "greet"

    replace_file(tiny_models["good"], running.model_path)  # the trainers fix it: the watch picks up the good one
    await until(lambda: running.status.get("model") != old, running.client)
    assert running.status["rejected"] is None


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
