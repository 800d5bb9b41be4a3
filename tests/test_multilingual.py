"""Messages in Turkish, Arabic, Russian, Ukrainian, Polish, Romanian and Persian: the 110 prompt in the
citizen's language for an emergency, "a person answers in German or English" for the rest, officers told."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.alerts import alert_text
from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher, Event
from bot.handover import HandoverLog, Inbound
from bot.language import LanguageId
from bot.languages import LanguageError, Languages, load_language
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.settings import Settings
from bot.decision import Context
from bot.triage import Triage
from nlu.eval_languages import SETS, language_files, measure
from nlu.parse import Parse
from tests.conftest import make_triage
from tests.web_support import Browser, served

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = Languages.load(ROOT / "data" / "languages")
ISSUE_LANGUAGES = ("tr", "ar", "ru", "uk", "pl", "ro", "fa")


class AskedParser:
    """A model that answers every message as a bike theft and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @property
    def ready(self) -> bool:
        return True

    async def parse(self, text: str, urgent: bool = False) -> Parse:
        self.asked.append(text)
        return Parse("bike_theft", 0.95, (("bike_theft", 0.95),))


@pytest.fixture(scope="module")
def identify() -> LanguageId:
    return LanguageId(LANGUAGES.markers())


def triage_with(responses: Responses, safety_net: SafetyNet, identify: LanguageId, parser: AskedParser | None = None) -> Triage:
    triage = make_triage(responses, safety_net, parser)
    triage.languages, triage.identify, triage.likeliest = LANGUAGES, identify.identify, identify.likeliest
    return triage


def first_example(code: str, intent: str) -> str:
    return next(t for r in LANGUAGES.by_code[code].net.word_rules if r.intent == intent for t in r.examples)


def other_messages(code: str) -> list[str]:
    doc = yaml.safe_load((SETS / f"{code}.yml").read_text(encoding="utf-8"))
    return [item["text"] for item in doc["other"] if item.get("kind") in ("question", "thanks", "complaint")]


def test_every_language_of_the_issue_has_its_file() -> None:
    assert set(ISSUE_LANGUAGES) <= set(LANGUAGES.by_code)
    assert {LANGUAGES.by_code[c].direction for c in ("ar", "fa")} == {"rtl"}


@pytest.mark.parametrize("code", ISSUE_LANGUAGES)
@pytest.mark.parametrize("intent", ["emergency", "self_harm"])
async def test_an_escalation_in_the_language_gets_its_own_110_prompt(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId, code: str, intent: str
) -> None:
    parser = AskedParser()
    decision = await triage_with(responses, safety_net, identify, parser).decide(first_example(code, intent), Context(first_contact=True))
    language = LANGUAGES.by_code[code]
    assert (decision.action, decision.intent, decision.language) == ("escalate", intent, code)
    assert decision.reply.startswith(language.texts[intent].strip())
    assert language.texts["disclosure"].strip() in decision.reply  # first contact: it says it is a bot
    assert "110" in decision.reply or "112" in decision.reply
    assert parser.asked == []  # the net decided: no model was asked


@pytest.mark.parametrize("code", ISSUE_LANGUAGES)
async def test_anything_else_in_the_language_goes_to_a_person_and_never_to_the_german_model(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId, code: str
) -> None:
    parser = AskedParser()
    triage = triage_with(responses, safety_net, identify, parser)
    text = other_messages(code)[0]
    first = await triage.decide(text, Context(first_contact=True))
    assert (first.action, first.language) == ("handover", code)
    assert first.reply == LANGUAGES.text(code, "other")
    again = await triage.decide(other_messages(code)[1], Context(("handover",), language=code))
    assert again.reply == LANGUAGES.text(code, "other_again")
    assert parser.asked == []


async def test_german_and_english_still_reach_the_model(responses: Responses, safety_net: SafetyNet, identify: LanguageId) -> None:
    parser = AskedParser()
    triage = triage_with(responses, safety_net, identify, parser)
    for text, language in [("Mein Fahrrad wurde gestern vor dem Bahnhof geklaut, was soll ich tun?", "de"),
                           ("Servus, mei Radl is gestern gstohln worn, wos soi i jetzt doa?", "de"),
                           ("Hallo, mein Name ist Oleksandr Kovalenko, wo kann ich mein gestohlenes Fahrrad melden?", "de"),
                           ("Someone stole my bike at the station, what do I do?", "en")]:
        decision = await triage.decide(text, Context())
        assert (decision.action, decision.intent, decision.language) == ("answer", "bike_theft", language), text
    assert len(parser.asked) == 4


async def test_a_foreign_message_with_german_danger_words_gets_its_own_110_prompt(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId
) -> None:
    triage = triage_with(responses, safety_net, identify)
    decision = await triage.decide("Yardım edin! Kocam beni bıçakla tehdit ediyor, Hilfe er hat ein Messer", Context())
    assert (decision.action, decision.language) == ("escalate", "tr")
    assert decision.reply.startswith(LANGUAGES.text("tr", "emergency"))


async def test_the_conversation_reaches_officers_with_its_language(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId, handover: HandoverLog
) -> None:
    dispatcher = Dispatcher(handover, triage_with(responses, safety_net, identify), {"webchat": LogOnlySender()})
    sent = await dispatcher.handle(Inbound("webchat", "c1", "u1", first_example("uk", "emergency"), platform_id="m1"))
    conv = handover.find_conversation("webchat", "c1")
    assert (conv.state, conv.priority, conv.language) == ("queued", 2, "uk")
    assert sent[0].text.startswith(LANGUAGES.text("uk", "emergency"))
    assert LANGUAGES.name_de("uk") == "Ukrainisch"


@pytest.mark.parametrize("text", [
    "Помогите 🆘 help мне", "ساعدوني 🙏 bitte", "\u202eHilfe\u202c مساعدة", "سلام", "Привет", "ok 👍", "🙏🙏🙏",
    "a\u0000b\u200bc", "Yardım" * 800, "x" * 5000, "",
])
async def test_mixed_scripts_right_to_left_and_odd_input_get_a_decision(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId, text: str
) -> None:
    decision = await triage_with(responses, safety_net, identify, AskedParser()).decide(text, Context())
    assert decision.action in ("answer", "escalate", "handover", "clarify", "check") and decision.reply


def write(tmp_path: Path, doc: dict, code: str = "tr") -> Path:
    path = tmp_path / f"{code}.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def valid_doc() -> dict:
    return yaml.safe_load((ROOT / "data" / "languages" / "tr.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["texts"].pop("other"), "text 'other' is missing"),
    (lambda d: d["texts"].update(other=d["texts"]["other"] + " 0800 123 4567"), "is not one the bot gives"),
    (lambda d: d["texts"].update(emergency="Yardım"), "must give 110"),
    (lambda d: d.update(code="xx"), "code must be the file's name"),
    (lambda d: d["safety_net"]["rules"][0]["examples"].append("bugün hava çok güzel"), "does not fire on its example"),
])
def test_a_broken_language_file_is_refused_with_the_reason(tmp_path: Path, change: object, message: str) -> None:
    doc = valid_doc()
    change(doc)  # type: ignore[operator]
    with pytest.raises(LanguageError, match=message):
        load_language(write(tmp_path, doc))
    load_language(write(tmp_path, valid_doc()))  # the unchanged file loads


# What tests/multilingual/ measured when the rules were last changed (recall, false alarms): a rule change
# may not fall below it. The issue's targets are 95 % and 3 % in every language; README says where they are missed.
FLOORS = {"tr": (0.94, 0.023), "ar": (0.90, 0.023), "ru": (0.96, 0.024), "uk": (0.94, 0.024),
          "pl": (0.97, 0.024), "ro": (0.95, 0.024), "fa": (0.88, 0.024)}


async def test_the_multilingual_sets_do_not_fall_below_what_was_measured(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId
) -> None:
    """Per language: escalation recall and false alarms no worse than measured; identification >= 95 % on 3+ words."""
    assert {p.stem for p in language_files()} >= set(ISSUE_LANGUAGES)
    scores, ids = await measure(triage_with(responses, safety_net, identify))
    report = "\n".join(s.line() for s in scores) + "\n" + (ids.line() if ids else "")
    for s in scores:
        recall, alarms = FLOORS[s.language]
        assert s.recall >= recall and s.false_alarms <= alarms, report
    assert ids is not None and ids.three_words >= 0.95, report


async def test_officers_see_the_language_in_the_inbox_and_the_alert(
    settings: Settings, responses: Responses, safety_net: SafetyNet, identify: LanguageId
) -> None:
    triage = triage_with(responses, safety_net, identify)
    async with served(settings, triage) as (_, server, services), Browser(server) as officer, Browser(server) as citizen:
        assert (await officer.login()).status == 303
        await citizen.open_chat()
        await citizen.write(first_example("ar", "emergency"))
        conv = services.handover.conversations(("queued",))[0]
        queue = await (await officer.get("/inbox")).text()
        page = await (await officer.get(f"/inbox/c/{conv.id}")).text()
    assert "🌐 Arabisch" in queue
    assert "Sprache: Arabisch" in page and 'dir="auto"' in page
    event = Event("escalated", conv, None, None)
    assert "Sprache: Arabisch" in alert_text(event, settings, LANGUAGES.name_de)


def test_make_validate_names_the_file_and_line_of_a_broken_language_rule(tmp_path: Path) -> None:
    from nlu.validate import check_languages

    (tmp_path / "languages").mkdir()
    doc = valid_doc()
    rule = doc["safety_net"]["rules"][0]
    rule["examples"].append("bugün hava çok güzel")
    path = tmp_path / "languages" / "tr.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    problems = check_languages(tmp_path, None)
    assert len(problems) == 1 and problems[0].level == "error"
    line = int(problems[0].where.rsplit(":", 1)[1])
    assert path.read_text(encoding="utf-8").splitlines()[line - 1].strip() == f"- name: {rule['name']}"
    design = ROOT.parent / "shared" / "DESIGN.md"
    assert check_languages(ROOT / "data", design if design.is_file() else None) == []


async def test_a_foreign_net_that_fires_on_unclear_text_answers_in_the_language_it_resembles(
    responses: Responses, safety_net: SafetyNet, identify: LanguageId
) -> None:
    """"intihar edicem de" reads as neither language to the library; Arabic's net knows "intihar" too: Turkish wins."""
    decision = await triage_with(responses, safety_net, identify).decide("intihar edicem de", Context())
    assert (decision.action, decision.language) == ("escalate", "tr")
    assert decision.reply.startswith(LANGUAGES.text("tr", "self_harm"))
    assert responses.system_text("emergency_prompt", "de") in decision.reply  # read as German: the German prompt too
