"""`make evaluate`, `make crossval` and bench.accuracy_sets: folds, the three sets, the threshold curves, the report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bench import accuracy_sets
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.triage import Triage
from nlu.calibrate import CHECK_BUDGET, RECALL_TARGET, calibrate
from nlu.crossval import config_with_epochs, stratified_folds, write_nlu_file
from nlu.eval_sets import Measured, read_tsv, real_eval_path
from nlu.evaluate import Sample, score_samples
from nlu.examples import DataError, read_examples
from nlu.parse import Parse
from nlu.report import write_report
from tests.conftest import MODEL, ROOT, make_triage
from tests.tiny_data import tiny_examples

INTENTS = ("greet", "bike_theft", "emergency")
# A tiny "real" set in our own words (the real development set itself is never read by tests).
REAL_ROWS = [("bike_theft", "mein e-bike ist aus dem keller verschwunden"), ("greet", "moin zusammen"),
             ("emergency", "hilfe da schlägt einer gerade eine frau vor unserem haus")]


@pytest.fixture
def triage(responses: Responses, safety_net: SafetyNet) -> Triage:
    return make_triage(responses, safety_net)


def reading(intent: str, confidence: float, danger: float = 0.0, escalation: str = "emergency") -> Parse:
    """A model parse with `intent` and `danger` for an escalation intent; below 0.25 the model falls back."""
    ranking = sorted([(intent, confidence), (escalation, danger), ("goodbye", 0.01)], key=lambda r: -r[1])
    return Parse(ranking[0][0] if ranking[0][1] >= 0.25 else "nlu_fallback", ranking[0][1], tuple(ranking))


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


def test_every_message_is_scored_by_what_triage_does_with_it(triage: Triage) -> None:
    between = (triage.check_threshold + triage.escalation_threshold) / 2
    samples = [
        Sample("mein fahrrad ist weg", "bike_theft", reading("bike_theft", 0.9)),  # answered right
        Sample("wo ist das fundbüro", "lost_found", reading("station_contact", 0.8)),  # answered wrong
        Sample("hm also wegen dem ding", "traffic", reading("traffic", 0.3)),  # not sure: did not understand
        Sample("da draußen ist was komisch", "emergency", reading("tip_off", 0.4, between)),  # check, not escalated
        Sample("es tut so weh", "self_harm", reading("out_of_scope", 0.2, 0.6, "self_harm")),  # escalated by the model
        Sample("der nachbar bohrt schon wieder", "noise_complaint", reading("noise_complaint", 0.4, between)),  # check
        Sample("ihr seid so lahm", "insult", reading("insult", 0.3, 0.5)),  # a false alarm by the model
        Sample("jemand ist mit einem messer in unserer wohnung", "tip_off", reading("tip_off", 0.8)),  # one by the safety net
    ]
    scores = score_samples(triage, samples)
    assert scores.actions == ["answer", "answer", "clarify", "check", "escalate", "check", "escalate", "escalate"]
    assert scores.sources[-2:] == ["model", "safety_net"]
    assert scores.escalation_recall == 0.5 and scores.not_escalated == ["da draußen ist was komisch"]
    assert scores.check_rate_danger == 0.5
    assert scores.false_alarm_rate == pytest.approx(2 / 6) and scores.false_alarms[0] == "ihr seid so lahm"
    assert scores.false_alarm_net == pytest.approx(1 / 6) and scores.check_rate_other == pytest.approx(1 / 6)
    assert scores.faq_correct == pytest.approx(1 / 4)  # bike yes; lost_found wrong; traffic unclear; noise checked
    assert scores.not_understood == pytest.approx(1 / 8)


def test_thresholds_are_chosen_from_the_curves_by_the_stated_rules(triage: Triage) -> None:
    samples = [Sample(f"nachricht {i}", "emergency", reading("out_of_scope", 0.1, 0.101 + 0.02 * i)) for i in range(40)]
    samples += [Sample(f"zeile {i}", "traffic", reading("traffic", 0.205 + 0.02 * i, 0.125 if i < 2 else 0.005 + 0.01 * (i % 5)))
                for i in range(40)]
    cal = calibrate(triage, samples)
    rec = cal.recommended
    # 0.14: 38 of 40 emergencies (95 %) and no false alarm; 0.06: two ordinary messages (5 %) asked;
    # 0.26: the least "did not understand" (no reply is wrong here), the higher threshold on a tie.
    assert rec == {"escalation_threshold": 0.14, "check_threshold": 0.06, "confidence_threshold": 0.26}
    at = {round(p["threshold"], 2): p for p in cal.escalation}
    assert at[rec["escalation_threshold"]]["escalation_recall"] >= RECALL_TARGET
    higher = [p for p in cal.escalation if p["threshold"] > rec["escalation_threshold"]]
    assert all(p["escalation_recall"] < RECALL_TARGET or p["false_alarm_rate"] > at[rec["escalation_threshold"]]["false_alarm_rate"]
               for p in higher)
    band = rec["check_threshold"]
    assert band < rec["escalation_threshold"]
    assert cal.at("check", band)["check_rate_other"] <= CHECK_BUDGET
    assert all(p["check_rate_other"] > CHECK_BUDGET for p in cal.check if p["threshold"] < band)
    assert cal.current["escalation_threshold"] == triage.escalation_threshold == 0.35  # the triage itself is left alone
    assert any("ESCALATION_THRESHOLD" in line for line in cal.lines())


@pytest.mark.parametrize("near_misses, kept", [(1, True), (3, False)])
def test_a_current_threshold_that_meets_its_rule_stays_unless_another_is_clearly_better(
        triage: Triage, near_misses: int, kept: bool) -> None:
    # 40 emergencies read at 0.9 are escalated at every threshold up to 0.88; of 200 bike thefts,
    # `near_misses` are read with danger 0.36, just above today's escalation threshold (0.35).
    samples = [Sample(f"nachricht {i}", "emergency", reading("emergency", 0.9, 0.9)) for i in range(40)]
    samples += [Sample(f"rad {i}", "bike_theft", reading("bike_theft", 0.6, 0.36 if i < near_misses else 0.01))
                for i in range(200)]
    cal = calibrate(triage, samples)
    # one false alarm in 200 (0.5 %) is noise: the operator's value stays; three (1.5 %) are not.
    assert (cal.recommended["escalation_threshold"] == 0.35) is kept
    assert any(n.startswith("ESCALATION_THRESHOLD kept at 0.35") for n in cal.notes) is kept


def test_the_real_set_is_read_from_tab_separated_lines(tmp_path: Path) -> None:
    path = tmp_path / "real.tsv"
    path.write_text("intent\ttext\tsource\tnote\ngreet\thallo  ihr\thttps://example.org/1\tmine\n\n"
                    "traffic\tblitzer\tam ring\thttps://example.org/2\t\n", encoding="utf-8")
    assert [(e.intent, e.text, e.line) for e in read_tsv(path)] == [("greet", "hallo ihr", 2), ("traffic", "blitzer am ring", 4)]
    path.write_text("greet\thallo\nnur ein satz ohne tab\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_tsv(path)
    assert err.value.where.endswith("real.tsv:2") and "ohne tab" not in str(err.value)  # never echoes a message
    assert real_eval_path({"REAL_EVAL_PATH": "x/y.tsv"}) == ROOT / "x" / "y.tsv"
    assert real_eval_path({}) == ROOT.parent / "shared" / "eval" / "real_dev.tsv"


def test_the_report_compares_each_set_with_the_previous_report(tmp_path: Path, triage: Triage) -> None:
    def measured(read_as: str) -> Measured:
        samples = [Sample("mein rad", "bike_theft", reading(read_as, 0.9)), Sample("hallo", "greet", reading("greet", 0.9)),
                   Sample("radl weg", "bike_theft", reading("bike_theft", 0.9))]
        return Measured({"crossval": None, "held_out": score_samples(triage, samples), "real": None},
                        {"crossval": "cross-validation skipped (--folds 0)", "real": "real development set not found"})

    earlier = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    first, _ = write_report(tmp_path, measured("bike_theft"), 0, {}, now=earlier)
    second, changes = write_report(tmp_path, measured("greet"), 0, {}, now=earlier + timedelta(hours=1))
    assert changes["held_out"] == ([], ["bike_theft: F1 1.00 → 0.67 (-0.33)", "greet: F1 1.00 → 0.67 (-0.33)"])
    page = (second / "report.html").read_text(encoding="utf-8")
    assert f"Verglichen mit {first.name}" in page and "bike_theft: F1 1.00 → 0.67 (-0.33)" in page
    assert "(vorher 1.000)" in page and "Echte Nachrichten: real development set not found" in page
    assert json.loads((second / "scores.json").read_text(encoding="utf-8"))["real"] is None


def write_real(path: Path) -> Path:
    path.write_text("".join(f"{i}\t{t}\t\t\n" for i, t in REAL_ROWS), encoding="utf-8")
    return path


def test_make_evaluate_writes_three_sets_and_the_threshold_curves(tmp_path: Path) -> None:
    examples = tiny_examples(INTENTS, per_intent=14)
    (tmp_path / "nlu").mkdir()
    write_nlu_file([e for i, e in enumerate(examples) if i % 14 < 10], tmp_path / "nlu" / "train.yml")
    held_out = write_nlu_file([e for i, e in enumerate(examples) if i % 14 >= 10], tmp_path / "held_out.yml")
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "nlu.report", "--data", str(tmp_path / "nlu"), "--test", str(held_out),
               "--model", str(MODEL), "--out", str(out), "--folds", "2", "--epochs", "2"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "REAL_EVAL_PATH": str(write_real(tmp_path / "real.tsv"))}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fold 2/2" in done.stderr  # the progress bar
    assert re.search(r"^real dev set +n=3 +macro-F1", done.stdout, re.M) and "ESCALATION_THRESHOLD" in done.stdout
    assert not any(text in done.stdout + done.stderr for _, text in REAL_ROWS)  # real messages never reach the console
    [folder] = list(out.iterdir())
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<th>Kreuzvalidierung</th><th>Testsatz</th><th>Echte Nachrichten</th>" in page
    assert len(re.findall(r'<img alt="" src="data:image/png;base64,', page)) == 6  # matrix and histogram per set
    assert len(re.findall(r"<svg[ >]", page)) == 3 and "CHECK_THRESHOLD" in page  # the three curves, inline
    assert not re.search(r'(src|href)="https?:', page) and "<script" not in page  # nothing loaded from elsewhere
    assert "Notfälle eskaliert (Testsatz)" in page and "FAQ richtig beantwortet" in page and "<th>check</th>" in page
    scores = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    assert scores["folds"] == 2 and len(scores["crossval"]["expected"]) == 30
    assert len(scores["held_out"]["expected"]) == len(read_examples(held_out)) == 12 and len(scores["real"]["actions"]) == 3
    assert scores["calibration"]["recommended"]["escalation_threshold"] is not None


def test_without_the_real_set_the_evaluation_says_so_in_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "nlu.report", "--folds", "0", "--model", str(MODEL), "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "REAL_EVAL_PATH": str(tmp_path / "absent.tsv")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if "absent.tsv" in line]
    assert line.startswith("real dev set") and "not found" in line and "skipped" in line
    assert re.search(r"^held-out +n=\d+", done.stdout, re.M)
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((folder / "scores.json").read_text(encoding="utf-8"))["real"] is None


def test_bench_accuracy_sets_prints_one_line_per_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nlu").mkdir()
    write_nlu_file(tiny_examples(INTENTS, per_intent=10), tmp_path / "nlu" / "train.yml")
    accuracy_sets.main(["--data", str(tmp_path / "nlu"), "--folds", "2", "--real", str(write_real(tmp_path / "real.tsv"))])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["set", "n", "macro-F1"]
    assert [line.split()[0] for line in out[1:4]] == ["cross-validation", "held-out", "real"]
    # then one line per other language (tests/multilingual) and one for language identification
    assert [line.split()[0] for line in out[4:]] == ["ar", "fa", "pl", "ro", "ru", "tr", "uk", "language"]
    assert all("escalation recall" in line for line in out[4:-1]) and "on 3+ words" in out[-1]
    assert out[1].split()[1] == "30" and out[3].split()[3] == "3"
    assert not any(text in "\n".join(out) for _, text in REAL_ROWS)
