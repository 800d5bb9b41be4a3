"""Comments under posts and data protection: export, delete, retention; evidence for a complaint is kept until released."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from bot.handover import HandoverError, HandoverLog, Inbound
from bot.handover.comments import Comment, CommentError, Comments, IncomingComment
from bot.handover.privacy import delete_citizen, export_citizen, purge_expired
from tests.test_privacy import NOW, Clock, at  # the same moved clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(tmp_path: Path, clock: Clock) -> Iterator[HandoverLog]:
    handover = HandoverLog.open(tmp_path / "streife.sqlite3", clock=clock)
    yield handover
    handover.close()


def comment(store: Comments, cid: str, user: str, text: str, days_ago: float = 0) -> Comment:
    c = store.record(IncomingComment("instagram", cid, "media-1", user, text, author_name=f"name-{user}",
                                     created_at=at(days_ago), permalink="https://www.instagram.com/p/abc/", caption="Unser Beitrag"))
    assert c is not None
    return c


def test_an_export_holds_a_citizens_comments_actions_and_evidence_and_says_what_is_kept(log: HandoverLog) -> None:
    store = Comments(log)
    mine = comment(store, "c1", "u1", "Ihr seid Witzfiguren")
    comment(store, "c2", "u2", "Danke euch")
    store.plan(mine.id, "hide")
    store.mark_complaint(mine.id, "anna")
    export = export_citizen(log, mine.author)
    assert [c["text"] for c in export["comments"]] == ["Ihr seid Witzfiguren"]
    assert [a["kind"] for a in export["comment_actions"]] == ["hide"]
    [evidence] = export["evidence"]
    assert evidence["kept"] is True and "Strafanzeige" in export["evidence_kept"] and "freigibt" in export["evidence_kept"]
    assert export["conversations"] == [] and export["messages"] == []
    json.dumps(export, ensure_ascii=False)


def test_deleting_a_citizen_erases_their_comments_but_keeps_evidence_marked_for_a_complaint(log: HandoverLog) -> None:
    store = Comments(log)
    log.record_inbound(Inbound("instagram", "u1", "u1", "Hallo"))  # the same person's DM: same pseudonym
    kept = comment(store, "c1", "u1", "Ich weiß, wo du wohnst, Wachtmeister")
    plain = comment(store, "c2", "u1", "Ihr seid Witzfiguren")
    other = comment(store, "c3", "u2", "Danke euch")
    assert kept.author == log.find_conversation("instagram", "u1").citizen
    store.plan(kept.id, "hide")
    store.plan(plain.id, "hide")
    evidence = store.mark_complaint(kept.id, "anna")
    counts = delete_citizen(log, kept.author, "cli:root")
    assert counts["conversations"] == 1 and counts["comments"] == 1 and counts["evidence"] == 1 and counts["evidence_kept"] == 1
    assert store.by_platform("instagram", "c2") is None and store.by_platform("instagram", "c3") == other
    emptied = store.get(kept.id)
    assert (emptied.text, emptied.author_id, emptied.author_name) == ("", None, "")
    assert store.evidence_item(evidence.id).text == "Ich weiß, wo du wohnst, Wachtmeister"  # kept for the complaint
    export = export_citizen(log, kept.author)
    assert [e["kept"] for e in export["evidence"]] == [True] and export["evidence_kept"]
    assert [(a.comment_id, a.kind, a.status) for a in store.due_actions()] == [(kept.id, "hide", "pending")]  # still hidden
    with pytest.raises(CommentError):
        store.plan(kept.id, "private_reply", "Hallo")  # nothing goes out to a deleted person's emptied comment: too old or empty


def test_a_citizen_with_only_comments_can_be_exported_and_deleted(log: HandoverLog) -> None:
    store = Comments(log)
    c = comment(store, "c1", "u9", "Wo ist die nächste Wache?")
    assert export_citizen(log, c.author)["comments"][0]["platform_id"] == "c1"
    counts = delete_citizen(log, c.author, "cli:root")
    assert counts["comments"] == 1
    with pytest.raises(HandoverError, match="no data"):
        export_citizen(log, c.author)
    assert log.db.execute("SELECT actor FROM events WHERE action = 'privacy_delete'").fetchone()[0] == "cli:root"


def test_retention_purges_old_comments_and_keeps_complaint_evidence_until_it_is_released(log: HandoverLog, clock: Clock) -> None:
    store = Comments(log)
    clock.now = at(40)
    old = comment(store, "c-old", "u1", "Alter Kommentar", days_ago=40)
    abuse = comment(store, "c-abuse", "u2", "Beleidigung", days_ago=40)
    complaint = comment(store, "c-complaint", "u3", "Drohung gegen Beamte", days_ago=40)
    store.plan(abuse.id, "hide")
    store.plan(complaint.id, "hide")
    for action in store.due_actions():
        store.action_sent(action.id, None)
    evidence = store.mark_complaint(complaint.id, "anna")
    clock.now = at(0)
    recent = comment(store, "c-new", "u4", "Neuer Kommentar")
    counts = purge_expired(log, 30, now=NOW)
    assert counts["comments"] == 2 and counts["evidence_kept"] == 1
    assert store.by_platform("instagram", "c-old") is None and store.by_platform("instagram", "c-abuse") is None
    assert store.by_platform("instagram", "c-new") == recent
    assert store.evidence_item(evidence.id).kept and store.get(complaint.id).text == ""
    assert purge_expired(log, 30, now=NOW).get("evidence", 0) == 0  # still kept on the next run
    store.release(evidence.id, "anna")
    assert store.evidence(complaint.id)[0].released_by == "anna"
    purge_expired(log, 30, now=NOW)
    assert store.evidence(complaint.id) == [] and store.by_platform("instagram", "c-complaint") is None


def test_retention_keeps_a_comment_whose_action_is_still_pending(log: HandoverLog, clock: Clock) -> None:
    store = Comments(log)
    clock.now = at(40)
    c = comment(store, "c1", "u1", "Frage", days_ago=40)
    store.plan(c.id, "public_reply", "Wir haben dir eine Nachricht geschickt.")
    clock.now = at(0)
    purge_expired(log, 30, now=NOW)
    assert store.by_platform("instagram", "c1") is not None
