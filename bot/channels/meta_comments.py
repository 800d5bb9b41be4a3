"""Comments in Meta's webhook: Instagram `comments` / `live_comments` and the Facebook Page `feed` field.

Payload shapes, from Meta's documentation:
- Instagram: https://developers.facebook.com/docs/graph-api/webhooks/reference/instagram (FBInstagramCommentsField,
  FBInstagramLiveCommentsField) and https://developers.facebook.com/documentation/instagram-platform/webhooks/examples
  (`entry[].changes[]` with `field: comments|live_comments`, `value: {id, from: {id, username, self_ig_scoped_id},
  media: {id, media_product_type}, parent_id, text}`). Instagram sends no edit or removal event and no comment time.
- Facebook Page: https://developers.facebook.com/docs/graph-api/webhooks/reference/page (the `feed` field:
  `value: {item: "comment", verb: add|edited|remove|hide|unhide, comment_id, post_id, parent_id, from: {id, name},
  message, created_time, post: {permalink_url, ...}, photo | video}`; a top-level comment's parent_id is the post id).
  Meta has sent "edit" as well as "edited" (github.com/restfb/restfb/issues/749): both count as an edit.
The page's or account's own comments are those whose author is the webhook entry's id (the account itself).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.handover.comments import IncomingComment

IG_FIELDS = ("comments", "live_comments")
EDIT_VERBS = {"edited": "edit", "edit": "edit", "remove": "remove", "delete": "remove", "hide": "hide", "unhide": "unhide"}
_MENTION = re.compile(r"(?<![\w.])@[\w.]+")


@dataclass(frozen=True)
class CommentChange:
    """An edit, removal, hide or unhide of a comment on the platform."""

    channel: str
    platform_id: str
    verb: str  # edit | remove | hide | unhide
    text: str = ""
    kind: str = "text"
    at: str | None = None


# The two readers of Meta's JSON, shared with bot/channels/meta_webhook.py (it imports this module).
def json_obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: Meta's fields are trusted for nothing but their type."""
    return value if isinstance(value, dict) else {}


def json_str(value: Any) -> str:
    """A JSON string or number as storable text (lone surrogates replaced); lists, objects, null as empty."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return ""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _seconds(value: Any) -> str | None:
    """A Unix time in seconds (or milliseconds) as the log's ISO 8601 UTC string."""
    try:
        number = int(value)
        if number > 10**11:  # milliseconds
            number //= 1000
        return datetime.fromtimestamp(number, timezone.utc).isoformat(timespec="milliseconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def comment_kind(text: str) -> str:
    """text, media (no text: a photo, video or GIF), mention_only (only @names) or emoji_only (no letters or digits)."""
    if not text.strip():
        return "media"
    rest = _MENTION.sub("", text)
    if any(unicodedata.category(ch)[0] in "LN" for ch in rest):
        return "text"
    return "mention_only" if rest != text else "emoji_only"  # @names (with emoji at most), or no words at all


def _instagram(entry_id: str, value: dict[str, Any], field: str, at: str | None) -> IncomingComment | None:
    comment_id, author = json_str(value.get("id")), json_obj(value.get("from"))
    media = json_obj(value.get("media"))
    author_id = json_str(author.get("id"))
    if not comment_id or not author_id or not json_str(media.get("id")):
        return None
    text = json_str(value.get("text")).strip()
    meta = {"field": field, "media_product_type": json_str(media.get("media_product_type"))}
    return IncomingComment(
        "instagram", comment_id, json_str(media.get("id")), author_id, text, json_str(author.get("username")),
        comment_kind(text), json_str(value.get("parent_id")) or None, at, None, None, author_id == entry_id, meta,
    )


def _facebook(entry_id: str, value: dict[str, Any], at: str | None) -> IncomingComment | CommentChange | None:
    comment_id, post_id = json_str(value.get("comment_id")), json_str(value.get("post_id"))
    if not comment_id:
        return None
    verb = json_str(value.get("verb")) or "add"
    text = json_str(value.get("message")).strip()
    has_media = bool(json_str(value.get("photo")) or json_str(value.get("video")))
    kind = comment_kind(text)
    created = _seconds(value.get("created_time")) or at
    if verb != "add":
        change = EDIT_VERBS.get(verb)
        return CommentChange("messenger", comment_id, change, text, kind, created) if change else None
    author = json_obj(value.get("from"))
    author_id = json_str(author.get("id"))
    if not post_id or not author_id:
        return None
    parent = json_str(value.get("parent_id"))
    post = json_obj(value.get("post"))
    meta = {"field": "feed"}
    if has_media:
        meta["media"] = "photo" if json_str(value.get("photo")) else "video"
    return IncomingComment(
        "messenger", comment_id, post_id, author_id, text, json_str(author.get("name")), kind,
        parent if parent and parent != post_id else None, created, json_str(post.get("permalink_url")) or None,
        None, author_id == entry_id, meta,
    )


def parse_changes(channel: str, entry: dict[str, Any]) -> tuple[list[IncomingComment], list[CommentChange], int]:
    """The comments and comment changes in one webhook entry's `changes`; the rest is counted as ignored."""
    comments: list[IncomingComment] = []
    changes: list[CommentChange] = []
    ignored = 0
    entry_id = json_str(entry.get("id"))
    at = _seconds(entry.get("time"))
    items = entry.get("changes")
    for change in items if isinstance(items, list) else []:
        change = json_obj(change)
        field, value = json_str(change.get("field")), json_obj(change.get("value"))
        item: IncomingComment | CommentChange | None = None
        if channel == "instagram" and field in IG_FIELDS:
            item = _instagram(entry_id, value, field, at)
        elif channel == "messenger" and field == "feed" and json_str(value.get("item")) == "comment":
            item = _facebook(entry_id, value, at)
        if isinstance(item, IncomingComment):
            comments.append(item)
        elif isinstance(item, CommentChange):
            changes.append(item)
        else:
            ignored += 1
    return comments, changes, ignored
