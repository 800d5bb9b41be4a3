"""The aiohttp application factory: routes in one place, resources in cleanup_ctx."""

from __future__ import annotations

import logging
import time
from typing import AsyncIterator

from aiohttp import web

from bot.channels.instagram import add_instagram_routes
from bot.channels.telegram_app import add_telegram_routes, start_telegram, telegram_ctx
from bot.services import Services
from bot.settings import Settings
from bot.web import auth
from bot.web.inbox import add_inbox_routes
from bot.web.keys import SERVICES
from bot.web.metrics import add_metrics_routes, channels_status
from bot.web.storage_errors import storage_errors
from bot.web.render import STATIC
from bot.web.resources import close_streams, inbox_resources
from bot.web.webchat import add_webchat_routes
from nlu.reload import ModelReloader

log = logging.getLogger(__name__)

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
        "model_version": model.name if model is not None else None,
        "model_rejected": models.rejected,
        "database": database,
        "channels": channels_status(request.app),
        "uptime_s": round(time.time() - request.app[STARTED], 1),
    }
    return web.json_response(body, status=200 if database == "writable" else 503)


def add_routes(app: web.Application) -> None:
    """Every route of the app, in one place."""
    app.router.add_get("/healthz", healthz)
    add_metrics_routes(app)  # /metrics (Prometheus text)
    add_webchat_routes(app)  # /, /chat/...
    app.router.add_get(auth.LOGIN_PATH, auth.login_form)
    app.router.add_post(auth.LOGIN_PATH, auth.login)
    app.router.add_post("/inbox/logout", auth.logout)
    add_inbox_routes(app)  # /inbox, /inbox/c/{id}/...
    add_instagram_routes(app)  # /instagram/webhook (Meta: Instagram DMs and Facebook Messenger)
    add_telegram_routes(app)  # /telegram/webhook (webhook mode only)
    app.router.add_static("/static", STATIC)


async def recover(app: web.Application) -> None:
    """Decide on messages stored before a crash and resend pending replies."""
    await app[SERVICES].dispatcher.recover()


def create_app(settings: Settings, services: Services | None = None, load_model: bool = True) -> web.Application:
    """Build the web app; the model loads in the background while the safety net already answers."""
    app = web.Application(client_max_size=1024 * 1024, middlewares=[auth.security_headers, auth.officer_guard, storage_errors])
    app[STARTED] = time.time()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = services is None
        app[SERVICES] = services or Services.build(settings)
        if load_model and app[SERVICES].models.model is None:
            app[SERVICES].models.load_in_background(settings.model_path)
        reloader = ModelReloader(
            app[SERVICES].models, settings.model_path, settings.data_dir,
            settings.escalation_threshold, settings.model_watch_seconds,
        )
        if load_model:
            reloader.start()  # a new model after `make train`: file watch and SIGHUP
        yield
        await reloader.stop()
        if own:
            app[SERVICES].handover.close()

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(inbox_resources)
    app.cleanup_ctx.append(telegram_ctx)  # Telegram's Sender when TELEGRAM_BOT_TOKEN is set
    app.on_startup.append(recover)  # after every cleanup_ctx: senders and listeners are wired by then
    app.on_startup.append(start_telegram)  # polling or webhook, after recovery
    app.on_shutdown.append(close_streams)
    add_routes(app)
    return app
