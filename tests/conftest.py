"""Shared fixtures: settings on a temporary database, the reply texts, the safety net, the model."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bot.duty import DutyHours  # noqa: E402
from bot.handover import HandoverLog  # noqa: E402
from bot.responses import Responses  # noqa: E402
from bot.safety_net import SafetyNet  # noqa: E402
from bot.settings import ROOT, Settings  # noqa: E402
from bot.triage import Triage  # noqa: E402
from nlu.model import ModelHolder, NluModel  # noqa: E402

DATA = ROOT / "data"
MODEL = ROOT / "models" / "nlu.tar.gz"
# A Wednesday, 10:00 in Berlin: inside the default duty hours.
ON_DUTY = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def responses() -> Responses:
    return Responses.load(DATA)


@pytest.fixture(scope="session")
def safety_net() -> SafetyNet:
    return SafetyNet.load(DATA / "safety_net.yml")


@pytest.fixture(scope="session")
def nlu_model() -> NluModel:
    """The trained model (make test trains it first); loaded once for the whole run."""
    assert MODEL.is_file(), f"{MODEL} is missing: run `make train`"
    return NluModel.load(MODEL)


def make_triage(responses: Responses, safety_net: SafetyNet, model: NluModel | None = None, now: datetime = ON_DUTY) -> Triage:
    """Triage with the real texts and rules, the given model (or none) and a fixed clock."""
    return Triage(
        responses, safety_net, ModelHolder(model), DutyHours.parse("Mo-Fr 08:00-16:00", "Europe/Berlin"),
        confidence_threshold=0.5, escalation_threshold=0.35, clock=lambda: now,
    )


@pytest.fixture
def triage_no_model(responses: Responses, safety_net: SafetyNet) -> Triage:
    return make_triage(responses, safety_net)


@pytest.fixture(scope="session")
def triage_model(responses: Responses, safety_net: SafetyNet, nlu_model: NluModel) -> Triage:
    return make_triage(responses, safety_net, nlu_model)


@pytest.fixture
def handover() -> HandoverLog:
    log = HandoverLog.open(":memory:")
    yield log
    log.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings as a newcomer has them, with the database in a temporary folder."""
    return Settings.from_env({"DATABASE_PATH": str(tmp_path / "streife.sqlite3"), "WEB_PORT": "8080"}, dotenv=tmp_path / "none.env")
