"""Comments in the officers' inbox over real HTTP, on a real SQLite log filled through the comment store."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest

from bot.handover import HandoverLog, Inbound
from bot.handover.comments import Comment, Comments, IncomingComment
from bot.settings import Settings
from bot.triage import Triage
from tests.web_support import Browser, next_event, served

_ids = itertools.count(1)
POST = "17900000000000001"
OTHER_POST = "17900000000000002"


def arrive(store: Comments, text: str, need: int, policy: str, *, author: str = "4711", post: str = POST,
           days_old: float = 0, intent: str | None = None, **fields: object) -> Comment:
    """A comment stored and triaged as inbound would do it."""
    created = (datetime.now(timezone.utc) - timedelta(days=days_old)).isoformat(timespec="milliseconds")
    comment = store.record(IncomingComment(
        channel="instagram", platform_id=f"1800000000000{next(_ids):04d}", post_platform_id=post, author_id=author,
        text=text, author_name=f"user_{author}", created_at=created, permalink=f"https://www.instagram.com/p/{post}/",
        caption=f"Verkehrskontrolle an der B{post[-1]}: so lief es", **fields))  # type: ignore[arg-type]
    assert comment is not None
    store.decide(comment.id, intent, 0.9, None, policy, need)
    return store.get(comment.id)


def order(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-comment="(\d+)"', html)]


def events(log: HandoverLog, action: str) -> list[str]:
    return [r[0] for r in log.db.execute("SELECT actor FROM events WHERE action = ? ORDER BY id", [action])]


async def test_comments_need_a_login(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as stranger:
        page = await stranger.get("/inbox/kommentare")
        action = await stranger.post("/inbox/kommentare/1/hide", csrf=False)
    assert page.status == 303 and page.headers["Location"] == "/inbox/login?next=/inbox/kommentare"
    assert action.status == 401


async def test_the_list_is_sorted_by_need_across_posts_and_per_post(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        thanks = arrive(store, "Danke für eure Arbeit!", 3, "list")
        abuse = arrive(store, "Ihr seid alle Idioten", 2, "abuse", intent="insult")
        question = arrive(store, "Wie zeige ich einen Fahrraddiebstahl an?", 1, "faq", post=OTHER_POST)
        emergency = arrive(store, "Hilfe, bei uns im Haus schlägt gerade einer seine Frau", 0, "escalate")
        own = arrive(store, "Danke dir!", 9, "none", own=True)
        await officer.login()
        across = await officer.page("/inbox/kommentare")
        one_post = await officer.page(f"/inbox/kommentare/post/{emergency.post_id}")
        fragment = await officer.page("/inbox/kommentare/live")
    assert order(across) == [emergency.id, question.id, abuse.id, thanks.id, own.id]
    assert order(one_post) == [emergency.id, abuse.id, thanks.id, own.id]
    assert order(fragment) == order(across) and "<html" not in fragment
    assert "🚨 Notfall" in across and "user_4711" in across and "Verkehrskontrolle an der B1" in across
    assert 'href="https://www.instagram.com/p/17900000000000001/"' in across
    assert across.index("Beiträge") > across.index("Danke für eure Arbeit")  # the overview of posts after the list


async def test_what_the_bot_did_is_shown_with_meta_error_text(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        emergency = arrive(store, "Da liegt einer auf der Straße und bewegt sich nicht", 0, "escalate")
        public = store.plan(emergency.id, "public_reply", "Bitte ruf sofort die 110 an. Wir haben dir eine Nachricht geschickt.", priority=0)
        private = store.plan(emergency.id, "private_reply", "Ruf bitte sofort die 110 an.", priority=0)
        store.action_sent(public, "17999")
        store.action_failed(private, "Diese Person ist gerade nicht erreichbar.", final=True)
        lost = arrive(store, "Kann ich euch privat was schreiben?", 1, "invite")
        unclear = store.plan(lost.id, "private_reply", "Schreib uns gern.")
        services.handover.db.execute("UPDATE comment_actions SET status = 'unknown', error = ? WHERE id = ?",
                                     ["Unklar, ob sie ankam: bitte in der App prüfen.", unclear])  # as the executor does
        await officer.login()
        html = await officer.page(f"/inbox/kommentare/{emergency.id}")
        lost_html = await officer.page(f"/inbox/kommentare/{lost.id}")
        refused = await officer.post(f"/inbox/kommentare/{lost.id}/reply-private", {"text": "Nochmal"})
    assert "Öffentliche Antwort · Bot" in html and "erledigt" in html
    assert "Private Antwort (DM) · Bot" in html and "fehlgeschlagen" in html
    assert "Meta: Diese Person ist gerade nicht erreichbar." in html
    assert 'id="private-text"' in html  # a failed private reply does not use up the one allowed
    assert "unklar" in lost_html and "Unklar, ob sie ankam: bitte in der App prüfen." in lost_html
    assert 'id="private-text"' not in lost_html and "ein zweites Mal geht nicht" in lost_html
    assert refused.status == 409


async def test_hide_unhide_reply_evidence_complaint_release_delete_are_planned_and_audited(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        log = services.handover
        store = Comments(log)
        abuse = arrive(store, "Bullen sind alle Abschaum", 2, "abuse", intent="insult", author="666")
        arrive(store, "Nochmal: Abschaum", 2, "abuse", intent="insult", author="666")
        question = arrive(store, "Wann habt ihr wieder Fahrradcodierung?", 1, "faq")
        await officer.login()
        base = f"/inbox/kommentare/{abuse.id}"

        hide = await officer.post(f"{base}/hide", {"back": "/inbox/kommentare"})
        assert hide.status == 303 and hide.headers["Location"] == f"/inbox/kommentare#k{abuse.id}"
        [planned] = store.actions(abuse.id)
        assert (planned.kind, planned.status, planned.officer) == ("hide", "pending", "anna")
        [evidence] = store.evidence(abuse.id)  # captured before the hide was planned
        assert evidence.text == "Bullen sind alle Abschaum" and evidence.author == abuse.author
        store.action_sent(planned.id, None)  # as the executor does
        page = await officer.page(base)
        assert "ausgeblendet" in page and "🔒 Beweis gesichert" in page and "2× beleidigend" in page

        assert (await officer.post(f"{base}/unhide")).status == 303
        assert (await officer.post(f"{base}/complaint")).status == 303
        assert store.evidence(abuse.id)[-1].complaint == 1
        page = await officer.page(base)
        assert "für Strafanzeige vorgemerkt" in page and "wird aufbewahrt, bis jemand sie freigibt" in page

        assert (await officer.post(f"{base}/release", {"evidence_id": str(evidence.id)})).status == 303
        assert store.evidence_item(evidence.id).released_by == "anna"
        assert (await officer.post(f"{base}/release", {"evidence_id": "99999"})).status == 400

        unconfirmed = await officer.post(f"{base}/delete")
        assert unconfirmed.status == 400 and "bestätige" in await unconfirmed.text()
        assert (await officer.post(f"{base}/delete", {"confirm": "ja"})).status == 303
        assert [a.kind for a in store.actions(abuse.id)] == ["hide", "unhide", "delete"]

        keep = await officer.post(f"/inbox/kommentare/{question.id}/evidence")
        public = await officer.post(f"/inbox/kommentare/{question.id}/reply-public", {"text": "Die Termine stehen auf unserer Website."})
        empty = await officer.post(f"/inbox/kommentare/{question.id}/reply-public", {"text": "   "})
        assert keep.status == 303 and public.status == 303 and empty.status == 400
        assert [(a.kind, a.text, a.officer) for a in store.actions(question.id)] == [
            ("public_reply", "Die Termine stehen auf unserer Website.", "anna")]
        assert len(store.evidence(question.id)) == 1
        assert (await officer.post(f"/inbox/kommentare/{question.id}/explode")).status == 404
        assert (await officer.post("/inbox/kommentare/99999/hide")).status == 404
        audited = {action: events(log, action) for action in (
            "comment_hide", "comment_unhide", "comment_delete", "comment_complaint", "comment_release",
            "comment_public_reply", "comment_evidence")}
    assert all("anna" in actors for actors in audited.values()), audited


async def test_only_one_private_reply_and_none_after_seven_days(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        question = arrive(store, "Kann ich bei euch ein Praktikum machen?", 1, "faq")
        old = arrive(store, "Wie lange dauert eine Anzeige?", 1, "faq", days_old=8)
        await officer.login()
        first = await officer.post(f"/inbox/kommentare/{question.id}/reply-private", {"text": "Schreib uns gern hier im Chat."})
        second = await officer.post(f"/inbox/kommentare/{question.id}/reply-private", {"text": "Nochmal hallo"})
        late = await officer.post(f"/inbox/kommentare/{old.id}/reply-private", {"text": "Hallo"})
        page = await officer.page(f"/inbox/kommentare/{question.id}")
        old_page = await officer.page(f"/inbox/kommentare/{old.id}")
        listing = await officer.page("/inbox/kommentare")
        planned = ([a.kind for a in store.actions(question.id)], store.actions(old.id))
    assert first.status == 303
    assert second.status == 409 and "schon privat geantwortet" in await second.text()
    assert late.status == 409 and "Älter als 7 Tage" in await late.text()
    assert planned == (["private_reply"], [])
    assert 'id="private-text"' not in page and "Auf diesen Kommentar wurde schon privat geantwortet." in page
    assert 'id="private-text"' not in old_page and "Älter als 7 Tage" in old_page
    assert "⏱️ Älter als 7 Tage" in listing


async def test_actions_without_the_csrf_token_are_refused(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        abuse = arrive(store, "Ihr Clowns", 2, "abuse")
        await officer.login()
        missing = await officer.post(f"/inbox/kommentare/{abuse.id}/delete", {"confirm": "ja"}, csrf=False)
        forged = await officer.post(f"/inbox/kommentare/{abuse.id}/hide", {"csrf": "forged"}, csrf=False)
        assert store.actions(abuse.id) == [] and store.evidence(abuse.id) == []
    assert missing.status == 403 and forged.status == 403


async def test_comment_text_names_and_links_are_escaped(settings: Settings, triage_no_model: Triage) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        comment = store.record(IncomingComment(
            channel="messenger", platform_id="999_1", post_platform_id="104_1", author_id="77", text=attack,
            author_name='<b onmouseover="x">evil</b>', permalink="javascript:alert(1)", caption="<iframe src=//evil>"))
        assert comment is not None
        store.decide(comment.id, "insult", 0.9, None, "abuse", 2)
        store.capture_evidence(comment.id, "bot")
        await officer.login()
        pages = [await officer.page(p) for p in ("/inbox/kommentare", f"/inbox/kommentare/{comment.id}",
                                                 f"/inbox/kommentare/post/{comment.post_id}")]
    for html in pages:
        assert attack not in html and "<b onmouseover" not in html and "<iframe" not in html
        assert "javascript:" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[1] and "Facebook" in pages[1]


async def test_the_dm_a_private_reply_opened_links_to_its_comment_and_back(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        comment = arrive(store, "Ich will was melden, aber nicht öffentlich", 1, "invite", intent="tip_off", author="5150")
        stored = services.handover.record_inbound(Inbound(channel="instagram", chat_id="5150", user_id="5150", text="Hallo"))
        assert stored is not None
        store.link_conversation(comment.id, stored.conversation.id)
        await officer.login()
        chat = await officer.page(f"/inbox/c/{stored.conversation.id}")
        chat_live = await officer.page(f"/inbox/c/{stored.conversation.id}/live")
        page = await officer.page(f"/inbox/kommentare/{comment.id}")
    assert f'href="/inbox/kommentare/{comment.id}"' in chat and f'href="/inbox/kommentare/{comment.id}"' in chat_live
    assert f'href="/inbox/c/{stored.conversation.id}"' in page


async def test_an_action_is_announced_on_the_inbox_stream(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer, Browser(server) as colleague:
        store = Comments(services.handover)
        abuse = arrive(store, "Dumme Bullen", 2, "abuse")
        await officer.login()
        await colleague.login()
        stream = await colleague.http.get(colleague.url("/inbox/events"))
        await next_event(stream, "hello")
        await officer.post(f"/inbox/kommentare/{abuse.id}/hide")
        event = await next_event(stream)
        stream.close()
    assert event == {"kind": "comment", "comment_id": abuse.id, "need": 2}


async def test_the_public_reply_form_warns_that_everyone_reads_it(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        question = arrive(store, "Darf ich mit dem E-Scooter auf dem Gehweg fahren?", 1, "faq")
        await officer.login()
        html = await officer.page(f"/inbox/kommentare/{question.id}")
        await asyncio.sleep(0)
    assert "Alle können diese Antwort lesen" in html and "keine Details zum Fall" in html


async def test_a_comment_deleted_on_the_platform_gets_no_action(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        store = Comments(services.handover)
        gone = arrive(store, "Ihr Pfeifen", 2, "abuse")
        store.record_removed(gone.channel, gone.platform_id)
        await officer.login()
        hide = await officer.post(f"/inbox/kommentare/{gone.id}/hide")
        reply = await officer.post(f"/inbox/kommentare/{gone.id}/reply-public", {"text": "Hallo"})
        page = await officer.page(f"/inbox/kommentare/{gone.id}")
        assert store.actions(gone.id) == []
    assert hide.status == 409 and reply.status == 409 and "gelöscht" in await hide.text()
    assert "vom Verfasser gelöscht" in page and 'id="public-text"' not in page
