"""Comments under the police's posts in the inbox: across posts and per post, sorted by need (the pages).

Officers see emergencies first, then questions and invitations to a DM, then abuse to review, then
the rest; for each comment its post, its author (pseudonym and public name), what the bot did with
it (and Meta's error if that failed), the evidence kept and how often the same author was abusive.
What officers do with a comment is in bot/web/comment_actions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.handover.comments import CommentError, Comments
from bot.web.auth import officer
from bot.web.comment_actions import MAX_REPLY, comment_action, comment_store, find_comment, private_max, private_reason
from bot.web.render import render

__all__ = ["add_comments_routes", "build_row", "build_rows", "comment_links", "comment_store", "private_reason"]

PAGE_SIZE = 50
NEEDS: dict[int, tuple[str, str]] = {  # need -> (css class, section heading)
    0: ("emergency", "🚨 Notfälle"),
    1: ("question", "❓ Fragen und Einladungen in den Chat"),
    2: ("abuse", "🛡️ Beleidigungen und Hass prüfen"),
    3: ("listed", "📋 Zur Kenntnis"),
    9: ("none", "Nichts zu tun (erledigt, eigene Kommentare, Dank, Grüße)"),
}
SECTIONS = (0, 1, 2, 3)  # shown open; need 9 is folded away


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

    @property
    def reviewed(self) -> dict[str, Any] | None:
        """Who marked this abusive comment as seen and done (None: not marked)."""
        return self.comment.reviewed if self.comment.policy == "abuse" else None

    @property
    def reviewable(self) -> bool:
        """An abusive comment still to review: it can be marked as seen and done."""
        return self.comment.policy == "abuse" and self.reviewed is None


def _actions(store: Comments, comment_id: int) -> list[Any]:
    return list(store.actions(comment_id))


def _evidence(store: Comments, comment_id: int) -> list[Any]:
    """The comment's evidence, newest first."""
    return list(reversed(store.evidence(comment_id)))


def build_rows(store: Comments, comments: list[Any], posts: dict[int, Any]) -> list[Row]:
    """Rows for many comments with one query each for their posts, actions, evidence and repeat authors."""
    ids = [c.id for c in comments]
    missing = [c.post_id for c in comments if c.post_id is not None and c.post_id not in posts]
    posts.update(store.posts(missing) if missing else {})
    actions = store.actions_by_comment(ids)
    evidence = store.evidence_by_comment(ids)
    abusive = [(c.channel, c.author) for c in comments if c.author and c.policy == "abuse"]
    repeats = store.author_counts(abusive) if abusive else {}
    rows = []
    for c in comments:
        window_open = bool(store.private_window_open(c))  # by the log's clock
        rows.append(Row(c, posts.get(c.post_id), actions[c.id], evidence[c.id][::-1], repeats.get((c.channel, c.author), 0),
                        window_open, private_reason(c, actions[c.id], window_open)))
    return rows


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
    listed: list[tuple[int, list[Any]]] = []
    more = False
    for need in (*SECTIONS, 9):
        found = store.list(post_id=post_id, need=need, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        more = more or len(found) > PAGE_SIZE
        listed.append((need, found[:PAGE_SIZE]))
    rows = iter(build_rows(store, [c for _, found in listed for c in found], posts))
    sections = [(need, NEEDS[need][0], NEEDS[need][1], [next(rows) for _ in found]) for need, found in listed]
    base = f"/inbox/kommentare/post/{post_id}" if post_id is not None else "/inbox/kommentare"
    return {
        "sections": sections,
        "post": post,
        "overview": store.posts_overview() if post_id is None else [],
        "undecided": store.count_undecided(),
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


def _one_context(request: web.Request) -> dict[str, Any]:
    store, comment = find_comment(request)
    row = build_row(store, comment)
    parent = store.by_platform(comment.channel, comment.parent_platform_id) if comment.parent_platform_id else None
    return {"row": row, "c": comment, "parent": parent, "session": officer(request), "safe_url": safe_url,
            "kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS, "back": f"/inbox/kommentare/{comment.id}",
            "max_reply": MAX_REPLY, "max_private": private_max(comment)}


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
