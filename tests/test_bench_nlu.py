"""Tiny runs of the benchmarks that need scikit-learn or Rasa in process (the NLU environment)."""

from __future__ import annotations

from bench import accuracy_baseline, round_cv
from nlu.examples import read_dir
from nlu.intents import INTENTS
from tests.conftest import ROOT


def test_the_baseline_is_cross_validated_on_a_small_sample() -> None:
    examples = read_dir(ROOT / "data" / "nlu")
    sample = [e for i in INTENTS for e in [x for x in examples if x.intent == i][:12]]
    figures = accuracy_baseline.cross_validate(sample, folds=2)
    assert 0.3 < figures["macro_f1"] <= 1.0 and 0 <= figures["escalation_recall"] <= 1.0


def test_every_example_belongs_to_a_round_and_a_left_out_round_is_scored() -> None:
    examples = read_dir(ROOT / "data" / "nlu")
    by_text = round_cv.rounds(ROOT / "data" / "nlu")
    assert sum(e.text in by_text for e in examples) >= 0.99 * len(examples)
    assert len(set(by_text.values())) >= 3  # the data was written in several rounds
    largest = max(by_text.values(), key=lambda c: sum(v == c for v in by_text.values()))
    train = [e for i in INTENTS for e in [x for x in examples if x.intent == i and by_text.get(x.text) != largest][:12]]
    test = [e for e in examples if by_text.get(e.text) == largest][:60]
    assert 0.0 < round_cv.score({}, train, test) <= 1.0
