"""The inbox's search page (/inbox/suche): words and filters over chats and comments, hits marked, newest first."""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup, escape

from bot.handover.records import STATES
from bot.handover.search import (CHANNELS, CLOSE, MAX_PAGE, OPEN, Results, SearchError, SearchQuery, build_query,
                                 search)
from bot.web.auth import officer
from bot.web.inbox import STATE_LABELS
from bot.web.keys import SERVICES
from bot.web.render import render
from bot.web.stats_reader import READER, ReadOnlyLog
from bot.web.visible import visible
from nlu.intents import INTENTS

log = logging.getLogger(__name__)

FIELDS = ("q", "person", "thema", "kanal", "status", "von", "bis", "in")
SCOPE_LABELS = {"beides": "beides", "chats": "Chats", "kommentare": "Kommentare"}
NOTHING = "Gib ein Suchwort ein oder wähle mindestens einen Filter."
_MARKERS = re.compile(f"([{OPEN}{CLOSE}])")


def marked(snippet: str) -> Markup:
    """An FTS5 snippet as HTML: the text escaped (hidden characters shown), each hit in <mark>."""
    out, inside = [], False
    for part in _MARKERS.split(snippet):
        if part == OPEN and not inside:
            out.append("<mark>")
            inside = True
        elif part == CLOSE and inside:
            out.append("</mark>")
            inside = False
        elif part not in (OPEN, CLOSE):
            out.append(str(escape(visible(part))))
    return Markup("".join(out) + ("</mark>" if inside else ""))


def first_words(text: str | None, length: int = 160) -> str:
    """The start of a text, cut at a word (plain text: the template escapes it)."""
    text = visible(text or "")
    return text if len(text) <= length else text[:length].rsplit(" ", 1)[0] + " …"


def page_link(fields: Any, page: int) -> str:
    """This search's address on another page (GET; a POSTed search that was accepted fits in an address too)."""
    params = {k: str(fields[k]) for k in FIELDS if fields.get(k)}
    return "/inbox/suche?" + urlencode({**params, "seite": page})


def hit_link(conversation_id: int, message_id: int, words: str) -> str:
    """The conversation with the hit message anchored (and its words marked by search.js)."""
    query = f"?{urlencode({'treffer': message_id, 'q': words})}" if words else f"?treffer={message_id}"
    return f"/inbox/c/{conversation_id}{query}#m{message_id}"


async def search_page(request: web.Request) -> web.Response:
    """Search messages by words and filters; a clear message (400) for input the search cannot use."""
    services = request.app[SERVICES]
    fields = await request.post() if request.method == "POST" else request.query  # POST: searches too long for an address
    form = {k: str(fields.get(k, ""))[:300] for k in FIELDS}
    results: Results | None = None
    error, status = None, 200
    query = SearchQuery()
    if any(k in fields for k in FIELDS):
        try:
            query = build_query(fields, ZoneInfo(services.settings.timezone))
            if query.empty:
                error = NOTHING
            else:
                # in the dashboard's worker thread, with its own connection: a word with 100,000 hits
                # takes the officer half a second but never holds up a citizen's message
                results = await request.app[READER].run(services.handover, lambda db, q: search(ReadOnlyLog(db), q), query)
        except SearchError as err:
            error, status = str(err), 400
        except sqlite3.OperationalError as err:
            if "fts5" not in str(err):
                raise
            log.warning("search rejected by FTS5: %s", err)
            error, status = "Diese Suche verstehe ich nicht. Versuch es mit einfachen Wörtern.", 400
    return render(request, "search.html", status, form=form, query=query, results=results, error=error,
                  intents=INTENTS, channels=CHANNELS, states=STATES, labels=STATE_LABELS, marked=marked,
                  first_words=first_words, max_page=MAX_PAGE, page_link=lambda page: page_link(form, page), hit_link=hit_link, scopes=SCOPE_LABELS,
                  session=officer(request))


def add_search_routes(app: web.Application) -> None:
    """The search page (behind the officer guard)."""
    app.router.add_get("/inbox/suche", search_page)
    app.router.add_post("/inbox/suche", search_page)
