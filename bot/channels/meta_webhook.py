"""Meta's webhook format (Instagram DMs and Facebook Messenger): signature check and event parsing.

Payload shapes: https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
and https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/message-echoes
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bot.channels.meta_comments import CommentChange, parse_changes
from bot.channels.meta_comments import json_obj as _obj, json_str as _str  # (Meta's JSON, read the same way)
from bot.handover import Inbound
from bot.handover.comments import IncomingComment

# Meta's `object` field names the product; each is its own channel in the handover log.
CHANNELS = {"instagram": "instagram", "page": "messenger"}
TOPIC_PREFIX = "topic:"  # quick-reply and postback payloads that name a topic button's intent
ATTACHMENT_KINDS = {
    "image": "photo", "video": "video", "audio": "voice", "file": "document", "story_mention": "story_mention",
    "share": "share", "ig_reel": "share", "reel": "share", "ig_post": "share", "sticker": "sticker",
    "animated_image": "sticker", "location": "location", "fallback": "share",
}


class WebhookError(ValueError):
    """A webhook body that is not Meta's JSON object."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """True when X-Hub-Signature-256 is "sha256=" + HMAC-SHA256(secret, raw body); constant-time compare."""
    if not secret or not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "surrogateescape"))  # any bytes: no 500


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body` (used by tests and local tools)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Echo:
    """A message the business account sent: by this bot, or by an officer in the Instagram app."""

    channel: str
    chat_id: str  # the citizen (the echo's recipient)
    mid: str
    text: str
    kind: str
    app_id: str | None
    at: str | None


@dataclass(frozen=True)
class Parsed:
    """What one webhook POST contains, split into what the bot acts on."""

    inbound: list[Inbound] = field(default_factory=list)
    echoes: list[Echo] = field(default_factory=list)
    ignored: int = 0  # reads, deliveries, reactions, unsends, unknown events
    comments: list[IncomingComment] = field(default_factory=list)  # comments under posts (bot/channels/meta_comments.py)
    comment_changes: list[CommentChange] = field(default_factory=list)  # their edits, removals, hides


def _iso(timestamp: Any) -> str | None:
    """Meta's millisecond timestamp as the handover log's ISO 8601 UTC string."""
    try:
        return datetime.fromtimestamp(int(timestamp) / 1000, timezone.utc).isoformat(timespec="milliseconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _attachments(message: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    items = message.get("attachments")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found.append({"type": _str(item.get("type")) or "unknown", "url": _str(_obj(item.get("payload")).get("url"))})
    return found


def _kind(text: str, attachments: list[dict[str, str]], message: dict[str, Any]) -> str:
    if text:
        return "text"
    if attachments:
        return ATTACHMENT_KINDS.get(attachments[0]["type"], "attachment")
    if isinstance(_obj(message.get("reply_to")).get("story"), dict):
        return "story_reply"
    return "unsupported"


def _topic(payload: Any) -> str | None:
    if isinstance(payload, str) and payload.startswith(TOPIC_PREFIX) and len(payload) > len(TOPIC_PREFIX):
        return payload[len(TOPIC_PREFIX):]
    return None


def _message_event(channel: str, event: dict[str, Any], sender: str, recipient: str, at: str | None) -> Inbound | Echo | None:
    message = event["message"]
    if not isinstance(message, dict) or message.get("is_deleted"):
        return None
    mid = _str(message.get("mid")) or None
    text = _str(message.get("text")).strip()
    attachments = _attachments(message)
    kind = _kind(text, attachments, message)
    if message.get("is_echo"):
        app_id = message.get("app_id")
        return Echo(channel, recipient, mid, text, kind, _str(app_id) or None, at) if mid and recipient else None
    meta: dict[str, Any] = {"platform": channel}
    if attachments:
        meta["attachments"] = attachments
    story = _obj(_obj(message.get("reply_to")).get("story"))
    if story:
        meta["story_reply"] = {k: _str(v) for k, v in story.items() if k in ("id", "url")}
    button = _topic(_obj(message.get("quick_reply")).get("payload"))
    if button:
        kind = "button"
    return Inbound(channel, sender, sender, text, kind, mid, at, button, meta)


def _postback_event(channel: str, event: dict[str, Any], sender: str, at: str | None) -> Inbound | None:
    postback = event["postback"]
    if not isinstance(postback, dict):
        return None
    title = _str(postback.get("title")).strip()
    button = _topic(postback.get("payload"))
    mid = _str(postback.get("mid")) or f"postback:{sender}:{_str(event.get('timestamp'))}"
    meta = {"platform": channel, "postback": _str(postback.get("payload"))}
    return Inbound(channel, sender, sender, title, "button" if button else "text", mid, at, button, meta)


def parse(payload: Any) -> Parsed:
    """Every citizen message and echo in a webhook body; everything else is counted as ignored."""
    if not isinstance(payload, dict):
        raise WebhookError("the body is not a JSON object")
    channel = CHANNELS.get(_str(payload.get("object")))
    entries = payload.get("entry")
    parsed = Parsed()
    if channel is None or not isinstance(entries, list):
        return Parsed(ignored=1)
    ignored = 0
    for entry in entries:
        events = entry.get("messaging") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("changes"), list):
            comments, changes, skipped = parse_changes(channel, entry)
            parsed.comments.extend(comments)
            parsed.comment_changes.extend(changes)
            ignored += skipped
            continue
        if not isinstance(events, list):
            ignored += 1  # comments, mentions, standby and other fields this bot does not subscribe to
            continue
        for event in events:
            item = _event(channel, event) if isinstance(event, dict) else None
            if isinstance(item, Inbound):
                parsed.inbound.append(item)
            elif isinstance(item, Echo):
                parsed.echoes.append(item)
            else:
                ignored += 1
    return Parsed(parsed.inbound, parsed.echoes, ignored, parsed.comments, parsed.comment_changes)


def _event(channel: str, event: dict[str, Any]) -> Inbound | Echo | None:
    sender = _str(_obj(event.get("sender")).get("id"))
    recipient = _str(_obj(event.get("recipient")).get("id"))
    at = _iso(event.get("timestamp"))
    if not sender:
        return None
    if "message" in event:
        return _message_event(channel, event, sender, recipient, at)
    if "postback" in event:
        return _postback_event(channel, event, sender, at)
    return None  # read, delivery, reaction, referral, optin, ...: nothing to answer
