"""The flow of one message through log, triage and channel (web chat sender, no network)."""

from __future__ import annotations

from bot.channels.base import LogOnlySender, SendError
from bot.dispatcher import FLOOD_MESSAGES, Dispatcher
from bot.handover import Conversation, HandoverLog, Inbound, Message
from bot.triage import Triage


class FailingSender:
    """A channel whose platform is down."""

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        raise SendError("503 from platform")


def dispatcher(handover: HandoverLog, triage: Triage) -> Dispatcher:
    return Dispatcher(handover, triage, {"webchat": LogOnlySender(), "telegram": FailingSender()})


async def test_a_message_gets_its_reply_recorded_and_sent(handover: HandoverLog, triage_no_model: Triage) -> None:
    sent = await dispatcher(handover, triage_no_model).handle(Inbound("webchat", "c1", "u1", "hilfe einbrecher", platform_id="m1"))
    conv = handover.find_conversation("webchat", "c1")
    transcript = handover.transcript(conv.id)
    assert [(m.author, m.status) for m in transcript] == [("citizen", "processed"), ("bot", "sent")]
    assert transcript[0].action == "escalate" and transcript[0].intent == "emergency"
    assert sent[0].text.startswith("🚨")
    assert conv.state == "queued" and conv.priority == 2


async def test_a_duplicate_is_answered_once(handover: HandoverLog, triage_no_model: Triage) -> None:
    d = dispatcher(handover, triage_no_model)
    assert await d.handle(Inbound("webchat", "c1", "u1", "hallo", platform_id="m1"))
    assert await d.handle(Inbound("webchat", "c1", "u1", "hallo", platform_id="m1")) is None
    assert len(handover.transcript(handover.find_conversation("webchat", "c1").id)) == 2


async def test_while_an_officer_has_the_chat_the_bot_is_silent_except_for_emergencies(handover: HandoverLog, triage_no_model: Triage) -> None:
    d = dispatcher(handover, triage_no_model)
    await d.handle(Inbound("webchat", "c1", "u1", "Mensch"))
    conv = handover.find_conversation("webchat", "c1")
    assert conv.state == "queued"
    quiet = await d.handle(Inbound("webchat", "c1", "u1", "wann kommt denn wer?"))
    loud = await d.handle(Inbound("webchat", "c1", "u1", "er hat ein messer und bedroht mich"))
    assert quiet == []
    assert len(loud) == 1 and "110" in loud[0].text
    assert handover.find_conversation("webchat", "c1").priority == 2


async def test_a_failed_send_stays_pending_for_a_retry(handover: HandoverLog, triage_no_model: Triage) -> None:
    await dispatcher(handover, triage_no_model).handle(Inbound("telegram", "7", "7", "hilfe einbrecher", platform_id="u1"))
    pending = handover.pending_outbound("telegram")
    assert len(pending) == 1 and pending[0].error == "503 from platform" and pending[0].attempts == 1


async def test_after_a_crash_recover_answers_what_was_stored(handover: HandoverLog, triage_no_model: Triage) -> None:
    d = dispatcher(handover, triage_no_model)
    stored = d.receive(Inbound("webchat", "c1", "u1", "hilfe einbrecher", platform_id="m1"))
    assert stored is not None  # ... and the process died here
    assert await dispatcher(handover, triage_no_model).recover() == 1
    assert [m.author for m in handover.transcript(stored.conversation_id)] == ["citizen", "bot"]


async def test_a_flood_gets_one_calm_note_but_an_emergency_still_gets_110(handover: HandoverLog, triage_no_model: Triage) -> None:
    d = dispatcher(handover, triage_no_model)
    replies = []
    for n in range(FLOOD_MESSAGES + 6):
        replies.append(await d.handle(Inbound("webchat", "c1", "u1", f"Anzeige {n}", "button", f"m{n}", button="report_crime")))
    emergency = await d.handle(Inbound("webchat", "c1", "u1", "hilfe einbrecher", platform_id="m-last"))
    assert all(len(r) == 1 for r in replies[:FLOOD_MESSAGES])
    assert "nichts noch einmal" in replies[FLOOD_MESSAGES][0].text
    assert all(r == [] for r in replies[FLOOD_MESSAGES + 1 :])
    assert "110" in emergency[0].text
