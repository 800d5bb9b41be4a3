"""X's webhook: the CRC answer, the x-twitter-webhooks-signature check, and direct-message events.

CRC and signature (HMAC-SHA256 under the app's consumer secret, base64, prefixed "sha256="):
https://docs.x.com/x-api/webhooks/quickstart
Account Activity API payloads (`for_user_id`, `direct_message_events`):
https://docs.x.com/x-api/account-activity/introduction
The X Activity API, its successor, wraps the same `direct_message_events` in `data.payload` of its `dm.received`
and `dm.sent` events: https://docs.x.com/x-api/activity/event-payloads
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bot.handover import Inbound

CHANNEL = "x"
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
# X's crc_token is opaque base64 or base64url. The CRC answer is the same HMAC as a POST's signature, so answering
# any token would sign any body: a token that could be a webhook body (JSON holds "{") is refused.
CRC_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{1,256}")
USER_ID = re.compile(r"[0-9]{1,19}")  # X's user and event ids: digits, sent as strings
MEDIA_KINDS = {"photo": "photo", "video": "video", "animated_gif": "video"}
DM_EVENT_TYPES = {"dm.received", "dm.sent"}  # the X Activity API's unencrypted DMs
TOPIC_PREFIX = "topic:"


class WebhookError(ValueError):
    """A signed body that is not an X webhook event."""


def sign(secret: str, data: bytes) -> str:
    """"sha256=" + base64 HMAC-SHA256 of `data` under `secret`: the CRC answer and every POST's signature."""
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def crc_response(secret: str, token: str) -> str | None:
    """The response_token for a CRC GET; None without a secret or for a token that is not shaped like X's."""
    if not secret or not CRC_TOKEN.fullmatch(token):
        return None
    return sign(secret, token.encode())


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of the raw `body`; compared in constant time."""
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode("utf-8", "surrogateescape"))


@dataclass(frozen=True)
class OwnMessage:
    """A DM the police account sent: by this bot, or by an officer in X's app or another client."""

    chat_id: str  # the citizen (the DM's recipient)
    event_id: str
    text: str
    kind: str
    app_id: str | None
    at: str | None


@dataclass(frozen=True)
class Parsed:
    """What one webhook POST holds, split into what the bot acts on."""

    account: str = ""  # the subscribed account the events belong to ("" when the body does not say)
    inbound: list[Inbound] = field(default_factory=list)
    own: list[OwnMessage] = field(default_factory=list)
    ignored: int = 0  # typing indicators, read receipts, posts, follows, events of unknown shape


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    """A JSON string or number as text; anything else (lists, objects, null, booleans) as empty."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return ""
    return str(value)


def _id(value: Any) -> str:
    """An X id (digits, as a string or a number), else empty: ids end up in URLs and must be nothing else."""
    text = _str(value).strip()
    return text if USER_ID.fullmatch(text) else ""


def _iso(millis: Any) -> str | None:
    """X's epoch-milliseconds string as the handover log's ISO 8601 UTC time."""
    try:
        return datetime.fromtimestamp(int(_str(millis)) / 1000, timezone.utc).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError):
        return None


def _text_and_media(data: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The DM's text with links expanded and the media link removed, and its media (type and address)."""
    text = _str(data.get("text"))
    media = _obj(_obj(data.get("attachment")).get("media"))
    found = []
    if media:
        link = _str(media.get("url"))
        if link:  # X appends the media's t.co link to the text: a photo alone arrives as just that link
            text = text.replace(link, "")
        found.append({"type": _str(media.get("type")) or "media", "url": _str(media.get("media_url_https"))})
    urls = _obj(data.get("entities")).get("urls")
    for url in urls if isinstance(urls, list) else []:
        short, long = _str(_obj(url).get("url")), _str(_obj(url).get("expanded_url"))
        if short and long:
            text = text.replace(short, long)
    return text.strip(), found


def _kind(text: str, media: list[dict[str, str]]) -> str:
    if text:
        return "text"
    if media:
        return MEDIA_KINDS.get(media[0]["type"], "attachment")
    return "unsupported"


def _topic(metadata: Any) -> str | None:
    value = _str(metadata)
    return value[len(TOPIC_PREFIX):] if value.startswith(TOPIC_PREFIX) and len(value) > len(TOPIC_PREFIX) else None


def _event(event: dict[str, Any], account: str) -> Inbound | OwnMessage | None:
    """One direct_message_events item: a citizen's DM, the account's own, or None (not a DM, or unusable)."""
    create = _obj(event.get("message_create"))
    event_id = _id(event.get("id"))
    sender = _id(create.get("sender_id"))
    recipient = _id(_obj(create.get("target")).get("recipient_id"))
    if event.get("type") != "message_create" or not (event_id and sender and recipient):
        return None
    data = _obj(create.get("message_data"))
    text, media = _text_and_media(data)
    kind, at = _kind(text, media), _iso(event.get("created_timestamp"))
    if sender == account:
        return OwnMessage(recipient, event_id, text, kind, _id(create.get("source_app_id")) or None, at)
    if recipient != account:
        return None  # neither from nor to the subscribed account
    meta: dict[str, Any] = {"platform": CHANNEL}
    if media:
        meta["attachments"] = media
    button = _topic(_obj(data.get("quick_reply_response")).get("metadata"))
    return Inbound(CHANNEL, sender, sender, text, "button" if button else kind, event_id, at, button, meta)


def parse(payload: Any, account: str = "") -> Parsed:
    """Every DM in a webhook body (Account Activity API or X Activity API envelope); the rest counted as ignored.

    `account` is the police account's user id when known from the access token; the body's own
    `for_user_id` (or `filter.user_id`) names the account the events belong to.
    """
    if not isinstance(payload, dict):
        raise WebhookError("the body is not a JSON object")
    data = payload.get("data")
    if isinstance(data, dict) and "event_type" in data:  # X Activity API
        if _str(data.get("event_type")) not in DM_EVENT_TYPES:
            return Parsed(ignored=1)
        body, named = _obj(data.get("payload")), _id(_obj(data.get("filter")).get("user_id"))
    else:  # Account Activity API
        body, named = payload, _id(payload.get("for_user_id"))
    events = body.get("direct_message_events")
    if events is None:
        return Parsed(named, ignored=1)
    if not isinstance(events, list):
        raise WebhookError("direct_message_events is not a list")
    owner = named or account
    if not owner or (account and named and named != account):
        return Parsed(named, ignored=len(events))  # whose DMs these are is unknown, or another account's
    parsed = Parsed(owner)
    ignored = 0
    for event in events:
        item = _event(event, owner) if isinstance(event, dict) else None
        if isinstance(item, Inbound):
            parsed.inbound.append(item)
        elif isinstance(item, OwnMessage):
            parsed.own.append(item)
        else:
            ignored += 1
    return Parsed(owner, parsed.inbound, parsed.own, ignored)
