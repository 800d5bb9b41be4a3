"""Live updates: dispatcher and officer events fanned out to open pages as server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from typing import Any, Callable

from aiohttp import web

from bot.dispatcher import Event
from bot.handover import Conversation

log = logging.getLogger(__name__)

INBOX = "inbox"  # every officer page listens here
KEEPALIVE_S = 15.0
QUEUE_SIZE = 100
_CLOSE = object()


def chat_topic(channel: str, chat_id: str) -> str:
    """The topic a citizen's own page listens on (exists before the conversation does)."""
    return f"chat:{channel}:{chat_id}"


def session_topic(session_token: str) -> str:
    """The topic that ends an officer's streams when the session ends (logout)."""
    return f"session:{session_token}"


def conversation_data(kind: str, conv: Conversation, **extra: Any) -> dict[str, Any]:
    """What a page needs to know to refresh itself (no citizen text: pages fetch that themselves)."""
    return {"kind": kind, "conversation_id": conv.id, "state": conv.state, "priority": conv.priority, **extra}


class EventHub:
    """Subscribers per topic; a slow page loses events (it refetches anyway), never blocks the bot."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self.closed = False
        self.relay: Callable[[str, str, dict[str, Any] | None], None] | None = None  # to the other instances (bot/cluster_live.py)

    def topics(self) -> list[str]:
        """The topics somebody listens on here."""
        return list(self._subscribers)

    def subscribe(self, topic: str, queue: asyncio.Queue[Any] | None = None) -> asyncio.Queue[Any]:
        """A queue (new, or `queue`) that receives every event published on `topic`."""
        queue = queue if queue is not None else asyncio.Queue(QUEUE_SIZE)
        self._subscribers[topic].add(queue)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Any]) -> None:
        """Stop delivering to `queue`."""
        self._subscribers[topic].discard(queue)
        if not self._subscribers[topic]:
            del self._subscribers[topic]

    def publish(self, topic: str, data: dict[str, Any], relay: bool = True) -> None:
        """Hand an event to every subscriber of `topic` (and, with `relay`, to the other instances' subscribers)."""
        if relay and self.relay is not None:
            self.relay("publish", topic, data)
        for queue in list(self._subscribers.get(topic, ())):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                if data.get("escalated") and _make_room(queue):  # an emergency is never the update a slow page loses
                    queue.put_nowait(data)
                    continue
                log.warning("live update dropped for a slow page on %s", topic)

    def publish_conversation(self, kind: str, conv: Conversation, **extra: Any) -> None:
        """Tell the officers' pages and the citizen's own page that a conversation changed."""
        data = conversation_data(kind, conv, **extra)
        self.publish(INBOX, data)
        self.publish(chat_topic(conv.channel, conv.chat_id), {"kind": kind})

    def on_dispatch(self, event: Event) -> None:
        """Dispatcher listener: every new message, queuing, escalation and delivery."""
        extra = {"escalated": True} if event.kind == "escalated" else {}
        self.publish_conversation(event.kind, event.conversation, **extra)

    def close(self) -> None:
        """End every open stream (at shutdown)."""
        self.closed = True
        for topic in list(self._subscribers):
            self.close_topic(topic, relay=False)

    def close_topic(self, topic: str, relay: bool = True) -> None:
        """End the streams listening on `topic` (an officer logged out, a citizen deleted the chat), on every instance."""
        if relay and self.relay is not None:
            self.relay("close", topic, None)
        for queue in list(self._subscribers.get(topic, ())):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(_CLOSE)


def _make_room(queue: asyncio.Queue[Any]) -> bool:
    """Drop the oldest update to make room; False when that was the end-of-stream mark (kept: the stream ends anyway)."""
    oldest = queue.get_nowait()
    if oldest is _CLOSE:
        queue.put_nowait(_CLOSE)
        return False
    return True


async def stream(request: web.Request, hub: EventHub, topics: list[str],
                 alive: Callable[[], bool] | None = None) -> web.StreamResponse:
    """Serve `topics` as text/event-stream until the page goes away, `alive()` turns false, or the app shuts down.

    `alive` (an officer's session still valid) is asked at least every KEEPALIVE_S seconds.
    """
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = hub.subscribe(topics[0])
    for topic in topics[1:]:
        hub.subscribe(topic, queue)
    checked = time.monotonic()
    try:
        await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
        while not hub.closed:
            try:
                data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                data = None
            if data is _CLOSE:
                break
            if alive is not None and time.monotonic() - checked >= KEEPALIVE_S:
                if not alive():
                    break
                checked = time.monotonic()
            if data is None:
                await response.write(b": keepalive\n\n")
            else:
                await response.write(f"event: update\ndata: {json.dumps(data)}\n\n".encode())
    except ConnectionResetError:  # aiohttp 3.10+ raises its ClientConnectionResetError, a subclass
        pass
    finally:
        for topic in topics:
            hub.unsubscribe(topic, queue)
    return response
