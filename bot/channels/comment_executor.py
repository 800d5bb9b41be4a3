"""Performs the planned comment actions (replies, hides, deletes) through the Graph API, emergencies first.

Every action is a row in `comment_actions` (bot/handover/comments.py): nothing lives only in memory. The row is
set to "sending" (committed) before its request leaves, so after a crash the executor knows which requests may have
reached Meta. Those are resolved without a second private reply:
- hide, unhide, delete: done again (they are idempotent; deleting a comment that is gone counts as done);
- public reply: the comment's replies are read first; a reply with the same text counts as sent, else it is sent;
- private reply: status "unknown", never sent again automatically (Meta allows one, and there is no documented
  way to read whether it arrived); the inbox shows the officer text, the officer checks in the app.
A request that got no answer at run time (timeout, dropped connection) is handled the same way
(bot/channels/comment_outcomes.py: what happens after a request, and after a crash).
With several instances (bot/cluster.py) the loop and the crash recovery run on the leader; an instance
that is not the leader still performs the emergencies planned on it at once (the "sending" step above
is a compare-and-set, so the leader never takes the same action).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from bot.channels.comment_outcomes import RETRY_DELAYS_S, CommentOutcomes
from bot.channels.graph_comments import CommentApiError, GraphComments
from bot.channels.meta_send import LABELS
from bot.channels.priority import PriorityGate
from bot.cluster import Cluster, LeaderJob
from bot.handover import HandoverLog
from bot.handover.comments import Comment, CommentAction, Comments
from bot.settings import Settings
from bot.web.live import EventHub

log = logging.getLogger(__name__)

CONCURRENCY = 16  # Graph calls in flight; an emergency gets the next free place
BATCH = 500
STOP_TIMEOUT_S = 10.0
MODERATION = ("hide", "unhide", "delete")


@dataclass
class CommentDesk:
    """What the web app shares as app[COMMENTS]: the store and its executor."""

    store: Comments
    executor: "CommentExecutor"

    @classmethod
    def start(cls, handover: HandoverLog, session: aiohttp.ClientSession, settings: Settings,
              hub: EventHub | None = None, cluster: Cluster | None = None) -> "CommentDesk":
        """The store and a running executor on the Meta channel's HTTP session."""
        store = Comments(handover)
        executor = CommentExecutor(store, GraphComments(session, settings), hub, cluster=cluster)
        executor.start()
        return cls(store, executor)


class CommentExecutor(CommentOutcomes):
    """Takes due actions from the store, groups them per comment (in order), performs them concurrently."""

    def __init__(self, comments: Comments, client: GraphComments, hub: EventHub | None = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS_S, concurrency: int = CONCURRENCY,
                 cluster: Cluster | None = None) -> None:
        self.store = comments
        self.cluster = cluster  # None: this process alone (tests); else the loop runs on the leader
        self._job: LeaderJob | None = None
        self.log = comments.log
        self.client = client
        self.hub = hub
        self.retry_delays = retry_delays
        self.gate = PriorityGate(concurrency)
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._groups: dict[int, asyncio.Task[None]] = {}  # comment id -> its running group
        self._not_before: dict[int, float] = {}  # action id -> monotonic time of its next try
        self._verify: set[int] = set()  # public replies to look for before sending again
        self._stuck: dict[int, str] = {}  # action id -> kind: sent, but saving the result failed

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Resolve what a crash left "sending", then keep performing due actions (on the leader, with a cluster)."""
        if self.cluster is not None:
            self._job = self.cluster.lead("comment executor", self._lead)
            return
        self.recover()
        self._loop = asyncio.ensure_future(self._run())

    async def _lead(self) -> None:
        self._loop = asyncio.current_task()
        try:
            self.recover()
            await self._run()
        finally:
            self._loop = None

    async def stop(self) -> None:
        """Stop taking actions; let requests in flight finish (bounded)."""
        if self._job is not None and self.cluster is not None:
            await self.cluster.drop(self._job)
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._groups:
            await asyncio.wait(set(self._groups.values()), timeout=STOP_TIMEOUT_S)
        for task in list(self._groups.values()):
            task.cancel()
        await asyncio.gather(*self._groups.values(), return_exceptions=True)

    async def kick(self) -> None:
        """New actions were planned: look at once (not the leader: perform the emergencies here, now)."""
        self._wake.set()
        if self._job is not None and self._loop is None:
            try:
                self.dispatch(urgent_only=True)
            except Exception:  # the leader's loop takes them within a second
                log.exception("emergency comment actions not started on this instance")

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._unstick()
                self.dispatch()
            except Exception:  # a locked database and the like: try again shortly
                log.exception("comment executor pass failed")
            waits = [t - time.monotonic() for t in self._not_before.values()] + ([1.0] if self._stuck else [])
            timeout = max(0.05, min(waits)) if waits else None
            if self.cluster is not None and self.cluster.backend != "sqlite":  # other instances plan actions too
                timeout = min(timeout or 1.0, 1.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    # -- taking actions ----------------------------------------------------------------------

    def dispatch(self, urgent_only: bool = False) -> int:
        """Start a group task for every comment with due actions that has none running; how many started."""
        now = time.monotonic()
        groups: dict[int, list[CommentAction]] = {}
        for action in self.store.due_actions(BATCH):
            if action.comment_id in self._groups or self._not_before.get(action.id, 0) > now:
                continue
            if urgent_only and action.priority != 0:
                continue
            groups.setdefault(action.comment_id, []).append(action)
        for comment_id, actions in groups.items():
            task = asyncio.ensure_future(self._group(actions))
            self._groups[comment_id] = task
            task.add_done_callback(lambda _t, cid=comment_id: self._finished(cid))
        return len(groups)

    def _finished(self, comment_id: int) -> None:
        self._groups.pop(comment_id, None)
        self._wake.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until no action is due now and none is running (for tests and the bench)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._loop is None:
                self.dispatch()
            if self._groups:
                await asyncio.wait(set(self._groups.values()), timeout=deadline - time.monotonic())
                continue
            now = time.monotonic()
            if not any(self._not_before.get(a.id, 0) <= now for a in self.store.due_actions(BATCH)):
                return
            await asyncio.sleep(0.01)

    async def _group(self, actions: list[CommentAction]) -> None:
        """One comment's actions, in order; a moderation step that must be retried holds back later ones."""
        urgent = min(a.priority for a in actions) == 0
        async with self.gate.slot(urgent):
            held = False
            for action in actions:
                if held and action.kind in MODERATION:
                    continue
                try:
                    done = await self.perform(action)
                except Exception:
                    log.exception("comment action %d failed unexpectedly", action.id)
                    self._backoff(action.id, action.attempts + 1, None)
                    done = False
                held = held or (not done and action.kind in MODERATION)

    async def perform(self, action: CommentAction) -> bool:
        """Do one action; True when it is settled (sent or finally failed), False when it waits for a retry."""
        c = self.store.get(action.comment_id)
        refusal = self._refusal(action, c)
        if refusal:
            return self._fail(action, c, refusal, final=True)
        if action.id in self._verify and await self._found_reply(action, c):
            return True
        cursor = self.log.db.execute("UPDATE comment_actions SET status = 'sending' WHERE id = ? AND status = 'pending'", [action.id])
        if cursor.rowcount != 1:  # someone else took it, or it was cancelled meanwhile
            return True
        try:
            platform_id, recipient = await self._call(action, c)
        except CommentApiError as err:
            return self._failed_call(action, c, err)
        try:
            with self.log.transaction():
                self.store.action_sent(action.id, platform_id)
                if action.kind == "private_reply" and recipient:
                    self._link_dm(action, c, recipient, platform_id)
        except Exception:  # sent, but not saved (a locked database, ...): never leave it "sending" until a restart
            log.exception("comment action %d was sent but its result not saved", action.id)
            self._stuck[action.id] = action.kind
            self._unstick()
            return True
        self._verify.discard(action.id)
        self._not_before.pop(action.id, None)
        self._publish(c, action, "sent")
        return True

    def _refusal(self, action: CommentAction, c: Comment) -> str | None:
        """Why this action must not go out at all (German, for officers), or None."""
        label = LABELS.get(c.channel, c.channel)
        if c.removed_at or (c.deleted and action.kind != "delete"):
            return "Der Kommentar wurde gelöscht."
        if not self.client.configured(c.channel):
            return f"Nicht möglich: {label} ist nicht eingerichtet (Zugangsschlüssel oder Konto-ID fehlt)."
        if action.kind == "private_reply" and not self.store.private_window_open(c):
            return "Älter als 7 Tage: eine private Antwort ist nicht mehr möglich."
        if action.kind == "public_reply" and c.channel == "instagram" and c.hidden:
            return "Nicht gesendet: Auf Instagram kann man ausgeblendete Kommentare nicht beantworten. Erst einblenden."
        return None

    async def _call(self, action: CommentAction, c: Comment) -> tuple[str | None, str | None]:
        """The Graph call for this action: (platform id, DM recipient id)."""
        if action.kind == "public_reply":
            return await self.client.reply_public(c.channel, c.platform_id, action.text) or None, None
        if action.kind == "private_reply":
            recipient, message_id = await self.client.reply_private(c.channel, c.platform_id, action.text)
            return message_id or None, recipient or None
        if action.kind == "delete":
            await self.client.delete(c.channel, c.platform_id)
        else:
            await self.client.hide(c.channel, c.platform_id, action.kind == "hide")
        return None, None
