"""Typed keys for what the web app shares between handlers (kept apart from app.py to avoid import cycles)."""

from __future__ import annotations

from aiohttp import web

from bot.alerts import OfficerAlerts
from bot.channels.comment_executor import CommentDesk
from bot.handover.officers import Officers
from bot.handover.states import HandoverStates
from bot.services import Services
from bot.web.live import EventHub
from bot.web.ratelimit import Buckets

SERVICES = web.AppKey("services", Services)
HUB = web.AppKey("event_hub", EventHub)
OFFICERS = web.AppKey("officers", Officers)
STATES = web.AppKey("handover_states", HandoverStates)
ALERTS = web.AppKey("officer_alerts", OfficerAlerts)
LOGIN_ATTEMPTS = web.AppKey("login_attempts", Buckets)
COMMENTS = web.AppKey("comments", CommentDesk)  # .store and .executor; set only when a Meta channel is configured
