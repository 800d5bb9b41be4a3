"""Live updates: dispatcher and officer events fanned out to open pages as server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

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


def conversation_data(kind: str, conv: Conversation, **extra: Any) -> dict[str, Any]:
    """What a page needs to know to refresh itself (no citizen text: pages fetch that themselves)."""
    return {"kind": kind, "conversation_id": conv.id, "state": conv.state, "priority": conv.priority, **extra}


class EventHub:
    """Subscribers per topic; a slow page loses events (it refetches anyway), never blocks the bot."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self.closed = False

    def subscribe(self, topic: str) -> asyncio.Queue[Any]:
        """A queue that receives every event published on `topic`."""
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[topic].add(queue)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Any]) -> None:
        """Stop delivering to `queue`."""
        self._subscribers[topic].discard(queue)
        if not self._subscribers[topic]:
            del self._subscribers[topic]

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Hand an event to every subscriber of `topic`."""
        for queue in list(self._subscribers.get(topic, ())):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
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
        for queues in self._subscribers.values():
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(_CLOSE)


async def stream(request: web.Request, hub: EventHub, topic: str) -> web.StreamResponse:
    """Serve `topic` as text/event-stream until the page goes away or the app shuts down."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = hub.subscribe(topic)
    try:
        await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
        while not hub.closed:
            try:
                data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if data is _CLOSE:
                break
            await response.write(f"event: update\ndata: {json.dumps(data)}\n\n".encode())
    except ConnectionResetError:
        pass
    finally:
        hub.unsubscribe(topic, queue)
    return response
