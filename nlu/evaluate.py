"""Measure a model on messages it never saw: intents (macro-F1) and what triage did with each message."""

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
from nlu.parse import Parse

ROOT = Path(__file__).resolve().parent.parent
# The topic intents answered with an informational reply ("FAQ"); the report's "FAQ answered right"
# is the share of messages of these intents that got action `answer` with that very intent.
FAQ_INTENTS = ("report_crime", "lost_found", "bike_theft", "fraud_scam", "cybercrime", "traffic",
               "noise_complaint", "police_career", "station_contact")
# Replies that tell the citizen the bot did not understand: clarify, and the handover after a second clarify.
NOT_UNDERSTOOD_INTENTS = frozenset({"out_of_scope", "nlu_fallback"})
FALLBACK = "nlu_fallback"


@dataclass(frozen=True)
class Miss:
    """A message the model read as another intent."""

    text: str
    expected: str
    predicted: str
    confidence: float
    action: str


@dataclass(frozen=True)
class Sample:
    """One message, its true intent and the model's parse: enough to ask triage again with other thresholds."""

    text: str
    expected: str
    parse: Parse


@dataclass
class Scores:
    """The figures trainers and the tests look at, for one set of messages."""

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
    actions: list[str] = field(default_factory=list)  # triage's action per message
    sources: list[str] = field(default_factory=list)  # what decided it: model, safety_net, ...
    false_alarm_net: float = 0.0  # other messages escalated by the safety net (part of false_alarm_rate)
    check_rate_danger: float = 0.0  # emergency/self_harm messages that got `check` instead of `escalate`
    check_rate_other: float = 0.0  # other messages that got `check`
    faq_correct: float = 0.0  # FAQ_INTENTS messages answered with the right intent
    not_understood: float = 0.0  # all messages that got "did not understand"
    samples: list[Sample] = field(default_factory=list, repr=False)  # not written to scores.json

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"n={len(self.expected)}  macro-F1 {self.macro_f1:.3f}  accuracy {self.accuracy:.3f}  "
            f"escalated {self.escalation_recall:.1%}  false alarms {self.false_alarm_rate:.1%} (net {self.false_alarm_net:.1%})  "
            f"check {self.check_rate_danger:.1%} danger / {self.check_rate_other:.1%} other  "
            f"FAQ right {self.faq_correct:.1%}  not understood {self.not_understood:.1%}"
        )

    def as_json(self) -> dict[str, object]:
        """Everything but the parses, for scores.json."""
        body = asdict(self)
        del body["samples"]
        return body


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
    return table, sum(row["f1"] for row in table.values()) / len(table) if table else 0.0


def _share(hits: int, total: int, empty: float = 0.0) -> float:
    return hits / total if total else empty


def outcome_rates(expected: list[str], actions: list[str], decided: list[str]) -> dict[str, float]:
    """What triage did, as rates: escalated, false alarms, checks, FAQ answered right, not understood, wrong replies."""
    danger = [a for e, a in zip(expected, actions) if e in ESCALATION_INTENTS]
    other = [a for e, a in zip(expected, actions) if e not in ESCALATION_INTENTS]
    faq = [(a, d, e) for e, a, d in zip(expected, actions, decided) if e in FAQ_INTENTS]
    not_understood = sum(a == "clarify" or (a == "handover" and d in NOT_UNDERSTOOD_INTENTS) for a, d in zip(actions, decided))
    wrong = sum(a in ("answer", "handover") and d not in NOT_UNDERSTOOD_INTENTS and d != e
                for e, a, d in zip(expected, actions, decided))
    return {
        "escalation_recall": _share(danger.count("escalate"), len(danger), 1.0),
        "escalate_or_check": _share(sum(a in ("escalate", "check") for a in danger), len(danger), 1.0),
        "false_alarm_rate": _share(other.count("escalate"), len(other)),
        "check_rate_danger": _share(danger.count("check"), len(danger)),
        "check_rate_other": _share(other.count("check"), len(other)),
        "faq_correct": _share(sum(a == "answer" and d == e for a, d, e in faq), len(faq)),
        "not_understood": _share(not_understood, len(expected)),
        "wrong_reply": _share(wrong, len(expected)),
    }


def top_intent(parse: Parse) -> tuple[str, float]:
    """The model's best intent other than the fallback, and its confidence."""
    return next(((n, c) for n, c in parse.ranking if n != FALLBACK), (parse.intent, parse.confidence))


def decide_all(triage: object, samples: list[Sample]) -> tuple[list[str], list[str], list[str]]:
    """Triage's action, intent and source (model, safety_net, ...) for every sample, each as a first message."""
    from bot.decision import Context

    first = Context()
    decisions = [triage.decide_with(s.text, first, s.parse) for s in samples]  # type: ignore[attr-defined]
    return [d.action for d in decisions], [d.intent for d in decisions], [d.source for d in decisions]


def score_samples(triage: object, samples: list[Sample], seconds_per_message: float = 0.0) -> Scores:
    """Score already parsed messages through triage (safety net, thresholds, actions)."""
    actions, decided, sources = decide_all(triage, samples)
    expected = [s.expected for s in samples]
    tops = [top_intent(s.parse) for s in samples]
    predicted, confidences = [t[0] for t in tops], [t[1] for t in tops]
    table, macro = f1_table(expected, predicted)
    rates = outcome_rates(expected, actions, decided)
    misses = [Miss(s.text, s.expected, p, round(c, 3), a)
              for s, (p, c), a in zip(samples, tops, actions) if p != s.expected]
    return Scores(
        per_intent=table,
        macro_f1=macro,
        accuracy=_share(sum(e == p for e, p in zip(expected, predicted)), len(expected)),
        escalation_recall=rates["escalation_recall"],
        false_alarm_rate=rates["false_alarm_rate"],
        not_escalated=[s.text for s, a in zip(samples, actions) if s.expected in ESCALATION_INTENTS and a != "escalate"],
        false_alarms=[s.text for s, a in zip(samples, actions) if s.expected not in ESCALATION_INTENTS and a == "escalate"],
        misses=misses,
        confidences=confidences,
        seconds_per_message=seconds_per_message,
        expected=expected,
        predicted=predicted,
        actions=actions,
        sources=sources,
        false_alarm_net=_share(sum(e not in ESCALATION_INTENTS and a == "escalate" and src == "safety_net"
                                   for e, a, src in zip(expected, actions, sources)),
                               sum(e not in ESCALATION_INTENTS for e in expected)),
        check_rate_danger=rates["check_rate_danger"],
        check_rate_other=rates["check_rate_other"],
        faq_correct=rates["faq_correct"],
        not_understood=rates["not_understood"],
        samples=list(samples),
    )


async def parse_all(parser: object, examples: list[Example]) -> tuple[list[Sample], float]:
    """Parse every example (cleaned as triage does); return the samples and the seconds per message."""
    from bot.text import clean

    started = time.perf_counter()
    samples = []
    for example in examples:
        parse = await parser.parse(clean(example.text))  # type: ignore[attr-defined]
        if parse is None:
            raise RuntimeError("the model gave no parse: is it loaded?")
        samples.append(Sample(example.text, example.intent, parse))
    return samples, (time.perf_counter() - started) / len(examples) if examples else 0.0


async def score(triage: object, examples: list[Example]) -> Scores:
    """Run every example through triage's model and triage itself, and score intents and actions."""
    samples, seconds = await parse_all(triage.parser, examples)  # type: ignore[attr-defined]
    return score_samples(triage, samples, seconds)


def merge(triage: object, parts: list[Scores]) -> Scores:
    """One set of scores over all the messages of several runs (the folds of a cross-validation)."""
    samples = [s for p in parts for s in p.samples]
    seconds = _share(sum(p.seconds_per_message * len(p.expected) for p in parts), len(samples))
    return score_samples(triage, samples, seconds)


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
        print(json.dumps(scores.as_json(), ensure_ascii=False, indent=2))
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
