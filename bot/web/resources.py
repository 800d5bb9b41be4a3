"""The inbox's resources for the app's cleanup_ctx: live updates, accounts, officer alerts, retention."""

from __future__ import annotations

import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from bot.alerts import OfficerAlerts
from bot.cluster_live import wire
from bot.handover.officers import INITIAL_OFFICER, Officers
from bot.handover.privacy import retention_loop
from bot.handover.states import HandoverStates
from bot.web.auth import login_attempts
from bot.web.keys import ALERTS, HUB, LOGIN_ATTEMPTS, OFFICERS, SERVICES, STATES
from bot.web.live import EventHub

log = logging.getLogger(__name__)


def announce_initial_password(password: str) -> None:
    """Show the first account's password once, on the terminal (stdout) only: never in the log."""
    log.warning("first start: created inbox account '%s'; its password was printed on the terminal", INITIAL_OFFICER)
    print(f"First start: created inbox account '{INITIAL_OFFICER}' with password: {password}\n"
          f"(Change it with: python -m bot officers add {INITIAL_OFFICER})", flush=True)


async def inbox_resources(app: web.Application) -> AsyncIterator[None]:
    """Wire live updates and officer alerts to the dispatcher; run the daily retention job (on the leader)."""
    services = app[SERVICES]
    hub = EventHub()
    app[HUB] = hub
    app[OFFICERS] = Officers(services.handover)
    app[LOGIN_ATTEMPTS] = login_attempts()
    app[STATES] = HandoverStates(services.handover, services.triage.responses)
    password = app[OFFICERS].ensure_initial()
    if password:
        announce_initial_password(password)
    session = aiohttp.ClientSession()
    alerts = OfficerAlerts(services.settings, session, language_name=services.triage.languages.name_de)
    app[ALERTS] = alerts
    listeners = [hub.on_dispatch] + ([alerts.on_event] if alerts.enabled else [])
    if not alerts.enabled:
        log.info("officer alerts off: set TELEGRAM_BOT_TOKEN and OFFICER_ALERT_CHAT_ID to get them")
    services.dispatcher.listeners.extend(listeners)
    cluster = services.dispatcher.cluster
    unwire = wire(hub, cluster)  # live updates to and from the other instances (PostgreSQL)
    retention = cluster.lead("retention", lambda: retention_loop(services.handover, services.settings.retention_days))
    try:
        yield
    finally:
        await cluster.drop(retention)
        unwire()
        for listener in listeners:
            services.dispatcher.listeners.remove(listener)
        await alerts.drain()
        await session.close()


async def close_streams(app: web.Application) -> None:
    """On shutdown: end open live streams so the server does not wait for them."""
    if HUB in app:
        app[HUB].close()
