"""Triage decides the action and the reply; the safety net comes first and the model cannot lower it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.triage import Context, Triage
from nlu.model import Parse
from tests.conftest import make_triage


def parse(*ranking: tuple[str, float]) -> Parse:
    """A model reading: the first pair is the top intent."""
    return Parse(ranking[0][0], ranking[0][1], tuple(ranking))


@pytest.mark.parametrize(
    "reading, action, intent",
    [
        (parse(("bike_theft", 0.93), ("report_crime", 0.04)), "answer", "bike_theft"),
        (parse(("greet", 0.81)), "answer", "greet"),
        (parse(("human_handoff", 0.9)), "handover", "human_handoff"),
        (parse(("tip_off", 0.7)), "handover", "tip_off"),
        (parse(("domestic_violence", 0.66)), "handover", "domestic_violence"),
        (parse(("emergency", 0.9)), "escalate", "emergency"),
        (parse(("self_harm", 0.6)), "escalate", "self_harm"),
        # an escalation intent ranked second but above the escalation threshold still escalates
        (parse(("traffic", 0.5), ("emergency", 0.4)), "escalate", "emergency"),
        (parse(("out_of_scope", 0.95)), "clarify", "out_of_scope"),
        (parse(("nlu_fallback", 0.4), ("traffic", 0.3)), "clarify", "nlu_fallback"),
        (parse(("traffic", 0.3), ("noise_complaint", 0.25)), "clarify", "nlu_fallback"),
    ],
)
def test_model_reading_becomes_an_action(triage_no_model: Triage, reading: Parse, action: str, intent: str) -> None:
    decision = triage_no_model.decide_with("irgendein text", Context(), reading)
    assert (decision.action, decision.intent) == (action, intent)


def test_safety_net_escalates_even_when_the_model_disagrees(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("hilfe da ist ein einbrecher im haus", Context(), parse(("greet", 0.99)))
    assert decision.action == "escalate"
    assert decision.intent == "emergency"
    assert decision.source == "safety_net"


async def test_without_a_model_emergencies_escalate_and_the_rest_goes_to_a_person(triage_no_model: Triage) -> None:
    emergency = await triage_no_model.decide("ich will mich umbringen")
    other = await triage_no_model.decide("wo ist die nächste wache")
    assert (emergency.action, emergency.intent) == ("escalate", "self_harm")
    assert other.action == "handover"
    assert "nicht automatisch auswerten" in other.reply


def test_every_escalation_reply_starts_with_the_110_prompt(triage_no_model: Triage) -> None:
    for text in ("hilfe einbrecher", "i want to kill myself"):
        reply = triage_no_model.decide_with(text, Context(first_contact=True), None).reply
        assert reply.startswith("🚨")
        assert "110" in reply.split("\n")[0] and "112" in reply.split("\n")[0]


def test_self_harm_reply_names_the_telefonseelsorge(triage_no_model: Triage) -> None:
    reply = triage_no_model.decide_with("ich will nicht mehr leben", Context(), None).reply
    assert "0800 111 0 111" in reply and "0800 111 0 222" in reply


def test_domestic_violence_reply_names_the_hilfetelefon(triage_no_model: Triage) -> None:
    reply = triage_no_model.decide_with("mein mann schlägt mich", Context(), parse(("domestic_violence", 0.9))).reply
    assert "116 016" in reply and "110" in reply


def test_two_clarify_in_a_row_become_a_handover(triage_no_model: Triage) -> None:
    unclear = parse(("nlu_fallback", 0.4), ("traffic", 0.2))
    first = triage_no_model.decide_with("blub", Context(), unclear)
    second = triage_no_model.decide_with("blub blub", Context(recent_actions=("answer", first.action)), unclear)
    assert first.action == "clarify"
    assert first.buttons, "clarify offers topic buttons"
    assert second.action == "handover"


def test_clarify_after_an_answer_stays_clarify(triage_no_model: Triage) -> None:
    unclear = parse(("nlu_fallback", 0.4), ("traffic", 0.2))
    assert triage_no_model.decide_with("blub", Context(recent_actions=("clarify", "answer")), unclear).action == "clarify"


def test_first_contact_says_it_is_a_bot(triage_no_model: Triage) -> None:
    first = triage_no_model.decide_with("hallo", Context(first_contact=True), parse(("greet", 0.9)))
    later = triage_no_model.decide_with("hallo", Context(), parse(("greet", 0.9)))
    assert "Bot" in first.reply and "Datenschutz" in first.reply
    assert "Datenschutz" not in later.reply


def test_english_message_gets_an_english_reply(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("my bike was stolen yesterday, what should i do", Context(), parse(("bike_theft", 0.9)))
    assert decision.language == "en"
    assert "report" in decision.reply.lower()


def test_handover_outside_duty_hours_says_when_the_team_is_back(responses: Responses, safety_net: SafetyNet) -> None:
    saturday_night = datetime(2026, 11, 21, 22, 0, tzinfo=timezone.utc)
    triage = make_triage(responses, safety_net, now=saturday_night)
    reply = triage.decide_with("ich will mit einem menschen reden", Context(), parse(("human_handoff", 0.9))).reply
    assert "Montag ab 08:00" in reply


def test_topic_button_is_handled_like_its_intent(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("📝 Anzeige erstatten", Context(), None, button="report_crime")
    assert (decision.action, decision.intent, decision.confidence) == ("answer", "report_crime", 1.0)


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x02", "\u200b"])
def test_empty_message_gets_a_clarify(triage_no_model: Triage, text: str) -> None:
    assert triage_no_model.decide_with(text, Context(), None).action == "clarify"


def test_media_without_text_gets_a_channel_note(triage_no_model: Triage) -> None:
    photo = triage_no_model.media("photo")
    voice = triage_no_model.media("voice", Context(language="en"))
    assert photo.action == "answer" and "Text" in photo.reply
    assert voice.language == "en" and "voice" in voice.reply.lower()


def test_decision_json_has_the_stable_keys(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("hallo", Context(), parse(("greet", 0.9)))
    assert list(decision.as_dict()) == ["text", "intent", "confidence", "action", "reply", "language"]


@pytest.mark.parametrize("text", ["Mensch", "/mensch", "„Mensch“", "human"])
def test_the_word_the_bot_suggests_reaches_a_person(triage_no_model: Triage, text: str) -> None:
    assert triage_no_model.decide_with(text, Context(), None).action == "handover"
