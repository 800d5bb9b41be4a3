"""The inbox side of accounts and the shift: /inbox/konten (admins), /inbox/ich, assignment, presence.

Presence lives in memory in this instance (bot/handover/accounts.py): a middleware notes every
officer request and every open live stream (/inbox/events); changes go out on the inbox's live
stream as {"kind": "presence"}, and triage asks it before promising a quick answer. With several
instances each one tells the others who is online on it (bot/cluster_live.py).
"""

from __future__ import annotations

import asyncio

from typing import AsyncIterator

from aiohttp import web

from bot.cluster_live import PresenceShare, SharedPresence, share_presence
from bot.handover import HandoverError
from bot.handover.accounts import AccountError, Accounts, Presence
from bot.handover.officers import MIN_PASSWORD_LENGTH, LockedOut, _hash_token, hash_password
from bot.web.auth import LOGIN_PATH, SESSION, SESSION_COOKIE, Handler, officer
from bot.web.intake import client_address
from bot.web.keys import HUB, OFFICERS, SERVICES
from bot.web.live import INBOX, conversation_data, session_topic
from bot.web.render import render

PRESENCE = web.AppKey("presence", Presence)
SHARE = web.AppKey("presence_share", PresenceShare)
EVENTS_PATH = "/inbox/events"
PRESENCE_PATH = "/inbox/presence"  # polled by presence.js: not a sign of life by itself
DONE = {  # ?ok=... after a change (fixed texts: nothing from the URL is echoed)
    "neu": "Das Konto ist angelegt.",
    "deaktiviert": "Das Konto ist deaktiviert; seine Sitzungen sind beendet.",
    "aktiviert": "Das Konto ist wieder aktiv.",
    "rolle": "Die Rolle ist geändert.",
    "passwort": "Dein Passwort ist geändert. Deine anderen Sitzungen sind beendet.",
    "sitzung": "Die Sitzung ist beendet.",
}


def _accounts(request: web.Request) -> Accounts:
    return Accounts(request.app[OFFICERS])


def _close_streams(request: web.Request, name: str, token_hash: str | None = None) -> None:
    """End the open live streams of `name` (of one session), at once."""
    presence = request.app[PRESENCE]
    for token in presence.tokens(name, token_hash):
        request.app[HUB].close_topic(session_topic(token))
    presence.forget(name, token_hash)  # after closing: the ended streams do not hear about it
    if SHARE in request.app:  # the officer's streams on the other instances end too
        request.app[SHARE].forget(name, token_hash)


@web.middleware
async def presence_tracker(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note who is online: a request (not the presence poll) or an open live stream; forget them at logout."""
    session = request.get(SESSION)  # set by the officer guard on inbox pages
    if session is None:
        return await handler(request)
    presence = request.app[PRESENCE]
    if request.path == EVENTS_PATH:
        presence.stream_opened(session.officer, session.token)  # before subscribing: the page does not hear itself arrive
        try:
            return await handler(request)
        finally:
            presence.stream_closed(session.officer, session.token)
    if request.path == "/inbox/logout":
        try:
            return await handler(request)
        finally:
            presence.forget(session.officer, _hash_token(session.token))
    if request.path != PRESENCE_PATH:
        presence.seen(session.officer)
    return await handler(request)


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Wire presence to the live stream and to triage's handover reply while the app runs."""
    presence, hub, triage = app[PRESENCE], app[HUB], app[SERVICES].triage
    share = share_presence(presence, hub, app[SERVICES].dispatcher.cluster)
    if share is not None:
        app[SHARE] = share

    def changed() -> None:
        if share is not None:
            share.share()  # the other instances publish {"kind": "presence"} to their pages themselves
        hub.publish(INBOX, {"kind": "presence"}, relay=False)

    presence.on_change = changed
    triage.team_online = presence.anyone_online
    try:
        yield
    finally:
        presence.on_change = None
        triage.team_online = None
        if share is not None:
            share.detach()


def _admin(request: web.Request) -> None:
    if officer(request).role != "admin":
        raise web.HTTPForbidden(text="Diese Seite ist nur für Admins.")


def _accounts_page(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    online = {o.name for o in request.app[PRESENCE].online()}
    return render(request, "accounts.html", status, session=officer(request), accounts=_accounts(request).roster(),
                  online=online, error=error, done=DONE.get(request.query.get("ok", "")),
                  min_length=MIN_PASSWORD_LENGTH)


async def accounts_page(request: web.Request) -> web.Response:
    """Admins: every account with its role and state; add, deactivate, reactivate, change roles."""
    _admin(request)
    return _accounts_page(request)


async def account_change(request: web.Request) -> web.Response:
    """Admins: carry out one change from the accounts page (which one is in the path)."""
    _admin(request)
    form = await request.post()
    accounts, me, what = _accounts(request), officer(request).officer, request.match_info["what"]
    name = str(form.get("name", "")).strip()
    try:
        if what == "neu":
            password, role = str(form.get("password", "")), "admin" if form.get("admin") else "officer"
            hashed = await asyncio.to_thread(hash_password, password) if len(password) >= MIN_PASSWORD_LENGTH else None
            accounts.add(name, password, role, me, hashed=hashed)  # only the hash runs in a thread: the database stays on the loop
        elif what == "deaktiviert":
            accounts.deactivate(name, me)
            _close_streams(request, name)
        elif what == "aktiviert":
            accounts.reactivate(name, me)
        else:
            accounts.set_role(name, str(form.get("role", "")), me)
    except AccountError as err:
        return _accounts_page(request, str(err), 400)
    raise web.HTTPSeeOther(f"/inbox/konten?ok={what}")


def _me_page(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    session = officer(request)
    return render(request, "me.html", status, session=session, sessions=_accounts(request).sessions(session.officer),
                  current=_hash_token(session.token), error=error, done=DONE.get(request.query.get("ok", "")),
                  min_length=MIN_PASSWORD_LENGTH)


async def me_page(request: web.Request) -> web.Response:
    """Every officer: change the password, see and end the own sessions."""
    return _me_page(request)


async def change_password(request: web.Request) -> web.Response:
    """Set a new password (the old one first); the officer's other sessions end."""
    form = await request.post()
    new = str(form.get("new", ""))
    if new != str(form.get("new_again", "")):
        return _me_page(request, "Die beiden neuen Passwörter sind nicht gleich.", 400)
    session = officer(request)
    try:
        ended = await _accounts(request).change_password(session, str(form.get("old", "")), new, client_address(request))
    except LockedOut as err:
        response = _me_page(request, "Zu viele falsche Versuche. Bitte warte ein paar Minuten.", 429)
        response.headers["Retry-After"] = str(max(1, round(err.retry_after)))
        return response
    except AccountError as err:
        return _me_page(request, str(err), 400)
    for token_hash in ended:
        _close_streams(request, session.officer, token_hash)
    raise web.HTTPSeeOther("/inbox/ich?ok=passwort")


async def end_session(request: web.Request) -> web.Response:
    """End one of your own sessions (this one too: then you are logged out)."""
    form = await request.post()
    session, token_hash = officer(request), str(form.get("session", ""))
    if not _accounts(request).end_session(session.officer, token_hash):
        return _me_page(request, "Diese Sitzung gibt es nicht (mehr).", 404)
    _close_streams(request, session.officer, token_hash)
    if token_hash == _hash_token(session.token):
        response = web.HTTPSeeOther(LOGIN_PATH)
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response
    raise web.HTTPSeeOther("/inbox/ich?ok=sitzung")


async def presence_fragment(request: web.Request) -> web.Response:
    """Who is online now (the header's `#presence`, refreshed by presence.js)."""
    return render(request, "_presence.html", online=request.app[PRESENCE].online(), session=officer(request), ago=_ago)


def _ago(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} Min."


async def assign(request: web.Request) -> web.Response:
    """Hand the chat to a named, active colleague: it is theirs now, and their pages hear it at once."""
    form = await request.post()
    me = officer(request).officer
    to = str(form.get("officer", "")).strip()
    try:
        conv = _accounts(request).assign(int(request.match_info["id"]), to, me)
    except AccountError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    except (ValueError, HandoverError):
        raise web.HTTPNotFound(text="Diesen Chat gibt es nicht (mehr).") from None
    request.app[HUB].publish(INBOX, conversation_data("assigned", conv, officer=to, by=me))
    raise web.HTTPSeeOther(f"/inbox/c/{conv.id}")


def add_accounts_routes(app: web.Application) -> None:
    """Accounts, the own page, presence and assignment (all behind the officer guard)."""
    app[PRESENCE] = SharedPresence()  # this instance's presence, and the other instances' (PostgreSQL)
    app.middlewares.append(presence_tracker)  # after the officer guard: the session is known
    app.cleanup_ctx.append(accounts_ctx)  # after inbox_resources: the event hub exists
    app.router.add_get("/inbox/konten", accounts_page)
    app.router.add_post(r"/inbox/konten/{what:neu|deaktiviert|aktiviert|rolle}", account_change)
    app.router.add_get("/inbox/ich", me_page)
    app.router.add_post("/inbox/ich/passwort", change_password)
    app.router.add_post("/inbox/ich/sitzung", end_session)
    app.router.add_get(PRESENCE_PATH, presence_fragment)
    app.router.add_post("/inbox/c/{id}/assign", assign)
