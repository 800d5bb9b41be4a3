"""Officer login: session cookie, CSRF tokens on every form, lockout after wrong passwords, security headers.

Also who may read the service's insides (/metrics, the detailed /healthz): a METRICS_TOKEN bearer or
a logged-in officer.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Awaitable, Callable

from aiohttp import web

from bot.handover.officers import LockedOut, LoginBusy, LoginError, Session
from bot.web.intake import client_address
from bot.web.keys import HUB, LOGIN_ATTEMPTS, OFFICERS, SERVICES
from bot.web.live import session_topic
from bot.web.ratelimit import Buckets
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
ATTEMPTS_PER_ADDRESS = 20  # login attempts per client address ...
ATTEMPTS_WINDOW_S = 15 * 60  # ... per this many seconds (refilled evenly), counted before any hashing
TOO_MANY = "Zu viele Anmeldeversuche von diesem Gerät. Bitte warte ein paar Minuten und versuch es dann noch einmal."
BUSY = "Gerade melden sich sehr viele an. Bitte versuch es in ein paar Sekunden noch einmal."


def login_attempts() -> Buckets:
    """The per-address budget of login attempts (one per app)."""
    return Buckets(ATTEMPTS_PER_ADDRESS, ATTEMPTS_WINDOW_S)


def same(given: str, expected: str) -> bool:
    """Constant-time comparison that takes any text a client sends (non-ASCII, undecodable bytes)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


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
        if not same(str(form.get("csrf", "")), session.csrf):
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
    if not cookie or not same(str(form.get("csrf", "")), cookie):
        raise web.HTTPForbidden(text="Das Formular ist abgelaufen oder ungültig (CSRF). Lade die Seite neu.")
    address = client_address(request)
    target = str(form.get("next", ""))
    wait = request.app[LOGIN_ATTEMPTS].take(address)  # before any hashing
    try:
        if wait:
            raise LockedOut(wait)
        session = await request.app[OFFICERS].login(str(form.get("name", "")).strip(), str(form.get("password", "")), address)
    except LockedOut as err:  # the same for known and unknown names
        return _retry_later(_login_page(request, TOO_MANY, 429, target), err.retry_after)
    except LoginBusy:
        return _retry_later(_login_page(request, BUSY, 503, target), 5)
    except LoginError:
        return _login_page(request, "Name oder Passwort falsch.", 401, target)
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    response.set_cookie(SESSION_COOKIE, session.token, path="/", httponly=True, samesite="Strict",
                        secure=_secure(request), max_age=12 * 3600)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    raise response


def _retry_later(response: web.Response, seconds: float) -> web.Response:
    response.headers["Retry-After"] = str(max(1, round(seconds)))
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session (and its open live streams) and go back to the login form."""
    session = officer(request)
    request.app[OFFICERS].logout(session)
    request.app[HUB].close_topic(session_topic(session.token))
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def operator(request: web.Request) -> bool:
    """True for the METRICS_TOKEN bearer (when set) and for a logged-in officer."""
    token = request.app[SERVICES].settings.metrics_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and same(given.strip(), token):
        return True
    return request.app[OFFICERS].session(request.cookies.get(SESSION_COOKIE)) is not None


async def liveness(request: web.Request) -> web.Response:
    """Say that the service answers, and nothing about its insides (public: uptime checks)."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


def for_operators(handler: Handler, public: Handler | None = None) -> Handler:
    """`handler` for operators (see `operator`); everyone else gets `public`, or 401 without it."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if operator(request):
            response = await handler(request)
            response.headers.setdefault("Cache-Control", "no-store")
            return response
        if public is not None:
            return await public(request)
        raise web.HTTPUnauthorized(text="METRICS_TOKEN (Authorization: Bearer) or an officer login needed.",
                                   headers={"WWW-Authenticate": 'Bearer realm="streife"'})
    return guarded
