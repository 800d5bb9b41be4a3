"""Emergencies and self-harm without danger words: the net escalates the clear ones and asks about the weaker ones."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.decision import Context
from bot.triage import Triage
from nlu.parse import Parse
from tests.conftest import ROOT, make_triage
from tests.test_net_sets import QUIET, read_set

INDIRECT = ROOT / "tests" / "net_indirect.yml"
# Measured on 2026-11-27 when tests/net_indirect.yml was written: before the rules for these kinds, 68 of 120
# escalated and none asked about; after them, 115 escalated and 4 asked ("in Gefahr?"), 1 missed.
# 2026-11-28 (session 7, "wenn" lifted by "gerade"): 116 escalated, 4 asked, none missed.
# These floors may rise with better rules, never fall.
ESCALATED = 117  # session 15: a past threat with pounding at the door now
ESCALATED_OR_ASKED = 135  # session 14: three Swiss and German farewells on a bridge (asked); session 15: 12 threats
# with the one who made them arriving soon (asked) or at the door (escalated)
MAX_QUIET_ASKED = 0.03  # at most 3 % of the everyday messages get "Bist du oder ist jemand gerade in Gefahr?"
CHECK_LINE = "Bist du oder ist jemand gerade in Gefahr?"
# a message that only an `action: check` rule catches (a veiled threat against a school)
ASKED = "in der whatsapp gruppe steht dass am freitag an der realschule was passiert und alle sollen zu hause bleiben"


def outcomes(net: SafetyNet) -> list[tuple[dict[str, str], str | None, str | None]]:
    """(message, action, intent) of the net for every message of tests/net_indirect.yml; action None: missed."""
    rows = []
    for item in read_set(INDIRECT, {"text", "intent", "why"}):
        hit = net.assess(item["text"])
        rows.append((item, hit.action if hit else None, hit.intent if hit else None))
    return rows


def parse(*ranking: tuple[str, float]) -> Parse:
    """A model reading: the first pair is the top intent."""
    return Parse(ranking[0][0], ranking[0][1], tuple(ranking))


class FixedParser:
    """A model that reads every message the same way and remembers what it was asked."""

    def __init__(self, reading: Parse) -> None:
        self.reading, self.asked = reading, []

    @property
    def ready(self) -> bool:
        return True

    async def parse(self, text: str, urgent: bool = False) -> Parse:
        self.asked.append(text)
        return self.reading


def test_the_set_is_large_distinct_and_covers_every_kind() -> None:
    items = read_set(INDIRECT, {"text", "intent", "why"})
    kinds = Counter(item["why"] for item in items)
    assert len(items) >= 120 and len({i["text"] for i in items}) == len(items)
    assert min(kinds.values()) >= 6 and len(kinds) >= 12, kinds
    quiet = {i["text"] for i in read_set(QUIET, {"text", "why"})}
    assert not quiet & {i["text"] for i in items}, "a message is both acute and quiet"


def test_emergencies_without_danger_words_are_escalated_or_asked_about(safety_net: SafetyNet) -> None:
    rows = outcomes(safety_net)
    escalated = sum(action == "escalate" for _, action, _ in rows)
    asked = sum(action == "check" for _, action, _ in rows)
    missed = "\n".join(f"  [{item['why']}] {item['text']}" for item, action, _ in rows if action is None)
    assert escalated >= ESCALATED, f"only {escalated} of {len(rows)} escalated (was {ESCALATED})"
    assert escalated + asked >= ESCALATED_OR_ASKED, f"{escalated} escalated, {asked} asked; missed:\n{missed}"
    kinds = {item["why"] for item, _, _ in rows}
    for kind in kinds:
        caught = [action for item, action, _ in rows if item["why"] == kind and action is not None]
        assert caught.count("escalate") >= 1, f"no message of the kind {kind!r} is escalated"


def test_the_net_names_the_right_danger(safety_net: SafetyNet) -> None:
    wrong = [(item["text"], intent) for item, action, intent in outcomes(safety_net) if action and intent != item["intent"]]
    assert not wrong, wrong


def test_everyday_look_alikes_are_rarely_asked_about(safety_net: SafetyNet) -> None:
    quiet = read_set(QUIET, {"text", "why"})
    asked = [(item, hit) for item in quiet if (hit := safety_net.assess(item["text"])) is not None and hit.action == "check"]
    report = "\n".join(f"  {hit.rule} [{item['why']}] {item['text']}" for item, hit in asked)
    assert len(asked) <= MAX_QUIET_ASKED * len(quiet), f"{len(asked)} of {len(quiet)} asked about:\n{report}"


def test_a_check_rule_never_counts_as_an_escalation(safety_net: SafetyNet) -> None:
    """`check` (the net's answer for escalations everywhere else) only reports rules that escalate."""
    hit = safety_net.assess(ASKED)
    assert hit is not None and (hit.action, hit.intent) == ("check", "emergency")
    assert safety_net.check(ASKED) is None
    assert safety_net.assess("heute gehen wir in den zoo") is None


async def test_a_weaker_sign_asks_in_danger_with_the_110_line_and_two_buttons(responses: Responses, safety_net: SafetyNet) -> None:
    model = FixedParser(parse(("tip_off", 0.6), ("emergency", 0.05)))
    decision = await make_triage(responses, safety_net, model).decide(ASKED)
    assert model.asked == [ASKED], "a weaker sign still asks the model, which may escalate"
    assert (decision.action, decision.intent, decision.source) == ("check", "emergency", "safety_net")
    assert decision.rule == "vague_threat_to_a_school"
    assert decision.reply.startswith(CHECK_LINE)
    assert decision.reply.count(responses.system_text("emergency_line", "de")) == 1
    assert decision.buttons == (("🚨 Ja, gerade in Gefahr", "emergency"), ("Nein", "not_in_danger"))
    assert (decision.checked.danger, decision.checked.intent) == ("emergency", "tip_off")


async def test_the_model_can_still_escalate_a_weaker_sign(responses: Responses, safety_net: SafetyNet) -> None:
    model = FixedParser(parse(("emergency", 0.8), ("tip_off", 0.1)))
    decision = await make_triage(responses, safety_net, model).decide(ASKED)
    assert (decision.action, decision.intent, decision.source) == ("escalate", "emergency", "model")


def test_without_a_model_a_weaker_sign_still_asks(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with(ASKED, Context(), None, model_ready=False)
    assert decision.action == "check" and decision.reply.startswith(CHECK_LINE)


@pytest.mark.parametrize(
    "answer, action",
    [("ja", "escalate"), ("nein", "handover"), (ASKED, "escalate")],
)
def test_after_the_question_yes_or_a_second_sign_escalates(triage_no_model: Triage, answer: str, action: str) -> None:
    asked = triage_no_model.decide_with(ASKED, Context(), parse(("nlu_fallback", 0.3)))
    after = Context(recent_actions=("check",), checked=asked.checked)
    decision = triage_no_model.decide_with(answer, after, parse(("nlu_fallback", 0.3)))
    assert decision.action == action, decision
    if action == "escalate":
        assert decision.intent == "emergency" and "110" in decision.reply


def test_clear_cases_of_the_same_kinds_escalate_at_once(triage_no_model: Triage) -> None:
    clear = [
        "es stinkt im flur nach verwesung und die nachbarin macht seit tagen nicht auf",
        "zwei männer haben grad eine frau in ein auto gezerrt, sie hat geschrien",
        "auf insta hat einer gepostet dass morgen keiner lebend aus der schule kommt",
    ]
    for text in clear:
        decision = triage_no_model.decide_with(text, Context(), parse(("tip_off", 0.9)))
        assert (decision.action, decision.source) == ("escalate", "safety_net"), text
