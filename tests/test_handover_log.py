"""The handover log: dedupe, pseudonyms, queue order, crash-safe outbox."""

from __future__ import annotations

from pathlib import Path

from bot.handover import HandoverLog, Inbound


def test_a_redelivered_message_is_stored_once(handover: HandoverLog) -> None:
    first = handover.record_inbound(Inbound("telegram", "42", "42", "hallo", platform_id="1001"))
    again = handover.record_inbound(Inbound("telegram", "42", "42", "hallo", platform_id="1001"))
    assert first is not None and first.first_contact
    assert again is None
    assert [m.text for m in handover.transcript(first.conversation.id)] == ["hallo"]


def test_the_same_platform_id_on_another_channel_is_a_new_message(handover: HandoverLog) -> None:
    assert handover.record_inbound(Inbound("telegram", "1", "1", "a", platform_id="7"))
    assert handover.record_inbound(Inbound("instagram", "1", "1", "a", platform_id="7"))


def test_citizens_get_a_stable_pseudonym_not_their_platform_id(handover: HandoverLog) -> None:
    a = handover.record_inbound(Inbound("telegram", "123456789", "123456789", "x", platform_id="1"))
    b = handover.record_inbound(Inbound("telegram", "123456789", "123456789", "y", platform_id="2"))
    assert a.conversation.citizen == b.conversation.citizen
    assert "123456789" not in a.conversation.citizen


def test_queue_puts_escalations_first_then_the_longest_waiting(handover: HandoverLog) -> None:
    ids = {}
    for chat in ("a", "b", "c"):
        ids[chat] = handover.record_inbound(Inbound("webchat", chat, chat, "x")).conversation.id
    handover.queue(ids["a"], "handover", "human_handoff")
    handover.queue(ids["b"], "handover", "tip_off")
    handover.queue(ids["c"], "escalate", "emergency")
    assert [c.chat_id for c in handover.conversations(("queued",))] == ["c", "a", "b"]
    assert handover.conversation(ids["c"]).priority == 2


def test_pending_replies_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    log = HandoverLog.open(path)
    stored = log.record_inbound(Inbound("telegram", "9", "9", "hallo", platform_id="5"))
    reply = log.add_outbound(stored.conversation.id, "Hallo!", reply_to=stored.message.id)
    log.close()
    reopened = HandoverLog.open(path)
    assert [m.id for m in reopened.pending_outbound()] == [reply]
    assert [m.id for m in reopened.unprocessed_inbound()] == [stored.message.id]
    if reopened.backend == "sqlite":
        assert reopened.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.close()


def test_a_failed_transaction_leaves_nothing_behind(handover: HandoverLog) -> None:
    stored = handover.record_inbound(Inbound("webchat", "z", "z", "x"))
    try:
        with handover.transaction():
            handover.add_outbound(stored.conversation.id, "eins")
            raise RuntimeError("crash in the middle")
    except RuntimeError:
        pass
    assert handover.pending_outbound() == []
