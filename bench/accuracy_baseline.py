"""Accuracy of a TF-IDF + logistic regression baseline, cross-validated on the same folds as nlu.crossval.

What a team could build in an afternoon without Rasa: word 1-2-grams and character 2-5-grams
(inside word boundaries) weighted by TF-IDF, one logistic regression over all intents. Scored
like `python -m nlu.crossval`: the top intent per held-out message, macro-F1 over the intents.

Run: .venv/bin/python -m bench.accuracy_baseline [--folds 5]
Rasa's pipelines on the same folds: .venv/bin/python -m nlu.crossval (config.yml and Rasa's default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from nlu.crossval import stratified_folds
from nlu.evaluate import f1_table
from nlu.examples import Example, read_dir, read_examples
from nlu.intents import ESCALATION_INTENTS

ROOT = Path(__file__).resolve().parent.parent


def baseline(C: float = 10.0, words: tuple[int, int] = (1, 2), chars: tuple[int, int] = (2, 5),
             class_weight: str | None = None):
    """The TF-IDF + logistic regression pipeline (scikit-learn); the defaults are the afternoon baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(lowercase=True, ngram_range=words, sublinear_tf=True, min_df=1),
        TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=chars, sublinear_tf=True, min_df=1),
    )
    return make_pipeline(features, LogisticRegression(C=C, max_iter=3000, class_weight=class_weight))


def predict(train: list[Example], test: list[Example]) -> list[str]:
    """Fit on `train`, return the predicted intent for every message of `test`."""
    model = baseline().fit([e.text for e in train], [e.intent for e in train])
    return list(model.predict([e.text for e in test]))


def cross_validate(examples: list[Example], folds: int) -> dict[str, float]:
    """Macro-F1 over all held-out predictions, its spread over folds, accuracy, escalation recall."""
    expected, predicted, fold_f1 = [], [], []
    started = time.perf_counter()
    for train, test in stratified_folds(examples, folds):
        guesses = predict(train, test)
        fold_f1.append(f1_table([e.intent for e in test], guesses)[1])
        expected += [e.intent for e in test]
        predicted += guesses
    _, macro = f1_table(expected, predicted)
    escalations = [(e, p) for e, p in zip(expected, predicted) if e in ESCALATION_INTENTS]
    return {
        "macro_f1": macro, "macro_f1_sd": statistics.stdev(fold_f1) if folds > 1 else 0.0,
        "accuracy": sum(e == p for e, p in zip(expected, predicted)) / len(expected),
        "escalation_recall": sum(p in ESCALATION_INTENTS for _, p in escalations) / len(escalations),
        "seconds_per_fold": (time.perf_counter() - started) / folds,
    }


def held_out(examples: list[Example], test: list[Example]) -> float:
    """Macro-F1 on tests/test_nlu.yml when trained on all of data/nlu (compare: `make test`'s model check)."""
    return f1_table([e.intent for e in test], predict(examples, test))[1]


def main(argv: list[str] | None = None) -> int:
    """Print the baseline's cross-validated figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    examples = read_dir(args.data)
    r = cross_validate(examples, args.folds)
    test = held_out(examples, read_examples(ROOT / "tests" / "test_nlu.yml"))
    print(f"{args.folds}-fold cross-validation on {args.data} ({len(examples)} examples), same folds as nlu.crossval\n")
    print("| config | macro-F1 (sd over folds) | accuracy | escalation recall (classifier alone) | train s/fold | held-out macro-F1 |")
    print("|---|---|---|---|---|---|")
    print(f"| TF-IDF + logistic regression | {r['macro_f1']:.3f} (±{r['macro_f1_sd']:.3f}) | {r['accuracy']:.3f} "
          f"| {r['escalation_recall']:.3f} | {r['seconds_per_fold']:.1f} | {test:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
