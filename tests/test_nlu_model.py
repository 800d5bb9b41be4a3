"""The trained model on held-out messages it never saw (tests/test_nlu.yml)."""

from __future__ import annotations

import asyncio

import pytest

from bot.decision import Context
from bot.triage import Triage
from nlu.evaluate import Scores, score
from nlu.examples import read_examples
from tests.conftest import ROOT

MIN_MACRO_F1 = 0.85


@pytest.fixture(scope="module")
def scores(triage_model: Triage) -> Scores:
    return asyncio.run(score(triage_model, read_examples(ROOT / "tests" / "test_nlu.yml")))


def test_macro_f1_on_held_out_messages(scores: Scores) -> None:
    assert scores.macro_f1 >= MIN_MACRO_F1, scores.summary()


def test_every_held_out_emergency_and_self_harm_message_is_escalated(scores: Scores) -> None:
    assert scores.not_escalated == []


def test_few_other_messages_are_escalated(scores: Scores) -> None:
    assert scores.false_alarm_rate <= 0.02, scores.false_alarms


@pytest.mark.parametrize(
    "text, intent, action",
    [
        ("mein fahrrad wurde gestern geklaut", "bike_theft", "answer"),
        ("wie erkenne ich falsche polizisten", "fraud_scam", "answer"),
        ("kleiner unfall, nur blechschaden", "traffic", "answer"),
        ("die frau nebenan schreit seit minuten um hilfe", "emergency", "escalate"),
        ("ich will mit einem menschen sprechen", "human_handoff", "handover"),
        ("i was robbed last week, where can i file a report", "report_crime", "answer"),
    ],
)
async def test_hard_cases_from_the_issue(triage_model: Triage, text: str, intent: str, action: str) -> None:
    decision = await triage_model.decide(text, Context())
    assert (decision.intent, decision.action) == (intent, action)
