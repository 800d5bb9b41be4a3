"""What officers do with a conversation: claim, reply, note, close. Every step is audited."""

from __future__ import annotations

from dataclasses import dataclass

from bot.handover.records import Conversation, HandoverError
from bot.handover.store import HandoverLog
from bot.responses import Responses

MAX_TEXT = 4000  # Telegram's limit is 4096; Instagram's 1000 bytes is the channel's business


@dataclass(frozen=True)
class Note:
    """An officer's internal note on a conversation; never sent to the citizen."""

    id: int
    conversation_id: int
    officer: str
    text: str
    created_at: str


def _text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise HandoverError("the text is empty")
    if len(text) > MAX_TEXT:
        raise HandoverError(f"the text is longer than {MAX_TEXT} characters")
    return text


class HandoverStates:
    """The officer side of the state machine bot -> queued -> claimed -> closed (the bot answers again)."""

    def __init__(self, log: HandoverLog, responses: Responses) -> None:
        self.log = log
        self.responses = responses

    def claim(self, conversation_id: int, officer: str) -> Conversation:
        """Take a conversation: it is yours until you close it (taking it from a colleague is audited)."""
        with self.log.transaction():
            conv = self.log.conversation(conversation_id)
            if conv.state == "claimed" and conv.officer == officer:
                return conv
            now = self.log.clock()
            self.log.audit(officer, "claim", conv.id, was=conv.state, previous_officer=conv.officer)
            return self.log.update_conversation(
                conv.id, state="claimed", officer=officer, claimed_at=now, closed_at=None,
                queued_at=conv.queued_at or now,
            )

    def reply(self, conversation_id: int, officer: str, text: str) -> int:
        """Store an officer's answer to the citizen (claiming the chat if nobody has it); returns its id."""
        text = _text(text)
        with self.log.transaction():
            conv = self.log.conversation(conversation_id)
            if conv.state == "claimed" and conv.officer != officer:
                raise HandoverError(f"{conv.officer} has this conversation; claim it first")
            if conv.state != "claimed":
                self.claim(conv.id, officer)
            message_id = self.log.add_outbound(conv.id, text, author="officer", officer=officer)
            self.log.audit(officer, "reply", conv.id, message_id=message_id)
        return message_id

    def note(self, conversation_id: int, officer: str, text: str) -> Note:
        """Add an internal note for colleagues; the citizen never sees it."""
        text = _text(text)
        with self.log.transaction():
            conv = self.log.conversation(conversation_id)
            now = self.log.clock()
            note_id = self.log.db["notes"].insert(
                {"conversation_id": conv.id, "officer": officer, "text": text, "created_at": now}
            ).last_pk
            self.log.audit(officer, "note", conv.id, note_id=note_id)
        return Note(note_id, conv.id, officer, text, now)

    def notes(self, conversation_id: int) -> list[Note]:
        """The internal notes of a conversation, oldest first."""
        rows = self.log.db.query("SELECT * FROM notes WHERE conversation_id = ? ORDER BY id", [conversation_id])
        return [Note(**row) for row in rows]

    def close(self, conversation_id: int, officer: str) -> int:
        """Hand the chat back to the bot and tell the citizen so; returns the id of that message."""
        with self.log.transaction():
            conv = self.log.conversation(conversation_id)
            if conv.state not in ("queued", "claimed"):
                raise HandoverError(f"conversation {conv.id} is not with the team (state {conv.state})")
            text = self.responses.system_text("returned_to_bot", conv.language or "de")
            self.log.audit(officer, "close", conv.id, was=conv.state, officer=conv.officer)
            self.log.update_conversation(conv.id, state="closed", priority=0, closed_at=self.log.clock(), officer=officer)
            return self.log.add_outbound(conv.id, text, author="bot", meta={"returned_to_bot": True})
