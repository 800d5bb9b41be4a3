"""Bounded anonymous intake of the web chat, over real HTTP on 127.0.0.1: the floods of issue 12 repeated (bounded).

Limits per chat, per address and overall; a calm message for each; an emergency always taken; other
channels and webhooks untouched by the web chat's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import uuid
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.handover import HandoverLog
from bot.nlu_client import NluClient
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.settings import Settings
from bot.triage import Triage
from bot.web.intake import INTAKE, network_key
from bot.web.webchat import CHAT_COOKIE
from bot.web.ratelimit import Buckets, Slots
from tests.conftest import make_triage
from tests.web_support import Browser, from_address, served, with_settings

EMERGENCY = "Hilfe, hier ist ein Einbrecher im Haus!"
QUESTION = "Wo finde ich das Fundbüro in meiner Stadt?"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def timed_emergency(server: TestServer) -> tuple[aiohttp.ClientResponse, float]:
    """A new citizen writes an emergency; the response and the seconds it took."""
    async with Browser(server) as citizen:
        await citizen.open_chat()
        started = asyncio.get_running_loop().time()
        emergency = await citizen.send(EMERGENCY)
        return emergency, asyncio.get_running_loop().time() - started


def stored(log: HandoverLog, where: str = "1 = 1") -> int:
    return log.db.execute(f"SELECT COUNT(*) FROM messages WHERE direction = 'in' AND channel = 'webchat' AND {where}").fetchone()[0]


# -- the building blocks --------------------------------------------------------------------------------------------

def test_a_bucket_allows_its_capacity_then_refills_evenly() -> None:
    clock = Clock()
    buckets = Buckets(3, 60, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(20.0)]
    assert buckets.take("b") == 0.0  # every key has its own bucket
    clock.now += 20
    assert buckets.take("a") == 0.0 and buckets.take("a") == pytest.approx(20.0)
    assert buckets.retry_after("a", cost=10) == pytest.approx(60.0)  # more than the capacity: wait for a full bucket


def test_a_bucket_forgets_the_least_recently_used_key_first() -> None:
    buckets = Buckets(1, 60, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        buckets.take(key)
    assert len(buckets) == 2 and buckets.retry_after("a") == 0.0 and buckets.retry_after("c") > 0


def test_slots_count_per_key_and_overall() -> None:
    slots = Slots({"chat": 2, "address": 3}, total=4)
    grants = [slots.acquire({"chat": c, "address": "x"}) for c in ("1", "1", "1", "2", "3")]
    assert grants == [None, None, "chat", None, "address"]
    slots.release({"chat": "1", "address": "x"})
    assert slots.acquire({"chat": "9", "address": "y"}) is None and slots.acquire({"chat": "8", "address": "y"}) is None
    assert slots.acquire({"chat": "7", "address": "z"}) == "total" and slots.open == 4


@pytest.mark.parametrize("address, key", [
    ("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"), ("::ffff:198.51.100.3", "198.51.100.3"), ("not-an-ip", "not-an-ip"),
])
def test_limits_count_per_ipv4_address_or_ipv6_network(address: str, key: str) -> None:
    assert network_key(address) == key


# -- over HTTP --------------------------------------------------------------------------------------------------------

async def test_a_flooding_chat_is_told_to_wait_and_its_messages_are_neither_stored_nor_parsed(
    settings: Settings, triage_no_model: Triage
) -> None:
    async with served(with_settings(settings, webchat_messages_per_minute=5), triage_no_model) as (app, server, services), \
            Browser(server) as citizen:
        await citizen.open_chat()
        statuses = [(await citizen.send(f"Frage Nummer {n}: wo ist das Fundbüro?")).status for n in range(5)]
        refused = await citizen.send("Und noch eine Frage zum Fundbüro")
        body = await refused.json()
        before = stored(services.handover)
        emergency = await citizen.send(EMERGENCY)
        conv = services.handover.conversations(("queued",))[0]
        last = services.handover.transcript(conv.id)[-2:]
        processed = stored(services.handover, "status = 'processed'")
    assert statuses == [202] * 5 and refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert body["limit"] == "messages" and "sehr viele Nachrichten" in body["message"] and "110" in body["message"]
    assert before == 5 and processed == 6  # the refused one was never stored, so never parsed
    assert emergency.status == 202 and conv.priority == 2  # an emergency is taken over the limit, and escalated
    assert last[0].text == EMERGENCY and last[1].text.startswith("🚨")
    assert app[INTAKE].refused["messages"] == 1 and app[INTAKE].exempt == 1


async def test_the_limit_message_speaks_english_to_an_english_writer(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, webchat_messages_per_minute=1), triage_no_model) as (_, server, _), \
            Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.send("Where can I report a stolen bike please?")
        body = await (await citizen.send("Hello, is anyone there? I have a question about my bike")).json()
    assert body["message"].startswith("You've sent a lot of messages")


async def test_one_address_cannot_open_endless_new_chats_but_others_can(settings: Settings, triage_no_model: Triage) -> None:
    tight = with_settings(settings, trusted_proxies=("127.0.0.1",), webchat_new_chats_per_hour=3)
    async with served(tight, triage_no_model) as (_, server, services):
        statuses, bodies = [], []
        for _ in range(5):
            async with Browser(server) as citizen:
                await citizen.open_chat()
                response = await citizen.send(QUESTION, headers=from_address("203.0.113.4"))
                statuses.append(response.status)
                bodies.append(await response.json())
        async with Browser(server) as neighbour:
            await neighbour.open_chat()
            elsewhere = await neighbour.send(QUESTION, headers=from_address("198.51.100.4"))
        async with Browser(server) as victim:  # same crowded address, but in danger
            await victim.open_chat()
            emergency = await victim.send(EMERGENCY, headers=from_address("203.0.113.4"))
        conversations = services.handover.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
    assert statuses == [202, 202, 202, 429, 429]
    assert bodies[3]["limit"] == "new_chats" and "neue Chats" in bodies[3]["message"]
    assert elsewhere.status == 202 and emergency.status == 202 and conversations == 5


async def test_forged_chat_cookies_from_one_address_store_a_bounded_amount(settings: Settings, triage_no_model: Triage) -> None:
    """The M5 probe, bounded: 200 new chats with forged ids and 4,000-character messages, 20 at a time."""
    text = "Blabla " * 571  # 3,997 characters, no emergency
    async with served(settings, triage_no_model) as (_, server, services):
        async def one(n: int) -> int:
            cookie = {"Cookie": f"streife_chat=forged-{n:04d}-{uuid.uuid4().hex[:8]}"}  # never asked for a page
            async with aiohttp.ClientSession() as http:
                body = {"text": text, "id": str(uuid.uuid4())}
                async with http.post(server.make_url("/chat/messages"), json=body, headers=cookie) as r:
                    return r.status
        statuses: list[int] = []
        for start in range(0, 200, 20):
            statuses += await asyncio.gather(*(one(n) for n in range(start, start + 20)))
        chats = services.handover.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
        size = sum(len(t.encode()) for (t,) in services.handover.db.execute("SELECT text FROM messages WHERE direction = 'in'"))
    assert statuses.count(202) == chats == 30 and statuses.count(429) == 170  # WEBCHAT_NEW_CHATS_PER_HOUR
    assert size <= 30 * 4000


async def test_a_chat_cannot_store_more_text_than_its_budget(settings: Settings, triage_no_model: Triage) -> None:
    long_text = "Ich erzähle euch das ganz genau. " * 120  # 3,960 bytes
    async with served(with_settings(settings, webchat_chat_kb_per_hour=8), triage_no_model) as (_, server, services), \
            Browser(server) as citizen:
        await citizen.open_chat()
        statuses = [(await citizen.send(long_text)).status for _ in range(3)]
        body = await (await citizen.send(long_text)).json()
        short = await citizen.send("kurz")
    assert statuses == [202, 202, 429] and body["limit"] == "chat_size" and "viel Text" in body["message"]
    assert short.status == 202  # a short message still fits


async def test_when_the_web_chat_is_full_overall_the_other_channels_and_emergencies_go_on(
    settings: Settings, triage_no_model: Triage
) -> None:
    from bot.handover import Inbound

    async with served(settings, triage_no_model) as (app, server, services):
        app[INTAKE].total_bytes = Buckets(10_000, 3600, max_keys=1)  # a small overall budget, for a short test
        statuses = []
        for n in range(5):
            async with Browser(server) as citizen:
                await citizen.open_chat()
                statuses.append((await citizen.send(f"{n} " + "Eine lange Geschichte. " * 150)).status)
        async with Browser(server) as latecomer:
            await latecomer.open_chat()
            busy = await latecomer.send(QUESTION + " " + "Eine lange Geschichte. " * 150)
            body = await busy.json()
            emergency = await latecomer.send(EMERGENCY)
        await services.dispatcher.handle(Inbound("instagram", "ig-1", "ig-1", QUESTION, platform_id="mid-1"))
        instagram = services.handover.find_conversation("instagram", "ig-1")
        instagram_messages = len(services.handover.transcript(instagram.id)) if instagram else 0
    assert statuses[:2] == [202, 202] and 429 in statuses and busy.status == 429 and body["limit"] == "busy"
    assert emergency.status == 202
    assert instagram_messages >= 2  # stored, and its answer stored for sending


async def test_live_streams_are_capped_per_chat_per_address_and_overall(settings: Settings, triage_no_model: Triage) -> None:
    """The M6 probe, bounded: streams beyond the caps are refused; an emergency POST is still answered at once."""
    async with served(with_settings(settings, webchat_streams=6), triage_no_model) as (app, server, services):
        timeout = aiohttp.ClientTimeout(total=30)
        opened: list[aiohttp.ClientResponse] = []
        async with Browser(server) as one:
            await one.open_chat()
            same_chat = [await one.http.get(one.url("/chat/events"), timeout=timeout) for _ in range(5)]
            opened += same_chat
            others = []
            for _ in range(3):
                other = Browser(server)
                await other.open_chat()
                others.append(other)
                opened.append(await other.http.get(other.url("/chat/events"), timeout=timeout))
            assert app[INTAKE].streams.open == 6
            emergency, took = await timed_emergency(server)
            statuses = [r.status for r in opened]
            refused_text = await same_chat[4].text()
            for response in opened:
                response.close()
            for other in others:
                await other.http.close()
    assert statuses == [200, 200, 200, 200, 429, 200, 200, 503]
    assert "Live-Anzeige" in refused_text
    assert emergency.status == 202 and took < 1.0


async def test_hundreds_of_streams_from_one_address_hold_twenty_and_an_emergency_is_answered_at_once(
    settings: Settings, triage_no_model: Triage
) -> None:
    """The M6 probe from one address (forged chat cookies, no page asked for): 300 streams at once."""
    async with served(settings, triage_no_model) as (app, server, _):
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
            async def open_stream(n: int) -> aiohttp.ClientResponse:
                return await http.get(server.make_url("/chat/events"), headers={"Cookie": f"streife_chat=probe-{n:05d}"})
            opened = await asyncio.gather(*(open_stream(n) for n in range(300)))
            held = app[INTAKE].streams.open
            emergency, took = await timed_emergency(server)
            statuses = [r.status for r in opened]
            for response in opened:
                response.close()
    assert statuses.count(200) == held == 20 and statuses.count(429) == 280
    assert emergency.status == 202 and took < 1.0


async def test_the_stream_cap_stays_well_below_the_open_file_limit(settings: Settings, triage_no_model: Triage) -> None:
    async with served(with_settings(settings, webchat_streams=10**6), triage_no_model) as (app, _, _):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = app[INTAKE].streams.total
    assert soft == hard or hard == resource.RLIM_INFINITY  # raised to the hard limit at start, as servers do
    assert cap <= soft // 4


async def test_webhooks_are_never_limited_by_the_web_chat(tmp_path, triage_no_model: Triage) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_graph_api import FakeGraphApi
    from tests.instagram_helpers import PAGE_TOKEN, TOKEN, message, meta_settings, notification, running

    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    try:
        settings = with_settings(meta_settings(tmp_path, graph), webchat_messages_per_minute=1, webchat_new_chats_per_hour=1)
        async with running(settings, graph) as bot:
            responses = [await bot.post(notification(message(f"ig-user-{n}", f"Frage {n} zum Fundbüro"))) for n in range(60)]
            await bot.channel.drain()
            stored_ig = bot.log.db.execute("SELECT COUNT(*) FROM messages WHERE channel = 'instagram' AND direction = 'in'").fetchone()[0]
    finally:
        await graph.stop()
    assert [r.status for r in responses] == [200] * 60 and stored_ig == 60


async def test_a_gate_lets_two_of_one_client_through_at_a_time_and_refuses_a_crowd_unread() -> None:
    from bot.web.ratelimit import Gate

    gate, inside, most = Gate(per_key=2, waiting=3, total=10), 0, 0
    answers: list[bool] = []

    async def request(key: str) -> None:
        nonlocal inside, most
        async with gate.enter(key) as admitted:
            answers.append(admitted)
            if admitted:
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.02)
                inside -= 1

    await asyncio.gather(*(request("attacker") for _ in range(12)), request("citizen"))
    assert most <= 3  # two of the attacker's, and the citizen's own turn
    assert answers.count(False) == 12 - 5 and gate.refused == 7  # two inside, three waiting, the rest refused


@contextlib.asynccontextmanager
async def slow_nlu_worker(folder: Path, seconds: float) -> AsyncIterator[Path]:
    """A stand-in NLU worker on a Unix socket (nlu/worker.py's protocol) that takes `seconds` per parse."""
    sock = folder / "slow.sock"

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps({"event": "status", "status": {"loaded": True, "model": "slow"}}).encode() + b"\n")
        while line := await reader.readline():  # one parse at a time, as a worker does
            request = json.loads(line)
            await asyncio.sleep(seconds)
            parse = {"intent": "out_of_scope", "confidence": 0.9, "ranking": [["out_of_scope", 0.9]]}
            writer.write(json.dumps({"id": request["id"], "parse": parse}).encode() + b"\n")
        writer.close()

    server = await asyncio.start_unix_server(client, path=str(sock))
    try:
        yield sock
    finally:
        server.close()  # not wait_closed(): a connection the test left open must not hang it


async def test_one_address_flooding_the_web_chat_does_not_delay_another_citizens_emergency(
    settings: Settings, responses: Responses, safety_net: SafetyNet, tmp_path: Path
) -> None:
    async with slow_nlu_worker(tmp_path, seconds=0.2) as sock:
        client = NluClient([sock], deadline=5)
        triage = make_triage(responses, safety_net, client)
        limits = with_settings(settings, trusted_proxies=("127.0.0.1",), webchat_new_chats_per_hour=1000)
        async with served(limits, triage) as (app, server, services), Browser(server) as citizen:
            await citizen.open_chat()

            async def flood(n: int) -> int:
                async with aiohttp.ClientSession() as http:
                    headers = {**from_address("203.0.113.9"), "Cookie": f"{CHAT_COOKIE}={uuid.uuid4()}"}  # a new chat each
                    response = await http.post(server.make_url("/chat/messages"), headers=headers,
                                               json={"text": f"{'x' * 4000} {n}", "id": str(uuid.uuid4())})
                    return response.status

            flooding = [asyncio.create_task(flood(n)) for n in range(60)]
            await asyncio.sleep(0.3)
            started = asyncio.get_running_loop().time()
            await citizen.write("Hilfe, bei uns wird gerade eingebrochen!")
            waited = asyncio.get_running_loop().time() - started
            statuses = await asyncio.gather(*flooding)
            replies = [m for m in services.handover.iter_messages("direction = 'out'") if "110" in m.text]
        await client.close()
        assert replies, "the emergency got no 110 prompt"
        assert waited < 1.0, f"the emergency waited {waited:.2f} s behind another address's flood"
        assert all(s in (202, 429) for s in statuses), statuses
        assert app[INTAKE].refused["in_progress"] > 0, (statuses, app[INTAKE].refused)  # refused before the body was read
        assert statuses.count(202) >= 2 + 16  # the two in progress and the sixteen waiting were all taken in the end
