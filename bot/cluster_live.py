"""Live updates and presence across instances (bot/cluster.py carries the messages).

Every `EventHub.publish` and `close_topic` also goes to the other instances, which hand it to
their own subscribers of that topic. Topics travel as a hash: a session topic holds a session
token, and a chat topic a web chat's cookie. When an instance's LISTEN connection was lost, it
ends its open streams: the pages reconnect and fetch everything again (their "hello" does that).

Presence: each instance tells the others who is online on it, when that changes and every
PRESENCE_BEAT_S; an instance not heard of for PRESENCE_TTL_S counts as gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Callable

from bot.cluster import Cluster
from bot.handover.accounts import Online, Presence
from bot.web.live import INBOX, EventHub, session_topic

log = logging.getLogger(__name__)

PRESENCE_BEAT_S = 20.0
PRESENCE_TTL_S = 3 * PRESENCE_BEAT_S
MAX_DATA = 6000  # bytes of an event's data sent to the others (bigger: only its kind; the pages refetch)


def topic_key(topic: str) -> str:
    """A topic as it travels between instances (no token or cookie in the clear)."""
    return hashlib.sha256(topic.encode()).hexdigest()[:32]


class LiveRelay:
    """Connects one instance's EventHub with the other instances' hubs."""

    def __init__(self, hub: EventHub, cluster: Cluster) -> None:
        self.hub = hub
        self.cluster = cluster
        self.received = 0

    def attach(self) -> None:
        """Relay this hub's events and republish the others'."""
        self.hub.relay = self.relay
        self.cluster.receivers.append(self.on_message)

    def detach(self) -> None:
        """Undo attach()."""
        self.hub.relay = None
        if self.on_message in self.cluster.receivers:
            self.cluster.receivers.remove(self.on_message)

    def relay(self, what: str, topic: str, data: dict[str, Any] | None) -> None:
        """Send a publish or a close on `topic` to the other instances."""
        message: dict[str, Any] = {"kind": "live", "what": what, "t": topic_key(topic)}
        if data is not None:
            size = len(str(data).encode())
            message["d"] = data if size <= MAX_DATA else {"kind": data.get("kind", "update")}
        self.cluster.send(message)

    def on_message(self, message: dict[str, Any]) -> None:
        """Another instance's event: hand it to the subscribers here (never relayed back)."""
        if message.get("kind") == "reconnected":  # events were missed: every page here reconnects and refetches
            for topic in self.hub.topics():
                self.hub.close_topic(topic, relay=False)
            return
        if message.get("kind") != "live":
            return
        self.received += 1
        key = message.get("t")
        for topic in self.hub.topics():
            if topic_key(topic) != key:
                continue
            if message.get("what") == "close":
                self.hub.close_topic(topic, relay=False)
            elif isinstance(message.get("d"), dict):
                self.hub.publish(topic, message["d"], relay=False)


class SharedPresence(Presence):
    """Presence on this instance, merged with what the other instances said about theirs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote: dict[str, tuple[float, list[tuple[str, bool, int]]]] = {}  # instance -> (heard at, online there)

    def local(self) -> list[Online]:
        """Who is online on this instance."""
        return super().online()

    def heard(self, instance: str, online: list[tuple[str, bool, int]]) -> None:
        """Another instance's list of who is online there."""
        self.remote[instance] = (self.clock(), online)

    def _others(self) -> list[tuple[str, bool, int]]:
        now = self.clock()
        for instance in [i for i, (at, _) in self.remote.items() if now - at > PRESENCE_TTL_S]:
            del self.remote[instance]
        return [(name, live, int(ago + now - at)) for at, entries in self.remote.values() for name, live, ago in entries
                if live or ago + now - at < self.window_s]

    def online(self) -> list[Online]:
        """Who is online on any instance, by name (live if live anywhere, seen at the latest sighting)."""
        merged: dict[str, Online] = {o.name: o for o in self.local()}
        for name, live, ago in self._others():
            mine = merged.get(name)
            merged[name] = Online(name, live or (mine is not None and mine.live), min(ago, mine.seconds_ago) if mine else ago)
        return [merged[n] for n in sorted(merged)]

    def anyone_online(self) -> bool:
        """True while at least one officer is online on any instance."""
        return super().anyone_online() or bool(self._others())


class PresenceShare:
    """Tells the other instances who is online here, and applies their news (presence, ended sessions)."""

    def __init__(self, presence: SharedPresence, hub: EventHub, cluster: Cluster) -> None:
        self.presence = presence
        self.hub = hub
        self.cluster = cluster
        self._beat: asyncio.Task[None] | None = None

    def attach(self) -> None:
        """Listen to the others, ask them who is online there, and tell them now and then."""
        self.cluster.receivers.append(self.on_message)
        self.cluster.send({"kind": "presence_ask"})
        self._beat = asyncio.ensure_future(self._beats())

    def detach(self) -> None:
        """Undo attach()."""
        if self.on_message in self.cluster.receivers:
            self.cluster.receivers.remove(self.on_message)
        if self._beat is not None:
            self._beat.cancel()

    async def _beats(self) -> None:
        while True:
            self.share()
            await asyncio.sleep(PRESENCE_BEAT_S)

    def share(self) -> None:
        """Send who is online here (on a change, on request, and every PRESENCE_BEAT_S)."""
        self.cluster.send({"kind": "presence", "online": [[o.name, o.live, o.seconds_ago] for o in self.presence.local()]})

    def forget(self, officer: str, token_hash: str | None) -> None:
        """An officer's session ended (or all of them): the other instances end its streams too."""
        self.cluster.send({"kind": "presence_forget", "officer": officer, "token_hash": token_hash})

    def on_message(self, message: dict[str, Any]) -> None:
        """Another instance's presence news."""
        kind, instance = message.get("kind"), str(message.get("i", ""))
        if kind == "presence_ask":
            self.share()
        elif kind == "presence" and isinstance(message.get("online"), list):
            entries = [(str(e[0]), bool(e[1]), int(e[2])) for e in message["online"] if isinstance(e, list) and len(e) == 3]
            before = self.presence.online()
            self.presence.heard(instance, entries)
            if self.presence.online() != before:
                self.hub.publish(INBOX, {"kind": "presence"}, relay=False)
        elif kind == "presence_forget" and isinstance(message.get("officer"), str):
            name = message["officer"]
            token_hash = message["token_hash"] if isinstance(message.get("token_hash"), str) else None
            for token in self.presence.tokens(name, token_hash):
                self.hub.close_topic(session_topic(token), relay=False)
            self.presence.forget(name, token_hash)


def share_presence(presence: Presence, hub: EventHub, cluster: Cluster) -> PresenceShare | None:
    """Share presence with the other instances (PostgreSQL); None for a single node."""
    if cluster.backend != "postgresql" or not isinstance(presence, SharedPresence):
        return None
    share = PresenceShare(presence, hub, cluster)
    share.attach()
    return share


def wire(hub: EventHub, cluster: Cluster) -> Callable[[], None]:
    """Relay the hub's events across instances (nothing to do for a single node); returns the undo."""
    if cluster.backend != "postgresql":
        return lambda: None
    relay = LiveRelay(hub, cluster)
    relay.attach()
    return relay.detach
