"""The web chat: anyone can write as a citizen (for demos and local tests); replies show up live.

It is anonymous and public, so its intake is bounded (bot/web/intake.py): messages per chat, new
chats per address, stored text per chat and overall, open live streams. A message over a limit
is neither stored nor parsed and the citizen is told why, calmly; an emergency (the safety net
fires) is always taken. The chat cookie is SameSite=Lax, so a citizen who comes back through a
link on another site still sees the chat; every call that changes something takes JSON only, so
no other site can make it. The citizen can end the chat and delete it (`chat_delete`).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from aiohttp import web

from bot.danger_check import CHECK_NO
from bot.handover import Conversation, Inbound
from bot.handover.privacy import delete_chat
from bot.language import detect_language
from bot.services import Services
from bot.text import clean
from bot.web import jsonbody
from bot.web.intake import INTAKE, Refusal, client_address, intake_resources
from bot.web.keys import HUB, SERVICES
from bot.web.live import INBOX, chat_topic, stream
from bot.web.render import render
from nlu.intents import INTENTS

log = logging.getLogger(__name__)

CHANNEL = "webchat"
CHAT_COOKIE = "streife_chat"
COOKIE_DAYS = 30
MAX_TEXT = 4000
_CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _chat_id(request: web.Request) -> str:
    chat_id = request.cookies.get(CHAT_COOKIE, "")
    if not _CLIENT_ID.match(chat_id):
        raise web.HTTPBadRequest(text="Der Chat-Cookie fehlt. Lade die Seite neu.")
    return chat_id


async def chat_page(request: web.Request) -> web.Response:
    """Show the chat page; a new browser gets its own chat id in a cookie (Lax: links from other sites keep it)."""
    responses = request.app[SERVICES].triage.responses
    response = render(request, "webchat.html", streams_text=responses.system_text("limit_streams", "de"))
    if not _CLIENT_ID.match(request.cookies.get(CHAT_COOKIE, "")):
        secure = request.app[SERVICES].settings.public_url.startswith("https://")
        response.set_cookie(CHAT_COOKIE, secrets.token_hex(16), path="/", httponly=True, samesite="Lax",
                            secure=secure, max_age=COOKIE_DAYS * 24 * 3600)
    return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The body of a state-changing call: JSON from this site only (a form or another site's page is refused)."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="JSON erwartet.")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise web.HTTPForbidden(text="Nur von dieser Seite aus.")
    try:
        body = jsonbody.loads(await request.read())
    except jsonbody.BodyError:
        raise web.HTTPBadRequest(text="Kein gültiges JSON.") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="Kein gültiges JSON.")
    return body


def _string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise web.HTTPBadRequest(text=f"Das Feld {key!r} muss Text sein.")


def _refused(services: Services, refusal: Refusal, conv: Conversation | None, text: str) -> web.Response:
    """429 with the limit's calm text in the citizen's language; nothing was stored."""
    language = conv.language if conv is not None else detect_language(text)
    message = services.triage.responses.system_text(f"limit_{refusal.limit}", language)
    seconds = max(1, round(refusal.retry_after))
    return web.json_response({"ok": False, "limit": refusal.limit, "message": message, "retry_after": seconds},
                             status=429, headers={"Retry-After": str(seconds)})


async def chat_send(request: web.Request) -> web.Response:
    """Take a citizen's message (JSON only, so no other site can post it) and let the bot answer."""
    intake, address = request.app[INTAKE], client_address(request)
    async with intake.gate.enter(address) as admitted:
        if not admitted:  # this address already has many messages waiting: refused unread
            intake.refused["in_progress"] += 1
            return _refused(request.app[SERVICES], Refusal("busy", 2.0), None, "")
        return await _take_message(request, address)


async def _take_message(request: web.Request, address: str) -> web.Response:
    chat_id = _chat_id(request)
    body = await _json_body(request)
    text = (_string(body, "text") or "").strip()[:MAX_TEXT]
    button = _string(body, "button")
    client_id = _string(body, "id") or ""
    if button is not None and button not in INTENTS and button != CHECK_NO:  # an intent, or "no" to "in danger?"
        raise web.HTTPBadRequest(text="Unbekanntes Thema.")
    if not text and not button:
        raise web.HTTPBadRequest(text="Die Nachricht ist leer.")
    if not _CLIENT_ID.match(client_id):
        raise web.HTTPBadRequest(text="Die Nachricht hat keine gültige ID.")
    services, intake = request.app[SERVICES], request.app[INTAKE]
    conv = services.handover.find_conversation(CHANNEL, chat_id)
    size = len(text.encode("utf-8"))
    refusal = intake.check(chat_id, address, size, new_chat=conv is None)
    if refusal is not None:
        if services.triage.safety_net.check(clean(text)) is None:
            intake.refused[refusal.limit] += 1
            return _refused(services, refusal, conv, text)
        intake.exempt += 1  # an emergency is taken whatever the limits say
        log.warning("web chat %s is over its %s limit, but the safety net fired: taken", conv.citizen if conv else "(new)",
                    refusal.limit)
    intake.count(chat_id, address, size, new_chat=conv is None)
    inbound = Inbound(CHANNEL, chat_id, chat_id, text, kind="button" if button else "text",
                      platform_id=client_id, button=button, source=address)  # source: kept as a pseudonym, groups floods in the inbox
    replies = await services.dispatcher.handle(inbound)
    return web.json_response({"ok": True, "duplicate": replies is None}, status=202)


async def chat_delete(request: web.Request) -> web.Response:
    """End this browser's chat: delete it with every message, forget the cookie, and say so."""
    chat_id = _chat_id(request)
    await _json_body(request)
    services = request.app[SERVICES]
    conv = services.handover.find_conversation(CHANNEL, chat_id)
    language = conv.language if conv is not None else "de"
    if conv is not None:
        async with services.dispatcher.conversation_lock(conv.id):  # let a message being answered (on any instance) finish first
            conv = services.handover.find_conversation(CHANNEL, chat_id)
            if conv is not None:
                detail = delete_chat(services.handover, conv.id)
                request.app[HUB].publish(INBOX, {"kind": "deleted", "conversation_id": conv.id, "state": "deleted",
                                                 "priority": conv.priority, "open": detail["open"]})
                log.info("web chat %s ended and deleted by the citizen (open with officers: %s)", conv.citizen, detail["open"])
    request.app[HUB].close_topic(chat_topic(CHANNEL, chat_id))
    response = web.json_response({"ok": True, "message": services.triage.responses.system_text("chat_deleted", language)})
    response.del_cookie(CHAT_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def transcript_json(request: web.Request, chat_id: str) -> dict[str, Any]:
    """The citizen's view of their chat: their messages and the answers (never internal notes)."""
    log_ = request.app[SERVICES].handover
    conv = log_.find_conversation(CHANNEL, chat_id)
    answered = request.app[SERVICES].dispatcher.unwritten_view(CHANNEL, chat_id)  # an emergency answered while the database was locked
    if conv is None:
        return {"state": "queued" if answered else "new", "messages": answered}
    messages = [
        {"id": m.id, "author": m.author, "text": m.text, "buttons": m.meta.get("buttons") or []}
        for m in log_.transcript(conv.id)
        if m.direction == "in" or m.status == "sent"
    ] + answered
    for m in messages[:-1]:  # only the newest message offers buttons
        m["buttons"] = []
    return {"state": conv.state, "messages": messages}


async def chat_transcript(request: web.Request) -> web.Response:
    """Return this browser's chat as JSON."""
    response = web.json_response(transcript_json(request, _chat_id(request)))
    response.headers["Cache-Control"] = "no-store"
    return response


async def chat_events(request: web.Request) -> web.StreamResponse:
    """Stream a signal whenever this browser's chat changes (a few per chat and address, a cap overall)."""
    chat_id = _chat_id(request)
    intake = request.app[INTAKE]
    keys = {"chat": chat_id, "address": client_address(request)}
    full = intake.streams.acquire(keys)
    if full is not None:
        intake.refused[f"streams_{full}"] += 1
        text = request.app[SERVICES].triage.responses.system_text("limit_streams", "de")
        error = web.HTTPServiceUnavailable if full == "total" else web.HTTPTooManyRequests
        raise error(text=text, headers={"Retry-After": "60"})
    try:
        return await stream(request, request.app[HUB], [chat_topic(CHANNEL, chat_id)])
    finally:
        intake.streams.release(keys)


def add_webchat_routes(app: web.Application) -> None:
    """The web chat's routes (public), and its limits."""
    app.cleanup_ctx.append(intake_resources)
    app.router.add_get("/", chat_page)
    app.router.add_post("/chat/messages", chat_send)
    app.router.add_post("/chat/delete", chat_delete)
    app.router.add_get("/chat/transcript", chat_transcript)
    app.router.add_get("/chat/events", chat_events)
