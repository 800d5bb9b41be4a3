"""`python -m bot serve`: the long-running service."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.settings import Settings
from bot.web.app import create_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Serve the web app (health, web chat, inbox) and every channel that has a token."""
    app = create_app(settings)
    log.info("serving on http://%s:%s", settings.web_host, settings.web_port)
    local = f"http://{settings.web_host}:{settings.web_port}"
    print(f"streife läuft / is running:\n  web chat: {local}/\n  inbox:    {local}/inbox", flush=True)
    # No request body is ever inflated: browsers, Telegram and Meta send none compressed, and inflating
    # an attacker's gzip bodies (even past the 1 MiB limit, while the 413 lingers) stalled every
    # channel's emergencies for seconds (bench/attack.py, H3). A compressed body is a 400.
    web.run_app(app, host=settings.web_host, port=settings.web_port, print=None, access_log=None, auto_decompress=False)
    return 0
