"""Bounded anonymous intake for the web chat: messages, new chats, stored text and live streams.

Only the web chat is limited here: Telegram's and Meta's webhooks never are (their platforms
have rules of their own), and the web chat's budgets are its own, so a flood on it cannot use
up anything another channel needs. An emergency is never refused (webchat.py lets it through).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import AsyncIterator

from aiohttp import web

from bot.settings import Settings
from bot.web.keys import SERVICES
from bot.web.ratelimit import Buckets, Gate, Slots

log = logging.getLogger(__name__)

STREAMS_PER_CHAT = 4  # tabs of one web chat (a reloaded page holds its old slot until the next keepalive)
STREAMS_PER_ADDRESS = 20  # web chat streams from one address (a school or an office shares one)
INBOX_STREAMS = 200  # officers' live streams overall (their own budget: citizens cannot use it up)
INBOX_STREAMS_PER_SESSION = 20  # one officer's tabs
FD_SHARE = 4  # web chat streams may use at most a quarter of the open-file limit
IN_PROGRESS_PER_ADDRESS = 2  # web chat messages of one address handled at a time (a person sends one)
WAITING_PER_ADDRESS = 16  # more waiting than this from one address: refused before the body is read
IN_PROGRESS = 32  # web chat messages handled at a time overall (webhooks never wait for these)


def network_key(address: str) -> str:
    """The unit a limit counts per: the IPv4 address, or the IPv6 /64 (one household or phone)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def client_address(request: web.Request) -> str:
    """Who sent the request (trusted proxies' X-Forwarded-For honoured), as a network key."""
    trusted = request.app[SERVICES].settings.trusted_proxies
    address = request.remote or "unknown"
    if address in trusted:
        hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
        for hop in reversed([h for h in hops if h]):
            address = hop
            if hop not in trusted:
                break
    return network_key(address)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit, as servers do; return the soft limit (0: unknown)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as err:
            log.info("could not raise the open-file limit from %s to %s: %s", soft, target, err)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True)
class Refusal:
    """A limit the message is over: which one (its system text is "limit_<name>") and when to try again."""

    limit: str
    retry_after: float


class WebChatIntake:
    """The web chat's budgets: per chat, per address and overall."""

    def __init__(self, settings: Settings, open_files: int = 0) -> None:
        self.messages = Buckets(settings.webchat_messages_per_minute, 60)
        self.new_chats = Buckets(settings.webchat_new_chats_per_hour, 3600)
        self.chat_bytes = Buckets(settings.webchat_chat_kb_per_hour * 1024, 3600)
        self.total_bytes = Buckets(settings.webchat_total_mb_per_hour * 1024 * 1024, 3600, max_keys=1)
        total = settings.webchat_streams if not open_files else min(settings.webchat_streams, open_files // FD_SHARE)
        self.streams = Slots({"chat": STREAMS_PER_CHAT, "address": STREAMS_PER_ADDRESS}, max(1, total))
        self.inbox_streams = Slots({"session": INBOX_STREAMS_PER_SESSION}, INBOX_STREAMS)
        self.gate = Gate(IN_PROGRESS_PER_ADDRESS, WAITING_PER_ADDRESS, IN_PROGRESS)
        self.refused: Counter[str] = Counter()  # limit -> messages refused (for /metrics)
        self.exempt = 0  # emergencies let through although over a limit

    def check(self, chat_id: str, address: str, size: int, new_chat: bool) -> Refusal | None:
        """The first limit this message is over (nothing is spent), or None."""
        checks = [
            ("new_chats", self.new_chats, address, 1.0, new_chat),
            ("messages", self.messages, chat_id, 1.0, True),
            ("chat_size", self.chat_bytes, chat_id, size, True),
            ("busy", self.total_bytes, "all", size, True),
        ]
        for name, buckets, key, cost, applies in checks:
            wait = buckets.retry_after(key, cost) if applies else 0.0
            if wait > 0:
                return Refusal(name, wait)
        return None

    def count(self, chat_id: str, address: str, size: int, new_chat: bool) -> None:
        """Spend what an accepted message costs."""
        if new_chat:
            self.new_chats.spend(address)
        self.messages.spend(chat_id)
        self.chat_bytes.spend(chat_id, size)
        self.total_bytes.spend("all", size)


INTAKE = web.AppKey("webchat_intake", WebChatIntake)


async def intake_resources(app: web.Application) -> AsyncIterator[None]:
    """Raise the open-file limit and size the stream caps well below it."""
    open_files = raise_open_files_limit()
    app[INTAKE] = WebChatIntake(app[SERVICES].settings, open_files)
    log.info("open-file limit %s; web chat live streams capped at %s, the inbox's at %s",
             open_files or "unknown", app[INTAKE].streams.total, app[INTAKE].inbox_streams.total)
    yield
