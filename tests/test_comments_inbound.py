"""Comments under posts coming in (issue 14): Meta's signed webhook over real HTTP, a real SQLite file.

Payloads as Meta documents them (see bot/channels/meta_comments.py for the pages): Instagram
`changes[].field = comments|live_comments`, the Facebook Page `feed` field with `item: comment`.
A stand-in model (KeywordParser) reads the test texts; the safety net is the real one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import yaml

from bot.comment_policy import RULES, CommentPolicy, PolicyError, personal_details, problems
from bot.handover.comments import Comment, Comments, IncomingComment
from nlu.intents import INTENTS
from nlu.parse import Parse
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import ACCOUNT, PAGE, Running, graph, meta_settings, running  # noqa: F401 (graph: fixture)

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "data" / "comment_policy.yml"
ESCALATION_PUBLIC = "Bitte ruf sofort die 110 an. Wir haben dir eine Nachricht geschickt."
EMERGENCY = "Hilfe, bei uns wird gerade eingebrochen, die sind noch im Haus"
_ids = itertools.count(1)

# What the stand-in model reads (the real model is not loaded in these tests).
READINGS = {
    "Wo kann ich ein gefundenes Portemonnaie abgeben?": "lost_found",
    "Wie lange dauert eigentlich so ein Bußgeldverfahren?": "traffic",
    "Ihr seid doch alle nur Witzfiguren in Uniform": "insult",
    "Ich hab was beobachtet, wem kann ich das sagen?": "tip_off",
    "Danke euch für die Arbeit!": "thanks",
    "Und wo genau gebe ich das dann ab?": "lost_found",
}


class KeywordParser:
    """A stand-in model that reads the test texts as READINGS says."""

    ready = True

    async def parse(self, text: str, urgent: bool = False) -> Parse | None:
        intent = READINGS.get(text, "out_of_scope")
        return Parse(intent, 0.95, ((intent, 0.95),))


def ig_comment(text: str, user: str = "9001", cid: str | None = None, media: str = "18000000000000001",
               parent: str | None = None, field: str = "comments", username: str = "lena.k") -> tuple[str, dict[str, Any]]:
    """An Instagram comments change: (comment id, change)."""
    cid = cid or f"1790000000000{next(_ids):04d}"
    value: dict[str, Any] = {"id": cid, "from": {"id": user, "username": username}, "text": text,
                             "media": {"id": media, "media_product_type": "FEED"}}
    if parent:
        value["parent_id"] = parent
    return cid, {"field": field, "value": value}


def fb_comment(text: str = "", user: str = "7001", cid: str | None = None, post: str = f"{PAGE}_555", verb: str = "add",
               parent: str | None = None, photo: bool = False, name: str = "Jonas Beispiel") -> tuple[str, dict[str, Any]]:
    """A Facebook Page feed change for a comment: (comment id, change)."""
    cid = cid or f"555_{next(_ids)}"
    value: dict[str, Any] = {"item": "comment", "verb": verb, "comment_id": cid, "post_id": post, "parent_id": parent or post,
                             "from": {"id": user, "name": name}, "created_time": int(time.time()),
                             "post": {"id": post, "permalink_url": f"https://www.facebook.com/{post}", "status_type": "added_photos"}}
    if text:
        value["message"] = text
    if photo:
        value["photo"] = "https://scontent.example/photo.jpg"
    return cid, {"field": "feed", "value": value}


def changes(*items: dict[str, Any], obj: str = "instagram", account: str = ACCOUNT) -> dict[str, Any]:
    return {"object": obj, "entry": [{"id": account, "time": int(time.time()), "changes": list(items)}]}


def fb(*items: dict[str, Any]) -> dict[str, Any]:
    return changes(*items, obj="page", account=PAGE)


@pytest.fixture
async def bot(tmp_path: Path, graph: FakeGraphApi) -> AsyncIterator[Running]:  # noqa: F811
    async with running(meta_settings(tmp_path, graph), graph) as app:
        app.services.triage.parser = KeywordParser()
        yield app


def store(bot: Running) -> Comments:
    return Comments(bot.log)


def stored(bot: Running, cid: str, channel: str = "instagram") -> Comment:
    c = store(bot).by_platform(channel, cid)
    assert c is not None, f"comment {cid} not stored"
    return c


def planned(bot: Running, c: Comment) -> list[tuple[str, str]]:
    return [(a.kind, a.text) for a in store(bot).actions(c.id)]


async def test_a_comment_is_stored_before_the_200_and_a_redelivery_is_dropped(bot: Running) -> None:
    cid, change = ig_comment("Danke euch für die Arbeit!")
    for _ in range(2):
        response = await bot.post(changes(change))
        assert response.status == 200
    await bot.channel.drain()
    c = stored(bot, cid)
    assert bot.log.db.execute("SELECT COUNT(*) FROM comments").fetchone()[0] == 1
    assert (c.author_name, c.author_id, c.own, c.kind) == ("lena.k", "9001", 0, "text")
    assert c.author == bot.log.pseudonym("instagram", "9001")
    assert store(bot).post(c.post_id).platform_id == "18000000000000001"
    assert (c.status, c.policy, c.need, c.intent) == ("decided", "list", 3, "thanks")
    assert planned(bot, c) == []


async def test_the_accounts_own_comments_are_recorded_never_triaged(bot: Running) -> None:
    ig_id, ig_change = ig_comment(EMERGENCY, user=ACCOUNT, username="polizei.test")
    fb_id, fb_change = fb_comment(EMERGENCY, user=PAGE, name="Polizei Test")
    await bot.deliver(changes(ig_change))
    await bot.deliver(fb(fb_change))
    for c in (stored(bot, ig_id), stored(bot, fb_id, "messenger")):
        assert (c.own, c.status, c.policy, c.need, c.intent) == (1, "decided", "none", 9, None)
        assert planned(bot, c) == []


async def test_a_reply_the_bot_sent_is_recognised_by_the_id_the_executor_stored(bot: Running) -> None:
    cid, change = fb_comment("Danke euch für die Arbeit!")
    await bot.deliver(fb(change))
    c = stored(bot, cid, "messenger")
    action = store(bot).plan(c.id, "public_reply", "Gern geschehen!", officer="anna")
    store(bot).action_sent(action, "555_bot_reply")
    _, echo = fb_comment(EMERGENCY, user="someone-else", cid="555_bot_reply", parent=cid)  # (as if Meta named another author)
    await bot.deliver(fb(echo))
    mine = stored(bot, "555_bot_reply", "messenger")
    assert (mine.own, mine.status, mine.need) == (1, "decided", 9) and planned(bot, mine) == []


@pytest.mark.parametrize(("text", "policy", "need", "kinds"), [
    (EMERGENCY, "escalate", 0, ["public_reply", "private_reply"]),
    ("Wo kann ich ein gefundenes Portemonnaie abgeben?", "faq", 1, ["public_reply", "private_reply"]),
    ("Wie lange dauert eigentlich so ein Bußgeldverfahren?", "faq", 1, ["private_reply"]),
    ("Ihr seid doch alle nur Witzfiguren in Uniform", "abuse", 2, ["hide"]),
    ("Ich hab was beobachtet, wem kann ich das sagen?", "invite", 1, ["private_reply"]),
    ("Danke euch für die Arbeit!", "list", 3, []),
])
async def test_each_policy_outcome_plans_its_actions(bot: Running, text: str, policy: str, need: int, kinds: list[str]) -> None:
    cid, change = ig_comment(text)
    await bot.deliver(changes(change))
    c = stored(bot, cid)
    assert (c.status, c.policy, c.need) == ("decided", policy, need)
    actions = store(bot).actions(c.id)
    assert [a.kind for a in actions] == kinds
    texts = {a.kind: a.text for a in actions}
    responses = bot.services.triage.responses
    if policy == "escalate":
        assert texts["public_reply"] == ESCALATION_PUBLIC
        assert responses.system_text("emergency_prompt", "de") in texts["private_reply"]
        assert "Bot" in texts["private_reply"] and {a.priority for a in actions} == {0}
    if policy == "faq":
        assert responses.intent(READINGS[text], "de") in texts["private_reply"]
        assert texts["private_reply"].startswith(responses.system_text("disclosure", "de"))
        if "public_reply" in texts:
            assert texts["public_reply"] == "Wir haben dir eine Nachricht geschickt."
    if policy == "invite":
        assert "Nachricht" in texts["private_reply"] and "110" in texts["private_reply"]
    if policy == "abuse":
        [evidence] = store(bot).evidence(c.id)
        assert (evidence.text, evidence.author, evidence.comment_platform_id) == (text, c.author, cid)
        assert evidence.captured_at <= actions[0].created_at and evidence.captured_by == "bot"


async def test_abuse_on_facebook_keeps_the_evidence_before_the_hide_goes_out(bot: Running) -> None:
    cid, change = fb_comment("Ihr seid doch alle nur Witzfiguren in Uniform")
    await bot.deliver(fb(change))
    c = stored(bot, cid, "messenger")
    [evidence] = store(bot).evidence(c.id)
    assert evidence.permalink == f"https://www.facebook.com/{PAGE}_555" and evidence.post_platform_id == f"{PAGE}_555"
    assert evidence.author_name == "Jonas Beispiel" and not evidence.kept
    [hide] = store(bot).actions(c.id)
    assert hide.kind == "hide" and evidence.captured_at <= hide.created_at
    assert store(bot).author_count("messenger", c.author) == 1


@pytest.mark.parametrize(("text", "kind", "policy", "need"), [
    ("😂😂👍", "emoji_only", "none", 9),
    ("@anna.k @tom_92", "mention_only", "none", 9),
    ("@anna.k 👀", "mention_only", "none", 9),
])
async def test_emoji_and_mention_only_comments_are_recorded_and_left_alone(bot: Running, text: str, kind: str, policy: str,
                                                                          need: int) -> None:
    cid, change = ig_comment(text)
    response = await bot.deliver(changes(change))
    assert response.status == 200
    c = stored(bot, cid)
    assert (c.kind, c.status, c.policy, c.need) == (kind, "decided", policy, need)
    assert planned(bot, c) == []


async def test_a_photo_only_comment_is_listed_for_the_team(bot: Running) -> None:
    cid, change = fb_comment("", photo=True)
    await bot.deliver(fb(change))
    c = stored(bot, cid, "messenger")
    assert (c.kind, c.text, c.policy, c.need, c.meta.get("media")) == ("media", "", "list", 3, "photo")
    assert planned(bot, c) == []


async def test_live_comments_are_taken_like_comments(bot: Running) -> None:
    cid, change = ig_comment(EMERGENCY, field="live_comments")
    await bot.deliver(changes(change))
    c = stored(bot, cid)
    assert c.meta["field"] == "live_comments" and c.policy == "escalate"


async def test_a_comment_removed_before_the_bot_acted_gets_no_action(bot: Running) -> None:
    cid, added = fb_comment(EMERGENCY)
    _, removed = fb_comment(cid=cid, verb="remove")
    await bot.deliver(fb(added, removed))
    c = stored(bot, cid, "messenger")
    assert c.removed_at is not None and c.need == 9 and planned(bot, c) == []


async def test_an_edit_after_the_bot_acted_is_kept_without_a_second_private_reply(bot: Running) -> None:
    cid, added = fb_comment("Wo kann ich ein gefundenes Portemonnaie abgeben?")
    await bot.deliver(fb(added))
    _, edited = fb_comment("Hat sich erledigt, danke", cid=cid, verb="edited")
    await bot.deliver(fb(edited))
    c = stored(bot, cid, "messenger")
    assert c.text == "Hat sich erledigt, danke" and c.edited_at is not None
    assert c.meta["edits"][0]["text"] == "Wo kann ich ein gefundenes Portemonnaie abgeben?"
    assert (c.policy, c.intent) == ("faq", "lost_found")  # acted on: not triaged again
    assert [k for k, _ in planned(bot, c)] == ["public_reply", "private_reply"]


async def test_an_edit_into_an_emergency_escalates_but_never_replies_privately_twice(bot: Running) -> None:
    cid, added = fb_comment("Wo kann ich ein gefundenes Portemonnaie abgeben?")
    await bot.deliver(fb(added))
    _, edited = fb_comment(EMERGENCY, cid=cid, verb="edit")  # Meta has sent both "edit" and "edited"
    await bot.deliver(fb(edited))
    c = stored(bot, cid, "messenger")
    assert (c.policy, c.need) == ("escalate", 0)
    kinds = [k for k, _ in planned(bot, c)]
    # no second private reply: the public 110 reply must not claim "we sent you a message"
    assert kinds.count("private_reply") == 1 and planned(bot, c)[-1] == ("public_reply", "Bitte ruf sofort die 110 an.")


async def test_an_edit_before_anything_was_done_is_triaged_again(bot: Running) -> None:
    cid, added = fb_comment("Danke euch für die Arbeit!")
    await bot.deliver(fb(added))
    assert stored(bot, cid, "messenger").policy == "list"
    _, edited = fb_comment(EMERGENCY, cid=cid, verb="edited")
    await bot.deliver(fb(edited))
    c = stored(bot, cid, "messenger")
    assert (c.policy, c.need) == ("escalate", 0)
    assert [k for k, _ in planned(bot, c)] == ["public_reply", "private_reply"]


async def test_a_reply_to_the_bots_reply_is_triaged_without_a_second_private_reply(bot: Running) -> None:
    cid, added = fb_comment("Wo kann ich ein gefundenes Portemonnaie abgeben?")
    await bot.deliver(fb(added))
    first = stored(bot, cid, "messenger")
    public = next(a for a in store(bot).actions(first.id) if a.kind == "public_reply")
    deadline = time.monotonic() + 5
    while store(bot).action(public.id).platform_id is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the executor sends it to the fake Graph API and stores the reply's id
    bot_reply = store(bot).action(public.id).platform_id or "555_bot_reply"
    if store(bot).action(public.id).platform_id is None:
        store(bot).action_sent(public.id, bot_reply)
    rid, reply = fb_comment("Und wo genau gebe ich das dann ab?", parent=bot_reply)
    await bot.deliver(fb(reply))
    second = stored(bot, rid, "messenger")
    assert (second.status, second.intent, second.parent_platform_id) == ("decided", "lost_found", bot_reply)
    assert "private_reply" not in [k for k, _ in planned(bot, second)]
    assert second.conversation_id == stored(bot, cid, "messenger").conversation_id
    private = bot.log.db.execute("SELECT COUNT(*) FROM comment_actions WHERE kind = 'private_reply'").fetchone()[0]
    assert private == 1


async def test_a_comment_stored_before_a_503_is_triaged_when_meta_delivers_it_again(bot: Running) -> None:
    cid, change = ig_comment(EMERGENCY)
    first = store(bot).record(IncomingComment("instagram", cid, "18000000000000001", "9001", EMERGENCY))
    assert first is not None and first.status == "new"  # (the first delivery stopped after storing it)
    await bot.deliver(changes(change))
    c = stored(bot, cid)
    assert (c.status, c.policy) == ("decided", "escalate")
    assert [k for k, _ in planned(bot, c)] == ["public_reply", "private_reply"]


async def test_an_emergency_comment_gets_its_public_and_private_110_reply_through_the_graph_api(bot: Running) -> None:
    cid, change = ig_comment(EMERGENCY)
    started = time.monotonic()
    await bot.post(changes(change))
    calls = await bot.graph.wait_for_comments(
        lambda calls: {c.kind for c in calls if c.target == cid and c.status == 200} >= {"reply", "private_reply"}, timeout=5.0)
    assert time.monotonic() - started < 5.0
    texts = {c.kind: c.text for c in calls if c.target == cid}
    assert texts["reply"] == ESCALATION_PUBLIC and "110" in texts["private_reply"]


@pytest.mark.parametrize("change", [
    {"field": "comments", "value": {"id": "c1"}},
    {"field": "comments", "value": {"id": ["x"], "from": "nobody", "media": 5}},
    {"field": "comments", "value": None},
    {"field": "feed", "value": {"item": "comment", "verb": "add"}},
    {"field": "feed", "value": {"item": "reaction", "verb": "add", "post_id": "1_2"}},
    "not an object",
])
async def test_malformed_comment_changes_are_acknowledged_and_ignored(bot: Running, change: Any) -> None:
    response = await bot.deliver(changes(change))
    assert response.status == 200
    assert bot.log.db.execute("SELECT COUNT(*) FROM comments").fetchone()[0] == 0


# -- the policy file -----------------------------------------------------------------------

def test_the_shipped_policy_is_valid() -> None:
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    assert [p for p in problems(doc, INTENTS) if p[0] == "error"] == []


def test_no_public_reply_the_policy_can_produce_carries_personal_details() -> None:
    policy = CommentPolicy.load(POLICY, INTENTS)
    texts = {text for _, _, text in policy.public_texts()}
    for intent in (*INTENTS, "nlu_fallback", None):
        for action in ("escalate", "answer", "handover", "clarify", "check", None):
            for language in ("de", "en", "tr", "uk"):
                texts.add(policy.outcome(intent, action, language).public_reply)
    texts.discard("")
    assert ESCALATION_PUBLIC in texts and len(texts) >= 4
    for text in texts:
        assert personal_details(text) == [], text


@pytest.mark.parametrize("text", [
    "Hallo {author}, ruf die 110 an.", "Ruf uns an: 0711 123456", "@lena.k bitte per DM", "Komm zur Hauptstraße 5",
    "Schreib an wache@polizei.example", "Max Mustermann 01701234567",
])
def test_the_scan_finds_personal_details(text: str) -> None:
    assert personal_details(text)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["escalation"].update(public_reply={"de": "Hallo {author_name}, ruf die 110 an."}), "personal details"),
    (lambda d: d["faq"]["intents"].update(parking={"public_reply": True}), "unknown intent"),
    (lambda d: d["abuse"]["intents"].append("emergency"), "always escalates"),
    (lambda d: d["invite"].update(private_reply={"de": "  "}), "German"),
    (lambda d: d["invite"].update(private_reply={"de": "Hallo {name}"}), "placeholder"),
    (lambda d: d.pop("other"), "rule missing"),
    (lambda d: d["abuse"].update(hyde=True), "unknown key"),
    (lambda d: d["faq"].update(need=5), "need"),
    (lambda d: d["invite"]["intents"].append("lost_found"), "already under"),
])
def test_a_broken_policy_is_refused_with_a_clear_reason(change: Any, expected: str) -> None:
    doc = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    change(doc)
    errors = [text for level, _, text in problems(doc, INTENTS) if level == "error"]
    assert any(expected in e for e in errors), errors
    with pytest.raises(PolicyError):
        CommentPolicy(doc, intents=INTENTS)


def test_make_validate_checks_the_policy_file(tmp_path: Path) -> None:
    from nlu.validate import check_comment_policy

    assert check_comment_policy(ROOT / "data") == []
    (tmp_path / "comment_policy.yml").write_text("escalation: [1, 2]\n", encoding="utf-8")
    found = check_comment_policy(tmp_path)
    assert found and all(p.level == "error" for p in found) and {r for r in RULES} - {"escalation"} <= {
        p.where.split(": ")[-1] for p in found}


async def test_the_echo_of_the_bots_private_reply_arriving_first_is_not_taken_for_an_officer(bot: Running) -> None:
    from tests.instagram_helpers import echo, message, notification
    await bot.deliver(notification(message("9001", "Hallo")))  # the person wrote a DM before: the chat exists
    before = len(bot.transcript("9001"))

    async def echo_first(recipient: str, message_id: str, text: str) -> None:  # Meta's echo overtakes its answer
        await bot.post(notification(echo(recipient, text, message_id)))

    bot.graph.before_private_answer = echo_first
    cid, change = ig_comment(EMERGENCY, user="9001")
    bot.graph.add_comment(cid, "18000000000000001", EMERGENCY, "9001")
    await bot.post(changes(change))
    await bot.graph.wait_for_comments(lambda calls: any(c.kind == "private_reply" and c.status == 200 for c in calls), 5.0)
    assert bot.channel.desk is not None
    await bot.channel.desk.executor.drain()
    private = [a.text for a in store(bot).actions(stored(bot, cid).id) if a.kind == "private_reply"]
    outbound = [m for m in bot.transcript("9001")[before:] if m.direction == "out"]
    in_app = bot.log.db.execute("SELECT COUNT(*) FROM events WHERE action = 'reply_in_app'").fetchone()[0]
    assert len(private) == 1 and [m.text for m in outbound].count(private[0]) == 1
    assert all(m.author != "officer" for m in outbound) and in_app == 0


@pytest.mark.parametrize("case", ["old", "deleted_author", "thread"])
async def test_the_public_reply_says_we_sent_a_message_only_when_a_private_reply_goes_out(bot: Running, case: str) -> None:
    assert bot.channel.comments is not None and bot.channel.desk is not None
    if case == "thread":  # the first emergency comment got the private reply; the author's reply below it gets none
        first, change = ig_comment(EMERGENCY, user="9007")
        bot.graph.add_comment(first, "18000000000000001", EMERGENCY, "9007")
        await bot.deliver(changes(change))
        await bot.channel.desk.executor.drain()
        cid, change = ig_comment(EMERGENCY + ", bitte schnell", user="9007", parent=first)
        await bot.deliver(changes(change))
        c = stored(bot, cid)
    else:  # older than 7 days (Meta redelivered it late), or the author's data was deleted before triage
        age = timedelta(days=8 if case == "old" else 0)
        created = (datetime.now(timezone.utc) - age).isoformat(timespec="milliseconds")
        c = store(bot).record(IncomingComment("instagram", f"1790000000000{next(_ids):04d}", "18000000000000001", "9008",
                                              EMERGENCY, author_name="lena.k", created_at=created))
        assert c is not None
        if case == "deleted_author":
            bot.log.db.execute("UPDATE comments SET author_id = NULL WHERE id = ?", [c.id])
        await bot.channel.comments.process(c.id)
    kinds = planned(bot, c)
    assert store(bot).get(c.id).need == 0 and ("public_reply", ESCALATION_PUBLIC) not in kinds
    assert "private_reply" not in [k for k, _ in kinds]
    if case != "deleted_author":  # (no reply at all to a person whose data is deleted: the store refuses both)
        assert ("public_reply", "Bitte ruf sofort die 110 an.") in kinds


async def test_an_emergency_comment_raises_the_alarm_on_every_inbox_page(bot: Running) -> None:
    from bot.web.keys import OFFICERS
    from tests.web_support import PASSWORD, Browser, next_event
    bot.app[OFFICERS].add("anna", PASSWORD)
    async with Browser(bot.client.server) as officer:
        await officer.login()
        stream = await officer.http.get(officer.url("/inbox/events"))  # what every inbox page listens to (inbox.js)
        await next_event(stream, "hello")
        _, quiet = ig_comment("Danke euch für die Arbeit!")
        cid, urgent = ig_comment(EMERGENCY)
        await bot.post(changes(quiet))
        first = await next_event(stream)
        await bot.post(changes(urgent))
        seen = [await next_event(stream)]
        while seen[-1].get("comment_id") != stored(bot, cid).id or "need" not in seen[-1]:
            seen.append(await next_event(stream))
        stream.close()
    assert first["kind"] == "comment" and not first.get("escalated")
    assert seen[-1]["need"] == 0 and seen[-1]["escalated"] is True  # inbox.js: `if (data.escalated) alarm()`
