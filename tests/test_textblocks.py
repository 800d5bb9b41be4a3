"""Reply templates (Textbausteine): storage on a real SQLite file, validation, audit, order, and the inbox pages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from markupsafe import escape

from bot.duty import DutyHours
from bot.handover import HandoverLog, Inbound
from bot.handover.textblocks import (
    TextblockConflict, TextblockError, Textblocks, clean, fill, ordered, placeholder_values,
)
from bot.responses import Responses
from bot.settings import ROOT, Settings
from bot.triage import Triage
from tests.web_support import Browser, served


@pytest.fixture
def log(tmp_path: Path) -> HandoverLog:
    log = HandoverLog.open(tmp_path / "streife.sqlite3")
    yield log
    log.close()


def events(log: HandoverLog, prefix: str = "textblock_") -> list[tuple[str, str, dict]]:
    rows = log.db.execute("SELECT actor, action, detail FROM events WHERE action LIKE ? ORDER BY id", [prefix + "%"])
    return [(actor, action, json.loads(detail)) for actor, action, detail in rows]


def chat(log: HandoverLog, user: str, *intents: str, language: str = "de") -> int:
    """A conversation whose citizen messages the bot read as `intents` (oldest first)."""
    conv_id = 0
    for n, intent in enumerate(intents):
        stored = log.record_inbound(Inbound("webchat", f"chat-{user}", user, f"Nachricht {n}"))
        log.record_decision(stored.message.id, intent, 0.9, "answer")
        conv_id = stored.conversation.id
    log.update_conversation(conv_id, language=language)
    return conv_id


# -- storage, validation, audit -------------------------------------------------------------


def test_the_first_migration_brings_german_starter_templates_that_pass_their_own_checks(log: HandoverLog) -> None:
    blocks = Textblocks(log).all()
    german = {b.name for b in blocks if b.language == "de"}
    assert {"onlinewache", "danke", "dienstzeiten"} <= german
    assert blocks[0].language == "de"  # German first on the page
    for block in blocks:
        clean(block.name, block.language, block.title, block.text, block.intents)
        assert " Sie " not in f" {block.text} "  # German starters say "du"


def test_create_edit_delete_are_audited_with_old_and_new_text_and_survive_a_restart(tmp_path: Path, log: HandoverLog) -> None:
    store = Textblocks(log)
    made = store.create("anna", "Fahrrad", "de", "Fahrrad gestohlen", "Zeig den Diebstahl bei {onlinewache} an.", ["bike_theft"])
    assert (made.name, made.created_by, made.updated_by, made.intents) == ("fahrrad", "anna", "anna", ("bike_theft",))
    changed = store.update(made.id, "ben", "fahrrad", "de", "Fahrrad weg", "Neu: {onlinewache}.", ["bike_theft", "report_crime"],
                           seen=made.updated_at)
    assert (changed.title, changed.updated_by, changed.created_by) == ("Fahrrad weg", "ben", "anna")
    log.close()

    reopened = HandoverLog.open(tmp_path / "streife.sqlite3")
    try:
        assert Textblocks(reopened).get(made.id).text == "Neu: {onlinewache}."
        Textblocks(reopened).delete(made.id, "carla")
        assert made.id not in {b.id for b in Textblocks(reopened).all()}
        trail = events(reopened)
    finally:
        reopened.close()
    assert [(actor, action) for actor, action, _ in trail] == [
        ("anna", "textblock_create"), ("ben", "textblock_edit"), ("carla", "textblock_delete")]
    assert trail[0][2]["new"] == "Zeig den Diebstahl bei {onlinewache} an."
    assert (trail[1][2]["old"], trail[1][2]["new"]) == ("Zeig den Diebstahl bei {onlinewache} an.", "Neu: {onlinewache}.")
    assert (trail[2][2]["old"], trail[2][2]["new"]) == ("Neu: {onlinewache}.", None)


@pytest.mark.parametrize("name, language, title, text, intents, message", [
    ("x", "de", "T", "Schau mal <b>hier</b>", [], "HTML ist nicht erlaubt"),
    ("x", "de", "T", "<script>alert(1)</script>", [], "HTML ist nicht erlaubt"),
    ("x", "de", "T", "Hallo <!-- versteckt -->", [], "HTML ist nicht erlaubt"),
    ("x", "de", "<i>T</i>", "Text", [], "HTML ist nicht erlaubt"),
    ("x", "de", "T", "Hallo {name}, melde dich bei {team}", [], "Diesen Platzhalter gibt es nicht: {name}"),
    ("x", "de", "T", "Hallo {Team}", [], "{Team}"),
    ("x", "de", "T", "Leer {}", [], "Platzhalter"),
    ("mit leer", "de", "T", "Text", [], "Kurzname"),
    ("unter_strich", "de", "T", "Text", [], "Kurzname"),
    ("", "de", "T", "Text", [], "Kurznamen ein"),
    ("x" * 40, "de", "T", "Text", [], "höchstens 32"),
    ("x", "fr", "T", "Text", [], "Deutsch oder Englisch"),
    ("x", "de", "", "Text", [], "Titel"),
    ("x", "de", "T", "   ", [], "Der Text ist leer"),
    ("x", "de", "T", "a" * 2001, [], "zu lang"),
    ("x", "de", "T", "Text", ["weather"], "Unbekanntes Thema: weather"),
])
def test_bad_templates_are_refused_with_a_clear_german_message(log: HandoverLog, name: str, language: str, title: str,
                                                              text: str, intents: list[str], message: str) -> None:
    before = len(Textblocks(log).all())
    with pytest.raises(TextblockError) as refused:
        Textblocks(log).create("anna", name, language, title, text, intents)
    assert message in str(refused.value)
    assert len(Textblocks(log).all()) == before and events(log) == []


def test_plain_text_with_angle_brackets_and_umlaut_names_is_fine(log: HandoverLog) -> None:
    block = Textblocks(log).create("anna", "grüße-2", "de", "Grüße", "Wir freuen uns <3 und 3 < 5 > 2.", [])
    assert block.name == "grüße-2" and block.text == "Wir freuen uns <3 und 3 < 5 > 2."


def test_short_names_are_unique_per_language_whatever_the_case(log: HandoverLog) -> None:
    store = Textblocks(log)
    store.create("anna", "gruss", "de", "Gruß", "Viele Grüße!", [])
    with pytest.raises(TextblockError, match="„gruss“ gibt es auf Deutsch schon"):
        store.create("ben", "Gruss", "de", "Noch ein Gruß", "Hallo!", [])
    english = store.create("ben", "gruss", "en", "Greeting", "Kind regards!", [])
    with pytest.raises(TextblockError, match="gibt es auf Deutsch schon"):
        store.update(english.id, "ben", "danke", "de", "Greeting", "Kind regards!", [])


def test_an_edit_does_not_overwrite_a_colleagues_change(log: HandoverLog) -> None:
    store = Textblocks(log)
    block = store.create("anna", "abc", "de", "ABC", "Erste Fassung.", [])
    store.update(block.id, "ben", "abc", "de", "ABC", "Bens Fassung.", [], seen=block.updated_at)
    log.clock = lambda: "2030-01-01T00:00:00.000+00:00"  # the second save happens later
    store.update(block.id, "ben", "abc", "de", "ABC", "Bens zweite Fassung.", [], seen=store.get(block.id).updated_at)
    with pytest.raises(TextblockConflict, match="ben hat diesen Textbaustein inzwischen geändert"):
        store.update(block.id, "anna", "abc", "de", "ABC", "Annas Fassung.", [], seen=block.updated_at)
    assert store.get(block.id).text == "Bens zweite Fassung."


def test_templates_for_the_chats_intent_come_first_then_its_language(log: HandoverLog) -> None:
    store = Textblocks(log)
    fraud = chat(log, "u1", "greet", "fraud_scam")
    order = [(b.name, b.language) for b in store.for_conversation(fraud, "de")]
    assert order[:2] == [("onlinewache", "de"), ("online", "en")]  # fits fraud_scam: German first
    assert order.index(("danke", "de")) < order.index(("thanks", "en"))  # the rest: German before English
    english = chat(log, "u2", "tip_off", language="en")
    assert [b.name for b in store.for_conversation(english, "en")][:2] == ["thanks", "danke"]
    turkish = chat(log, "u3", "tip_off", language="tr")  # other languages: the team answers in German
    assert store.for_conversation(turkish, "tr")[0].name == "danke"


def test_an_officers_relabel_decides_the_order(log: HandoverLog) -> None:
    conv = chat(log, "u1", "greet")
    message = log.transcript(conv)[0]
    assert Textblocks(log).for_conversation(conv, "de")[0].name == "danke"  # nothing fits "greet": names
    log.relabel(message.id, "station_contact", "anna")
    assert Textblocks(log).for_conversation(conv, "de")[0].name == "dienstzeiten"


def test_newer_intents_rank_before_older_ones(log: HandoverLog) -> None:
    blocks = Textblocks(log).all()
    names = [b.name for b in ordered(blocks, ["tip_off", "bike_theft"], "de")]
    assert names[:4] == ["danke", "thanks", "onlinewache", "online"]


def test_placeholders_are_filled_from_the_departments_data_and_the_duty_hours(tmp_path: Path, log: HandoverLog) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ROOT / "data" / "responses.yml", data / "responses.yml")
    (data / "department.yml").write_text(
        'team_name: "die Insta-Cops der Polizei Westpfalz"\nonline_report_url: "https://onlinewache.example/anzeige"\n',
        encoding="utf-8")
    values = placeholder_values(Responses.load(data), DutyHours.parse("Mo-Fr 08:00-16:00; Sa 10:00-14:00"))
    block = Textblocks(log).create("anna", "w", "de", "W", "Hier ist {team}. Anzeige: {onlinewache}. Wir lesen {dienstzeiten} mit.")
    assert fill(block, values) == ("Hier ist die Insta-Cops der Polizei Westpfalz. Anzeige: https://onlinewache.example/anzeige."
                                   " Wir lesen Mo–Fr 08:00–16:00 Uhr und Sa 10:00–14:00 Uhr mit.")
    english = Textblocks(log).create("anna", "w", "en", "W", "We read along {dienstzeiten}.")
    assert fill(english, values) == "We read along Mon–Fri 08:00–16:00 and Sat 10:00–14:00."


# -- the inbox over real HTTP ----------------------------------------------------------------


async def test_an_officer_writes_a_template_and_sees_who_changed_it_last(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        await officer.login()
        created = await officer.post("/inbox/vorlagen", {
            "name": "betrug", "language": "de", "title": "Betrug am Telefon",
            "text": "Leg einfach auf. Hier ist {team}.", "intents": "fraud_scam"})
        assert created.status == 303 and created.headers["Location"].startswith("/inbox/vorlagen#t")
        page = await officer.page("/inbox/vorlagen")
        assert "/betrug" in page and "Leg einfach auf. Hier ist {team}." in page
        assert "Zuletzt geändert von <span class=\"who\">anna</span>" in page
        block = next(b for b in Textblocks(services.handover).all() if b.name == "betrug")
        edit = await officer.page(f"/inbox/vorlagen/{block.id}")
        assert "Betrug am Telefon" in edit and 'value="fraud_scam" checked' in edit
        saved = await officer.post(f"/inbox/vorlagen/{block.id}", {
            "name": "betrug", "language": "de", "title": "Betrug", "text": "Leg auf. {team}", "seen": block.updated_at})
        assert saved.status == 303
        assert Textblocks(services.handover).get(block.id).text == "Leg auf. {team}"
        assert [a for _, a, _ in events(services.handover)] == ["textblock_create", "textblock_edit"]


@pytest.mark.parametrize("text, message", [
    ("<script>alert('x')</script>", "HTML ist nicht erlaubt"),
    ("Hallo {vorname}", "Diesen Platzhalter gibt es nicht: {vorname}"),
])
async def test_bad_input_gets_a_400_with_the_message_and_keeps_what_was_typed(settings: Settings, triage_no_model: Triage,
                                                                             text: str, message: str) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        await officer.login()
        before = len(Textblocks(services.handover).all())
        response = await officer.post("/inbox/vorlagen", {"name": "neu", "language": "de", "title": "Neu", "text": text})
        page = await response.text()
        assert response.status == 400
        assert message in page
        assert str(escape(text)) in page and "<script>" not in page  # what was typed is shown again, escaped
        assert len(Textblocks(services.handover).all()) == before


async def test_odd_requests_get_a_4xx_never_a_500(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        await officer.login()
        block = Textblocks(services.handover).all()[0]
        duplicate = await officer.post("/inbox/vorlagen", {"name": block.name, "language": block.language, "title": "T", "text": "T"})
        assert duplicate.status == 400 and "schon" in await duplicate.text()
        nothing = await officer.post("/inbox/vorlagen", {})
        assert nothing.status == 400 and "Kurznamen" in await nothing.text()
        stale = await officer.post(f"/inbox/vorlagen/{block.id}", {
            "name": block.name, "language": block.language, "title": "T", "text": "T", "seen": "1999-01-01"})
        assert stale.status == 409 and "inzwischen geändert" in await stale.text()
        bad_edit = await officer.post(f"/inbox/vorlagen/{block.id}", {"name": block.name, "language": "xx", "title": "T", "text": "T"})
        assert bad_edit.status == 400
        assert (await officer.post(f"/inbox/vorlagen/{block.id}/loeschen")).status == 303
        assert (await officer.get(f"/inbox/vorlagen/{block.id}")).status == 404
        assert (await officer.post(f"/inbox/vorlagen/{block.id}", {"name": "a", "language": "de", "title": "T", "text": "T"})).status == 404
        assert (await officer.post(f"/inbox/vorlagen/{block.id}/loeschen")).status == 404
        assert (await officer.get("/inbox/vorlagen/99999999999999999999")).status == 404
        assert (await officer.get("/inbox/vorlagen/chat/424242")).status == 404


async def test_changes_need_the_csrf_token_and_a_login(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as stranger:
        await officer.login()
        block = Textblocks(services.handover).all()[0]
        form = {"name": "csrf", "language": "de", "title": "T", "text": "T"}
        assert (await officer.post("/inbox/vorlagen", form, csrf=False)).status == 403
        assert (await officer.post("/inbox/vorlagen", {**form, "csrf": "forged"}, csrf=False)).status == 403
        assert (await officer.post(f"/inbox/vorlagen/{block.id}/loeschen", csrf=False)).status == 403
        assert (await stranger.post("/inbox/vorlagen", form, csrf=False)).status == 401
        assert (await stranger.get("/inbox/vorlagen/chat/1")).status == 303
        assert "csrf" not in {b.name for b in Textblocks(services.handover).all()}
        assert block.id in {b.id for b in Textblocks(services.handover).all()}


async def test_a_chats_reply_box_gets_the_templates_filled_in_and_best_fitting_first(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        await officer.login()
        conv = chat(services.handover, "u1", "tip_off")
        page = await officer.page(f"/inbox/c/{conv}")
        assert f'data-source="/inbox/vorlagen/chat/{conv}"' in page
        live = page.split('id="live"', 1)[1].split("</section>", 1)[0]
        assert "textblock-picker" not in live  # outside the part the live refresh replaces
        response = await officer.get(f"/inbox/vorlagen/chat/{conv}")
        blocks = (await response.json())["textblocks"]
        assert [b["name"] for b in blocks[:2]] == ["danke", "thanks"]
        dienst = next(b for b in blocks if b["name"] == "dienstzeiten")
        assert "Mo–Fr 08:00–16:00 Uhr" in dienst["text"] and "{" not in dienst["text"]
