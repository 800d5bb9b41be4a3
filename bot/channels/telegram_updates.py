"""Translate Telegram updates into the bot's inbound messages (private chats and business chats only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Message as TgMessage
from telegram import Update

from bot.handover import Inbound

CHANNEL = "telegram"
TOPIC_PREFIX = "topic:"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "business_connection", "business_message",
                   "edited_business_message"]
MEDIA_KINDS = ("photo", "video", "voice", "audio", "video_note", "animation", "sticker", "document", "location",
               "venue", "contact")
COMMANDS = {"start": "start", "help": "help", "hilfe": "help", "mensch": "human", "human": "human"}


@dataclass(frozen=True)
class Incoming:
    """One update, translated: what to store, and what Telegram needs back."""

    update_id: int
    chat_key: str  # the conversation's chat_id in the handover log
    chat_id: int  # the Telegram chat to answer in
    inbound: Inbound
    command: str | None = None  # start | help for the commands answered with fixed texts
    callback_query_id: str | None = None
    language: str = "de"
    business_connection_id: str | None = None


def chat_key(chat_id: int, business_connection_id: str | None = None) -> str:
    """The handover log's chat id: the Telegram chat, or "biz:<connection>:<chat>" for business chats."""
    return f"biz:{business_connection_id}:{chat_id}" if business_connection_id else str(chat_id)


def parse_chat_key(key: str) -> tuple[int, str | None]:
    """(Telegram chat id, business connection id or None) from a handover log chat id."""
    if key.startswith("biz:"):
        connection, chat = key[len("biz:"):].rsplit(":", 1)
        return int(chat), connection
    return int(key), None


def language_of(user: Any) -> str:
    """English for users whose Telegram speaks English, German otherwise."""
    code = (getattr(user, "language_code", None) or "").lower()
    return "en" if code.startswith("en") else "de"


def media_kind(message: TgMessage) -> tuple[str, dict[str, Any]]:
    """The kind of a non-text message and what officers need to find the item (file id, place)."""
    for kind in MEDIA_KINDS:
        item = getattr(message, kind, None)
        if not item:
            continue
        if kind == "photo":
            return kind, {"file_id": item[-1].file_id}
        if kind in ("location", "venue"):
            location = item.location if kind == "venue" else item
            return "location", {"location": [location.latitude, location.longitude]}
        if kind == "contact":
            return kind, {"contact": item.phone_number}
        return kind, {"file_id": item.file_id}
    return "other", {}


class MalformedUpdate(ValueError):
    """An update whose fields do not fit together (no chat, no sender): retrying will not help."""


def translate(update: Update, bot_username: str | None = None) -> Incoming | None:
    """The inbound message of an update; None for updates the bot ignores (groups, channels, its own)."""
    try:
        return _translate(update, bot_username)
    except (AttributeError, TypeError, ValueError) as err:
        raise MalformedUpdate(f"update {getattr(update, 'update_id', '?')} is malformed: {err}") from err


def _checked(value: Any, kind: type, what: str, optional: bool = False) -> Any:
    """`value` if it has the type the Bot API documents (PTB does not check); ValueError otherwise."""
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{what} is {type(value).__name__}, not {kind.__name__}")


def _translate(update: Update, bot_username: str | None) -> Incoming | None:
    if update.callback_query is not None:
        return _button(update)
    message = update.message or update.edited_message or update.business_message or update.edited_business_message
    if message is None or message.chat.type != "private" or message.from_user is None or message.from_user.is_bot:
        return None
    connection = _checked(message.business_connection_id, str, "business_connection_id", optional=True)
    chat = _checked(message.chat.id, int, "chat.id")
    _checked(message.from_user.id, int, "from.id")
    _checked(message.message_id, int, "message_id")
    _checked(message.text, str, "text", optional=True)
    _checked(message.caption, str, "caption", optional=True)
    platform_id = f"m{chat_key(chat, connection)}:{message.message_id}"
    meta: dict[str, Any] = {}
    if message.edit_date is not None:
        platform_id += f":e{int(message.edit_date.timestamp())}"
        meta["edited"] = True
    if connection:
        meta["business_connection_id"] = connection
    language = language_of(message.from_user)
    base = dict(channel=CHANNEL, chat_id=chat_key(chat, connection), user_id=str(message.from_user.id),
                platform_id=platform_id)
    if message.text is not None:
        text = message.text.strip()
        command = _command(text, bot_username)
        if command == "human":
            inbound = Inbound(**base, text=text, kind="text", button="human_handoff", meta=meta or None)
            return Incoming(update.update_id, base["chat_id"], chat, inbound, None, None, language, connection)
        inbound = Inbound(**base, text=text, kind="command" if command else "text", meta=meta or None)
        return Incoming(update.update_id, base["chat_id"], chat, inbound, command, None, language, connection)
    kind, detail = media_kind(message)
    inbound = Inbound(**base, text=(message.caption or "").strip(), kind=kind, meta={**meta, **detail})
    return Incoming(update.update_id, base["chat_id"], chat, inbound, None, None, language, connection)


def salvage(update_id: int, raw: Any, bot_username: str | None = None) -> Incoming | None:
    """What can still be read of an update PTB could not parse: a private chat, its sender and text (else None)."""
    if not isinstance(raw, dict):
        return None
    key = next((k for k in ("message", "edited_message", "business_message", "edited_business_message")
                if isinstance(raw.get(k), dict)), None)
    if key is None:
        return None
    message = raw[key]
    chat, sender = message.get("chat"), message.get("from")
    if not isinstance(chat, dict) or not isinstance(sender, dict) or chat.get("type") != "private" or sender.get("is_bot") is True:
        return None
    chat_id, user_id, message_id = chat.get("id"), sender.get("id"), message.get("message_id")
    if not all(type(v) is int for v in (chat_id, user_id)):
        return None
    connection = message.get("business_connection_id") if isinstance(message.get("business_connection_id"), str) else None
    text = next((v for v in (message.get("text"), message.get("caption")) if isinstance(v, str)), "").strip()
    if type(message_id) is int:
        platform_id = f"m{chat_key(chat_id, connection)}:{message_id}"
        if key.startswith("edited") and type(message.get("edit_date")) is int:
            platform_id += f":e{message['edit_date']}"
    else:
        platform_id = f"u{update_id}"
    meta: dict[str, Any] = {"unreadable": True, **({"business_connection_id": connection} if connection else {})}
    language = "en" if str(sender.get("language_code") or "").lower().startswith("en") else "de"
    command = _command(text, bot_username) if text.startswith("/") else None
    inbound = Inbound(CHANNEL, chat_key(chat_id, connection), str(user_id), text, kind="text" if text else "other",
                      platform_id=platform_id, button="human_handoff" if command == "human" else None, meta=meta)
    return Incoming(update_id, chat_key(chat_id, connection), chat_id, inbound, None, None, language, connection)


def _command(text: str, bot_username: str | None) -> str | None:
    """start | help | human for the bot's commands ("/start@name" too); None for anything else."""
    if not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0][1:]
    name, _, target = word.partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    return COMMANDS.get(name.lower())


def _button(update: Update) -> Incoming | None:
    """A pressed topic button: handled like the matching message."""
    query = update.callback_query
    message = query.message
    chat = message.chat if message is not None else None
    if chat is None or chat.type != "private" or not (query.data or "").startswith(TOPIC_PREFIX):
        return None
    _checked(chat.id, int, "chat.id")
    _checked(query.from_user.id, int, "from.id")
    intent = query.data[len(TOPIC_PREFIX):]
    label = ""  # the button's label when the message still shows it (the log's text for the press)
    markup = getattr(message, "reply_markup", None)
    for row in (markup.inline_keyboard if markup else ()):
        for button in row:
            if button.callback_data == query.data:
                label = button.text
    inbound = Inbound(CHANNEL, str(chat.id), str(query.from_user.id), text=label, kind="button",
                      platform_id=f"cb{query.id}", button=intent)
    return Incoming(update.update_id, str(chat.id), chat.id, inbound, None, query.id, language_of(query.from_user))
