"""Server-rendered pages: jinja2 with autoescaping always on (citizens' text is never trusted)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.web.keys import SERVICES
from bot.web.visible import visible

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["visible"] = visible  # bidi and zero-width characters shown, never obeyed


def waited(since: str | None, now: datetime | None = None) -> str:
    """A waiting time for humans: "12 s", "4 Min.", "2 Std. 5 Min.", "3 Tage"."""
    if not since:
        return "–"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - datetime.fromisoformat(since)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} Min."
    hours = minutes // 60
    if hours < 48:
        return f"{hours} Std. {minutes % 60} Min."
    return f"{hours // 24} Tage"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """Render a template to an HTML response; times are shown in the configured time zone."""
    zone = ZoneInfo(request.app[SERVICES].settings.timezone)

    def local(value: str | None, fmt: str = "%d.%m. %H:%M") -> str:
        return datetime.fromisoformat(value).astimezone(zone).strftime(fmt) if value else "–"

    language_name = request.app[SERVICES].triage.languages.name_de  # "tr" -> "Türkisch"
    html = ENV.get_template(template).render(waited=waited, local=local, language_name=language_name, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
