"""The aiohttp application factory: routes in one place, resources in cleanup_ctx."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from aiohttp import web

from bot.channels.instagram import add_instagram_routes
from bot.channels.mastodon import mastodon_ctx, start_mastodon
from bot.channels.telegram_app import add_telegram_routes, start_telegram, telegram_ctx
from bot.channels.x import add_x_routes
from bot.cluster import for_database
from bot.handover.search_index import stop_rewrite
from bot.nlu_workers import NluSupervisor
from bot.services import Services
from bot.settings import Settings
from bot.web import auth
from bot.web.accounts import add_accounts_routes
from bot.web.comments import add_comments_routes
from bot.web.inbox import add_inbox_routes
from bot.web.keys import SERVICES
from bot.web.metrics import add_metrics_routes, channels_status
from bot.web.storage_errors import storage_errors
from bot.web.stats import add_stats_routes
from bot.web.stats_reader import READER
from bot.web.textblocks import add_textblock_routes
from bot.web.render import STATIC
from bot.web.resources import close_streams, inbox_resources
from bot.web.search import add_search_routes
from bot.web.webchat import add_webchat_routes

log = logging.getLogger(__name__)

STARTED = web.AppKey("started", float)
NLU = web.AppKey("nlu", NluSupervisor)
RECOVERY = web.AppKey("recovery", asyncio.Task)
RECOVERY_WAIT = 60.0  # seconds recovered messages wait for the model after a start


async def healthz(request: web.Request) -> web.Response:
    """Report whether the model is loaded (or the safety net alone answers) and the database is writable."""
    services = request.app[SERVICES]
    try:
        services.handover.set_value("healthz", str(time.time()))
        database = "writable"
    except Exception as err:  # any sqlite error means: not writable
        database = f"error: {err}"
    body = {
        "status": "ok" if database == "writable" else "degraded",
        **services.model_status(),
        "database": database,
        "channels": channels_status(request.app),
        "uptime_s": round(time.time() - request.app[STARTED], 1),
        **services.dispatcher.cluster.status(),  # instance, leader, backend (bot/cluster.py)
    }
    return web.json_response(body, status=200 if database == "writable" else 503)


def add_routes(app: web.Application) -> None:
    """Every route of the app, in one place."""
    app.router.add_get("/livez", auth.liveness)  # public: the process answers
    app.router.add_get("/healthz", auth.for_operators(healthz, public=auth.liveness))  # details: token or officer
    add_metrics_routes(app)  # /metrics (Prometheus text)
    add_webchat_routes(app)  # /, /chat/...
    app.router.add_get(auth.LOGIN_PATH, auth.login_form)
    app.router.add_post(auth.LOGIN_PATH, auth.login)
    app.router.add_post("/inbox/logout", auth.logout)
    add_inbox_routes(app)  # /inbox, /inbox/c/{id}/...
    add_stats_routes(app)  # /inbox/stats, /inbox/stats.csv (the dashboard)
    add_accounts_routes(app)  # /inbox/konten, /inbox/ich, /inbox/presence, /inbox/c/{id}/assign (+ presence tracking)
    add_search_routes(app)  # /inbox/suche
    add_comments_routes(app)  # /inbox/kommentare/... (comments under posts)
    add_textblock_routes(app)  # /inbox/vorlagen (reply templates)
    add_instagram_routes(app)  # /instagram/webhook (Meta: Instagram DMs and Facebook Messenger)
    add_telegram_routes(app)  # /telegram/webhook (webhook mode only)
    add_x_routes(app)  # /x/webhook (X's Account Activity API: CRC and direct messages)
    app.router.add_static("/static", STATIC)


async def recover(app: web.Application) -> None:
    """Finish what was stored before a crash, then keep the one recovery loop running (bot/recovery.py).

    Escalations (the safety net needs no model) are answered at once and pending replies sent;
    ordinary undecided messages wait until the NLU workers answer or RECOVERY_WAIT seconds have
    passed, so recovered messages are not all handed to officers just because the model was
    still loading. From then on the loop retries whatever stays undecided or unsent, without a restart.
    """
    recovery = app[SERVICES].dispatcher.recovery
    supervisor = app.get(NLU)
    if supervisor is None:
        await recovery.run_once(everything_due=True)
        app[RECOVERY] = recovery.start()
        return
    await recovery.run_once(everything_due=True, hold_ordinary=True)
    app[RECOVERY] = recovery.start(hold=supervisor.client.wait_ready(RECOVERY_WAIT))


def create_app(settings: Settings, services: Services | None = None, load_model: bool = True) -> web.Application:
    """Build the web app; the NLU workers load the model while the safety net already answers."""
    app = web.Application(client_max_size=1024 * 1024, middlewares=[auth.security_headers, auth.officer_guard, storage_errors])
    app[STARTED] = time.time()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = services is None
        app[SERVICES] = services or Services.build(settings)
        dispatcher = app[SERVICES].dispatcher
        own_cluster = dispatcher.cluster.backend == "sqlite" and getattr(app[SERVICES].handover, "backend", "sqlite") == "postgresql"
        if own_cluster:  # several instances may share this database: leader, locks and live updates across them
            dispatcher.cluster = for_database(str(app[SERVICES].handover.url))
            dispatcher.cluster.receivers.append(dispatcher.on_cluster_message)  # what the others hold in memory
        await dispatcher.cluster.start()
        supervisor = NluSupervisor(settings) if load_model and app[SERVICES].triage.parser is None else None
        if supervisor is not None:
            await supervisor.start()  # the workers load the model; the safety net answers meanwhile
            app[SERVICES].triage.parser = supervisor.client
            app[NLU] = supervisor
        yield
        if RECOVERY in app:
            app[RECOVERY].cancel()
        if supervisor is not None:
            await supervisor.stop()
            app[SERVICES].triage.parser = None
        if READER in app:  # the dashboard's connection, before the log (on_cleanup would run after this)
            app[READER].close()
        if own_cluster:  # after every leader job's owner stopped it; the leader lock goes with the connection
            await dispatcher.cluster.close()
        if own:
            await stop_rewrite(app[SERVICES].handover)  # a search index rewrite would step on a closed log
            app[SERVICES].handover.close()

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(inbox_resources)
    app.cleanup_ctx.append(telegram_ctx)  # Telegram's Sender when TELEGRAM_BOT_TOKEN is set
    app.cleanup_ctx.append(mastodon_ctx)  # Mastodon's Sender when MASTODON_BASE_URL and MASTODON_ACCESS_TOKEN are set
    app.on_startup.append(recover)  # after every cleanup_ctx: senders and listeners are wired by then
    app.on_startup.append(start_telegram)  # polling or webhook, after recovery
    app.on_startup.append(start_mastodon)  # the stream (or polling), after recovery
    app.on_shutdown.append(close_streams)
    add_routes(app)
    return app
