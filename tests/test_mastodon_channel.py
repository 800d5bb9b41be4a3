"""Mastodon DMs over real HTTP: the fake instance's stream and notifications in, direct statuses out.

Payloads and endpoints follow https://docs.joinmastodon.org/ (see tests/fake_mastodon.py for the pages).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.channels import mastodon_stream
from bot.web.keys import OFFICERS
from nlu.parse import Parse
from tests.fake_mastodon import FakeMastodon
from tests.mastodon_helpers import Running, mastodon_settings, running
from tests.web_support import PASSWORD, Browser

ANNA = "anna@social.example"
BEN = "ben"  # a local account
BREAK_IN = "Hilfe, da ist ein Einbrecher in unserem Haus!"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    instance = await FakeMastodon().start()
    yield instance
    await instance.stop()


@pytest.fixture
async def bot(tmp_path: Path, fake: FakeMastodon) -> AsyncIterator[Running]:
    async with running(mastodon_settings(tmp_path, fake), fake) as app:
        yield app


async def test_a_direct_message_is_answered_directly_in_reply_mentioning_only_the_citizen(bot: Running) -> None:
    status_id = bot.fake.dm(ANNA, "Hallo, wo ist die nächste Wache? Frag auch @freund@social.example")
    [reply] = await bot.replies(1)
    assert (reply.visibility, reply.in_reply_to_id, reply.mentions) == ("direct", status_id, [ANNA])
    assert reply.text.startswith(f"@{ANNA} ") and "Bot" in reply.text  # first contact: the bot says it is a bot
    citizen, answer = bot.transcript(ANNA)
    assert (citizen.author, citizen.platform_id, citizen.status, citizen.kind) == ("citizen", status_id, "processed", "text")
    assert citizen.text == "Hallo, wo ist die nächste Wache? Frag auch @freund@social.example"  # our own mention removed
    assert (answer.author, answer.status, answer.platform_id) == ("bot", "sent", reply.id)
    conv = bot.conversation(ANNA)
    assert conv.citizen.startswith("ma-") and "anna" not in conv.citizen  # pseudonymised


async def test_an_emergency_is_answered_with_110_first_and_queued_on_top(bot: Running) -> None:
    status_id = bot.fake.dm(BEN, BREAK_IN)
    first, *rest = await bot.replies(2)  # the long emergency text is a thread of two statuses
    body = first.text.removeprefix(f"@{BEN} ")
    assert body.startswith("🚨") and "110" in body and first.in_reply_to_id == status_id
    assert [r.in_reply_to_id for r in rest] == [first.id] and all(r.visibility == "direct" for r in rest)
    conv = bot.conversation(BEN)
    assert (conv.state, conv.priority) == ("queued", 2)


async def test_a_dropped_stream_loses_nothing_sent_while_it_was_down(bot: Running, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Hallo, ich habe eine Frage")
    await bot.replies(1)
    fake.drop_streams(abrupt=True)
    await fake.wait_for(lambda: fake.open_streams == 0)
    missed = [fake.dm(f"user{n}@social.example", "Wie erreiche ich die Wache?", push=False) for n in range(3)]
    await fake.wait_for(lambda: fake.stream_connects >= 2)  # reconnected; the catch-up fetches what the stream missed
    replies = await bot.replies(4)
    assert sorted(r.in_reply_to_id for r in replies[1:]) == sorted(missed)
    assert bot.log.get_value(bot.channel._key("since_id")) == fake.notifications[-1]["id"]


async def test_a_refused_catch_up_does_not_hold_up_the_stream(bot: Running, fake: FakeMastodon) -> None:
    fake.fail_next("notifications", "rate_limit", "server_error", "rate_limit")
    fake.drop_streams()
    await fake.wait_for(lambda: fake.stream_connects >= 2)  # reconnected; its catch-up is refused for a while
    missed = fake.dm(BEN, "Diese Nachricht kam, als niemand zuhörte", push=False)
    fake.dm(ANNA, "Hallo, hört ihr mich?")
    [reply] = await bot.replies(1, ANNA, timeout=2)  # the stream goes on meanwhile
    assert fake.faults["notifications"], "the catch-up was not refused while the stream answered"
    [late] = await bot.replies(1, BEN)  # and the catch-up fetches what the stream missed, once it may
    assert late.in_reply_to_id == missed


async def test_a_stream_that_ends_cleanly_is_reopened(bot: Running, fake: FakeMastodon) -> None:
    fake.drop_streams(abrupt=False)
    await fake.wait_for(lambda: fake.stream_connects >= 2)
    fake.dm(ANNA, "Hallo?")
    assert len(await bot.replies(1)) == 1


async def test_without_a_stream_notifications_are_polled(tmp_path: Path, fake: FakeMastodon, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.stream_refused = 503
    monkeypatch.setattr(mastodon_stream, "STREAM_RETRY_S", 0.5)
    async with running(mastodon_settings(tmp_path, fake), fake) as bot:
        assert bot.channel.mode == "polling"
        fake.dm(ANNA, "Hallo, ist da wer?", push=False)
        [reply] = await bot.replies(1)
        assert reply.mentions == [ANNA]
        fake.stream_refused = None  # the stream is back: the channel goes back to it
        await fake.wait_for(lambda: fake.open_streams == 1)
        fake.dm(BEN, "Und jetzt?")
        assert len(await bot.replies(1, BEN)) == 1


async def test_a_status_seen_twice_is_answered_once(bot: Running, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Wo kann ich eine Anzeige erstatten?")
    await bot.replies(1)
    fake.push("notification", fake.notifications[-1])  # the stream repeats it
    await bot.channel.catch_up()
    bot.channel.cursor = "0"  # and a catch-up from the start fetches it again
    await bot.channel.catch_up()
    await bot.settle()
    assert len(fake.replies(ANNA)) == 1 and [m.author for m in bot.transcript(ANNA)] == ["citizen", "bot"]


@pytest.mark.sqlite_only
async def test_the_cursor_is_written_only_after_the_message_is_stored(bot: Running, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Hallo")
    await bot.replies(1)
    before = bot.log.get_value(bot.channel._key("since_id"))
    blocker = sqlite3.connect(bot.services.settings.database_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        fake.dm(BEN, "Wann habt ihr offen?")
        await asyncio.sleep(2.6)  # an ordinary message waits 2 s for the lock, then stays unstored
        assert bot.log.find_conversation("mastodon", BEN) is None
        assert bot.log.get_value(bot.channel._key("since_id")) == before
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    [reply] = await bot.replies(1, BEN)  # fetched again and answered
    assert bot.log.get_value(bot.channel._key("since_id")) == fake.notifications[-1]["id"] != before


@pytest.mark.sqlite_only
async def test_an_emergency_under_a_locked_database_is_answered_at_once_and_the_cursor_waits(bot: Running, fake: FakeMastodon) -> None:
    blocker = sqlite3.connect(bot.services.settings.database_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    before = bot.channel.cursor
    try:
        fake.dm(BEN, BREAK_IN)
        await fake.wait_for(lambda: len(fake.replies(BEN)) == 2, timeout=5)  # answered from memory (two statuses)
        assert "110" in fake.replies(BEN)[0].text and bot.channel.cursor == before
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await bot.until(lambda: not bot.services.dispatcher.unwritten)  # the recovery loop writes its records ...
    await bot.channel.catch_up()  # ... and only then the cursor moves past it
    assert bot.channel.cursor == fake.notifications[-1]["id"]
    assert [(m.author, m.status) for m in bot.transcript(BEN)] == [("citizen", "processed"), ("bot", "sent")]
    assert len(fake.replies(BEN)) == 2


async def test_a_public_mention_is_recorded_but_not_answered(bot: Running, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Danke an @polizei für den Einsatz gestern!", visibility="public")
    await bot.until(lambda: bot.log.find_conversation("mastodon", ANNA) is not None)
    await bot.settle()
    assert fake.replies() == []
    [mention] = bot.transcript(ANNA)
    assert (mention.kind, mention.status, mention.meta["visibility"], mention.action) == ("public_mention", "processed", "public", None)
    assert bot.conversation(ANNA).state == "bot"


async def test_a_public_emergency_gets_only_call_110_publicly_and_the_rest_directly(bot: Running, fake: FakeMastodon) -> None:
    status_id = fake.dm(ANNA, BREAK_IN, visibility="public")
    public, *direct = await bot.replies(3)
    assert (public.visibility, public.in_reply_to_id, public.text) == ("public", status_id, f"@{ANNA} Ruf jetzt die 110 an.")
    assert [d.visibility for d in direct] == ["direct", "direct"] and direct[0].in_reply_to_id == status_id
    text = " ".join(d.text for d in direct)
    assert "110" in text and "Bot" in text
    conv = bot.conversation(ANNA)
    assert (conv.state, conv.priority) == ("queued", 2)


class FixedParser:
    """A model that reads every message the same way."""

    def __init__(self, *ranking: tuple[str, float]) -> None:
        self.result = Parse(ranking[0][0], ranking[0][1], ranking)
        self.ready = True

    async def parse(self, text: str, urgent: bool = False) -> Parse:
        return self.result


@pytest.mark.parametrize(("ranking", "posts", "state"), [
    ((("emergency", 0.93), ("tip_off", 0.04)), ["public", "direct", "direct"], "queued"),  # the model sees an emergency
    ((("tip_off", 0.61), ("emergency", 0.3)), [], "queued"),  # maybe danger ("check"): a person looks, nobody is answered
    ((("greet", 0.9),), [], "bot"),
])
async def test_the_models_reading_of_a_public_mention_decides_whether_it_is_answered(
    bot: Running, fake: FakeMastodon, ranking: tuple, posts: list[str], state: str
) -> None:
    bot.services.triage.parser = FixedParser(*ranking)
    fake.dm(ANNA, "Bitte kommt schnell in die Hauptstraße 5", visibility="public")
    await bot.until(lambda: bot.log.find_conversation("mastodon", ANNA) is not None and bot.transcript(ANNA)[0].status == "processed")
    await bot.settle()
    assert [p.visibility for p in fake.replies()] == posts
    assert bot.conversation(ANNA).state == state


async def test_an_officer_answer_from_the_mastodon_app_is_recorded_never_triaged(bot: Running, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Ich möchte mit einem Menschen sprechen")
    await bot.replies(1)
    fake.officer_dm(ANNA, "Hallo, hier ist Isabel. Hilfe, Einbruch? Nein, keine Sorge: Worum geht es?", app="Web")
    await bot.until(lambda: bot.transcript(ANNA)[-1].author == "officer")
    await bot.settle()
    transcript = bot.transcript(ANNA)
    assert [(m.author, m.direction) for m in transcript] == [("citizen", "in"), ("bot", "out"), ("officer", "out")]
    assert (transcript[-1].intent, transcript[-1].action, transcript[-1].status) == (None, None, "sent")
    assert transcript[-1].text.startswith("Hallo, hier ist Isabel") and transcript[-1].meta == {"via": "app"}
    assert len(fake.replies(ANNA)) == 1  # nothing answered the officer; the bot's own status was not recorded twice
    assert bot.conversation(ANNA).with_officer


async def test_html_in_a_status_is_kept_as_text_and_shown_escaped(bot: Running, fake: FakeMastodon) -> None:
    content = ('<p><span class="h-card"><a href="https://polizei.example/@polizei" class="u-url mention">@<span>polizei</span>'
               '</a></span> Schaut mal &lt;script&gt;alert(1)&lt;/script&gt; &amp; <b>das</b><br>hier: <a href="https://example.com/'
               'verdacht/123"><span class="invisible">https://</span><span class="ellipsis">example.com/verdac</span>'
               '<span class="invisible">ht/123</span></a></p><p>Zweiter Absatz</p>')
    fake.dm(ANNA, content=content)
    await bot.replies(1)
    citizen = bot.transcript(ANNA)[0]
    assert citizen.text == "Schaut mal <script>alert(1)</script> & das\nhier: https://example.com/verdacht/123\n\nZweiter Absatz"
    bot.app[OFFICERS].add("anna", PASSWORD)
    async with Browser(bot.client.server) as officer:
        await officer.login()
        page = await officer.page(f"/inbox/c/{citizen.conversation_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


@pytest.mark.parametrize(("media", "kind"), [(["image"], "photo"), (["gifv", "image"], "video"), (["audio"], "voice")])
async def test_a_media_only_dm_gets_the_text_only_note(bot: Running, fake: FakeMastodon, media: list[str], kind: str) -> None:
    fake.dm(ANNA, "", media=media)
    [reply] = await bot.replies(1)
    citizen = bot.transcript(ANNA)[0]
    assert (citizen.kind, citizen.text, len(citizen.meta["attachments"])) == (kind, "", len(media))
    assert "Text" in reply.text


@pytest.mark.parametrize("payload", [
    {"type": "mention", "status": "kein Objekt"},
    {"type": "mention", "status": {"id": ["x"], "content": 5, "visibility": "direct", "account": {"id": "77"}}},
    {"type": "mention", "status": {"id": "42", "content": None, "visibility": "geheim", "account": {"id": "77", "acct": "x"}}},
    {"type": ["mention"], "account": None},
    {"type": "follow", "account": {"id": "78", "acct": "follower"}},
])
async def test_notifications_with_wrong_types_are_skipped_and_later_ones_answered(bot: Running, fake: FakeMastodon, payload: dict) -> None:
    fake.raw_notification(payload)
    fake.dm(ANNA, "Hallo, alles gut bei euch?")
    [reply] = await bot.replies(1)
    assert reply.mentions == [ANNA] and bot.channel.cursor == fake.notifications[-1]["id"]


async def test_a_notification_policy_that_filters_dms_is_reported(tmp_path: Path, fake: FakeMastodon) -> None:
    fake.policy["for_private_mentions"] = "filter"
    async with running(mastodon_settings(tmp_path, fake), fake) as bot:
        assert bot.channel.policy_warnings == ["for_private_mentions=filter"]


async def test_history_is_not_answered_on_the_first_start(tmp_path: Path, fake: FakeMastodon) -> None:
    fake.dm(ANNA, "Eine alte Nachricht von letzter Woche", push=False)
    async with running(mastodon_settings(tmp_path, fake), fake) as bot:
        fake.dm(BEN, "Hallo, neu hier")
        await bot.replies(1)
        await bot.channel.catch_up()
        await bot.settle()
        assert [r.mentions for r in fake.replies()] == [[BEN]]
