"""The safety net escalates clear emergencies without any model, and leaves everyday police questions alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.safety_net import SafetyNet, SafetyNetError
from nlu.examples import read_dir
from tests.conftest import DATA, ROOT


@pytest.mark.parametrize(
    "text, intent",
    [
        ("hilfe einbrecher", "emergency"),
        ("HILFE!!!", "emergency"),
        ("hiiiilfeee", "emergency"),
        ("jemand bricht grad bei uns ein", "emergency"),
        ("die frau nebenan schreit seit minuten um hilfe", "emergency"),
        ("da steht einer mit nem messer vor der schule und bedroht die kinder", "emergency"),
        ("ein typ verfolgt mich seit 10 minuten auf dem heimweg", "emergency"),
        ("es brennt im keller von unserem haus", "emergency"),
        ("bei uns im treppenhaus riecht es nach gas", "emergency"),
        ("unfall auf der b270, zwei verletzte liegen auf der straße", "emergency"),
        ("mein opa ist bewusstlos und atmet nicht", "emergency"),
        ("der fährt total in schlangenlinien auf der a6", "emergency"),
        ("vor dem club ist eine massenschlägerei", "emergency"),
        ("er hämmert gegen die tür und schreit er bringt uns um", "emergency"),
        ("someone is breaking in right now", "emergency"),
        ("help me please", "emergency"),
        ("there's a guy with a knife threatening people", "emergency"),
        ("mann mit gewehr im park", "emergency"),
        ("theres a dude with a gun outside the bar", "emergency"),
        ("ich will mich umbringen", "self_harm"),
        ("ich will nicht mehr leben", "self_harm"),
        ("mein kumpel hat geschrieben dass er sich was antut", "self_harm"),
        ("hab grad alle tabletten geschluckt", "self_harm"),
        ("i want to kill myself", "self_harm"),
        ("i keep cutting myself", "self_harm"),
        # rules of 2026-11-22, written after reading what cross-validation missed (new wordings here)
        ("grade steigt einer bei uns durchs kellerfenster", "emergency"),
        ("da ist jemand in der wohnung, ich sitz im schrank", "emergency"),
        ("vorm kiosk wurde einer abgestochen", "emergency"),
        ("mein sohn ist beim schwimmen im see nicht mehr aufgetaucht", "emergency"),
        ("ich werde verfolgt, der ist immer noch hinter mir", "emergency"),
        ("radfahrer angefahren, er liegt neben dem auto", "emergency"),
        ("niemand würde mich vermissen", "self_harm"),
        ("das ist die letzte nachricht von mir", "self_harm"),
        ("ich steh auf der kölnbrücke und spring gleich", "self_harm"),
    ],
)
def test_fires_on_clear_emergencies(safety_net: SafetyNet, text: str, intent: str) -> None:
    hit = safety_net.check(text)
    assert hit is not None, text
    assert hit.intent == intent


@pytest.mark.parametrize(
    "text, intent",
    [
        # the two messages of issue 11 that were handed over instead of escalated
        ("Hilfe! Mein Mann schlägt mich, er hat ein Messer", "emergency"),
        ("zwei typen treten auf einen am boden ein, direkt vor dem kiosk", "emergency"),
        # emergencies without the usual danger words (kinds from issue 11, written here in new words)
        ("aus der wohnung unter uns kommt so ein verwesungsgeruch, den mieter hat seit wochen keiner gesehen", "emergency"),
        ("es riecht im flur nach totem tier und die nachbarin öffnet nicht", "emergency"),
        ("wir haben einen mega knall gehört und seitdem ist es drüben totenstill", "emergency"),
        ("zwei dunkel gekleidete schleichen gerade durch unseren garten", "emergency"),
        ("jemand feilt gerade die gitter an unserem kellerfenster durch", "emergency"),
        ("wir werden gerade ausgeraubt und der kassierer blutet am kopf", "emergency"),
        ("die haben einen jungen mit gewalt ins auto gesteckt und sind losgefahren", "emergency"),
        ("ich glaub ich hab k.o. tropfen bekommen, mein kumpel reagiert auch nicht mehr", "emergency"),
        ("auf insta hat einer gepostet er kommt morgen mit ner knarre in unsere schule", "emergency"),
        ("geschossen hat da einer gerade, dreimal, vor dem döner", "emergency"),
        ("schüsse gefallen sind eben am marktplatz", "emergency"),
        ("wie hast du den tag überstanden als du alles beenden wolltest", "self_harm"),
        ("ich will mich nur noch verabschieden, passt auf euch auf", "self_harm"),
        ("danke für alles, ihr werdet nichts mehr von mir hören", "self_harm"),
        # spelling, word order and English
        ("MEIN MANN SCHLAGT MICH ER HAT EIN MESSER", "emergency"),
        ("ein messer hat er und schlägt mich", "emergency"),
        ("der ist bewustlos und atmet nciht", "emergency"),
        ("my boyfriend is hitting me and he has a knife", "emergency"),
        ("i took all my pills", "self_harm"),
    ],
)
def test_fires_on_emergencies_in_their_own_words(safety_net: SafetyNet, text: str, intent: str) -> None:
    hit = safety_net.check(text)
    assert hit is not None, text
    assert hit.intent == intent


@pytest.mark.parametrize(
    "text",
    [
        "mein fahrrad wurde gestern geklaut",
        "wie erkenne ich falsche polizisten",
        "kleiner unfall, nur blechschaden",
        "unfall ohne verletzte, was muss ich tun",
        "jemand hat bei mir eingebrochen als ich im urlaub war",
        "tragt ihr eine waffe im dienst?",
        "ein mann mit messer wurde gestern festgenommen, stimmt das?",
        "er sagt er bringt mich um wenn ich ihn verlasse",
        "ich brauche hilfe bei meiner anzeige",
        "kann mir jemand helfen meinen ausweis zu finden",
        "mein freund schlägt mich manchmal wenn er getrunken hat",
        "wie lange dauert die bewerbung bei der polizei",
        "die nachbarn feiern schon wieder bis 3 uhr",
        "can you help me with my report",
        "meine jacke ist nach der party nicht mehr aufgetaucht",
        "ich schneide mich ständig beim rasieren",
        "mein ex bedroht mich mit nachrichten auf whatsapp",
        "ich hab gedacht ich spring mal kurz zum bäcker",
        "ich werde im internet verfolgt, was kann ich tun",
        "",
        "😀😀😀",
        # past, reported, hypothetical, habitual, negated, joking: the guards
        "mein sohn wurde letzte woche auf dem heimweg von drei jugendlichen mit einem messer bedroht, muss ich anzeige erstatten",
        "ich hab in der zeitung gelesen dass einer mit messer festgenommen wurde",
        "was soll man tun wenn man sieht dass jemand zusammengeschlagen wird",
        "darf man ein taschenmesser mit sich führen",
        "mein vater droht meiner mutter mit dem messer wenn sie ihm widerspricht",
        "er hat kein messer, er schreit nur",
        "ich kann nicht mehr 😂😂",
        "ich bring dich um wenn du das nochmal machst lol",
        "habt ihr schon mal jemanden erschossen",
        "mein sohn hat bei fifa zehn tore geschossen",
        "im kühlschrank riecht es nach verwesung, eklig",
        "silvester hat es bei uns so laut geknallt, danach war alles still",
        "ich hab angst vor der prüfung morgen, ich will einfach nur dass es vorbei ist",
        "ich schreibe eine hausarbeit über suizid bei jugendlichen, habt ihr zahlen",
        "danke für alles ihr macht einen tollen job, bis bald",
        "meine katze ist ins wasser gefallen und wieder rausgeklettert, alles gut",
        "mein sohn hat sich beim fußball das knie aufgeschlagen und blutet ein bisschen",
        "kann man in der schweiz eine strafanzeige per e-mail einreichen",
        "die reifen an meinem auto wurden zerstochen",
        "is it legal to carry a pocket knife in germany",
    ],
)
def test_stays_quiet_on_everyday_questions(safety_net: SafetyNet, text: str) -> None:
    assert safety_net.check(text) is None


def test_false_alarm_rate_on_training_data_is_low(safety_net: SafetyNet) -> None:
    """Of the non-emergency training examples, at most 2 % may trip the net (rules aim at clear cases)."""
    others = [e for e in read_dir(DATA / "nlu") if e.intent not in ("emergency", "self_harm")]
    tripped = [f"{e.path.name}:{e.line} [{e.intent}] {e.text}" for e in others if safety_net.check(e.text)]
    assert len(tripped) <= 0.02 * len(others), "\n".join(tripped)


@pytest.mark.parametrize(
    "content, message",
    [
        ("emergency: ['(unclosed']\n", "bad pattern"),
        ("emergency: []\nself_harm: []\n", "no rules"),
        ("- just a list\n", "expected a mapping"),
        ("emergency: [42]\n", "non-empty string"),
    ],
)
def test_broken_rules_file_is_refused_with_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "safety_net.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SafetyNetError, match=message):
        SafetyNet.load(path)


def test_the_service_still_starts_and_escalates_when_a_rules_own_example_no_longer_fires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.services import build_triage
    from bot.settings import Settings

    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data)
    rules = data / "safety_net.yml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("    examples:\n", "    examples:\n      - ein ganz harmloser satz ueber kuchen\n", 1), encoding="utf-8")
    with pytest.raises(SafetyNetError, match="does not fire on its example"):
        SafetyNet.load(rules)  # make validate and the tests are strict
    settings = Settings.from_env({"DATA_DIR": str(data), "DATABASE_PATH": str(tmp_path / "db.sqlite3")}, dotenv=tmp_path / "none")
    triage = build_triage(settings)  # the service is not: it logs and runs
    assert "does not fire on its example" in caplog.text
    assert triage.safety_net.check("hilfe da ist ein einbrecher in unserer wohnung") is not None
