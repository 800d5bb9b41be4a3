"""The handover log: conversations, their state and transcript, in SQLite."""

from bot.handover.store import Conversation, HandoverError, HandoverLog, Inbound, Message, StoredInbound

__all__ = ["Conversation", "HandoverError", "HandoverLog", "Inbound", "Message", "StoredInbound"]
