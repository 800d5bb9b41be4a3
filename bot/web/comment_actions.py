"""What officers do with a comment in the inbox: reply publicly or privately, hide, unhide, delete, keep evidence.

Every action is planned in the comment store (bot/handover/comments.py) and carried out by the comment
executor (bot/channels/comment_executor.py); this module never talks to Meta itself. A public reply is
checked first (bot/public_reply.py): personal and case details belong in the private reply. A hidden
abusive comment can be marked as seen and done ("gesehen/erledigt") and the mark undone.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from aiohttp import web

from bot.handover.comment_rows import private_text_max, private_too_long
from bot.handover.comments import CommentError, Comments
from bot.public_reply import own_numbers, refusal, scan
from bot.web.auth import officer
from bot.web.keys import COMMENTS, HUB, SERVICES
from bot.web.live import INBOX

MAX_REPLY = 2000  # characters; Instagram allows 2,200 in a comment, Messenger 2,000 in a message
ALREADY_PRIVATE = "Auf diesen Kommentar wurde schon privat geantwortet."
WINDOW_PASSED = "Älter als 7 Tage: eine private Antwort ist nicht mehr möglich."
GONE = "Der Kommentar wurde gelöscht."
OWN = "Das ist ein eigener Kommentar."
UNKNOWN = "Ob die private Antwort angekommen ist, ist unklar. Bitte in der App prüfen; ein zweites Mal geht nicht."


def comment_store(app: web.Application) -> Comments:
    """The comment store: the Meta channel's (with its executor) or one on the handover log."""
    wired = _wired(app)
    return wired.store if wired is not None else Comments(app[SERVICES].handover)


def _wired(app: web.Application) -> Any:
    return app.get(COMMENTS)  # set only when a Meta channel is configured


async def _kick(app: web.Application) -> None:
    """Wake the executor so a planned action goes out now, not at its next round."""
    wired = _wired(app)
    if wired is not None and getattr(wired, "executor", None) is not None:
        await wired.executor.kick()


def private_reason(comment: Any, actions: list[Any], window_open: bool) -> str | None:
    """Why an officer cannot answer this comment privately (None: they can)."""
    if comment.own:
        return OWN
    if comment.deleted or comment.removed_at:
        return GONE
    sent = [a for a in actions if a.kind == "private_reply" and a.status != "failed"]
    if sent:
        return UNKNOWN if sent[-1].status == "unknown" else ALREADY_PRIVATE
    if not window_open:
        return WINDOW_PASSED
    return None


def find_comment(request: web.Request) -> tuple[Comments, Any]:
    store = comment_store(request.app)
    try:
        return store, store.get(int(request.match_info["id"]))
    except (LookupError, ValueError, CommentError):
        raise web.HTTPNotFound(text="Diesen Kommentar gibt es nicht (mehr).") from None


def _back(form: Any, comment_id: int) -> web.HTTPSeeOther:
    """Back to the page the officer came from (only comment pages), else to the comment."""
    target = str(form.get("back", ""))
    if not (target.startswith("/inbox/kommentare") and "//" not in target and "\\" not in target):
        target = f"/inbox/kommentare/{comment_id}"
    return web.HTTPSeeOther(target + ("" if "#" in target or "?" in target else f"#k{comment_id}"))


def _text(form: Any) -> str:
    text = str(form.get("text", "")).strip()
    if not text:
        raise web.HTTPBadRequest(text="Bitte schreib eine Antwort.")
    if len(text) > MAX_REPLY:
        raise web.HTTPBadRequest(text=f"Die Antwort ist zu lang (höchstens {MAX_REPLY} Zeichen).")
    return text


def private_max(comment: Any) -> int:
    """The private reply form's maxlength: what the comment's channel takes in one message."""
    return min(MAX_REPLY, private_text_max(comment.channel))


def _priority(comment: Any) -> int:
    return 0 if comment.need == 0 else 5


def department_numbers(app: web.Application) -> frozenset[str]:
    """The department's own public phone numbers (data/department.yml `non_emergency_phone`): fine in public."""
    values = getattr(app[SERVICES].triage.responses, "values", {}) or {}
    return own_numbers(*(v.get("non_emergency_phone", "") for v in values.values()))


def check_public(comment: Any, text: str, numbers_ok: frozenset[str] = frozenset()) -> None:
    """Refuse (400) a public reply with personal or case details, saying what was found."""
    names = [comment.author_name, comment.author]
    mention_ok = [comment.author_name] if comment.channel == "instagram" else []  # the commenter's @username
    found = scan(text, names=names, mention_ok=mention_ok, numbers_ok=numbers_ok)
    if found:
        raise web.HTTPBadRequest(text=refusal(found))


Action = Callable[[Comments, Any, str, Any], None]


def _reply_public(store: Comments, comment: Any, who: str, form: Any, numbers_ok: frozenset[str] = frozenset()) -> None:
    text = _text(form)
    check_public(comment, text, numbers_ok)
    store.plan(comment.id, "public_reply", text, officer=who, priority=_priority(comment))


def _reply_private(store: Comments, comment: Any, who: str, form: Any) -> None:
    text = _text(form)
    too_long = private_too_long(comment.channel, text)
    if too_long:  # Meta takes one message only; never cut what the officer wrote
        raise web.HTTPBadRequest(text=too_long)
    reason = private_reason(comment, store.actions(comment.id), bool(store.private_window_open(comment)))
    if reason:
        raise CommentError(reason)
    store.plan(comment.id, "private_reply", text, officer=who, priority=_priority(comment))


def _hide(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.plan(comment.id, "hide", officer=who, priority=_priority(comment))


def _unhide(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.plan(comment.id, "unhide", officer=who, priority=_priority(comment))


def _delete(store: Comments, comment: Any, who: str, form: Any) -> None:
    if str(form.get("confirm", "")) != "ja":
        raise web.HTTPBadRequest(text="Bitte bestätige das Löschen (Häkchen setzen).")
    store.plan(comment.id, "delete", officer=who, priority=_priority(comment))


def _keep(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.capture_evidence(comment.id, who)


def _complaint(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.mark_complaint(comment.id, who)  # captures the evidence first if there is none


def _release(store: Comments, comment: Any, who: str, form: Any) -> None:
    try:
        evidence_id = int(str(form.get("evidence_id", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="Welcher Beweis? (evidence_id fehlt)") from None
    if evidence_id not in {e.id for e in store.evidence(comment.id)}:
        raise web.HTTPBadRequest(text="Dieser Beweis gehört nicht zu diesem Kommentar.")
    store.release(evidence_id, who)


def _reviewed(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.mark_reviewed(comment.id, who)


def _unreviewed(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.undo_reviewed(comment.id, who)


ACTIONS: dict[str, Action] = {
    "reply-public": _reply_public, "reply-private": _reply_private, "hide": _hide, "unhide": _unhide,
    "delete": _delete, "evidence": _keep, "complaint": _complaint, "release": _release,
    "reviewed": _reviewed, "unreviewed": _unreviewed,
}


async def comment_action(request: web.Request) -> web.Response:
    """Carry out one officer action on a comment; a refused one says why (409; 400 for bad input)."""
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound(text="Diese Aktion gibt es nicht.")
    store, comment = find_comment(request)
    form = await request.post()
    if action is _reply_public:
        action = partial(_reply_public, numbers_ok=department_numbers(request.app))
    try:
        action(store, comment, officer(request).officer, form)
    except CommentError as err:
        raise web.HTTPConflict(text=str(err)) from None
    await _kick(request.app)
    changed = store.get(comment.id)
    request.app[HUB].publish(INBOX, {"kind": "comment", "comment_id": changed.id, "need": changed.need})
    raise _back(form, comment.id)
