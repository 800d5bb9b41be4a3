"""The handover log: conversations, their state and transcript, in SQLite."""

from bot.handover.records import Conversation, HandoverError, Inbound, Message, StoredInbound
from bot.handover.store import HandoverLog

__all__ = ["Conversation", "HandoverError", "HandoverLog", "Inbound", "Message", "StoredInbound"]
