"""Triage decides the action and the reply; the safety net comes first and the model cannot lower it."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.danger_check import Checked, answer_to_check
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.services import build_triage
from bot.settings import Settings, SettingsError
from bot.decision import Context, Decision
from bot.triage import Triage
from nlu.parse import Parse
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
    reply = triage_no_model.decide_with("mein mann schlägt mich seit jahren", Context(), parse(("domestic_violence", 0.9))).reply
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


# -- check: the model sees some danger but is not sure ------------------------------------------

def between(low: float, high: float) -> float:
    """A confidence inside [low, high)."""
    return (low + high) / 2


def calm_line(responses: Responses, language: str) -> str:
    line = responses.system_text("emergency_line", language)
    assert "110" in line and "\n" not in line
    return line


def test_danger_below_the_escalation_threshold_asks_and_above_it_escalates(triage_no_model: Triage) -> None:
    t = triage_no_model
    cases = [
        (t.escalation_threshold, "escalate"),
        (between(t.check_threshold, t.escalation_threshold), "check"),
        (t.check_threshold, "check"),
        (t.check_threshold / 2, "answer"),
    ]
    for danger, action in cases:
        reading = parse(("traffic", 1 - danger), ("emergency", danger))
        decision = t.decide_with("da fährt einer komisch", Context(), reading)
        assert decision.action == action, (danger, decision)
        assert decision.intent == ("traffic" if action == "answer" else "emergency")


def test_the_check_asks_in_the_same_message_as_the_110_line_with_two_buttons(triage_no_model: Triage, responses: Responses) -> None:
    t = triage_no_model
    danger = between(t.check_threshold, t.escalation_threshold)
    german = t.decide_with("mir ist das unheimlich", Context(), parse(("nlu_fallback", 0.3), ("self_harm", danger)))
    english = t.decide_with("i am scared of him", Context(), parse(("tip_off", 0.5), ("emergency", danger)))
    assert german.reply.startswith("Bist du oder ist jemand gerade in Gefahr?")
    assert german.reply.endswith("Im Notfall ruf bitte immer die 110 an.")
    assert german.buttons == (("🚨 Ja, gerade in Gefahr", "self_harm"), ("Nein", "not_in_danger"))
    assert (english.language, english.intent) == ("en", "emergency")
    assert english.reply.startswith("Are you or is someone else in danger right now?")
    assert english.reply.count(calm_line(responses, "en")) == 1
    assert english.buttons == (("🚨 Yes, in danger now", "emergency"), ("No", "not_in_danger"))
    assert english.checked == Checked("emergency", "tip_off", 0.5)


@pytest.mark.parametrize(("text", "answer"), [
    ("Ja", "yes"), ("ja jetzt", "yes"), ("JAAA!!", "yes"), ("yes", "yes"), ("hilfe", "yes"), ("ja, gerade in Gefahr", "yes"),
    ("ich bin in gefahr", "yes"), ("meine schwester ist in gefahr", "yes"), ("nein ich bin in gefahr", "yes"),
    ("no i am not safe", "yes"), ("glaub schon", "yes"),
    ("Nein", "no"), ("nö", "no"), ("nein danke", "no"), ("Nein, alles gut 🙂", "no"), ("alles gut", "no"), ("No, not in danger", "no"),
    ("nein ich bin nicht in gefahr", "no"), ("niemand ist in gefahr", "no"), ("i'm fine", "no"),
    ("weiß nicht", "unsure"), ("vielleicht", "unsure"), ("ich bin mir nicht sicher", "unsure"), ("not sure", "unsure"),
    ("nein mir geht es nicht gut", None), ("ja aber nicht jetzt", None), ("danke", None), ("ok", None),
    ("wo ist die nächste wache", None), ("", None),
])
def test_typed_answers_to_the_check(text: str, answer: str | None) -> None:
    assert answer_to_check(text) == answer


def test_a_pressed_danger_button_escalates_at_once(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("🚨 Ja, gerade in Gefahr", Context(("check",)), None, button="emergency")
    assert (decision.action, decision.intent, decision.source) == ("escalate", "emergency", "button")
    assert decision.reply.startswith("🚨 Wenn du in Gefahr bist: Ruf jetzt die 110 an.")


@pytest.mark.parametrize("text", ["ja", "Ja!", "ja jetzt", "JAAA", "yes", "hilfe", "ja bitte schnell", "ich bin in gefahr"])
def test_a_typed_yes_after_a_check_escalates(triage_no_model: Triage, text: str) -> None:
    after_check = Context(recent_actions=("answer", "check"), checked=Checked("self_harm", "greet", 0.6))
    decision = triage_no_model.decide_with(text, after_check, parse(("nlu_fallback", 0.3), ("greet", 0.2)))
    assert decision.action == "escalate"
    assert decision.reply.startswith("🚨")


def test_a_typed_yes_escalates_as_the_danger_the_check_saw(triage_no_model: Triage) -> None:
    after_check = Context(recent_actions=("check",), checked=Checked("self_harm", "greet", 0.6))
    decision = triage_no_model.decide_with("ja", after_check, None)
    assert (decision.action, decision.intent, decision.source) == ("escalate", "self_harm", "check")
    assert "0800 111 0 111" in decision.reply


def test_ja_without_a_check_is_no_emergency(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("ja", Context(recent_actions=("answer",)), parse(("nlu_fallback", 0.3), ("insult", 0.2)))
    assert decision.action == "clarify"


@pytest.mark.parametrize(("text", "button"), [("Nein", "not_in_danger"), ("nein", None), ("Nein, alles gut", None), ("nö", None)])
def test_no_after_a_check_thanks_and_answers_the_clear_reading(triage_no_model: Triage, text: str, button: str | None) -> None:
    after_check = Context(recent_actions=("check",), checked=Checked("emergency", "bike_theft", 0.8))
    decision = triage_no_model.decide_with(text, after_check, parse(("nlu_fallback", 0.3)), button=button)
    assert (decision.action, decision.intent) == ("answer", "bike_theft")
    assert decision.reply.startswith("Gut, danke für deine Antwort.")
    assert "Rahmennummer" in decision.reply
    assert decision.source == ("button" if button else "check")


def test_no_in_english_gets_the_english_reply(triage_no_model: Triage) -> None:
    after_check = Context(recent_actions=("check",), language="en", checked=Checked("emergency", "fraud_scam", 0.7))
    decision = triage_no_model.decide_with("no", after_check, None)
    assert (decision.action, decision.language) == ("answer", "en")
    assert decision.reply.startswith("Good, thanks for letting me know.") and "never call you" in decision.reply


@pytest.mark.parametrize("checked", [Checked("emergency", "nlu_fallback", 0.3), Checked("emergency", "traffic", 0.3),
                                     Checked("emergency", "out_of_scope", 0.9), None])
def test_no_after_an_unclear_check_goes_to_a_person(triage_no_model: Triage, responses: Responses, checked: Checked | None) -> None:
    decision = triage_no_model.decide_with("Nein", Context(recent_actions=("check",), checked=checked), None, button="not_in_danger")
    assert decision.action == "handover"
    assert decision.reply.startswith("Gut, danke für deine Antwort.")
    assert "Menschen aus dem Team" in decision.reply and "übernimmt" in decision.reply
    assert decision.reply.count(calm_line(responses, "de")) == 1


def test_no_after_a_check_with_a_handover_reading_hands_over_with_that_reply(triage_no_model: Triage) -> None:
    after_check = Context(recent_actions=("check",), checked=Checked("emergency", "domestic_violence", 0.7))
    decision = triage_no_model.decide_with("nein", after_check, None)
    assert (decision.action, decision.intent) == ("handover", "domestic_violence")
    assert "116 016" in decision.reply


def test_unsure_after_a_check_goes_to_a_person(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("weiß nicht", Context(recent_actions=("check",)), parse(("nlu_fallback", 0.3)))
    assert decision.action == "handover"
    assert "Menschen aus dem Team" in decision.reply


def test_after_a_check_more_danger_escalates_and_an_unclear_message_goes_to_a_person(triage_no_model: Triage) -> None:
    t = triage_no_model
    after_check = Context(recent_actions=("check",))
    danger = between(t.check_threshold, t.escalation_threshold)
    again = t.decide_with("er steht immer noch da", after_check, parse(("tip_off", 0.6), ("emergency", danger)))
    unclear = t.decide_with("hmm also", after_check, parse(("nlu_fallback", 0.3), ("greet", 0.1)))
    moved_on = t.decide_with("wo ist die nächste wache", after_check, parse(("station_contact", 0.9), ("emergency", 0.01)))
    assert (again.action, again.intent) == ("escalate", "emergency")
    assert unclear.action == "handover" and "immer noch nicht" not in unclear.reply
    assert moved_on.action == "answer"


def test_the_safety_net_still_escalates_after_a_check(triage_no_model: Triage) -> None:
    decision = triage_no_model.decide_with("nein, er hat ein messer und bedroht mich", Context(recent_actions=("check",)), None)
    assert (decision.action, decision.source) == ("escalate", "safety_net")


def test_two_clarify_in_a_row_still_hand_over(triage_no_model: Triage, responses: Responses) -> None:
    decision = triage_no_model.decide_with("blub", Context(recent_actions=("clarify",)), parse(("nlu_fallback", 0.3)))
    assert decision.action == "handover"
    assert decision.reply.startswith("Ich verstehe dich leider immer noch nicht.")
    assert decision.reply.count(calm_line(responses, "de")) == 1


def _replies(t: Triage, language: str) -> dict[str, Decision]:
    """One decision for every way to a clarify, check or handover reply."""
    text = {"de": "ich weiß nicht was ich da machen soll", "en": "i do not know what to do about this"}[language]
    danger = between(t.check_threshold, t.escalation_threshold)
    off_duty = copy.copy(t)
    off_duty.clock = lambda: datetime(2026, 11, 21, 22, 0, tzinfo=timezone.utc)
    unclear = parse(("nlu_fallback", 0.3), ("traffic", 0.2))
    return {
        "clarify": t.decide_with(text, Context(), unclear),
        "clarify out_of_scope": t.decide_with(text, Context(), parse(("out_of_scope", 0.9))),
        "clarify first contact": t.decide_with(text, Context(first_contact=True), unclear),
        "clarify empty": t.decide_with("", Context(language=language), None),
        "check": t.decide_with(text, Context(), parse(("traffic", 0.5), ("emergency", danger))),
        "check first contact": t.decide_with(text, Context(first_contact=True), parse(("traffic", 0.5), ("self_harm", danger))),
        "handover clarify twice": t.decide_with(text, Context(("clarify",)), unclear),
        "handover no model": t.decide_with(text, Context(), None, model_ready=False),
        "handover human_handoff": t.decide_with(text, Context(), parse(("human_handoff", 0.9))),
        "handover tip_off": t.decide_with(text, Context(), parse(("tip_off", 0.9))),
        "handover domestic_violence": t.decide_with(text, Context(), parse(("domestic_violence", 0.9))),
        "handover off duty": off_duty.decide_with(text, Context(), parse(("human_handoff", 0.9))),
        "handover after no": t.decide_with(text, Context(("check",), language=language), None, button="not_in_danger"),
        "handover unsure": t.decide_with({"de": "weiß nicht", "en": "not sure"}[language], Context(("check",)), None),
        "handover unclear after check": t.decide_with(text, Context(("check",)), unclear),
        "handover button": t.decide_with({"de": "Mensch", "en": "human"}[language], Context(language=language), None),
    }


@pytest.mark.parametrize("language", ["de", "en"])
def test_every_clarify_check_and_handover_reply_carries_the_110_line_once(
    triage_no_model: Triage, responses: Responses, language: str
) -> None:
    line = calm_line(responses, language)
    for name, decision in _replies(triage_no_model, language).items():
        assert decision.action == name.split()[0], name
        assert decision.language == language, name
        assert decision.reply.count(line) == 1, f"{name}: {decision.reply}"
    answer = triage_no_model.decide_with("hallo", Context(), parse(("greet", 0.9)))
    assert line not in answer.reply


def test_check_threshold_is_a_setting(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHECK_THRESHOLD": "0.2", "DATABASE_PATH": str(tmp_path / "db.sqlite3")}, dotenv=tmp_path / "none.env")
    assert build_triage(settings).check_threshold == 0.2
    assert Settings.from_env({}, dotenv=tmp_path / "none.env").check_threshold == Settings.check_threshold
    with pytest.raises(SettingsError, match="CHECK_THRESHOLD"):
        Settings.from_env({"CHECK_THRESHOLD": "1.5"}, dotenv=tmp_path / "none.env")


def test_database_url_takes_postgresql_urls_and_refuses_other_schemes(tmp_path: Path) -> None:
    for url in ("postgresql://bot@db/streife", "postgres://bot@db/streife"):
        assert Settings.from_env({"DATABASE_URL": url}, dotenv=tmp_path / "none.env").database_url == url
    assert Settings.from_env({}, dotenv=tmp_path / "none.env").database_url == ""  # SQLite at DATABASE_PATH
    with pytest.raises(SettingsError, match="DATABASE_URL must start with postgresql://"):
        Settings.from_env({"DATABASE_URL": "mysql://bot@db/streife"}, dotenv=tmp_path / "none.env")
