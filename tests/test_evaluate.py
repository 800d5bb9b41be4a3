"""`make evaluate` and `make crossval`: folds, the report files, and the comparison with the last report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from nlu.crossval import config_with_epochs, stratified_folds, write_nlu_file
from nlu.evaluate import Miss, Scores
from nlu.examples import read_examples
from nlu.report import write_report
from tests.conftest import MODEL, ROOT
from tests.tiny_data import tiny_examples

INTENTS = ("greet", "bike_theft", "emergency")


def test_folds_are_disjoint_cover_everything_and_spread_each_intent() -> None:
    examples = tiny_examples(INTENTS, per_intent=11)
    folds = stratified_folds(examples, 3)
    tests = [test for _, test in folds]
    assert sorted(e.text for t in tests for e in t) == sorted(e.text for e in examples)
    for train, test in folds:
        assert not {e.text for e in train} & {e.text for e in test}
        counts = Counter(e.intent for e in test)
        assert set(counts) == set(INTENTS) and all(3 <= n <= 4 for n in counts.values())


def test_quick_runs_override_the_epochs(tmp_path: Path) -> None:
    config = config_with_epochs(ROOT / "nlu" / "default_config.yml", 2, tmp_path / "c.yml").read_text(encoding="utf-8")
    assert config.count("epochs: 2") == 2 and "epochs: 100" not in config


def scores_with(f1: dict[str, float]) -> Scores:
    """Scores whose per-intent F1 are as given (the rest is not looked at by the comparison)."""
    table = {i: {"precision": v, "recall": v, "f1": v, "support": 10} for i, v in f1.items()}
    return Scores(table, sum(f1.values()) / len(f1), 0.9, 1.0, 0.0, [], [], [Miss("mein radl", "bike_theft", "greet", 0.4, "answer")],
                  [0.9, 0.4], 0.01, ["greet", "bike_theft"], ["greet", "greet"])


def test_the_report_names_the_intents_that_got_better_or_worse(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    earlier = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    first, _, _ = write_report(tmp_path, scores_with({"greet": 0.90, "bike_theft": 0.90, "traffic": 0.80}), None, 0, {}, now=earlier)
    second, better, worse = write_report(
        tmp_path, scores_with({"greet": 0.95, "bike_theft": 0.70, "traffic": 0.81}), None, 0, {}, now=earlier + timedelta(hours=1),
    )
    assert better == ["greet: F1 0.90 → 0.95 (+0.05)"] and worse == ["bike_theft: F1 0.90 → 0.70 (-0.20)"]
    page = (second / "report.html").read_text(encoding="utf-8")
    assert f"Verglichen mit {first.name}" in page and "bike_theft: F1 0.90 → 0.70 (-0.20)" in page


def test_make_evaluate_writes_a_self_contained_report(tmp_path: Path) -> None:
    examples = tiny_examples(INTENTS, per_intent=14)
    (tmp_path / "nlu").mkdir()
    write_nlu_file([e for i, e in enumerate(examples) if i % 14 < 10], tmp_path / "nlu" / "train.yml")
    held_out = write_nlu_file([e for i, e in enumerate(examples) if i % 14 >= 10], tmp_path / "held_out.yml")
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "nlu.report", "--data", str(tmp_path / "nlu"), "--test", str(held_out),
               "--model", str(MODEL), "--out", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command + ["--folds", "2", "--epochs", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fold 2/2" in done.stderr  # the progress bar
    [folder] = list(out.iterdir())
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img alt="" src="data:image/png;base64,', page)) == 4  # matrix and histogram, twice
    assert "Notfälle erkannt (Testsatz)" in page and "Fehlalarme (Testsatz)" in page
    assert "<td>bike_theft</td>" in page and "Falsch erkannte Nachrichten" in page and "http" not in page
    scores = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    assert scores["folds"] == 2 and len(scores["crossval"]["expected"]) == 30
    assert len(scores["held_out"]["expected"]) == len(read_examples(held_out)) == 12

