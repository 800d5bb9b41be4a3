"""Two instances, one truth: the leader, conversation locks across instances, live updates (bot/cluster.py).

Two PgCluster objects in one process stand for two instances: each has its own connections, so
PostgreSQL sees two sessions, exactly as with two processes.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import sqlite3
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.cluster import SingleNode, for_database
from bot.dispatcher import Dispatcher
from bot.handover import Conversation, HandoverLog, Inbound, Message
from bot.channels.base import LogOnlySender
from bot.services import Services
from bot.settings import Settings
from bot.triage import Triage
from bot.web.app import create_app
from bot.web.keys import HUB
from bot.web.keys import SERVICES as SERVICES_KEY
from bot.channels.comment_executor import CommentExecutor
from bot.channels.graph_comments import GraphComments
from bot.channels.telegram_app import POLLER
from bot.handover.comments import Comments, IncomingComment
from tests.fake_bot_api import FakeBotApi, bot_settings
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import graph, meta_settings  # noqa: F401  (fixture)
from tests.web_support import METRICS_TOKEN, OPERATOR, Browser, with_settings
from bot.cluster_live import LiveRelay, PresenceShare, SharedPresence
from bot.cluster_pg import PgCluster
from bot.web.live import INBOX, EventHub, session_topic

TAKEOVER_S = 10.0  # the bound


async def wait_for(check, timeout: float = 5.0, poll: float = 0.02) -> float:
    """Seconds until check() is true; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(poll)
    return time.monotonic() - started


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[PgCluster, PgCluster]]:
    a, b = PgCluster(pg_url, "a", tick_s=0.2), PgCluster(pg_url, "b", tick_s=0.2)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])


async def test_exactly_one_of_two_instances_leads_and_runs_the_leader_jobs(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    runs = {"a": 0, "b": 0}

    def job(name: str):
        async def run() -> None:
            runs[name] += 1
            await asyncio.Event().wait()
        return run

    a.lead("polling", job("a"))
    b.lead("polling", job("b"))
    await asyncio.sleep(0.6)  # several rounds of both
    assert [a.is_leader, b.is_leader] == [True, False]  # a started first
    assert runs == {"a": 1, "b": 0}
    assert a.status() == {"instance": "a", "leader": True, "backend": "postgresql", "connected": True, "listening": True}


async def test_the_follower_takes_over_when_the_leaders_session_dies(pg_url: str, pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    started = asyncio.Event()
    b.lead("polling", lambda: started.wait())  # b's job runs only once b leads
    polling_on_a = a.lead("polling", lambda: asyncio.Event().wait())
    await asyncio.sleep(0.1)
    assert polling_on_a.running and a.is_leader and not b.is_leader
    assert a.conn is not None
    terminate(pg_url, a.conn.info.backend_pid)  # the leader's connection dies (as when its process is killed)
    took = await wait_for(lambda: b.is_leader, timeout=TAKEOVER_S)
    print(f"\ntakeover after the leader's session died: {took:.2f} s (rounds every {b.tick_s} s)")
    assert took < TAKEOVER_S
    await wait_for(lambda: not a.is_leader, timeout=3)
    assert not polling_on_a.running  # fenced: the old leader stopped its leader-only work
    await wait_for(lambda: a.conn is not None and not a.conn.closed, timeout=3)  # a reconnects, as a follower
    await asyncio.sleep(0.5)
    assert b.is_leader and not a.is_leader


async def test_a_closed_leader_hands_over_at_once(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    await a.close()
    took = await wait_for(lambda: b.is_leader, timeout=TAKEOVER_S)
    assert took < 1.5


async def test_a_conversation_lock_excludes_the_other_instance_and_not_other_conversations(
    pair: tuple[PgCluster, PgCluster],
) -> None:
    a, b = pair
    order: list[str] = []

    async def hold(cluster: PgCluster, name: str, conversation: int, seconds: float) -> None:
        async with cluster.conversation_lock(conversation):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    first = asyncio.create_task(hold(a, "a", 7, 0.4))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(hold(b, "b", 7, 0))
    other = asyncio.create_task(hold(b, "other", 8, 0))
    await asyncio.wait_for(asyncio.gather(first, second, other), 5)
    assert order.index("b in") > order.index("a out")  # b waited for a's conversation
    assert order.index("other in") < order.index("a out")  # another conversation did not wait


async def test_many_tasks_on_two_instances_never_overlap_in_one_conversation(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    inside, most = 0, 0

    async def work(cluster: PgCluster) -> None:
        nonlocal inside, most
        async with cluster.conversation_lock(42):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(work(a if i % 2 else b) for i in range(40))), 20)
    assert most == 1


async def test_a_lock_held_by_a_dead_instance_goes_with_its_session(pg_url: str, pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with a.conversation_lock(5):
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    assert a.conn is not None
    terminate(pg_url, a.conn.info.backend_pid)

    async def take() -> None:
        async with b.conversation_lock(5):
            pass

    await asyncio.wait_for(take(), 5)
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)


async def test_a_live_update_published_on_one_instance_reaches_a_page_on_the_other(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    hub_a, hub_b = EventHub(), EventHub()
    LiveRelay(hub_a, a).attach()
    LiveRelay(hub_b, b).attach()
    page_a, page_b = hub_a.subscribe(INBOX), hub_b.subscribe(INBOX)
    hub_a.publish(INBOX, {"kind": "escalated", "conversation_id": 3, "escalated": True})
    got = await asyncio.wait_for(page_b.get(), 3)
    assert got == {"kind": "escalated", "conversation_id": 3, "escalated": True}
    assert page_a.get_nowait() == got  # the own page hears it once ...
    await asyncio.sleep(0.3)
    assert page_a.empty() and page_b.empty()  # ... and nobody hears it twice
    for n in range(60):  # a burst arrives complete and in order
        hub_a.publish(INBOX, {"kind": "message", "conversation_id": n})
    burst = [(await asyncio.wait_for(page_b.get(), 3))["conversation_id"] for _ in range(60)]
    assert burst == list(range(60))


async def test_logging_out_on_one_instance_ends_the_sessions_stream_on_the_other(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    hub_a, hub_b = EventHub(), EventHub()
    LiveRelay(hub_a, a).attach()
    LiveRelay(hub_b, b).attach()
    mine, someone_else = hub_b.subscribe(session_topic("token-1")), hub_b.subscribe(session_topic("token-2"))
    hub_a.close_topic(session_topic("token-1"))  # logout on a
    assert await asyncio.wait_for(mine.get(), 3) is not None  # the end-of-stream mark
    await asyncio.sleep(0.2)
    assert someone_else.empty()


async def test_pages_refetch_after_the_listen_connection_was_lost(pg_url: str, pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    hub_b = EventHub()
    LiveRelay(hub_b, b).attach()
    page = hub_b.subscribe(INBOX)
    assert b.listen_conn is not None
    terminate(pg_url, b.listen_conn.info.backend_pid)
    await wait_for(lambda: b.reconnects == 1, timeout=5)
    assert await asyncio.wait_for(page.get(), 1) is not None  # the stream ends: the page reconnects and refetches
    hub_a = EventHub()
    LiveRelay(hub_a, a).attach()
    page = hub_b.subscribe(INBOX)
    hub_a.publish(INBOX, {"kind": "message", "conversation_id": 1})
    assert (await asyncio.wait_for(page.get(), 3))["kind"] == "message"  # listening again


async def test_an_officer_online_on_one_instance_is_online_on_the_other(pair: tuple[PgCluster, PgCluster]) -> None:
    a, b = pair
    hub_a, hub_b = EventHub(), EventHub()
    presence_a, presence_b = SharedPresence(), SharedPresence()
    share_a, share_b = PresenceShare(presence_a, hub_a, a), PresenceShare(presence_b, hub_b, b)
    share_a.attach()
    share_b.attach()
    presence_a.on_change = share_a.share
    page_b = hub_b.subscribe(INBOX)
    assert not presence_b.anyone_online()
    presence_a.stream_opened("anna", "token-a")
    assert (await asyncio.wait_for(page_b.get(), 3)) == {"kind": "presence"}  # b's pages refresh who is online
    assert [(o.name, o.live) for o in presence_b.online()] == [("anna", True)]
    assert presence_b.anyone_online()
    stream_b = hub_b.subscribe(session_topic("token-b"))
    presence_b.stream_opened("anna", "token-b")
    share_a.forget("anna", None)  # anna deactivated on a: her stream on b ends too
    assert await asyncio.wait_for(stream_b.get(), 3) is not None
    await wait_for(lambda: presence_b.tokens("anna") == [])
    share_a.detach()
    share_b.detach()


async def test_a_single_node_leads_at_once_and_locks_like_asyncio() -> None:
    node = for_database("")
    assert isinstance(node, SingleNode) and node.is_leader and node.status()["backend"] == "sqlite"
    ran = asyncio.Event()
    job = node.lead("retention", lambda: ran.set() or asyncio.sleep(0))
    await asyncio.wait_for(ran.wait(), 1)
    order: list[int] = []

    async def hold(n: int) -> None:
        async with node.conversation_lock(1):
            order.append(n)
            await asyncio.sleep(0.01)
            order.append(n)

    await asyncio.gather(hold(1), hold(2))
    assert order == [1, 1, 2, 2]
    node.send({"kind": "live"})  # nobody to tell: nothing happens
    await node.close()
    assert not job.running


# -- two dispatchers on one database -----------------------------------------------------------


class SlowRecorder:
    """A channel's sender that takes a while (so two instances would overlap) and counts what went out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, conversation: Conversation, message: Message) -> str | None:
        await asyncio.sleep(0.05)
        self.sent.append((conversation.chat_id, message.text))
        return f"out-{len(self.sent)}"


def slow(triage: Triage) -> Triage:
    """The same triage, thinking for 50 ms (as the model does): a second decision would start meanwhile."""
    copied = copy.copy(triage)
    decide = triage.decide

    async def slow_decide(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)
        return await decide(*args, **kwargs)

    copied.decide = slow_decide  # type: ignore[method-assign]
    return copied


@asynccontextmanager
async def instance(url: str, name: str, triage: Triage, sender: SlowRecorder) -> AsyncIterator[Dispatcher]:
    """One instance's dispatcher: its own log connection and its own cluster connections."""
    log = HandoverLog.open(url)
    dispatcher = Dispatcher(log, triage, {"webchat": sender})
    dispatcher.cluster = PgCluster(url, name, tick_s=0.2)
    dispatcher.cluster.receivers.append(dispatcher.on_cluster_message)  # (as bot/web/app.py wires it)
    await dispatcher.cluster.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.cluster.close()
        log.close()


async def test_a_message_delivered_to_both_instances_at_once_is_stored_decided_and_answered_once(
    pg_url: str, triage_no_model: Triage,
) -> None:
    sender, triage = SlowRecorder(), slow(triage_no_model)
    async with instance(pg_url, "a", triage, sender) as a, instance(pg_url, "b", triage, sender) as b:
        inbound = Inbound("webchat", "chat-1", "chat-1", "Wo finde ich das Fundbüro?", platform_id="client-1")
        results = await asyncio.wait_for(asyncio.gather(a.handle(inbound), b.handle(inbound)), 20)
        assert sorted(r is None for r in results) == [False, True]  # the second delivery is a duplicate
        conv = a.log.find_conversation("webchat", "chat-1")
        assert conv is not None
        messages = a.log.transcript(conv.id)
        assert [m.direction for m in messages] == ["in", "out"]
        assert messages[0].status == "processed" and messages[1].status == "sent"
        assert len(sender.sent) == 1


async def test_two_instances_deciding_and_sending_the_same_message_at_once_answer_it_once(
    pg_url: str, triage_no_model: Triage,
) -> None:
    sender, triage = SlowRecorder(), slow(triage_no_model)
    async with instance(pg_url, "a", triage, sender) as a, instance(pg_url, "b", triage, sender) as b:
        stored = await a.take(Inbound("webchat", "chat-2", "chat-2", "Wo finde ich das Fundbüro?", platform_id="c-2"))
        assert isinstance(stored, Message)
        # the receiving instance and the leader's recovery round take the same stored message at the same moment
        await asyncio.wait_for(asyncio.gather(a.process_and_deliver(stored.id), b.process_and_deliver(stored.id)), 20)
        outbound = [m for m in a.log.transcript(stored.conversation_id) if m.direction == "out"]
        assert len(outbound) == 1 and outbound[0].status == "sent"
        assert len(sender.sent) == 1
        # a reply left pending (say, a failed first try) is resent by both at once: it goes out once
        second = await a.take(Inbound("webchat", "chat-3", "chat-3", "Wo finde ich das Fundbüro?", platform_id="c-3"))
        assert isinstance(second, Message)
        ids = await a.process(second.id)  # decided and stored as pending, not sent yet
        assert ids
        await asyncio.wait_for(asyncio.gather(a.deliver(ids), b.deliver(ids), b.recover()), 20)
        assert len(sender.sent) == 2
        assert [m.status for m in a.log.transcript(second.conversation_id) if m.direction == "out"] == ["sent"]


# -- two apps ------------------------------------------------------------------------------------


@asynccontextmanager
async def app_on(url: str, settings: Settings, triage: Triage) -> AsyncIterator[tuple[web.Application, TestServer]]:
    """One instance of the service on the shared database, on a free port of 127.0.0.1."""
    handover = HandoverLog.open(url)
    services = Services(settings, triage, handover, Dispatcher(handover, triage, {"webchat": LogOnlySender()}))
    app = create_app(settings, services, load_model=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield app, server
    finally:
        await server.close()
        handover.close()


async def test_two_instances_tell_their_role_and_a_chat_on_one_reaches_the_inbox_of_the_other(
    pg_url: str, settings: Settings, triage_no_model: Triage,
) -> None:
    configured = with_settings(settings, metrics_token=METRICS_TOKEN)
    async with app_on(pg_url, configured, triage_no_model) as (app_a, server_a), \
            app_on(pg_url, configured, triage_no_model) as (app_b, server_b):
        health = []
        async with aiohttp.ClientSession() as http:
            for server in (server_a, server_b):
                async with http.get(server.make_url("/healthz"), headers=OPERATOR) as response:
                    health.append(await response.json())
        assert [h["backend"] for h in health] == ["postgresql", "postgresql"]
        assert [h["leader"] for h in health] == [True, False]
        assert health[0]["instance"] != health[1]["instance"]
        inbox_on_b = app_b[HUB].subscribe(INBOX)  # an officer's page on instance b
        async with Browser(server_a) as citizen:  # a citizen writes through instance a
            await citizen.open_chat()
            await citizen.write("Wo finde ich das Fundbüro?")
            update = await asyncio.wait_for(inbox_on_b.get(), 5)
        assert update["kind"] == "message" and update["conversation_id"] > 0


async def test_telegram_is_polled_by_the_leader_only_and_taken_over_when_its_connection_dies(
    pg_url: str, tmp_path: Path, triage_no_model: Triage,
) -> None:
    fake = await FakeBotApi().start()
    configured = bot_settings(tmp_path, fake)
    try:
        async with app_on(pg_url, configured, triage_no_model) as (app_a, _), \
                app_on(pg_url, configured, triage_no_model) as (app_b, _):
            await wait_for(lambda: "poller" in app_a[POLLER], timeout=10)
            fake.text(501, "Wo finde ich das Fundbüro?")
            await fake.wait_for(lambda: len(fake.sent(501)) == 1)
            await asyncio.sleep(1.0)
            assert "poller" not in app_b[POLLER]  # the follower does not poll ...
            assert not fake.calls_of("getUpdates", outcome="error 409")  # ... so no poll was ever cut off by another
            cluster_a = app_a[SERVICES_KEY].dispatcher.cluster
            terminate(pg_url, cluster_a.conn.info.backend_pid)  # instance a loses its database session
            took = await wait_for(lambda: "poller" in app_b[POLLER], timeout=TAKEOVER_S)
            print(f"\nTelegram polling taken over after {took:.2f} s (rounds every 1 s)")
            await wait_for(lambda: "poller" not in app_a[POLLER], timeout=5)  # a stopped polling (fenced)
            fake.text(502, "Wo finde ich das Fundbüro?")
            await fake.wait_for(lambda: len(fake.sent(502)) == 1, timeout=10)
            await asyncio.sleep(1.0)
            assert len(fake.sent(501)) == 1 and len(fake.sent(502)) == 1  # nothing answered twice
            assert took < TAKEOVER_S
    finally:
        await fake.stop()


LEADER_PROCESS = """
import asyncio, sys
from bot.cluster_pg import PgCluster

async def main() -> None:
    cluster = PgCluster(sys.argv[1], "process")
    await cluster.start()
    await cluster.wait_leader()
    print("leader", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_sigkilled_leader_process_is_replaced_within_the_bound(pg_url: str) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", LEADER_PROCESS, pg_url, cwd=Path(__file__).parent.parent,
                                                   stdout=asyncio.subprocess.PIPE)
    follower = PgCluster(pg_url, "follower")
    try:
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"leader"
        await follower.start()
        await asyncio.sleep(1.5)
        assert not follower.is_leader
        process.send_signal(signal.SIGKILL)
        took = await wait_for(lambda: follower.is_leader, timeout=TAKEOVER_S)
        print(f"\ntakeover after SIGKILL of the leader process: {took:.2f} s")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await follower.close()


async def test_an_emergency_comment_taken_in_by_the_follower_is_answered_at_once_and_only_once(
    pg_url: str, tmp_path: Path, graph: FakeGraphApi,  # noqa: F811
) -> None:
    logs = [HandoverLog.open(pg_url), HandoverLog.open(pg_url)]
    clusters = [PgCluster(pg_url, "a", tick_s=0.2), PgCluster(pg_url, "b", tick_s=0.2)]
    async with aiohttp.ClientSession() as session:
        client = GraphComments(session, meta_settings(tmp_path, graph))
        executors = [CommentExecutor(Comments(log), client, cluster=cluster) for log, cluster in zip(logs, clusters)]
        try:
            for cluster, executor in zip(clusters, executors):
                await cluster.start()
                executor.start()
            assert clusters[0].is_leader and not clusters[1].is_leader
            await executors[0].stop()  # the leader's loop is busy elsewhere (or being taken over): only b can answer
            follower = executors[1].store
            graph.add_comment("17800000000000777", "17900000000000100", "Hilfe, er schlägt mich gerade", "5550777")
            c = follower.record(IncomingComment("instagram", "17800000000000777", "17900000000000100", "5550777",
                                                "Hilfe, er schlägt mich gerade", author_name="jemand"))
            assert c is not None
            started = time.monotonic()
            public = follower.plan(c.id, "public_reply", "Bitte ruf sofort die 110 an.", priority=0)
            await executors[1].kick()  # the webhook reached the follower
            await graph.wait_for_comments(lambda calls: any(k.kind == "reply" for k in calls), 5)
            assert time.monotonic() - started < 5.0
            executors[0].start()
            graph.add_comment("17800000000000778", "17900000000000100", "Schönes Foto", "5550778")
            ordinary = follower.record(IncomingComment("instagram", "17800000000000778", "17900000000000100", "5550778",
                                                       "Schönes Foto", author_name="jemand"))
            assert ordinary is not None
            thanks = follower.plan(ordinary.id, "public_reply", "Danke dir!")
            await executors[1].kick()  # ordinary work: the leader's loop takes it
            await wait_for(lambda: follower.action(thanks).status == "sent", timeout=5)
            await asyncio.sleep(1.5)  # both loops had their rounds
            replies = [k for k in graph.comment_calls if k.kind == "reply"]
            assert sorted(k.target for k in replies) == ["17800000000000777", "17800000000000778"]  # each once
            assert follower.action(public).status == "sent"
        finally:
            for cluster, executor in zip(clusters, executors):
                await executor.stop()
                await cluster.close()
            for log in logs:
                log.close()


async def test_an_emergency_one_instance_holds_in_memory_is_not_answered_again_by_the_other(
    pg_url: str, triage_no_model: Triage, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender = SlowRecorder()
    async with instance(pg_url, "a", triage_no_model, sender) as a, instance(pg_url, "b", triage_no_model, sender) as b:
        record = a._record
        failures = iter([True])

        def locked_once(*args: Any, **kwargs: Any) -> Any:
            if next(failures, False):
                raise sqlite3.OperationalError("database is locked (LockNotAvailable)")
            return record(*args, **kwargs)

        monkeypatch.setattr(a, "_record", locked_once)
        await a.handle(Inbound("webchat", "c9", "c9", "Hilfe, er hat ein Messer und sticht zu", platform_id="m1"))
        await asyncio.sleep(0.5)  # answered from memory; its decision waits in A's memory, and A says so
        assert [t for _, t in sender.sent if t.startswith("🚨")] and a.unwritten
        await b.handle(Inbound("webchat", "c9", "c9", "hallo??", platform_id="m2"))  # B's catch-up sees it undecided
        await b.recovery.run_once(everything_due=True)  # and so does the leader's round
        assert len([t for _, t in sender.sent if t.startswith("🚨")]) == 1  # one emergency reply, not two
        await a.recovery.run_once(everything_due=True)  # A writes its records
        conv = a.log.find_conversation("webchat", "c9")
        assert conv is not None and a.log.transcript(conv.id)[0].status == "processed"
        assert len([m for m in a.log.transcript(conv.id) if m.text.startswith("🚨")]) == 1
