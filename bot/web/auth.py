"""Officer login: session cookie, CSRF tokens on every form, lockout after wrong passwords, security headers."""

from __future__ import annotations

import hmac
import secrets
from typing import Awaitable, Callable

from aiohttp import web

from bot.handover.officers import LockedOut, LoginError, Session
from bot.web.keys import OFFICERS, SERVICES
from bot.web.render import render

SESSION_COOKIE = "streife_session"
LOGIN_COOKIE = "streife_login"
LOGIN_PATH = "/inbox/login"
SESSION = "officer_session"  # request key
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def officer(request: web.Request) -> Session:
    """The logged-in officer's session (the guard has checked it)."""
    return request[SESSION]


def _secure(request: web.Request) -> bool:
    return request.app[SERVICES].settings.public_url.startswith("https://")


def _safe_next(target: str | None) -> str:
    """Only our own inbox pages are valid targets after login (no open redirect)."""
    if target and target.startswith("/inbox") and not target.startswith("//") and "\\" not in target:
        return target
    return "/inbox"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Forbid framing, inline scripts and referrers on every response."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _harden(exc)
        raise
    _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    if response.prepared:  # a live stream already sent its headers
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")


@web.middleware
async def officer_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No inbox page without a session; no inbox form without its CSRF token."""
    if not request.path.startswith("/inbox") or request.path == LOGIN_PATH:
        return await handler(request)
    session = request.app[OFFICERS].session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method == "GET" and not request.path.endswith("/events"):
            raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={request.rel_url.path}")
        raise web.HTTPUnauthorized(text="Bitte melde dich an.")
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="Das Formular ist abgelaufen oder ungültig (CSRF). Lade die Seite neu.")
    request[SESSION] = session
    response = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def login_form(request: web.Request) -> web.Response:
    """Show the login form (with a fresh CSRF token bound to a short-lived cookie)."""
    if request.app[OFFICERS].session(request.cookies.get(SESSION_COOKIE)):
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return _login_page(request, None, 200, request.query.get("next"))


def _login_page(request: web.Request, error: str | None, status: int, target: str | None) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", status, csrf=token, error=error, next=_safe_next(target))
    response.set_cookie(LOGIN_COOKIE, token, path=LOGIN_PATH, httponly=True, samesite="Strict",
                        secure=_secure(request), max_age=3600)
    response.headers["Cache-Control"] = "no-store"
    return response


async def login(request: web.Request) -> web.Response:
    """Check name and password; open a session or say why not (wrong password, locked)."""
    form = await request.post()
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(str(form.get("csrf", "")), cookie):
        raise web.HTTPForbidden(text="Das Formular ist abgelaufen oder ungültig (CSRF). Lade die Seite neu.")
    try:
        session = await request.app[OFFICERS].login(str(form.get("name", "")).strip(), str(form.get("password", "")))
    except LockedOut:
        return _login_page(request, "Zu viele Fehlversuche. Das Konto ist für 15 Minuten gesperrt.", 429, str(form.get("next", "")))
    except LoginError:
        return _login_page(request, "Name oder Passwort falsch.", 401, str(form.get("next", "")))
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    response.set_cookie(SESSION_COOKIE, session.token, path="/", httponly=True, samesite="Strict",
                        secure=_secure(request), max_age=12 * 3600)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session and go back to the login form."""
    request.app[OFFICERS].logout(officer(request))
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
