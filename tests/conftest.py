"""Shared fixtures: settings on a temporary database, the reply texts, the safety net, the model.

The suite runs twice (make test): in the service's environment (.venv, no Rasa), where the model
answers from a real NLU worker process, and in the NLU environment (.venv-nlu, Rasa), which runs
only the tests in NLU_SIDE with the model loaded in process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bot.decision import Parser  # noqa: E402
from bot.duty import DutyHours  # noqa: E402
from bot.handover import HandoverLog  # noqa: E402
from bot.nlu_client import NluClient  # noqa: E402
from bot.responses import Responses  # noqa: E402
from bot.safety_net import SafetyNet  # noqa: E402
from bot.settings import ROOT, Settings, is_postgres_url  # noqa: E402
from bot.triage import Triage  # noqa: E402
from tests.pg import PgServer, pg_server, pg_url  # noqa: E402,F401  (fixtures: a PostgreSQL server of our own)

DATA = ROOT / "data"
MODEL = ROOT / "models" / "nlu.tar.gz"
NLU_PYTHON = ROOT / ".venv-nlu" / "bin" / "python"
# Test modules that need Rasa in process: they run in the NLU environment only, all others in the service's.
NLU_SIDE = {"test_classifier.py", "test_nlu_model.py", "test_reload.py", "test_evaluate.py", "test_review.py",
            "test_validate.py", "test_data.py", "test_bench_nlu.py", "test_normalise.py"}
HAVE_RASA = importlib.util.find_spec("rasa") is not None
collect_ignore = sorted(
    name for name in os.listdir(Path(__file__).parent)
    if name.startswith("test_") and name.endswith(".py") and (name in NLU_SIDE) != HAVE_RASA
)
# A Wednesday, 10:00 in Berlin: inside the default duty hours.
ON_DUTY = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def responses() -> Responses:
    return Responses.load(DATA)


@pytest.fixture(scope="session")
def safety_net() -> SafetyNet:
    return SafetyNet.load(DATA / "safety_net.yml")


@pytest.fixture(scope="session")
def nlu_worker_socket() -> Path:
    """A real NLU worker process (the Rasa environment) serving the trained model; its socket."""
    assert MODEL.is_file(), f"{MODEL} is missing: run `make train`"
    assert NLU_PYTHON.exists(), f"{NLU_PYTHON} is missing: run `make setup`"
    folder = Path(tempfile.mkdtemp(prefix="streife-test-nlu-"))
    sock = folder / "worker.sock"
    proc = subprocess.Popen(
        [str(NLU_PYTHON), "-m", "nlu.worker", "--socket", str(sock), "--model", str(MODEL), "--watch", "0", "--exit-with-stdin"],
        stdin=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore", "LOG_LEVEL": "WARNING"},
    )
    client = NluClient([sock], deadline=60)
    try:
        assert asyncio.run(client.wait_ready(180)), "the NLU worker did not load the model within 180 s"
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def nlu_client(sock: Path) -> NluClient:
    """A client with a deadline generous enough for a loaded test machine."""
    return NluClient([sock], deadline=60)


def make_triage(responses: Responses, safety_net: SafetyNet, parser: Parser | None = None, now: datetime = ON_DUTY) -> Triage:
    """Triage with the real texts and rules, the given parser (or none) and a fixed clock."""
    return Triage(
        responses, safety_net, parser, DutyHours.parse("Mo-Fr 08:00-16:00", "Europe/Berlin"),
        confidence_threshold=0.5, escalation_threshold=0.35, clock=lambda: now,
    )


@pytest.fixture
def triage_no_model(responses: Responses, safety_net: SafetyNet) -> Triage:
    return make_triage(responses, safety_net)


@pytest.fixture(scope="session")
def triage_model(responses: Responses, safety_net: SafetyNet, nlu_worker_socket: Path) -> Triage:
    """Triage with the real model, asked through a real NLU worker, with the thresholds users get."""
    triage = make_triage(responses, safety_net, nlu_client(nlu_worker_socket))
    triage.confidence_threshold = Settings.confidence_threshold
    triage.escalation_threshold = Settings.escalation_threshold
    triage.check_threshold = Settings.check_threshold
    return triage


# STREIFE_TEST_BACKEND=postgresql runs the handover log's suites on PostgreSQL (make test does, for
# POSTGRES_SUITES): every log the tests open, by path or ":memory:", is a database on a server of our own.
BACKEND = os.environ.get("STREIFE_TEST_BACKEND", "sqlite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        skip = pytest.mark.skip(reason="about SQLite itself (files, locks, WAL or old files' migrations)")
        for item in items:
            if item.get_closest_marker("sqlite_only"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _log_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str] | None:
    """On PostgreSQL: SQLite path -> database URL for the logs this test opens (None on SQLite)."""
    if BACKEND != "postgresql":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    opened: dict[str, str] = {}
    sqlite_open = HandoverLog.open.__func__  # type: ignore[attr-defined]

    def open_on_postgres(cls: type[HandoverLog], path: Path | str, *args: object, **kwargs: object) -> HandoverLog:
        key = str(path)
        if is_postgres_url(key):
            url = key
        elif key == ":memory:" or key not in opened:
            url = server.create_database(f"t{os.getpid()}_{len(opened)}_{abs(hash((request.node.nodeid, key))) % 10**8}")
            if key != ":memory:":
                opened[key] = url
        else:
            url = opened[key]
        return sqlite_open(cls, url, *args, **kwargs)

    monkeypatch.setattr(HandoverLog, "open", classmethod(open_on_postgres))
    request.node._pg_server = server
    return opened


@pytest.fixture
def handover() -> HandoverLog:
    log = HandoverLog.open(":memory:")
    yield log
    log.close()


@pytest.fixture
def settings(tmp_path: Path, _log_backend: dict[str, str] | None, request: pytest.FixtureRequest) -> Settings:
    """Settings as a newcomer has them, with the database in a temporary folder (or on our PostgreSQL)."""
    env = {"DATABASE_PATH": str(tmp_path / "streife.sqlite3"), "WEB_PORT": "8080"}
    if _log_backend is not None:  # the same database for this process and the commands a test runs
        env["DATABASE_URL"] = request.node._pg_server.create_database(f"s{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**9}")
        _log_backend[env["DATABASE_PATH"]] = env["DATABASE_URL"]
    return Settings.from_env(env, dotenv=tmp_path / "none.env")
