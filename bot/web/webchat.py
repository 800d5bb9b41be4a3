"""The web chat: anyone can write as a citizen (for demos and local tests); replies show up live."""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from bot.handover import Inbound
from bot.web.keys import HUB, SERVICES
from bot.web.live import chat_topic, stream
from bot.web.render import render
from nlu.intents import INTENTS

CHANNEL = "webchat"
CHAT_COOKIE = "streife_chat"
MAX_TEXT = 4000
_CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _chat_id(request: web.Request) -> str:
    chat_id = request.cookies.get(CHAT_COOKIE, "")
    if not _CLIENT_ID.match(chat_id):
        raise web.HTTPBadRequest(text="Der Chat-Cookie fehlt. Lade die Seite neu.")
    return chat_id


async def chat_page(request: web.Request) -> web.Response:
    """Show the chat page; a new browser gets its own chat id in a cookie."""
    response = render(request, "webchat.html")
    if not _CLIENT_ID.match(request.cookies.get(CHAT_COOKIE, "")):
        secure = request.app[SERVICES].settings.public_url.startswith("https://")
        response.set_cookie(CHAT_COOKIE, secrets.token_hex(16), path="/", httponly=True, samesite="Strict",
                            secure=secure, max_age=30 * 24 * 3600)
    return response


async def chat_send(request: web.Request) -> web.Response:
    """Take a citizen's message (JSON only, so no other site can post it) and let the bot answer."""
    chat_id = _chat_id(request)
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="JSON erwartet.")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="Kein gültiges JSON.") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="Kein gültiges JSON.")
    text = str(body.get("text") or "").strip()[:MAX_TEXT]
    button = body.get("button") or None
    client_id = str(body.get("id") or "")
    if button is not None and button not in INTENTS:
        raise web.HTTPBadRequest(text="Unbekanntes Thema.")
    if not text and not button:
        raise web.HTTPBadRequest(text="Die Nachricht ist leer.")
    if not _CLIENT_ID.match(client_id):
        raise web.HTTPBadRequest(text="Die Nachricht hat keine gültige ID.")
    inbound = Inbound(CHANNEL, chat_id, chat_id, text, kind="button" if button else "text",
                      platform_id=client_id, button=button)
    replies = await request.app[SERVICES].dispatcher.handle(inbound)
    return web.json_response({"ok": True, "duplicate": replies is None}, status=202)


def transcript_json(request: web.Request, chat_id: str) -> dict[str, Any]:
    """The citizen's view of their chat: their messages and the answers (never internal notes)."""
    log = request.app[SERVICES].handover
    conv = log.find_conversation(CHANNEL, chat_id)
    if conv is None:
        return {"state": "new", "messages": []}
    messages = [
        {"id": m.id, "author": m.author, "text": m.text, "buttons": m.meta.get("buttons") or []}
        for m in log.transcript(conv.id)
        if m.direction == "in" or m.status == "sent"
    ]
    for m in messages[:-1]:  # only the newest message offers buttons
        m["buttons"] = []
    return {"state": conv.state, "messages": messages}


async def chat_transcript(request: web.Request) -> web.Response:
    """Return this browser's chat as JSON."""
    response = web.json_response(transcript_json(request, _chat_id(request)))
    response.headers["Cache-Control"] = "no-store"
    return response


async def chat_events(request: web.Request) -> web.StreamResponse:
    """Stream a signal whenever this browser's chat changes."""
    return await stream(request, request.app[HUB], chat_topic(CHANNEL, _chat_id(request)))


def add_webchat_routes(app: web.Application) -> None:
    """The web chat's routes (public)."""
    app.router.add_get("/", chat_page)
    app.router.add_post("/chat/messages", chat_send)
    app.router.add_get("/chat/transcript", chat_transcript)
    app.router.add_get("/chat/events", chat_events)
