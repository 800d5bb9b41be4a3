"""The aiohttp application factory: routes in one place, resources in cleanup_ctx."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from aiohttp import web

from bot.services import Services
from bot.settings import Settings

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
STARTED = web.AppKey("started", float)


async def healthz(request: web.Request) -> web.Response:
    """Report whether the model is loaded (or the safety net alone answers) and the database is writable."""
    services = request.app[SERVICES]
    models = services.models
    model = models.model
    try:
        services.handover.set_value("healthz", str(time.time()))
        database = "writable"
    except Exception as err:  # any sqlite error means: not writable
        database = f"error: {err}"
    mode = "nlu" if model is not None else "safety_net"
    body = {
        "status": "ok" if database == "writable" else "degraded",
        "mode": mode,
        "model": str(model.path.name) if model is not None else None,
        "model_loading": models.loading,
        "model_error": models.error,
        "database": database,
        "uptime_s": round(time.time() - request.app[STARTED], 1),
    }
    return web.json_response(body, status=200 if database == "writable" else 503)


def add_routes(app: web.Application) -> None:
    """Every route of the app, in one place."""
    app.router.add_get("/healthz", healthz)


def create_app(settings: Settings, services: Services | None = None, load_model: bool = True) -> web.Application:
    """Build the web app; the model loads in the background while the safety net already answers."""
    app = web.Application(client_max_size=1024 * 1024)
    app[STARTED] = time.time()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = services is None
        app[SERVICES] = services or Services.build(settings)
        if load_model and app[SERVICES].models.model is None:
            app[SERVICES].models.load_in_background(settings.model_path)
        await app[SERVICES].dispatcher.recover()
        yield
        await asyncio.sleep(0)
        if own:
            app[SERVICES].handover.close()

    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
    return app
