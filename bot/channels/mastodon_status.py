"""Mastodon statuses as the bot reads and writes them: HTML to text, mentions, the length rule, inbound messages.

Entities: https://docs.joinmastodon.org/entities/Status/ and https://docs.joinmastodon.org/entities/Notification/
A status's `content` is HTML; the bot keeps it as plain text (the inbox escapes it like any text). The length
rule (Mastodon's StatusLengthValidator): a URL counts as `characters_reserved_per_url` (23), a mention only as
"@username" (its domain is not counted); the limit is the instance's `configuration.statuses.max_characters`.
Works on plain JSON dicts and on Mastodon.py's typed dicts alike (ids as strings, times as strings or datetimes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

from bot.handover import Inbound

CHANNEL = "mastodon"
DIRECT = "direct"
VISIBILITIES = ("public", "unlisted", "private", "direct")
MEDIA_KINDS = {"image": "photo", "gifv": "video", "video": "video", "audio": "voice", "unknown": "document"}
MAX_INBOUND_CHARS = 10_000  # statuses from instances without a limit are cut here
URL_CHARS = 23
_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![=/\w])@(\w[\w.-]*\w|\w)(@[\w.-]+\w)?", re.UNICODE)
_MENTION_START = re.compile(r"(?<![=/\w])@(?=\w)", re.UNICODE)
_BLOCKS = {"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}


@dataclass(frozen=True)
class Account:
    """The police account the token belongs to."""

    id: str
    username: str
    acct: str


class _Text(HTMLParser):
    """Collects the text of a status's HTML: paragraphs as blank lines, <br> as line breaks, every tag dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text a reader sees in a status's HTML (entities decoded, markup gone, never interpreted)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\r", "")
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def strip_leading_mentions(text: str, own: Account) -> str:
    """The text without the mentions of the police account it starts with ("@polizei Hilfe" -> "Hilfe")."""
    while True:
        match = _MENTION.match(text.lstrip())
        if match is None or match[1].lower() != own.username.lower():
            return text.strip()
        text = text.lstrip()[match.end():]


def neutralise_mentions(text: str) -> str:
    """Break every "@name" in a reply (a zero-width space after the @): a direct status reaches everyone it mentions."""
    return _MENTION_START.sub("@\u200b", text)


def counted_length(text: str, url_chars: int = URL_CHARS) -> int:
    """The length Mastodon counts: URLs as `url_chars`, mentions without their domain."""
    text = _URL.sub("x" * url_chars, text)
    return len(_MENTION.sub(lambda m: "@" + m[1], text))


def split_status(text: str, prefix: str, limit: int, url_chars: int = URL_CHARS) -> list[str]:
    """`prefix` + text in statuses of at most `limit` counted characters, split at paragraphs, lines, words."""
    budget = max(20, limit - counted_length(prefix, url_chars))
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if counted_length(rest, url_chars) <= budget:
            parts.append(rest)
            break
        window = rest[:budget]
        while counted_length(window, url_chars) > budget:  # short URLs count more than they are long
            window = window[:-10]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        cut = cut if cut > len(window) // 2 else len(window)
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [prefix + part for part in parts] or [prefix.strip()]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    """A JSON string or number as storable text (lone surrogates replaced); anything else as empty."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return ""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _iso(value: Any) -> str | None:
    """A status's created_at (ISO 8601 text or a datetime) as the handover log's UTC string."""
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def account_of(value: Any) -> Account | None:
    """The account in an API answer, or None if it lacks an id or a name."""
    data = _obj(value)
    ident, username, acct = _str(data.get("id")), _str(data.get("username")), _str(data.get("acct"))
    return Account(ident, username or acct.split("@")[0], acct or username) if ident and (acct or username) else None


def status_inbound(status: Any, own: Account) -> Inbound | None:
    """A citizen's status that mentions the police account as an inbound message; None if it cannot be one."""
    data = _obj(status)
    author = account_of(data.get("account"))
    status_id = _str(data.get("id"))
    visibility = _str(data.get("visibility"))
    if author is None or not status_id or author.id == own.id or visibility not in VISIBILITIES:
        return None
    if data.get("reblog"):
        return None
    text = strip_leading_mentions(html_to_text(_str(data.get("content"))), own)
    warning = html_to_text(_str(data.get("spoiler_text")))
    if warning:
        text = f"{warning}\n\n{text}".strip()
    meta: dict[str, Any] = {"platform": CHANNEL, "visibility": visibility}
    if len(text) > MAX_INBOUND_CHARS:
        text, meta["truncated"] = text[:MAX_INBOUND_CHARS] + "…", True
    media = [_obj(m) for m in data.get("media_attachments") or [] if isinstance(m, dict)] if isinstance(
        data.get("media_attachments"), list) else []
    if media:
        meta["attachments"] = [{"type": _str(m.get("type")) or "unknown", "url": _str(m.get("url"))} for m in media]
    if _str(data.get("url")):
        meta["url"] = _str(data.get("url"))
    if text:
        kind = "text" if visibility == DIRECT else "public_mention"
    elif media:
        kind = MEDIA_KINDS.get(meta["attachments"][0]["type"], "document")
    else:
        kind = "unsupported"
    return Inbound(CHANNEL, author.acct, author.id, text, kind, status_id, _iso(data.get("created_at")), None, meta)


def notification_inbound(notification: Any, own: Account) -> tuple[str, Inbound | None]:
    """(notification id, the mention in it): only `mention` notifications carry a citizen's message."""
    data = _obj(notification)
    ident = _str(data.get("id"))
    if data.get("type") != "mention":
        return ident, None
    return ident, status_inbound(data.get("status"), own)


def is_public(message_meta: dict[str, Any]) -> bool:
    """True for a mention others can read (not a direct message)."""
    return message_meta.get("visibility", DIRECT) != DIRECT


def id_key(value: str) -> tuple[int, str]:
    """Sort key for Mastodon ids: numeric strings by value (longer is newer), others as text."""
    return (len(value), value) if value.isdigit() else (0, value)
