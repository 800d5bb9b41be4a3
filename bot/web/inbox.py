"""The officers' inbox: the queue, one conversation, and what officers do with it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.handover import Conversation, HandoverError
from bot.handover.privacy import deleted_chats, mark_deleted_seen
from bot.handover.queue_view import queue_view
from bot.handover.search import citizen_history
from bot.web.auth import SESSION_COOKIE, officer
from bot.web.comments import comment_links
from bot.web.intake import INTAKE
from bot.web.keys import HUB, OFFICERS, SERVICES, STATES
from bot.web.live import INBOX, conversation_data, session_topic, stream
from bot.web.render import render
from nlu.intents import INTENTS

STATE_LABELS = {"bot": "Bot", "queued": "Wartet", "claimed": "In Bearbeitung", "closed": "Zurück beim Bot"}


def _conversation(request: web.Request) -> Conversation:
    try:
        return request.app[SERVICES].handover.conversation(int(request.match_info["id"]))
    except (ValueError, HandoverError):
        raise web.HTTPNotFound(text="Diesen Chat gibt es nicht (mehr).") from None


def _queue_context(request: web.Request) -> dict[str, Any]:
    log = request.app[SERVICES].handover
    try:
        page = int(request.query.get("seite", "1"))
    except ValueError:
        page = 1
    return {
        "queue": queue_view(log, page),  # every open emergency (floods from one client grouped), the rest paged
        "recent": log.recently_updated(("bot", "closed"), 30),
        "deleted": deleted_chats(log),
        "labels": STATE_LABELS,
        "session": officer(request),
    }


def _conversation_context(request: web.Request, conv: Conversation) -> dict[str, Any]:
    services = request.app[SERVICES]
    timeline: list[tuple[str, str, Any]] = [(m.created_at, "message", m) for m in services.handover.transcript(conv.id)]
    timeline += [(n.created_at, "note", n) for n in request.app[STATES].notes(conv.id)]
    timeline.sort(key=lambda item: (item[0], item[1] == "note"))
    return {"conv": conv, "timeline": timeline, "intents": INTENTS, "labels": STATE_LABELS, "session": officer(request),
            "comment_links": comment_links(request, conv.id),
            "colleagues": request.app[OFFICERS].names()}  # active accounts, for assignment (_assign.html)


async def queue_page(request: web.Request) -> web.Response:
    """Show waiting chats (emergencies first, then longest waiting), chats in progress and recent ones."""
    return render(request, "queue.html", **_queue_context(request))


async def queue_fragment(request: web.Request) -> web.Response:
    """Render only the live part of the queue (the page swaps it in on every event)."""
    return render(request, "_queue.html", **_queue_context(request))


async def conversation_page(request: web.Request) -> web.Response:
    """Show one conversation: the whole transcript with the bot's reading of each message, and the actions."""
    conv, services = _conversation(request), request.app[SERVICES]
    history = citizen_history(services.handover, conv, services.settings.retention_days)  # _history.html
    return render(request, "conversation.html", **_conversation_context(request, conv), history=history)


async def conversation_fragment(request: web.Request) -> web.Response:
    """Render only the live part of a conversation (state and transcript)."""
    return render(request, "_conversation.html", **_conversation_context(request, _conversation(request)))


async def inbox_events(request: web.Request) -> web.StreamResponse:
    """Stream every change officers care about; the stream ends with the session (logout, expiry)."""
    session = officer(request)
    slots = request.app[INTAKE].inbox_streams
    keys = {"session": session.token}
    if slots.acquire(keys) is not None:
        raise web.HTTPTooManyRequests(text="Zu viele offene Live-Verbindungen. Schließ ein paar Tabs.",
                                      headers={"Retry-After": "30"})
    officers = request.app[OFFICERS]
    token = request.cookies.get(SESSION_COOKIE)
    try:
        return await stream(request, request.app[HUB], [INBOX, session_topic(session.token)],
                            alive=lambda: officers.session(token) is not None)
    finally:
        slots.release(keys)


def _back(conv: Conversation, anchor: str = "") -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/inbox/c/{conv.id}{anchor}")


def _changed(request: web.Request, kind: str, conv_id: int, citizen_sees: bool = True) -> None:
    conv = request.app[SERVICES].handover.conversation(conv_id)
    if citizen_sees:
        request.app[HUB].publish_conversation(kind, conv)
    else:
        request.app[HUB].publish(INBOX, conversation_data(kind, conv))


async def claim(request: web.Request) -> web.Response:
    """Take the conversation: the bot stays quiet, you answer."""
    conv = _conversation(request)
    try:
        request.app[STATES].claim(conv.id, officer(request).officer)
    except HandoverError as err:
        raise web.HTTPConflict(text=str(err)) from None
    _changed(request, "claimed", conv.id, citizen_sees=False)
    raise _back(conv)


async def reply(request: web.Request) -> web.Response:
    """Send your answer to the citizen through the conversation's own channel."""
    conv = _conversation(request)
    form = await request.post()
    try:
        message_id = request.app[STATES].reply(conv.id, officer(request).officer, str(form.get("text", "")))
    except HandoverError as err:
        raise web.HTTPConflict(text=str(err)) from None
    await request.app[SERVICES].dispatcher.deliver([message_id])
    _changed(request, "officer", conv.id)
    raise _back(conv, f"#m{message_id}")


async def note(request: web.Request) -> web.Response:
    """Add an internal note for colleagues (never sent)."""
    conv = _conversation(request)
    form = await request.post()
    try:
        added = request.app[STATES].note(conv.id, officer(request).officer, str(form.get("text", "")))
    except HandoverError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    _changed(request, "note", conv.id, citizen_sees=False)
    raise _back(conv, f"#n{added.id}")


async def close(request: web.Request) -> web.Response:
    """Hand the chat back to the bot and tell the citizen."""
    conv = _conversation(request)
    try:
        message_id = request.app[STATES].close(conv.id, officer(request).officer)
    except HandoverError as err:
        raise web.HTTPConflict(text=str(err)) from None
    await request.app[SERVICES].dispatcher.deliver([message_id])
    _changed(request, "closed", conv.id)
    raise web.HTTPSeeOther("/inbox")


async def relabel(request: web.Request) -> web.Response:
    """Record the intent a citizen's message really had (for the trainers)."""
    conv = _conversation(request)
    form = await request.post()
    intent = str(form.get("intent", ""))
    if intent not in INTENTS:
        raise web.HTTPBadRequest(text=f"Unbekanntes Thema: {intent}")
    try:
        message_id = int(str(form.get("message_id", "")))
        message = request.app[SERVICES].handover.message(message_id)
        if message.conversation_id != conv.id:
            raise HandoverError(f"message {message_id} is not in conversation {conv.id}")
        request.app[SERVICES].handover.relabel(message_id, intent, officer(request).officer)
    except (ValueError, HandoverError) as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    _changed(request, "relabel", conv.id, citizen_sees=False)
    raise _back(conv, f"#m{message_id}")


async def deleted_seen(request: web.Request) -> web.Response:
    """Take note that a citizen deleted an open chat (the notice leaves every officer's queue)."""
    try:
        mark_deleted_seen(request.app[SERVICES].handover, int(request.match_info["event"]), officer(request).officer)
    except (ValueError, HandoverError):
        raise web.HTTPNotFound(text="Diesen Hinweis gibt es nicht (mehr).") from None
    request.app[HUB].publish(INBOX, {"kind": "deleted_seen"})
    raise web.HTTPSeeOther("/inbox")


def add_inbox_routes(app: web.Application) -> None:
    """The inbox's routes (all behind the officer guard)."""
    app.router.add_get("/inbox", queue_page)
    app.router.add_get("/inbox/queue", queue_fragment)
    app.router.add_get("/inbox/events", inbox_events)
    app.router.add_get("/inbox/c/{id}", conversation_page)
    app.router.add_get("/inbox/c/{id}/live", conversation_fragment)
    app.router.add_post("/inbox/c/{id}/claim", claim)
    app.router.add_post("/inbox/c/{id}/reply", reply)
    app.router.add_post("/inbox/c/{id}/note", note)
    app.router.add_post("/inbox/c/{id}/close", close)
    app.router.add_post("/inbox/c/{id}/relabel", relabel)
    app.router.add_post("/inbox/deleted/{event}/seen", deleted_seen)
