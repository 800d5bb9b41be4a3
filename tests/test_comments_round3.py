"""Comments, third round (issue 14 review): long private replies, the public text, live alarms, the list's queries."""

from __future__ import annotations

from bot.handover.comments import Comments
from bot.settings import Settings
from bot.triage import Triage
from tests.test_comments_inbox import arrive
from tests.web_support import Browser, served


async def test_a_private_reply_longer_than_instagram_takes_is_refused_not_cut(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        question = arrive(store, "Wie zeige ich einen Betrug im Internet an?", 1, "faq")
        await officer.login()
        page = await officer.page(f"/inbox/kommentare/{question.id}")
        too_long = await officer.post(f"/inbox/kommentare/{question.id}/reply-private", {"text": "Hallo. " * 200})
        refused = await too_long.text()
        fits = await officer.post(f"/inbox/kommentare/{question.id}/reply-private", {"text": "Hallo! " * 140})
        planned = [(a.kind, len(a.text)) for a in store.actions(question.id)]
    assert 'id="private-text" name="text" rows="3" maxlength="1000"' in page
    assert 'id="public-text" name="text" rows="3" maxlength="2000"' in page
    assert too_long.status == 400 and "höchstens 1000 Zeichen" in refused and "Instagram" in refused
    assert fits.status == 303 and planned == [("private_reply", 979)]


def _fill(store: Comments, n: int) -> None:
    """n comments across 20 posts and every need; a third of the rest with an action, the abusive ones with evidence."""
    from tests.test_comments_inbox import POST  # noqa: F401
    for i in range(n):
        need, policy = [(0, "escalate"), (1, "faq"), (2, "abuse"), (3, "list"), (9, "none")][i % 5]
        c = arrive(store, f"Kommentar Nummer {i}", need, policy, author=str(4000 + i % 37), post=f"179000000001{i % 20:05d}")
        if policy == "abuse":
            store.capture_evidence(c.id, "anna")
        elif i % 3 == 0:
            store.plan(c.id, "public_reply", "Danke dir!")


async def test_the_comment_list_needs_a_fixed_number_of_queries_not_some_per_comment(settings: Settings,
                                                                                   triage_no_model: Triage) -> None:
    import time
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        _fill(store, 1000)
        await officer.login()
        queries: list[str] = []
        services.handover.db.conn.set_trace_callback(queries.append)
        started = time.perf_counter()
        fragment = await officer.page("/inbox/kommentare/live")
        took = time.perf_counter() - started
        services.handover.db.conn.set_trace_callback(None)
    selects = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
    print(f"list fragment, 1000 comments: {len(selects)} SELECTs, {took * 1000:.0f} ms, {fragment.count('data-comment=')} rows")
    assert fragment.count('data-comment="') >= 200
    assert len(selects) <= 30  # a fixed number: sections, actions, evidence, author counts, posts, overview, counts


def test_the_departments_own_number_may_be_named_in_public_but_no_other() -> None:
    from bot.public_reply import own_numbers, scan
    ours = own_numbers("0711 8990-0")
    assert scan("Ruf uns gern unter 0711 8990-0 an.", numbers_ok=ours) == []
    assert scan("Ruf uns gern unter +49 711 89900 an.", numbers_ok=ours) == []
    assert [f.kind for f in scan("Ruf uns gern unter 0711 8990-0 an.")] == ["phone"]
    assert [f.kind for f in scan("Ruf Jonas unter 0171 2345678 an.", numbers_ok=ours)] == ["phone"]


async def test_an_officer_may_give_the_departments_number_in_a_public_reply(settings: Settings, triage_no_model: Triage) -> None:
    import dataclasses
    responses = triage_no_model.responses
    values = {lang: {**v, "non_emergency_phone": "0711 8990-0"} for lang, v in responses.values.items()}
    triage_no_model.responses = dataclasses.replace(responses, values=values)
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        question = arrive(store, "Wen rufe ich an, wenn es kein Notfall ist?", 1, "faq")
        await officer.login()
        ours = await officer.post(f"/inbox/kommentare/{question.id}/reply-public",
                                  {"text": "Wenn es kein Notfall ist: ruf uns unter 0711 8990-0 an."})
        other = await officer.post(f"/inbox/kommentare/{question.id}/reply-public", {"text": "Ruf 0171 2345678 an."})
        planned = [a.text for a in store.actions(question.id)]
    assert ours.status == 303 and other.status == 400 and "Telefonnummer" in await other.text()
    assert planned == ["Wenn es kein Notfall ist: ruf uns unter 0711 8990-0 an."]


def test_the_emergency_rule_needs_a_public_text_without_the_message_sentence() -> None:
    from pathlib import Path

    import pytest
    import yaml

    from bot.comment_policy import CommentPolicy, PolicyError
    doc = yaml.safe_load((Path(__file__).resolve().parent.parent / "data" / "comment_policy.yml").read_text(encoding="utf-8"))
    policy = CommentPolicy(doc)
    assert policy.outcome("emergency", "escalate").public_alone == "Bitte ruf sofort die 110 an."
    assert policy.outcome("emergency", "escalate", "en").public_alone == "Please call 110 right now."
    del doc["escalation"]["public_reply_alone"]
    with pytest.raises(PolicyError, match="public_reply_alone"):
        CommentPolicy(doc)
    doc["escalation"]["public_reply_alone"] = {"de": "Ruf die 110 an oder Jonas unter 0171 2345678.", "en": "Call 110."}
    with pytest.raises(PolicyError, match="personal details"):
        CommentPolicy(doc)
