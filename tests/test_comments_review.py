"""Officers' public replies are checked for personal and case details; abuse is marked as seen and done.

Real HTTP on 127.0.0.1 with a logged-in officer, a real SQLite log filled through the comment store.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.comment_policy import CommentPolicy, problems
from bot.handover.comments import Comments
from bot.public_reply import HELP_NUMBERS, scan
from bot.settings import Settings
from bot.triage import Triage
from nlu.intents import INTENTS
from tests.test_comments_inbox import arrive, events, order
from tests.web_support import Browser, served

POLICY = Path(__file__).resolve().parent.parent / "data" / "comment_policy.yml"


# -- the one checker -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [
    ("Ruf uns unter 0711 8990-1234 an.", "phone"),
    ("Ruf mich an: +49 171 2345678", "phone"),
    ("Schreib an wache.mitte@polizei.example, dann klären wir das.", "email"),
    ("@nachbar_tom hat das auch gesehen", "mention"),
    ("Der Wagen stand in der Lindenstraße 14b.", "address"),
    ("Dein Aktenzeichen ist 123 Js 4567/24.", "case_number"),
    ("Die Vorgangsnummer lautet ST/1234567/2026.", "case_number"),
    ("Bitte bei Nachfragen Az. 4711/26 angeben.", "case_number"),
    ("Danke, Jonas Beispiel, wir kümmern uns.", "name"),
    ("Danke Jonas, wir kümmern uns.", "name"),
    ("Hallo ig-3fa81c09d2, schreib uns.", "name"),
])
def test_the_check_finds_personal_and_case_details(text: str, kind: str) -> None:
    found = scan(text, names=["Jonas Beispiel", "ig-3fa81c09d2"], mention_ok=["lena.k"])
    assert kind in {f.kind for f in found}, found


@pytest.mark.parametrize("text", [
    "@lena.k wir haben dir eine Nachricht geschickt.",
    "In Gefahr? Ruf sofort die 110 an (Feuer und Rettung: 112).",
    "Hilfetelefon Gewalt gegen Frauen: 116 016. TelefonSeelsorge: 0800 111 0 111 oder 0800 111 0 222.",
    "Nummer gegen Kummer: 116 111. Ärztlicher Bereitschaftsdienst: 116 117.",
    "Wir sind 24/7 da. Am 12.12.2026 um 14:30 ist Tag der offenen Tür, seit 2019-2026 über 10 000 Gäste.",
    "Die Termine stehen auf unserer Website.",
    "Der Vorgang ist abgeschlossen, danke für den Hinweis!",
])
def test_the_check_lets_ordinary_replies_and_help_lines_pass(text: str) -> None:
    assert scan(text, names=["Jonas Beispiel", "lena.k"], mention_ok=["lena.k"]) == []


def test_the_policy_file_and_the_officers_use_the_same_check() -> None:
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    doc["faq"]["short_public_reply"]["de"] = "Dein Aktenzeichen ist 123 Js 4567/24."
    errors = [text for level, where, text in problems(doc, INTENTS) if level == "error" and "short_public_reply" in where]
    assert errors and all("case_number" in e for e in errors)
    policy = CommentPolicy.load(POLICY, INTENTS)
    assert all(scan(text, strict=True) == [] for _, _, text in policy.public_texts())
    assert {"110", "112", "116016"} <= HELP_NUMBERS


# -- officers' public replies ------------------------------------------------------------------

async def test_a_public_reply_with_personal_details_is_refused_with_what_was_found(settings: Settings,
                                                                                  triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        question = arrive(store, "Mein Rad wurde geklaut, was jetzt?", 1, "faq", author="4711")
        await officer.login()
        base = f"/inbox/kommentare/{question.id}"
        phone = await officer.post(f"{base}/reply-public", {"text": "Ruf mich direkt an: 0171 2345678"})
        phone_text = await phone.text()
        case = await officer.post(f"{base}/reply-public", {"text": "Dein Vorgang hat die Nummer Az. 4711/26."})
        name = await officer.post(f"{base}/reply-public", {"text": "Danke user_4711, wir schauen es uns an."})
        other = await officer.post(f"{base}/reply-public", {"text": "@someone_else weiß mehr"})
        assert store.actions(question.id) == []  # nothing planned, nothing sent
        fine = await officer.post(f"{base}/reply-public", {"text": "@user_4711 wir haben dir eine Nachricht geschickt. Notfall: 110."})
        private = await officer.post(f"{base}/reply-private", {"text": "Dein Aktenzeichen ist 123 Js 4567/24. Ruf 0171 2345678 an."})
        planned = [a.kind for a in store.actions(question.id)]
    assert [r.status for r in (phone, case, name, other)] == [400, 400, 400, 400]
    assert "Telefonnummer (0171 2345678)" in phone_text and "private Antwort" in phone_text
    assert "Aktenzeichen" in await case.text() and "Namen der Person" in await name.text()
    assert "@-Erwähnung (@someone_else)" in await other.text()
    assert fine.status == 303 and private.status == 303  # the private reply may carry them
    assert planned == ["public_reply", "private_reply"]


# -- the abuse review ---------------------------------------------------------------------------

def section_ids(html: str, css: str) -> list[int]:
    """The comment ids in one section of the list."""
    match = re.search(rf'class="comment-section need-{css}"(.*?)(?=class="comment-section|<nav|<h2>Beiträge|$)', html, re.S)
    return order(match.group(1)) if match else []


async def test_an_officer_marks_hidden_abuse_as_seen_and_can_undo_it(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        log = services.handover
        store = Comments(log)
        abuse = arrive(store, "Ihr Versager in Uniform", 2, "abuse", intent="insult")
        hide = store.plan(abuse.id, "hide", priority=1)
        store.action_sent(hide, None)
        question = arrive(store, "Wo ist die nächste Wache?", 1, "faq")
        await officer.login()
        before = await officer.page("/inbox/kommentare")
        assert 'data-action="reviewed"' in before and section_ids(before, "abuse") == [abuse.id]

        done = await officer.post(f"/inbox/kommentare/{abuse.id}/reviewed", {"back": "/inbox/kommentare"})
        after = await officer.page("/inbox/kommentare")
        twice = await officer.post(f"/inbox/kommentare/{abuse.id}/reviewed")
        not_abuse = await officer.post(f"/inbox/kommentare/{question.id}/reviewed")
        one = await officer.page(f"/inbox/kommentare/{abuse.id}")

        undo = await officer.post(f"/inbox/kommentare/{abuse.id}/unreviewed")
        again = await officer.page("/inbox/kommentare")
        back = store.get(abuse.id)
        audited = (events(log, "comment_reviewed"), events(log, "comment_review_undone"))
    assert done.status == 303
    assert section_ids(after, "abuse") == [] and abuse.id in section_ids(after, "none")
    assert "gesehen/erledigt · anna" in one and 'data-action="unreviewed"' in one and "ausgeblendet" in one
    assert twice.status == 409 and not_abuse.status == 409 and "Nur Beleidigungen" in await not_abuse.text()
    assert undo.status == 303 and section_ids(again, "abuse") == [abuse.id]
    assert (back.need, back.reviewed, back.hidden) == (2, None, 1)
    assert audited == (["anna"], ["anna"])
