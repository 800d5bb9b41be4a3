"""`make review`: what the bot did not understand goes to the trainers, pseudonymised, as Rasa YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.handover import HandoverLog, Inbound
from nlu.examples import read_examples
from nlu.review import export, model_guess, pseudonymise
from tests.conftest import MODEL, ROOT

# (text, intent, confidence, action) as the bot recorded them
LOGGED = [
    ("ruf mich an unter 0171 2345678, ich heiße Lena Schmidt", "nlu_fallback", 0.31, "clarify"),
    ("wie wird das wetter morgen", "out_of_scope", 0.88, "clarify"),
    ("mein radl is weg, schreib an lena.s@example.org", "bike_theft", 0.52, "answer"),
    ("wann habt ihr offen", "station_contact", 0.97, "answer"),  # sure and right: not for review
    ("hilfe messer", "emergency", 1.0, "escalate"),  # emergencies are for people, not for the review file
    ("hallo", "greet", 0.99, "answer"),  # relabelled below
]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ruf an: 0171 2345678", "ruf an: <telefon>"),
        ("tel +49 (0) 631 123456 bitte", "tel <telefon> bitte"),
        ("max.mustermann@gmx.de", "<email>"),
        ("ich heiße Lena Schmidt", "ich heiße <name>"),
        ("mein name ist kevin und ich", "mein name ist <name> und ich"),
        ("Herr Meier von nebenan", "Herr <name> von nebenan"),
        ("wohne in der Hauptstraße 12a in 67655", "wohne in der <straße> in <nummer>"),
        ("KL-AB 123 parkt falsch", "<kennzeichen> parkt falsch"),
        ("schau www.example.com/x und @lena_99", "schau <link> und <nutzer>"),
        ("ich bin die ganze zeit allein", "ich bin die ganze zeit allein"),
        ("notruf 110, hilfetelefon 116 016", "notruf 110, hilfetelefon 116 016"),
    ],
)
def test_pseudonymise(text: str, expected: str) -> None:
    assert pseudonymise(text) == expected


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """A handover log file with a day of citizens' messages and the bot's readings."""
    path = tmp_path / "streife.sqlite3"
    handover = HandoverLog.open(path)
    for n, (text, intent, confidence, action) in enumerate(LOGGED):
        stored = handover.record_inbound(Inbound("telegram", f"4711{n}", f"99887766{n}", text, platform_id=str(n)))
        assert stored is not None
        handover.record_decision(stored.message.id, intent, confidence, action)
    handover.relabel(stored.message.id, "thanks", "officer-felix")
    handover.close()
    return path


def test_export_holds_the_right_messages_pseudonymised(log_file: Path, tmp_path: Path) -> None:
    handover = HandoverLog.open(log_file)
    path, count = export(handover, tmp_path / "reviews", known=["Wie wird das Wetter morgen?"])
    handover.close()
    body = path.read_text(encoding="utf-8")
    examples = [(e.text, e.intent) for e in read_examples(path)]  # a Rasa NLU file trainers can merge
    assert count == 3 and sorted(examples) == sorted([
        ("ruf mich an unter <telefon>, ich heiße <name>", "nlu_fallback"),
        ("mein radl is weg, schreib an <email>", "bike_theft"),
        ("hallo", "thanks"),
    ])
    for secret in ("0171", "Lena", "Schmidt", "example.org", "99887766", "4711", "officer-felix", "messer"):
        assert secret not in body
    assert "unsicher beantwortet: bike_theft (0.52)" in body and "umbenannt" in body


def test_the_model_names_its_best_guess(log_file: Path, tmp_path: Path) -> None:
    assert MODEL.is_file()
    handover = HandoverLog.open(log_file)
    path, _ = export(handover, tmp_path / "reviews", guess=model_guess(MODEL))
    handover.close()
    intents = {e.text: e.intent for e in read_examples(path)}
    assert intents["mein radl is weg, schreib an <email>"] == "bike_theft"
    assert intents["hallo"] == "thanks"  # the officer's label wins over the model
    assert "nlu_fallback" not in intents.values()


def test_make_review_command_writes_the_file(log_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_PATH": str(log_file), "LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "nlu.review", "--no-model", "--out", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    files = list((tmp_path / "out").glob("*.yml"))
    assert len(files) == 1 and "3 message(s) to review" in done.stdout  # "wie wird das wetter morgen" is trained on
