"""Comments under posts through the Graph API: public and private replies, hide, delete, list.

Instagram (API with Facebook Login, host graph.facebook.com):
- comment moderation: https://developers.facebook.com/docs/instagram-platform/comment-moderation
- reply: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment/replies
  (`POST /{ig-comment-id}/replies?message=`; no replies to hidden comments; replies to a reply land on the top comment)
- hide/unhide, delete: `POST /{ig-comment-id}?hide=true|false`, `DELETE /{ig-comment-id}` (reference/ig-comment)
- list: `GET /{ig-media-id}/comments` (reference/ig-media/comments)
- private reply: https://developers.facebook.com/documentation/instagram-platform/private-replies
  (`POST /{ig-user-id}/messages` with `recipient: {"comment_id": ...}`; one message, within 7 days of the comment)
Facebook Page:
- reply, hide, delete: https://developers.facebook.com/docs/graph-api/reference/comment (`POST /{comment-id}/comments`,
  `POST /{comment-id}?is_hidden=true|false` since v2.2, `DELETE /{comment-id}`)
- private reply: https://developers.facebook.com/documentation/business-messaging/messenger-platform/discovery/private-replies
  (`POST /{page-id}/messages` with `recipient: {"comment_id": ...}`; one message, within 7 days)
Errors: https://developers.facebook.com/docs/graph-api/guides/error-handling,
https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes;
rate limits and their headers: https://developers.facebook.com/docs/graph-api/overview/rate-limiting/
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from bot.channels.meta_send import LABELS, RATE_LIMIT_CODES, TRANSIENT_CODES
from bot.handover.comment_rows import PRIVATE_TEXT_MAX, private_too_long
from bot.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=3)
MAX_PRIVATE_TEXT = PRIVATE_TEXT_MAX  # one message only: a private reply cannot be split, and is never cut
MAX_PAGES = 20  # comments() follows `paging.next` at most this often
GONE = (100, 33)  # "Object with ID ... does not exist, cannot be loaded due to missing permissions, or does not support this operation"
OUTSIDE_WINDOW = (10, 2018278)  # "This message is sent outside of allowed window": also Meta's answer to a second private reply
ALREADY_REPLIED = 10900  # "Activity already replied to" (the legacy private_replies edge; not in today's tables)
CANNOT_REPLY = 10903  # "This user can't reply to this activity" (blocked, or the 7 days passed)
RATE_LIMITS = RATE_LIMIT_CODES | {80001}  # plus the Pages business-use-case limit (80002: Instagram, 80006: Messenger)


class CommentApiError(Exception):
    """A Graph API call on a comment failed.

    `final`: retrying will not help. `officer_text`: German, for the inbox. `retry_after`: seconds Meta asks
    to wait (rate limits), if it said. `reason`: "gone", "private_closed", "unavailable", "rate_limit",
    "transient", "maybe_sent" (no answer after the request left: it may have arrived), "token", "rejected".
    """

    def __init__(self, message: str, final: bool, officer_text: str, retry_after: float | None = None,
                 reason: str = "rejected", code: int | None = None, subcode: int | None = None, status: int = 0) -> None:
        super().__init__(message)
        self.final = final
        self.officer_text = officer_text
        self.retry_after = retry_after
        self.reason = reason
        self.code, self.subcode, self.status = code, subcode, status

    @property
    def maybe_sent(self) -> bool:
        """True when the request may have reached Meta although no answer came back."""
        return self.reason == "maybe_sent"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from Retry-After or the usage headers' `estimated_time_to_regain_access` (minutes)."""
    value = headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value)
    minutes = []
    for name in ("X-Business-Use-Case-Usage", "X-Ad-Account-Usage"):
        try:
            usage = json.loads(headers.get(name) or "{}")
        except ValueError:
            continue
        for entries in (usage.values() if isinstance(usage, dict) else []):
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict) and isinstance(entry.get("estimated_time_to_regain_access"), (int, float)):
                    minutes.append(entry["estimated_time_to_regain_access"])
    return 60.0 * max(minutes) if minutes else None


def classify(status: int, body: Any, headers: Any, label: str, private: bool = False) -> CommentApiError:
    """Meta's error answer as a CommentApiError with a text for officers."""
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or f"HTTP {status}")
    ref = (f"Code {code}" + (f"/{subcode}" if subcode else "")) if code else f"HTTP {status}"
    args = {"code": code, "subcode": subcode, "status": status}
    if (code, subcode) == GONE:
        return CommentApiError(message, True, f"Nicht möglich: Den Kommentar gibt es auf {label} nicht mehr "
                               f"(gelöscht oder nicht sichtbar, {ref}).", reason="gone", **args)
    if private and ((code, subcode) == OUTSIDE_WINDOW or code in (ALREADY_REPLIED, CANNOT_REPLY)):
        return CommentApiError(message, True, f"Nicht gesendet: {label} lässt keine private Antwort mehr zu. Entweder "
                               "wurde schon privat geantwortet (auch in der App möglich), die 7 Tage sind um, oder die "
                               f"Person hat die Seite blockiert ({ref}).", reason="private_closed", **args)
    if code == 551:
        return CommentApiError(message, True, f"Nicht gesendet: Die Person ist auf {label} gerade nicht erreichbar "
                               f"({ref}).", reason="unavailable", **args)
    if code == 190:
        return CommentApiError(message, True, f"Nicht möglich: Der Zugangsschlüssel für {label} ist ungültig oder "
                               f"abgelaufen ({ref}). Bitte die Technik informieren.", reason="token", **args)
    if code in RATE_LIMITS or status == 429:
        return CommentApiError(message, False, f"Noch nicht erledigt: {label} begrenzt gerade die Zahl der Aufrufe "
                               f"({ref}). Wird automatisch erneut versucht.", _retry_after(headers), "rate_limit", **args)
    if status >= 500 or code in TRANSIENT_CODES or error.get("is_transient"):
        return CommentApiError(message, False, f"Noch nicht erledigt: {label} ist gerade gestört ({ref}). Wird "
                               "automatisch erneut versucht.", _retry_after(headers), "transient", **args)
    return CommentApiError(message, True, f"Nicht möglich: {label} lehnt das ab: {message} ({ref}).", **args)


class GraphComments:
    """The comment calls of the Graph API for Instagram and the Facebook Page (channel "messenger")."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self.session = session
        self.base = f"{settings.graph_api_base_url.rstrip('/')}/{settings.graph_api_version}"
        self.accounts = {
            "instagram": (settings.instagram_account_id, settings.instagram_access_token),
            "messenger": (settings.messenger_page_id or "me", settings.messenger_access_token),
        }

    def configured(self, channel: str) -> bool:
        """True when this channel has a token (and, for Instagram, an account id)."""
        account, token = self.accounts.get(channel, ("", ""))
        return bool(token and account)

    async def reply_public(self, channel: str, comment_id: str, text: str) -> str:
        """Answer under the comment; the new comment's id."""
        if channel == "instagram":  # documented as a query parameter
            data = await self._call(channel, "POST", f"{comment_id}/replies", params={"message": text})
        else:
            data = await self._call(channel, "POST", f"{comment_id}/comments", form={"message": text})
        return str(data.get("id") or "")

    async def reply_private(self, channel: str, comment_id: str, text: str) -> tuple[str, str]:
        """The one private reply to the comment's author: (recipient_id, message_id); the DM's chat id is recipient_id."""
        account = self.accounts[channel][0]
        too_long = private_too_long(channel, text.strip())
        if too_long:  # never cut: the transcript must show what Meta got
            raise CommentApiError("private reply too long", True, f"Nicht gesendet: {too_long}")
        body = {"recipient": {"comment_id": comment_id}, "message": {"text": text.strip()}}
        data = await self._call(channel, "POST", f"{account}/messages", json_body=body, private=True)
        return str(data.get("recipient_id") or ""), str(data.get("message_id") or "")

    async def hide(self, channel: str, comment_id: str, hidden: bool) -> None:
        """Hide (or unhide) the comment: the author and their friends still see it, everyone else not."""
        flag = "true" if hidden else "false"
        if channel == "instagram":
            await self._call(channel, "POST", comment_id, params={"hide": flag})
        else:
            await self._call(channel, "POST", comment_id, params={"is_hidden": flag})

    async def delete(self, channel: str, comment_id: str) -> None:
        """Delete the comment (after the evidence was kept)."""
        await self._call(channel, "DELETE", comment_id)

    async def comments(self, channel: str, media_id: str) -> list[dict[str, Any]]:
        """A post's comments: [{"id", "text", "created_at", "author_id", "author_name", "parent_id"}]."""
        if channel == "instagram":
            fields = "id,text,timestamp,username,from,parent_id,hidden"
        else:
            fields = "id,message,created_time,from,parent,is_hidden"
        data = await self._call(channel, "GET", f"{media_id}/comments", params={"fields": fields, "limit": "100"})
        found = list(data.get("data") or [])
        for _ in range(MAX_PAGES):
            following = (data.get("paging") or {}).get("next")
            if not following:
                break
            data = await self._call(channel, "GET", following)
            found.extend(data.get("data") or [])
        return [self._comment(c) for c in found if isinstance(c, dict)]

    async def replies(self, channel: str, comment_id: str) -> list[dict[str, Any]]:
        """Replies under one comment (to check whether our public reply arrived after a lost answer)."""
        edge = "replies" if channel == "instagram" else "comments"
        fields = "id,text,timestamp,username,from" if channel == "instagram" else "id,message,created_time,from"
        data = await self._call(channel, "GET", f"{comment_id}/{edge}", params={"fields": fields})
        return [self._comment(c) for c in data.get("data") or [] if isinstance(c, dict)]

    @staticmethod
    def _comment(raw: dict[str, Any]) -> dict[str, Any]:
        author = raw.get("from") if isinstance(raw.get("from"), dict) else {}
        parent = raw.get("parent") if isinstance(raw.get("parent"), dict) else {}
        return {
            "id": str(raw.get("id") or ""), "text": str(raw.get("text") or raw.get("message") or ""),
            "created_at": raw.get("timestamp") or raw.get("created_time"), "author_id": author.get("id"),
            "author_name": raw.get("username") or author.get("username") or author.get("name"),
            "parent_id": raw.get("parent_id") or parent.get("id"),
            "hidden": bool(raw.get("hidden") or raw.get("is_hidden")),
        }

    async def _call(self, channel: str, method: str, path: str, params: dict[str, str] | None = None,
                    form: dict[str, str] | None = None, json_body: dict[str, Any] | None = None,
                    private: bool = False) -> dict[str, Any]:
        """One request; the JSON answer, or CommentApiError."""
        label = LABELS.get(channel, channel)
        _, token = self.accounts[channel]
        url = path if path.startswith("http") else f"{self.base}/{path}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self.session.request(method, url, params=params, data=form, json=json_body,
                                            headers=headers, timeout=TIMEOUT) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                if response.status == 200 and isinstance(data, dict) and not data.get("error"):
                    return data
                error = classify(response.status, data, response.headers, label, private)
        except aiohttp.ClientConnectorError as err:  # no connection: the request never left
            error = CommentApiError(str(err), False, f"Noch nicht erledigt: {label} ist nicht erreichbar. "
                                    "Wird automatisch erneut versucht.", reason="transient")
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:  # sent, but no answer: it may have arrived
            error = CommentApiError(str(err) or type(err).__name__, False, f"Unklar: {label} hat nicht geantwortet; "
                                    "der Auftrag ist vielleicht angekommen.", reason="maybe_sent")
        log.warning("%s %s %s failed: %s (%s)", label, method, path.split("?")[0][-60:], error, error.reason)
        raise error
