"""`python -m bot triage`: one JSON line per input line, same order, whatever the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

KEYS = ["text", "intent", "confidence", "action", "reply", "language"]


def run_triage(stdin: bytes, model: str | None = None) -> tuple[list[dict], str]:
    env = dict(os.environ, LOG_LEVEL="WARNING")
    if model is not None:
        env["MODEL_PATH"] = model
    done = subprocess.run(
        [sys.executable, "-m", "bot", "triage"], input=stdin, capture_output=True, cwd=ROOT, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()], done.stderr.decode()


def test_bad_input_still_gets_one_decision_per_line_in_order() -> None:
    lines = [
        "hallo".encode(),
        b"",
        ("a" * 10_000).encode(),
        "😀😀😀🚓".encode(),
        b"\x01\x02 kontroll\x07zeichen",
        "Привет, mein Fahrrad ist weg".encode(),
        b"\xff\xfe kaputtes utf-8 \xc3",
        "hilfe einbrecher".encode(),
        "i want to kill myself".encode(),
    ]
    decisions, _ = run_triage(b"\n".join(lines) + b"\n")
    assert len(decisions) == len(lines)
    for decision in decisions:
        assert list(decision) == KEYS
        assert decision["action"] in ("answer", "escalate", "check", "handover", "clarify")
        assert decision["reply"]
    assert decisions[0]["intent"] == "greet"
    assert decisions[1]["action"] == "clarify"
    assert decisions[7]["action"] == "escalate" and "110" in decisions[7]["reply"]
    assert decisions[8]["action"] == "escalate" and decisions[8]["language"] == "en"


def test_without_a_model_the_safety_net_still_escalates(tmp_path) -> None:
    decisions, stderr = run_triage("hilfe einbrecher\nwo ist die wache\n".encode(), model=str(tmp_path / "missing.tar.gz"))
    assert [d["action"] for d in decisions] == ["escalate", "handover"]
    assert "safety-net mode" in stderr
