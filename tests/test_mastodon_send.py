"""Sending on Mastodon over real HTTP to the fake instance: rate limits, errors officers can read, long texts.

POST /api/v1/statuses: https://docs.joinmastodon.org/methods/statuses/#create; rate limits:
https://docs.joinmastodon.org/api/rate-limits/ (and the "statuses" family, 300 per 3 hours, in Mastodon's RateLimiter).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.channels import mastodon_api
from bot.channels.mastodon_send import call_110
from bot.channels.mastodon_status import counted_length
from tests.fake_mastodon import FakeMastodon
from tests.mastodon_helpers import Running, mastodon_settings, running

ANNA = "anna@social.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    instance = await FakeMastodon(slow_s=1.0).start()
    yield instance
    await instance.stop()


@pytest.fixture
async def bot(tmp_path: Path, fake: FakeMastodon, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setattr(mastodon_api, "TIMEOUT_S", 0.5)  # the fake's "timeout" answers after 1 s
    async with running(mastodon_settings(tmp_path, fake), fake) as app:
        yield app


async def chat(bot: Running, acct: str = ANNA) -> int:
    """A citizen wrote and got the bot's answer; the conversation id (the fake's record is cleared)."""
    bot.fake.dm(acct, "", media=["image"])
    await bot.replies(1, acct)
    bot.fake.posted.clear()
    return bot.conversation(acct).id


async def officer_says(bot: Running, conv_id: int, text: str, **meta: object) -> int:
    reply = bot.log.add_outbound(conv_id, text, "officer", officer="isabel", meta=dict(meta))
    await bot.services.dispatcher.deliver([reply])
    return reply


@pytest.mark.parametrize(
    ("faults", "posts", "status", "error"),
    [
        (["rate_limit"], 2, "sent", None),  # resets within a second: waited for inside the send
        (["server_error", "unavailable", "server_error"], 3, "pending", "gestört (HTTP 500)"),
        (["timeout", "timeout", "timeout"], 3, "pending", "nicht erreichbar"),
        (["unauthorized"], 1, "failed", "MASTODON_ACCESS_TOKEN erneuern"),
        (["forbidden"], 1, "failed", "write:statuses"),
    ],
)
async def test_errors_are_retried_when_that_helps_and_explained_to_the_officer(
    bot: Running, faults: list[str], posts: int, status: str, error: str | None
) -> None:
    conv_id = await chat(bot)
    bot.fake.fail_next("statuses", *faults)
    reply = await officer_says(bot, conv_id, "Danke für deine Nachricht.")
    msg = bot.log.message(reply)
    assert (len(bot.fake.posted), msg.status) == (posts, status)
    assert msg.error is None if error is None else error in (msg.error or "")


async def test_a_failed_send_goes_out_on_a_later_recovery_round_exactly_once(bot: Running) -> None:
    conv_id = await chat(bot)
    bot.fake.fail_next("statuses", "timeout", "timeout", "timeout")  # the first one arrives, but too late for the bot
    reply = await officer_says(bot, conv_id, "Wir kümmern uns.")
    assert bot.log.message(reply).status == "pending"
    assert await bot.services.dispatcher.recovery.run_once(everything_due=True) == 1
    assert bot.log.message(reply).status == "sent"
    assert len(bot.fake.posted) == 4 and bot.fake.idempotent_hits >= 1
    assert len(bot.fake.replies(ANNA)) == 1  # the same Idempotency-Key: what got through is not posted twice


async def test_a_long_rate_limit_holds_ordinary_sends_without_asking_but_not_emergencies(bot: Running) -> None:
    conv_id = await chat(bot)
    bot.fake.statuses_left = 0  # the account's 300 statuses per 3 hours are used up
    first = await officer_says(bot, conv_id, "Erste Antwort")
    assert bot.log.message(first).status == "pending" and "begrenzt" in (bot.log.message(first).error or "")
    assert "wieder möglich ab etwa" in (bot.log.message(first).error or "")
    asked = len(bot.fake.posted)
    second = await officer_says(bot, conv_id, "Zweite Antwort")
    assert len(bot.fake.posted) == asked and bot.log.message(second).status == "pending"  # no request while blocked
    urgent = await officer_says(bot, conv_id, "Ruf bitte sofort die 110 an!", escalate=True)
    assert len(bot.fake.posted) == asked + 1 and bot.log.message(urgent).status == "pending"  # tried anyway
    bot.fake.statuses_left = None
    bot.channel.sender.blocked_until = time.time() - 1  # the limit has reset
    await bot.services.dispatcher.recovery.run_once(everything_due=True)
    assert [p.text.split(" ", 1)[1] for p in bot.fake.replies(ANNA)] == ["Erste Antwort", "Zweite Antwort", "Ruf bitte sofort die 110 an!"]


async def test_the_last_few_statuses_before_the_limit_are_kept_for_emergencies(bot: Running) -> None:
    conv_id = await chat(bot)
    bot.fake.statuses_left = 4
    await officer_says(bot, conv_id, "Eins")  # the answer says: 3 left
    held = await officer_says(bot, conv_id, "Zwei")
    assert "Notfälle haben Vorrang" in (bot.log.message(held).error or "")
    urgent = await officer_says(bot, conv_id, "Bitte ruf die 110 an.", escalate=True)
    assert bot.log.message(urgent).status == "sent" and len(bot.fake.replies(ANNA)) == 2


async def test_an_answer_to_a_deleted_status_goes_out_without_the_reference(bot: Running) -> None:
    conv_id = await chat(bot)
    citizen = bot.log.transcript(conv_id)[0]
    del bot.fake.statuses[citizen.platform_id]  # the citizen deleted the message
    reply = await officer_says(bot, conv_id, "Bist du noch da?")
    assert [(p.status, p.in_reply_to_id) for p in bot.fake.posted] == [(404, citizen.platform_id), (200, None)]
    assert bot.log.message(reply).status == "sent"


async def test_other_mentions_in_a_reply_are_broken_so_only_the_citizen_gets_it(bot: Running) -> None:
    conv_id = await chat(bot)
    bot.fake.citizen("max@social.example")
    await officer_says(bot, conv_id, "Frag gern auch @max@social.example oder schreib an info@polizei.example")
    [post] = bot.fake.replies()
    assert post.mentions == [ANNA] and "@\u200bmax@social.example" in post.text and "info@polizei.example" in post.text


async def test_a_long_reply_becomes_a_thread_of_statuses_within_the_limit(bot: Running) -> None:
    conv_id = await chat(bot)
    text = "\n\n".join(f"Absatz {n}: " + "Das ist ein ziemlich langer Satz mit https://polizei.example/a. " * 5 for n in range(6))
    reply = await officer_says(bot, conv_id, text)
    posts = bot.fake.posted
    assert len(posts) >= 4 and all(p.status == 200 and counted_length(p.text) <= 500 for p in posts)
    assert [p.in_reply_to_id for p in posts[1:]] == [p.id for p in posts[:-1]]  # each answers the one before
    assert " ".join(p.text.removeprefix(f"@{ANNA} ") for p in posts).split() == text.split()
    assert bot.log.message(reply).status == "sent"


async def test_a_bot_answer_to_a_public_mention_is_never_sent(bot: Running) -> None:
    bot.fake.dm(ANNA, "Tolles Foto heute, @polizei!", visibility="unlisted")
    await bot.until(lambda: bot.log.find_conversation("mastodon", ANNA) is not None and bot.transcript(ANNA)[0].status == "processed")
    mention = bot.transcript(ANNA)[0]
    stray = bot.log.add_outbound(mention.conversation_id, "Eine Antwort, die nach einem Absturz entstand.", "bot", reply_to=mention.id)
    await bot.services.dispatcher.deliver([stray])
    msg = bot.log.message(stray)
    assert bot.fake.posted == [] and msg.status == "failed" and "öffentliche Erwähnung" in (msg.error or "")


@pytest.mark.parametrize(("language", "line"), [("de", "Ruf jetzt die 110 an."), ("en", "Call 110 now."),
                                                ("tr", "Ruf jetzt die 110 an. / Call 110 now.")])
def test_the_public_emergency_line_says_only_call_110(language: str, line: str) -> None:
    assert call_110(language) == line
