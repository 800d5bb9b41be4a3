"""Reply templates in the inbox: the page at /inbox/vorlagen to write them, and the list for a chat's reply box."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.handover import HandoverError
from bot.handover.textblocks import (
    LANGUAGES, MAX_NAME, MAX_TEXT, MAX_TITLE, PLACEHOLDERS, TextblockConflict, TextblockError, Textblocks, fill,
    placeholder_values,
)
from bot.web.auth import officer
from bot.web.keys import SERVICES
from bot.web.render import render
from nlu.intents import INTENTS

EMPTY = {"name": "", "language": "de", "title": "", "text": "", "intents": ()}


def _store(request: web.Request) -> Textblocks:
    return Textblocks(request.app[SERVICES].handover)


def _values(request: web.Request) -> dict[str, dict[str, str]]:
    triage = request.app[SERVICES].triage
    return placeholder_values(triage.responses, triage.duty)


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="Diesen Textbaustein gibt es nicht (mehr).") from None


async def _form(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    return {
        "name": str(form.get("name", "")), "language": str(form.get("language", "")),
        "title": str(form.get("title", "")), "text": str(form.get("text", "")),
        "intents": tuple(str(i) for i in form.getall("intents", [])),
    }


def _page(request: web.Request, status: int = 200, error: str | None = None, entered: dict[str, Any] | None = None) -> web.Response:
    return render(
        request, "textblocks.html", status, session=officer(request), blocks=_store(request).all(),
        error=error, entered=entered or EMPTY, values=_values(request), **_choices(),
    )


def _edit_page(request: web.Request, block: Any, status: int = 200, error: str | None = None,
               entered: dict[str, Any] | None = None, seen: str | None = None) -> web.Response:
    entered = entered or {"name": block.name, "language": block.language, "title": block.title, "text": block.text,
                          "intents": block.intents}
    return render(request, "textblocks_edit.html", status, session=officer(request), block=block, error=error,
                  entered=entered, seen=seen or block.updated_at, values=_values(request), **_choices())


def _choices() -> dict[str, Any]:
    return {"languages": LANGUAGES, "all_intents": INTENTS, "placeholders": PLACEHOLDERS,
            "max_name": MAX_NAME, "max_title": MAX_TITLE, "max_text": MAX_TEXT}


async def textblocks_page(request: web.Request) -> web.Response:
    """List every template with who changed it last, and a form for a new one."""
    return _page(request)


async def create_textblock(request: web.Request) -> web.Response:
    """Save a new template, or show the form again with what to fix (400)."""
    entered = await _form(request)
    try:
        block = _store(request).create(officer(request).officer, **entered)
    except TextblockError as err:
        return _page(request, 400, str(err), entered)
    raise web.HTTPSeeOther(f"/inbox/vorlagen#t{block.id}")


async def edit_page(request: web.Request) -> web.Response:
    """The form to change one template."""
    try:
        block = _store(request).get(_id(request))
    except TextblockConflict as err:
        raise web.HTTPNotFound(text=str(err)) from None
    return _edit_page(request, block)


async def update_textblock(request: web.Request) -> web.Response:
    """Save changes to a template; a colleague's edit in the meantime is not overwritten (409)."""
    entered = await _form(request)
    seen = str((await request.post()).get("seen", "")) or None
    store, textblock_id = _store(request), _id(request)
    try:
        block = store.update(textblock_id, officer(request).officer, seen=seen, **entered)
    except TextblockConflict as err:
        try:
            current = store.get(textblock_id)
        except TextblockConflict:
            raise web.HTTPNotFound(text=str(err)) from None
        return _edit_page(request, current, 409, str(err), entered, seen)
    except TextblockError as err:
        try:
            return _edit_page(request, store.get(textblock_id), 400, str(err), entered, seen)
        except TextblockConflict:
            raise web.HTTPNotFound(text="Diesen Textbaustein gibt es nicht (mehr).") from None
    raise web.HTTPSeeOther(f"/inbox/vorlagen#t{block.id}")


async def delete_textblock(request: web.Request) -> web.Response:
    """Delete a template (the audit trail keeps its text)."""
    try:
        _store(request).delete(_id(request), officer(request).officer)
    except TextblockConflict as err:
        raise web.HTTPNotFound(text=str(err)) from None
    raise web.HTTPSeeOther("/inbox/vorlagen")


async def for_conversation(request: web.Request) -> web.Response:
    """The templates for a chat's reply box as JSON, best fitting first, placeholders filled in."""
    services = request.app[SERVICES]
    try:
        conv = services.handover.conversation(int(request.match_info["id"]))
    except (ValueError, HandoverError):
        raise web.HTTPNotFound(text="Diesen Chat gibt es nicht (mehr).") from None
    values = _values(request)
    blocks = _store(request).for_conversation(conv.id, conv.language)
    return web.json_response({"textblocks": [
        {"name": b.name, "language": b.language, "title": b.title, "intents": list(b.intents), "text": fill(b, values)}
        for b in blocks
    ]})


def add_textblock_routes(app: web.Application) -> None:
    """The templates' routes (behind the officer guard, like every /inbox path)."""
    app.router.add_get("/inbox/vorlagen", textblocks_page)
    app.router.add_post("/inbox/vorlagen", create_textblock)
    app.router.add_get(r"/inbox/vorlagen/{id:\d{1,12}}", edit_page)
    app.router.add_post(r"/inbox/vorlagen/{id:\d{1,12}}", update_textblock)
    app.router.add_post(r"/inbox/vorlagen/{id:\d{1,12}}/loeschen", delete_textblock)
    app.router.add_get(r"/inbox/vorlagen/chat/{id:\d{1,12}}", for_conversation)
