"""Comments under the police's posts in the inbox: across posts and per post, sorted by need, and what officers do.

Officers see emergencies first, then questions and invitations to a DM, then abuse to review, then
the rest; for each comment its post, its author (pseudonym and public name), what the bot did with
it (and Meta's error if that failed), the evidence kept and how often the same author was abusive.
Actions are planned in the comment store (bot/handover/comments.py) and carried out by the comment
executor (bot/channels/comment_executor.py); this module never talks to Meta itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from bot.handover.comments import CommentError, Comments
from bot.web.auth import officer
from bot.web.keys import COMMENTS, HUB, SERVICES
from bot.web.live import INBOX
from bot.web.render import render

PAGE_SIZE = 50
MAX_REPLY = 2000  # characters; Instagram allows 2,200 in a comment, Messenger 2,000 in a message
NEEDS: dict[int, tuple[str, str]] = {  # need -> (css class, section heading)
    0: ("emergency", "🚨 Notfälle"),
    1: ("question", "❓ Fragen und Einladungen in den Chat"),
    2: ("abuse", "🛡️ Beleidigungen und Hass prüfen"),
    3: ("listed", "📋 Zur Kenntnis"),
    9: ("none", "Nichts zu tun (eigene Kommentare, Dank, Grüße)"),
}
SECTIONS = (0, 1, 2, 3)  # shown open; need 9 is folded away
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


@dataclass(frozen=True)
class Row:
    """One comment as officers see it: with its post, what was done, the evidence and why no private reply."""

    comment: Any
    post: Any
    actions: list[Any]
    evidence: list[Any]
    repeats: int  # abusive comments by the same pseudonym
    window_open: bool
    private_reason: str | None  # why a private reply is not possible (None: it is)

    @property
    def need(self) -> int:
        return 9 if self.comment.need is None else int(self.comment.need)

    @property
    def css(self) -> str:
        return NEEDS.get(self.need, NEEDS[9])[0]

    @property
    def kept(self) -> list[Any]:
        """Evidence still kept (not released)."""
        return [e for e in self.evidence if not e.released_at]

    @property
    def complaint(self) -> bool:
        return any(e.complaint for e in self.kept)

    @property
    def private_reply(self) -> Any:
        """The private reply sent or on its way (failed ones do not count)."""
        return next((a for a in self.actions if a.kind == "private_reply" and a.status != "failed"), None)

    @property
    def gone(self) -> bool:
        return bool(self.comment.deleted or self.comment.removed_at)


def _actions(store: Comments, comment_id: int) -> list[Any]:
    return list(store.actions(comment_id))


def _evidence(store: Comments, comment_id: int) -> list[Any]:
    """The comment's evidence, newest first."""
    return list(reversed(store.evidence(comment_id)))


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


def build_row(store: Comments, comment: Any, posts: dict[int, Any] | None = None) -> Row:
    """Everything the inbox shows about one comment."""
    posts = posts if posts is not None else {}
    if comment.post_id not in posts:
        try:
            posts[comment.post_id] = store.post(comment.post_id) if comment.post_id is not None else None
        except (LookupError, ValueError, CommentError):
            posts[comment.post_id] = None
    actions = _actions(store, comment.id)
    window_open = bool(store.private_window_open(comment))  # by the log's clock
    repeats = store.author_count(comment.channel, comment.author) if comment.author and comment.policy == "abuse" else 0
    return Row(comment, posts[comment.post_id], actions, _evidence(store, comment.id), repeats,
               window_open, private_reason(comment, actions, window_open))


def _page(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("seite", "1")))
    except ValueError:
        return 1


def _post_id(request: web.Request) -> int | None:
    return int(request.match_info["post"]) if "post" in request.match_info else None


def _list_context(request: web.Request) -> dict[str, Any]:
    store = comment_store(request.app)
    post_id, page = _post_id(request), _page(request)
    posts: dict[int, Any] = {}
    post = None
    if post_id is not None:
        try:
            post = store.post(post_id)
        except (LookupError, ValueError, CommentError):
            raise web.HTTPNotFound(text="Diesen Beitrag gibt es nicht (mehr).") from None
        posts[post_id] = post
    sections = []
    more = False
    for need in (*SECTIONS, 9):
        found = store.list(post_id=post_id, need=need, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        more = more or len(found) > PAGE_SIZE
        rows = [build_row(store, c, posts) for c in found[:PAGE_SIZE]]
        sections.append((need, NEEDS[need][0], NEEDS[need][1], rows))
    base = f"/inbox/kommentare/post/{post_id}" if post_id is not None else "/inbox/kommentare"
    return {
        "sections": sections,
        "post": post,
        "overview": store.posts_overview() if post_id is None else [],
        "undecided": len(store.undecided()),
        "page": page,
        "more": more,
        "base": base,
        "back": base + (f"?seite={page}" if page > 1 else ""),
        "session": officer(request),
        "safe_url": safe_url,
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
    }


KIND_LABELS = {"public_reply": "Öffentliche Antwort", "private_reply": "Private Antwort (DM)", "hide": "Ausblenden",
               "unhide": "Wieder einblenden", "delete": "Löschen"}
STATUS_LABELS = {"pending": "wird ausgeführt", "sending": "wird gesendet", "sent": "erledigt", "failed": "fehlgeschlagen",
                 "unknown": "unklar"}


def safe_url(url: str | None) -> str | None:
    """A link to the post on Instagram or Facebook, or None (never a javascript: or other scheme)."""
    return url if url and url.startswith("https://") else None


def _comment(request: web.Request) -> tuple[Comments, Any]:
    store = comment_store(request.app)
    try:
        return store, store.get(int(request.match_info["id"]))
    except (LookupError, ValueError, CommentError):
        raise web.HTTPNotFound(text="Diesen Kommentar gibt es nicht (mehr).") from None


def _one_context(request: web.Request) -> dict[str, Any]:
    store, comment = _comment(request)
    row = build_row(store, comment)
    parent = store.by_platform(comment.channel, comment.parent_platform_id) if comment.parent_platform_id else None
    return {"row": row, "c": comment, "parent": parent, "session": officer(request), "safe_url": safe_url,
            "kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS, "back": f"/inbox/kommentare/{comment.id}",
            "max_reply": MAX_REPLY}


async def comments_page(request: web.Request) -> web.Response:
    """Comments across posts (or under one post), sorted by need."""
    context = _list_context(request)
    return render(request, "comments.html", fragment=context["base"] + "/live" + _query(context["page"]), **context)


async def comments_fragment(request: web.Request) -> web.Response:
    """Only the live list (the page swaps it in on every comment event)."""
    return render(request, "comments_list.html", **_list_context(request))


async def comment_page(request: web.Request) -> web.Response:
    """One comment: its post, what was done, the evidence, the linked DM, and the reply forms."""
    return render(request, "comments_one.html", **_one_context(request))


async def comment_fragment(request: web.Request) -> web.Response:
    """Only the live part of one comment."""
    return render(request, "comments_one_live.html", **_one_context(request))


def _query(page: int) -> str:
    return f"?seite={page}" if page > 1 else ""


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


def _priority(comment: Any) -> int:
    return 0 if comment.need == 0 else 5


Action = Callable[[Comments, Any, str, Any], None]


def _reply_public(store: Comments, comment: Any, who: str, form: Any) -> None:
    store.plan(comment.id, "public_reply", _text(form), officer=who, priority=_priority(comment))


def _reply_private(store: Comments, comment: Any, who: str, form: Any) -> None:
    text = _text(form)
    reason = private_reason(comment, _actions(store, comment.id), bool(store.private_window_open(comment)))
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
    if evidence_id not in {e.id for e in _evidence(store, comment.id)}:
        raise web.HTTPBadRequest(text="Dieser Beweis gehört nicht zu diesem Kommentar.")
    store.release(evidence_id, who)


ACTIONS: dict[str, Action] = {
    "reply-public": _reply_public, "reply-private": _reply_private, "hide": _hide, "unhide": _unhide,
    "delete": _delete, "evidence": _keep, "complaint": _complaint, "release": _release,
}


async def comment_action(request: web.Request) -> web.Response:
    """Carry out one officer action on a comment; a refused one (409) says why."""
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound(text="Diese Aktion gibt es nicht.")
    store, comment = _comment(request)
    form = await request.post()
    try:
        action(store, comment, officer(request).officer, form)
    except CommentError as err:
        raise web.HTTPConflict(text=str(err)) from None
    await _kick(request.app)
    changed = store.get(comment.id)
    request.app[HUB].publish(INBOX, {"kind": "comment", "comment_id": changed.id, "need": changed.need})
    raise _back(form, comment.id)


def comment_links(request: web.Request, conversation_id: int) -> list[Any]:
    """The comments whose private reply opened this DM conversation (for the conversation page)."""
    return list(comment_store(request.app).for_conversation(conversation_id))


def add_comments_routes(app: web.Application) -> None:
    """The comment pages and actions (all behind the officer guard: login and CSRF)."""
    app.router.add_get("/inbox/kommentare", comments_page)
    app.router.add_get("/inbox/kommentare/live", comments_fragment)
    app.router.add_get(r"/inbox/kommentare/post/{post:\d+}", comments_page)
    app.router.add_get(r"/inbox/kommentare/post/{post:\d+}/live", comments_fragment)
    app.router.add_get(r"/inbox/kommentare/{id:\d+}", comment_page)
    app.router.add_get(r"/inbox/kommentare/{id:\d+}/live", comment_fragment)
    app.router.add_post(r"/inbox/kommentare/{id:\d+}/{action}", comment_action)
