"""Sending on Instagram over real HTTP to the fake Graph API: the 24-hour and 7-day windows, errors, quick replies.

Window and tag: https://developers.facebook.com/docs/messenger-platform/reference/send-api/ (messaging_type,
MESSAGE_TAG, HUMAN_AGENT); errors: https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.channels.meta_send import quick_reply_title, split_text
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import Running, graph, message, meta_settings, notification, running  # noqa: F401 (graph: fixture)

IMAGE = [{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=5"}}]


@pytest.fixture
async def bot(tmp_path: Path, graph: FakeGraphApi) -> AsyncIterator[Running]:
    async with running(meta_settings(tmp_path, graph, INSTAGRAM_HUMAN_AGENT_TAG="true"), graph) as app:
        yield app


async def citizen_wrote(bot: Running, user: str, ago: timedelta) -> int:
    """A citizen wrote (and got the bot's answer); then `ago` passed. Returns the conversation id."""
    await bot.deliver(notification(message(user, "", attachments=IMAGE)))
    conv = bot.conversation(user)
    then = (datetime.now(timezone.utc) - ago).isoformat(timespec="milliseconds")
    bot.log.update_conversation(conv.id, last_inbound_at=then)
    bot.graph.calls.clear()
    return conv.id


async def test_a_bot_reply_left_pending_by_a_crash_does_not_go_out_after_24_hours(tmp_path: Path, graph: FakeGraphApi) -> None:
    settings = meta_settings(tmp_path, graph)
    async with running(settings, graph) as bot:
        conv_id = await citizen_wrote(bot, "6001", timedelta(hours=25))
        late = bot.log.add_outbound(conv_id, "Eine Antwort, die vor dem Absturz nicht mehr rausging.", "bot")
        # ... the process dies here; on the next start recover() delivers what is pending
    async with running(settings, graph) as bot:
        msg = bot.log.message(late)
        notice = bot.log.conversation(conv_id).meta["channel_notice"]
    assert graph.calls == []
    assert msg.status == "failed" and "24 Stunden" in (msg.error or "")
    assert "nicht mehr beantwortet werden" in notice  # without HUMAN_AGENT approval nobody can answer any more


async def test_an_officer_reply_between_24_hours_and_7_days_carries_the_human_agent_tag(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "6002", timedelta(days=3))
    bot_reply = bot.log.add_outbound(conv_id, "Automatische Antwort", "bot")
    officer_reply = bot.log.add_outbound(conv_id, "Hallo, hier ist Felix. Bist du noch da?", "officer", officer="felix")
    sent = await bot.services.dispatcher.deliver([bot_reply, officer_reply])
    [call] = graph_calls = bot.graph.calls
    assert (call.body["messaging_type"], call.body["tag"], call.text) == ("MESSAGE_TAG", "HUMAN_AGENT", "Hallo, hier ist Felix. Bist du noch da?")
    assert [m.id for m in sent] == [officer_reply] and len(graph_calls) == 1
    assert bot.log.message(bot_reply).status == "failed"
    assert not bot.log.conversation(conv_id).meta.get("channel_notice")  # officers can still answer


async def test_beyond_7_days_nothing_is_sent_and_the_inbox_gets_a_notice(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "6003", timedelta(days=8))
    reply = bot.log.add_outbound(conv_id, "Sorry für die späte Antwort!", "officer", officer="isabel")
    await bot.services.dispatcher.deliver([reply])
    msg = bot.log.message(reply)
    assert bot.graph.calls == []
    assert (msg.status, msg.attempts) == ("failed", 1) and "7 Tage" in (msg.error or "")
    assert "Instagram nicht mehr beantwortet" in bot.log.conversation(conv_id).meta["channel_notice"]
    await bot.deliver(notification(message("6003", "Hallo? Ist da noch wer?")))  # the citizen writes again
    assert bot.log.conversation(conv_id).meta["channel_notice"] is None


async def test_without_human_agent_approval_an_officer_cannot_answer_after_24_hours(tmp_path: Path, graph: FakeGraphApi) -> None:
    async with running(meta_settings(tmp_path, graph), graph) as bot:
        conv_id = await citizen_wrote(bot, "6004", timedelta(hours=30))
        reply = bot.log.add_outbound(conv_id, "Hallo!", "officer", officer="isabel")
        await bot.services.dispatcher.deliver([reply])
        assert bot.graph.calls == []
        assert "HUMAN_AGENT" in (bot.log.message(reply).error or "")
        assert bot.log.conversation(conv_id).meta["channel_notice"]


@pytest.mark.parametrize(
    ("faults", "calls", "status", "error", "notice"),
    [
        (["rate_limit"], 2, "sent", None, False),
        (["server_error", "server_error", "server_error"], 3, "pending", "gestört", False),
        (["invalid_token"], 1, "failed", "Zugangsschlüssel", False),
        (["user_unavailable"], 1, "failed", "nicht erreichbar", True),
        (["outside_window"], 1, "failed", "Antwortfenster", True),
    ],
)
async def test_graph_errors_are_retried_when_that_helps_and_shown_to_the_officer(
    bot: Running, faults: list[str], calls: int, status: str, error: str | None, notice: bool
) -> None:
    conv_id = await citizen_wrote(bot, "6005", timedelta(minutes=5))
    bot.graph.fail_next(*faults)
    reply = bot.log.add_outbound(conv_id, "Danke für deine Nachricht.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    msg = bot.log.message(reply)
    assert (len(bot.graph.calls), msg.status) == (calls, status)
    assert (msg.error is None) if error is None else (error in (msg.error or ""))
    assert bool(bot.log.conversation(conv_id).meta.get("channel_notice")) == notice


async def test_a_failed_send_goes_out_on_the_next_retry_round(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "6006", timedelta(minutes=1))
    bot.graph.fail_next("server_error", "server_error", "server_error")
    reply = bot.log.add_outbound(conv_id, "Wir kümmern uns.", "officer", officer="felix")
    await bot.services.dispatcher.deliver([reply])
    assert bot.log.message(reply).status == "pending"
    assert await bot.services.dispatcher.recovery.run_once() == 0  # its backoff is not over yet
    assert await bot.services.dispatcher.recovery.run_once(everything_due=True) == 1
    msg = bot.log.message(reply)
    assert (msg.status, msg.error, bot.graph.sent()[-1].text) == ("sent", None, "Wir kümmern uns.")


async def test_topic_buttons_become_quick_replies_that_fit_instagram(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "6007", timedelta(minutes=1))
    buttons = [[f"📝 Thema Nummer {n} mit langem Namen", f"topic_{n}"] for n in range(15)]
    buttons.append(["🙋 Mit einem Menschen sprechen", "human_handoff"])
    reply = bot.log.add_outbound(conv_id, "Wähl ein Thema:", "bot", meta={"buttons": buttons})
    await bot.services.dispatcher.deliver([reply])
    [call] = bot.graph.calls
    quick = call.body["message"]["quick_replies"]
    assert len(quick) == 13 and all(len(q["title"]) <= 20 and q["content_type"] == "text" for q in quick)
    assert quick[0]["payload"] == "topic:topic_0"


@pytest.mark.parametrize(
    ("label", "title"),
    [
        ("📝 Anzeige erstatten", "📝 Anzeige erstatten"),
        ("📞 Betrug & Fake-Anrufe", "Betrug & Fake-Anrufe"),
        ("🙋 Mit einem Menschen sprechen", "Mit einem Menschen…"),
        ("Donaudampfschifffahrtsgesellschaft", "Donaudampfschifffah…"),
    ],
)
def test_quick_reply_titles_are_shortened_readably(label: str, title: str) -> None:
    assert quick_reply_title(label) == title and len(title) <= 20


async def test_a_long_reply_is_split_into_messages_instagram_accepts(bot: Running) -> None:
    conv_id = await citizen_wrote(bot, "6008", timedelta(minutes=1))
    text = "\n\n".join(f"Absatz {n}: " + "Das ist ein ziemlich langer Satz. " * 12 for n in range(6))
    reply = bot.log.add_outbound(conv_id, text, "officer", officer="isabel")
    await bot.services.dispatcher.deliver([reply])
    assert len(bot.graph.calls) >= 2 and all(c.status == 200 for c in bot.graph.calls)
    assert [c.text for c in bot.graph.calls] == split_text(text)
    assert bot.log.message(reply).status == "sent"
