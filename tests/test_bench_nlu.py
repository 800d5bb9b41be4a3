"""Tiny runs of the benchmarks that need scikit-learn or Rasa in process (the NLU environment)."""

from __future__ import annotations

from bench import accuracy_baseline
from nlu.examples import read_dir
from nlu.intents import INTENTS
from tests.conftest import ROOT


def test_the_baseline_is_cross_validated_on_a_small_sample() -> None:
    examples = read_dir(ROOT / "data" / "nlu")
    sample = [e for i in INTENTS for e in [x for x in examples if x.intent == i][:12]]
    figures = accuracy_baseline.cross_validate(sample, folds=2)
    assert 0.3 < figures["macro_f1"] <= 1.0 and 0 <= figures["escalation_recall"] <= 1.0
