"""The officer side of a conversation: claim, reply, note, close, each audited."""

from __future__ import annotations

import json

import pytest

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.handover import HandoverError, HandoverLog, Inbound
from bot.handover.states import HandoverStates
from bot.triage import Triage


def setup(handover: HandoverLog, triage: Triage) -> tuple[Dispatcher, HandoverStates]:
    return Dispatcher(handover, triage, {"webchat": LogOnlySender()}), HandoverStates(handover, triage.responses)


def audit(handover: HandoverLog, conversation_id: int) -> list[tuple[str, str, dict]]:
    rows = handover.db.execute("SELECT actor, action, detail FROM events WHERE conversation_id = ? ORDER BY id", [conversation_id])
    return [(actor, action, json.loads(detail)) for actor, action, detail in rows]


async def queued(dispatcher: Dispatcher, text: str = "Mensch", chat: str = "c1") -> int:
    await dispatcher.handle(Inbound("webchat", chat, "u1", text))
    return dispatcher.log.find_conversation("webchat", chat).id


async def test_claiming_gives_the_chat_to_the_officer_and_is_audited(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    conv = states.claim(conv_id, "anna")
    assert (conv.state, conv.officer, conv.priority) == ("claimed", "anna", 1) and conv.claimed_at
    assert audit(handover, conv_id)[-1] == ("anna", "claim", {"was": "queued", "previous_officer": None})


async def test_taking_a_chat_from_a_colleague_is_audited_with_the_colleague(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    states.claim(conv_id, "anna")
    states.claim(conv_id, "anna")  # twice is once
    states.claim(conv_id, "ben")
    assert [e[:2] for e in audit(handover, conv_id)] == [("bot", "queue"), ("anna", "claim"), ("ben", "claim")]
    assert audit(handover, conv_id)[-1][2] == {"was": "claimed", "previous_officer": "anna"}


async def test_a_reply_claims_a_waiting_chat_but_not_a_colleagues(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    message_id = states.reply(conv_id, "anna", "  Hallo, hier ist Anna.  ")
    with pytest.raises(HandoverError, match="anna has this conversation"):
        states.reply(conv_id, "ben", "Ich mach das!")
    sent = await dispatcher.deliver([message_id])
    assert handover.conversation(conv_id).officer == "anna"
    assert (sent[0].author, sent[0].officer, sent[0].text, sent[0].status) == ("officer", "anna", "Hallo, hier ist Anna.", "sent")


@pytest.mark.parametrize("text", ["", "   ", "x" * 4001])
async def test_empty_or_overlong_texts_are_refused(handover: HandoverLog, triage_no_model: Triage, text: str) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    for action in (states.reply, states.note):
        with pytest.raises(HandoverError):
            action(conv_id, "anna", text)


async def test_a_note_is_kept_for_colleagues_and_never_becomes_a_message(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    before = handover.transcript(conv_id)
    note = states.note(conv_id, "anna", "Hat schon bei der Wache angerufen.")
    assert handover.transcript(conv_id) == before
    assert states.notes(conv_id) == [note] and note.text == "Hat schon bei der Wache angerufen."
    assert audit(handover, conv_id)[-1] == ("anna", "note", {"note_id": note.id})


@pytest.mark.parametrize("language, start", [("de", "Das Team hat den Chat beendet."), ("en", "The team has closed this chat.")])
async def test_closing_hands_back_to_the_bot_in_the_citizens_language(handover: HandoverLog, triage_no_model: Triage, language: str, start: str) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    text = "I would like to talk to a human please" if language == "en" else "Ich möchte mit einem Menschen reden"
    conv_id = await queued(dispatcher, text)
    states.claim(conv_id, "anna")
    sent = await dispatcher.deliver([states.close(conv_id, "anna")])
    conv = handover.conversation(conv_id)
    assert (conv.state, conv.priority) == ("closed", 0) and conv.closed_at
    assert sent[0].text.startswith(start) and sent[0].author == "bot"
    assert audit(handover, conv_id)[-1] == ("anna", "close", {"was": "claimed", "officer": "anna"})


async def test_after_closing_the_bot_answers_again(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    assert await dispatcher.handle(Inbound("webchat", "c1", "u1", "Danke", kind="button", button="thanks")) == []
    await dispatcher.deliver([states.close(conv_id, "anna")])
    replies = await dispatcher.handle(Inbound("webchat", "c1", "u1", "Danke", kind="button", button="thanks"))
    assert len(replies) == 1 and replies[0].author == "bot" and handover.conversation(conv_id).state == "closed"


@pytest.mark.parametrize("state", ["bot", "closed"])
async def test_only_a_chat_with_the_team_can_be_closed(handover: HandoverLog, triage_no_model: Triage, state: str) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    await dispatcher.handle(Inbound("webchat", "c1", "u1", "Danke", kind="button", button="thanks"))
    conv_id = handover.find_conversation("webchat", "c1").id
    handover.update_conversation(conv_id, state=state)
    with pytest.raises(HandoverError, match="not with the team"):
        states.close(conv_id, "anna")


async def test_an_emergency_while_claimed_keeps_the_officer_and_raises_the_priority(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    conv_id = await queued(dispatcher)
    states.claim(conv_id, "anna")
    replies = await dispatcher.handle(Inbound("webchat", "c1", "u1", "er hat ein Messer und bedroht mich"))
    conv = handover.conversation(conv_id)
    assert "110" in replies[0].text and (conv.state, conv.officer, conv.priority) == ("claimed", "anna", 2)


async def test_an_escalations_reason_is_kept_when_a_lesser_one_follows(handover: HandoverLog, triage_no_model: Triage) -> None:
    dispatcher, states = setup(handover, triage_no_model)
    await dispatcher.handle(Inbound("webchat", "c1", "u1", "Ich will nicht mehr leben"))
    conv_id = handover.find_conversation("webchat", "c1").id
    first = handover.conversation(conv_id)
    await dispatcher.handle(Inbound("webchat", "c1", "u1", "Mensch"))  # a handover after the escalation
    after_handover = handover.conversation(conv_id)
    states.claim(conv_id, "anna")
    await dispatcher.handle(Inbound("webchat", "c1", "u1", "Hilfe, hier ist ein Einbrecher!"))  # a second escalation
    claimed = handover.conversation(conv_id)
    await dispatcher.handle(Inbound("webchat", "c2", "u2", "Mensch"))
    await dispatcher.handle(Inbound("webchat", "c2", "u2", "Hilfe, hier ist ein Einbrecher!"))
    raised = handover.find_conversation("webchat", "c2")
    assert (first.reason, first.priority) == ("self_harm", 2)
    assert (after_handover.reason, after_handover.priority) == ("self_harm", 2)  # not "human_handoff"
    assert (claimed.reason, claimed.priority, claimed.officer) == ("self_harm", 2, "anna")
    assert (raised.reason, raised.priority) == ("emergency", 2)  # a higher priority brings its own reason
