"""Sending X DMs over real HTTP to the fake X API: rate limits, errors and their texts, long texts, topic lists.

Rate limits: https://docs.x.com/x-api/fundamentals/rate-limits; errors:
https://docs.x.com/x-api/fundamentals/response-codes-and-errors (see tests/fake_x_api.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp
import pytest

from bot.channels.meta_send import split_text
from bot.channels.x_api import MAX_TEXT
from tests.fake_x_api import FakeXApi, activity, dm_event
from tests.x_helpers import Running, running, x_settings, xapi  # noqa: F401 (xapi: fixture)

IMAGE = {"type": "photo", "url": "https://t.co/Ph0to2", "media_url_https": "https://ton.x.com/1.1/ton/data/dm/2/2/Ph0to2.jpg"}


@pytest.fixture
async def bot(tmp_path: Path, xapi: FakeXApi) -> AsyncIterator[Running]:
    async with running(x_settings(tmp_path, xapi), xapi) as app:
        app.channel.sender.retry_delays = (0.01, 0.01)  # type: ignore[union-attr]
        app.channel.sender.timeout = aiohttp.ClientTimeout(total=0.5)  # type: ignore[union-attr]
        yield app


async def citizen_wrote(bot: Running, user: str) -> int:
    """A citizen sent a photo (and got the bot's note); returns the conversation id, the fake's calls cleared."""
    await bot.deliver(activity(dm_event(user, text="https://t.co/Ph0to2", media=IMAGE)))
    bot.api.calls.clear()
    return bot.conversation(user).id


@pytest.mark.parametrize(
    ("faults", "calls", "status", "error", "notice"),
    [
        (["server_error"], 2, "sent", None, False),
        (["server_error", "server_error", "server_error"], 3, "pending", "gestört", False),
        (["timeout", "timeout", "timeout"], 3, "pending", "nicht erreichbar", False),
        (["unauthorized"], 1, "failed", "Zugangsdaten", False),
        (["forbidden"], 1, "failed", "keine Direktnachrichten an", True),
        (["client_forbidden"], 1, "failed", "darf keine Direktnachrichten senden", False),
        (["not_found"], 1, "failed", "gibt es auf X nicht mehr", True),
        (["usage_capped"], 1, "failed", "Kontingent", False),
    ],
)
async def test_x_errors_are_retried_when_that_helps_and_shown_to_the_officer(
    bot: Running, faults: list[str], calls: int, status: str, error: str | None, notice: bool
) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000001")
    bot.api.fail_next(*faults)
    reply = bot.log.add_outbound(conv_id, "Danke für deine Nachricht.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    msg = bot.log.message(reply)
    assert (len(bot.api.calls), msg.status) == (calls, status)
    assert (msg.error is None) if error is None else (error in (msg.error or ""))
    assert bool(bot.log.conversation(conv_id).meta.get("channel_notice")) == notice


async def test_a_dm_whose_answer_was_lost_is_not_sent_twice_when_xs_echo_came(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000009")
    bot.api.echo_to = bot.webhook_url
    bot.api.fail_next("lost_answer")  # X creates the DM and delivers it to the webhook, but its answer never comes
    reply = bot.log.add_outbound(conv_id, "Wir kümmern uns.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    [call] = bot.api.calls
    msg = bot.log.message(reply)
    assert (msg.status, msg.platform_id) == ("sent", call.event_id)
    assert [m.author for m in bot.transcript("2100000000000000009")].count("officer") == 1


async def test_a_notice_is_cleared_when_the_citizen_writes_again(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000002")
    bot.api.fail_next("forbidden")
    await bot.services.dispatcher.deliver([bot.log.add_outbound(conv_id, "Hallo?", "officer", officer="felix")])
    assert "nicht beantwortet" in bot.log.conversation(conv_id).meta["channel_notice"]
    await bot.deliver(activity(dm_event("2100000000000000002", text="Jetzt geht es wieder")))
    assert bot.log.conversation(conv_id).meta["channel_notice"] is None


async def test_wrong_credentials_are_refused_by_x_and_named_to_the_officer(tmp_path: Path, xapi: FakeXApi) -> None:
    async with running(x_settings(tmp_path, xapi, X_ACCESS_TOKEN_SECRET="an-old-secret"), xapi) as bot:
        await bot.deliver(activity(dm_event("2100000000000000003", text="Hallo")))
        [call] = bot.api.calls
        reply = bot.transcript("2100000000000000003")[-1]
        assert call.status == 401  # the fake recomputed the OAuth 1.0a signature and it did not match
        assert reply.status == "failed" and "Zugangsdaten" in (reply.error or "")


async def test_a_429_waits_for_the_reset_before_trying_again(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000004")
    bot.api.fail_next("rate_limit")  # answered with x-rate-limit-reset about a second ahead
    reply = bot.log.add_outbound(conv_id, "Wir melden uns.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    first, second = bot.api.calls
    assert (first.status, second.status, bot.log.message(reply).status) == (429, 201, "sent")
    assert second.at - first.at >= 0.3  # nothing was sent before the reset


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_reply_for_a_later_reset_is_parked_with_a_clear_text_and_sent_after_it(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000005")
    bot.channel.sender.window.max_wait_s = 0.05  # type: ignore[union-attr]  # (X's windows: 15 minutes)
    bot.api.fault_reset_s = 4.0  # the recovery loop would retry an escalation after 1 s, 2 s, 4 s ...
    bot.api.fail_next("rate_limit")
    reply = bot.log.add_outbound(conv_id, "🚨 Ruf bitte sofort die 110 an.", "bot", meta={"escalate": True})
    await bot.services.dispatcher.deliver([reply])
    msg = bot.log.message(reply)
    assert (len(bot.api.calls), msg.status) == (1, "pending")
    assert "begrenzt gerade" in (msg.error or "") and "wieder frei ab" in (msg.error or "")
    await until(lambda: bot.log.message(reply).status == "sent")  # the recovery loop, woken at the reset
    assert [c.status for c in bot.api.calls] == [429, 201]
    assert bot.log.message(reply).attempts == 1  # parked: not retried (and given up) while the window was closed


async def test_an_exhausted_window_is_honoured_without_a_429_and_emergencies_go_first(tmp_path: Path) -> None:
    api = await FakeXApi(window_limit=2, window_s=1.0).start()
    try:
        async with running(x_settings(tmp_path, api), api) as bot:
            first, second = "2100000000000000101", "2100000000000000102"
            convs = [await citizen_wrote(bot, user) for user in (first, second)]  # the window's two requests
            assert bot.channel.sender.window.closed_until > time.time()  # type: ignore[union-attr]  # remaining: 0
            ordinary = bot.log.add_outbound(convs[0], "Eine gewöhnliche Antwort.", "officer", officer="felix")
            urgent = bot.log.add_outbound(convs[1], "🚨 Ruf sofort die 110 an.", "bot", meta={"escalate": True})
            dispatcher = bot.services.dispatcher
            waiting = asyncio.ensure_future(dispatcher.deliver([ordinary]))
            await asyncio.sleep(0.05)  # the ordinary reply waits first ...
            await asyncio.gather(waiting, dispatcher.deliver([urgent]))
            assert [c.status for c in api.calls] == [201, 201]  # ... no request hit the closed window
            assert [c.participant for c in api.calls] == [second, first]  # ... and the emergency went first
    finally:
        await api.stop()


async def test_an_emergency_in_a_chat_whose_reply_waits_for_the_window_is_decided_at_once(tmp_path: Path) -> None:
    api = await FakeXApi(window_limit=1, window_s=2.0).start()
    try:
        async with running(x_settings(tmp_path, api), api) as bot:
            user = "2100000000000000103"
            conv_id = await citizen_wrote(bot, user)  # the window's only request
            window = bot.channel.sender.window  # type: ignore[union-attr]
            window.max_wait_s = 0.05  # (X's windows: 15 minutes)
            waiting = bot.log.add_outbound(conv_id, "Wir schauen uns das an.", "officer", officer="felix")
            await bot.services.dispatcher.deliver([waiting])
            assert bot.log.message(waiting).status == "pending"
            await bot.post(activity(dm_event(user, text="Hilfe, er ist wieder da und hat ein Messer!")))
            for _ in range(40):
                if bot.conversation(user).priority == 2:
                    break
                await asyncio.sleep(0.025)
            assert (bot.conversation(user).state, bot.conversation(user).priority) == ("queued", 2)
            assert time.time() < window.closed_until and api.calls == []  # decided while the window was still closed
            await until(lambda: len(api.calls) == 2)
            assert [("110" in c.text) for c in api.calls] == [False, True]  # then both, in order
    finally:
        await api.stop()


async def test_a_long_reply_is_split_at_xs_limit(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000006")
    text = "\n\n".join(f"Absatz {n}: " + "Das ist ein ziemlich langer Satz. " * 70 for n in range(12))
    reply = bot.log.add_outbound(conv_id, text, "officer", officer="isabel")
    await bot.services.dispatcher.deliver([reply])
    assert len(text) > 2 * MAX_TEXT and len(bot.api.calls) == 3
    assert all(c.status == 201 and len(c.text) <= MAX_TEXT for c in bot.api.calls)
    assert [c.text for c in bot.api.calls] == split_text(text, MAX_TEXT)
    msg = bot.log.message(reply)
    assert (msg.status, msg.platform_id) == ("sent", bot.api.calls[0].event_id)


async def test_topic_buttons_become_lines_to_type_back_and_the_check_keeps_its_yes_no(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000007")
    topics = bot.log.add_outbound(conv_id, "Wähl ein Thema:", "bot",
                                  meta={"buttons": [["🚲 Fahrrad weg", "bike_theft"], ["🙋 Mit einem Menschen sprechen", "human_handoff"]]})
    check = bot.log.add_outbound(conv_id, "Bist du gerade in Gefahr?\nAntworte einfach mit Ja oder Nein.", "bot",
                                 meta={"buttons": [["🚨 Ja, gerade in Gefahr", "emergency"], ["Nein", "not_in_danger"]]})
    await bot.services.dispatcher.deliver([topics, check])
    assert [c.text for c in bot.api.calls] == [
        "Wähl ein Thema:\n\n• 🚲 Fahrrad weg\n• 🙋 Mit einem Menschen sprechen",
        "Bist du gerade in Gefahr?\nAntworte einfach mit Ja oder Nein.",
    ]


async def test_a_failed_send_goes_out_on_the_next_retry_round(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "2100000000000000008")
    bot.api.fail_next("server_error", "server_error", "server_error")
    reply = bot.log.add_outbound(conv_id, "Wir kümmern uns.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    assert bot.log.message(reply).status == "pending"
    assert await bot.services.dispatcher.recovery.run_once() == 0  # its backoff is not over yet
    assert await bot.services.dispatcher.recovery.run_once(everything_due=True) == 1
    msg = bot.log.message(reply)
    assert (msg.status, msg.error, bot.api.sent()[-1].text) == ("sent", None, "Wir kümmern uns.")
