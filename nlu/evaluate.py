"""Measure a model on held-out messages: per-intent scores, macro-F1, escalation recall, false alarms."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nlu.examples import Example, read_examples
from nlu.intents import ESCALATION_INTENTS, INTENTS

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Miss:
    """A held-out message the model read as another intent."""

    text: str
    expected: str
    predicted: str
    confidence: float
    action: str


@dataclass
class Scores:
    """The figures trainers and the tests look at."""

    per_intent: dict[str, dict[str, float]]
    macro_f1: float
    accuracy: float
    escalation_recall: float
    false_alarm_rate: float
    not_escalated: list[str]
    false_alarms: list[str]
    misses: list[Miss] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    seconds_per_message: float = 0.0
    expected: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the console."""
        return (
            f"macro-F1 {self.macro_f1:.3f}  accuracy {self.accuracy:.3f}  "
            f"escalation recall {self.escalation_recall:.3f}  false alarms {self.false_alarm_rate:.3%}  "
            f"({self.seconds_per_message * 1000:.1f} ms/message)"
        )


def f1_table(expected: list[str], predicted: list[str]) -> tuple[dict[str, dict[str, float]], float]:
    """Precision, recall, F1 and support per intent, and the macro-F1 over the expected intents."""
    table = {}
    for intent in sorted(set(expected)):
        tp = sum(e == p == intent for e, p in zip(expected, predicted))
        fp = sum(p == intent != e for e, p in zip(expected, predicted))
        fn = sum(e == intent != p for e, p in zip(expected, predicted))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[intent] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return table, sum(row["f1"] for row in table.values()) / len(table)


async def score(triage: object, examples: list[Example]) -> Scores:
    """Run every example through triage (safety net and model) and score the intents and escalations."""
    from bot.triage import Context

    model = triage.models.model  # type: ignore[attr-defined]
    expected, predicted, confidences, misses = [], [], [], []
    not_escalated, false_alarms = [], []
    started = time.perf_counter()
    for example in examples:
        parse = await model.parse(example.text)
        decision = triage.decide_with(example.text, Context(), parse)  # type: ignore[attr-defined]
        top, confidence = next(((n, c) for n, c in parse.ranking if n != "nlu_fallback"), (parse.intent, parse.confidence))
        expected.append(example.intent)
        predicted.append(top)
        confidences.append(confidence)
        if top != example.intent:
            misses.append(Miss(example.text, example.intent, top, round(confidence, 3), decision.action))
        if example.intent in ESCALATION_INTENTS and decision.action != "escalate":
            not_escalated.append(example.text)
        if example.intent not in ESCALATION_INTENTS and decision.action == "escalate":
            false_alarms.append(example.text)
    elapsed = time.perf_counter() - started
    return _scores(expected, predicted, confidences, misses, not_escalated, false_alarms, elapsed / len(examples))


def _scores(
    expected: list[str],
    predicted: list[str],
    confidences: list[float],
    misses: list[Miss],
    not_escalated: list[str],
    false_alarms: list[str],
    seconds_per_message: float,
) -> Scores:
    table, macro = f1_table(expected, predicted)
    escalations = sum(e in ESCALATION_INTENTS for e in expected)
    others = len(expected) - escalations
    return Scores(
        per_intent=table,
        macro_f1=macro,
        accuracy=sum(e == p for e, p in zip(expected, predicted)) / len(expected),
        escalation_recall=1 - len(not_escalated) / escalations if escalations else 1.0,
        false_alarm_rate=len(false_alarms) / others if others else 0.0,
        not_escalated=not_escalated,
        false_alarms=false_alarms,
        misses=misses,
        confidences=confidences,
        seconds_per_message=seconds_per_message,
        expected=expected,
        predicted=predicted,
    )


def merge(parts: list[Scores]) -> Scores:
    """One set of scores over all the messages of several runs (the folds of a cross-validation)."""
    total = sum(len(p.expected) for p in parts)
    return _scores(
        [e for p in parts for e in p.expected],
        [e for p in parts for e in p.predicted],
        [c for p in parts for c in p.confidences],
        [m for p in parts for m in p.misses],
        [t for p in parts for t in p.not_escalated],
        [t for p in parts for t in p.false_alarms],
        sum(p.seconds_per_message * len(p.expected) for p in parts) / total if total else 0.0,
    )


def main(argv: list[str] | None = None) -> int:
    """Score the trained model on the held-out file and print the figures (JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nlu.tar.gz")
    parser.add_argument("--test", type=Path, default=ROOT / "tests" / "test_nlu.yml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from bot.services import build_triage
    from bot.settings import Settings
    from nlu.model import ModelHolder, NluModel

    triage = build_triage(Settings.from_env(), ModelHolder(NluModel.load(args.model)))
    scores = asyncio.run(score(triage, read_examples(args.test)))
    if args.json:
        print(json.dumps(asdict(scores), ensure_ascii=False, indent=2))
        return 0
    for intent in INTENTS:
        row = scores.per_intent.get(intent)
        if row:
            print(f"{intent:18} P {row['precision']:.2f}  R {row['recall']:.2f}  F1 {row['f1']:.2f}  n={row['support']:.0f}")
    for miss in scores.misses:
        print(f"  miss: {miss.expected} -> {miss.predicted} ({miss.confidence:.2f}, {miss.action}): {miss.text}")
    for text in scores.not_escalated:
        print(f"  NOT ESCALATED: {text}")
    for text in scores.false_alarms:
        print(f"  false alarm: {text}")
    print(scores.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
