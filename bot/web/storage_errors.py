"""Translate a database that cannot be written (read-only, disk full, locked) into 503 at the edge.

A webhook answered with 5xx is delivered again by Telegram and Meta, and the web chat page shows
the text and lets the citizen send again: nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
TEXT = "Deine Nachricht konnte gerade nicht gespeichert werden. Bitte schick sie gleich noch einmal."


@web.middleware
async def storage_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Answer 503 with Retry-After when the handover log cannot be written; log the cause once per request."""
    try:
        return await handler(request)
    except sqlite3.OperationalError as err:  # read-only file, disk full, database locked, I/O error
        log.error("database not writable, %s %s answered 503 (the sender retries): %s", request.method, request.path, err)
        raise web.HTTPServiceUnavailable(text=TEXT, headers={"Retry-After": str(RETRY_AFTER_S)}) from None
