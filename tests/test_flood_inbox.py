"""The inbox never hides an emergency: issue 12's H1 probe repeated over real HTTP on 127.0.0.1 (bounded).

One anonymous web-chat client sends 250 fake emergencies, each from a chat of its own (a fresh cookie,
as a script does); then a real emergency comes from someone else. The officers' first screen, its live
part (the event stream and the fragment the page fetches on each event) and `handover list` must show
the real one first, every open emergency with true counts, and the 250 as one group of one client.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid

import aiohttp

from bot.handover import HandoverLog, Inbound
from bot.handover.queue_view import queue_view
from bot.settings import ROOT, Settings
from bot.triage import Triage
from tests.web_support import OPERATOR, Browser, from_address, next_event, served, with_settings

FLOOD = 250
ATTACKER = "203.0.113.7"
REAL = "Bitte helft mir, mein Nachbar liegt bewusstlos im Treppenhaus!"


async def flood(url: str, count: int) -> None:
    """One client, `count` chats (a new cookie each), one emergency in each; a few requests at a time."""
    gate = asyncio.Semaphore(2)  # (the web chat lets two requests of one address in at a time)

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        async with gate:
            body = {"text": f"Hilfe, Einbrecher im Haus! Nummer {n}", "id": str(uuid.uuid4())}
            async with session.post(url, json=body, cookies={"streife_chat": f"flood-{n:06d}"},
                                    headers=from_address(ATTACKER)) as response:
                assert response.status == 202, await response.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, n) for n in range(count)))


async def test_a_real_emergency_stands_out_after_250_fake_ones_from_one_client(settings: Settings, triage_no_model: Triage) -> None:
    settings = with_settings(settings, trusted_proxies=("127.0.0.1",))
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as officer, Browser(server) as citizen:
        await officer.login()
        events = await officer.http.get(officer.url("/inbox/events"))
        await next_event(events, "hello")
        seen: list[dict] = []

        async def watch() -> None:  # the officer's open page: reads every update as it comes
            while True:
                seen.append(await next_event(events, timeout=60))

        watcher = asyncio.create_task(watch())
        await flood(citizen.url("/chat/messages"), FLOOD)
        await citizen.open_chat()
        response = await citizen.http.post(citizen.url("/chat/messages"), json={"text": REAL, "id": str(uuid.uuid4())},
                                           headers=from_address("198.51.100.23"))
        assert response.status == 202
        real = services.handover.find_conversation("webchat", citizen.http.cookie_jar.filter_cookies(citizen.url("/"))["streife_chat"].value)
        for _ in range(200):
            if any(e.get("conversation_id") == real.id and e.get("escalated") for e in seen):
                break
            await asyncio.sleep(0.05)
        watcher.cancel()
        events.close()
        live = await officer.page("/inbox/queue")  # what the page fetches on that event
        page = await officer.page("/inbox")
        metrics = await (await officer.get("/metrics", headers=OPERATOR)).text()

    assert any(e.get("conversation_id") == real.id and e.get("escalated") for e in seen), "no live update for the real emergency"
    for html in (live, page):
        rows = re.findall(r'<tr class="(\w+)" data-conversation="(\d+)">', html)
        assert rows[0] == ("emergency", str(real.id))  # first row of the first screen
        assert len(rows) == FLOOD + 1  # every open emergency is there (the group folded, not cut)
        assert "🚨 Notfälle (251)" in html and "Wartet auf das Team (251)" in html
        assert f"{FLOOD} Notfälle von derselben Person (Web-Chat, derselbe Anschluss)" in html
        assert html.index(f'data-conversation="{real.id}"') < html.index('class="flood"')
    assert re.search(r"^streife_queue_length 251(\.0)?$", metrics, re.M)  # the same count everywhere

    listed = subprocess.run([sys.executable, "-m", "bot", "handover", "list"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=dict(os.environ, DATABASE_PATH=str(settings.database_path), DATABASE_URL=settings.database_url,
                                     LOG_LEVEL="WARNING"))
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert listed.returncode == 0, listed.stderr
    assert lines[0][:3] == [str(real.id), "queued", "EMERGENCY"] and lines[0][-1] == "-"
    assert len(lines) == FLOOD + 1 and all(line[-1].startswith(f"{FLOOD} emergencies from the same network") for line in lines[1:])
    assert "251 open emergencies (250 of them in 1 groups of one client)" in listed.stderr


def test_the_other_chats_are_paged_with_true_counts(tmp_path) -> None:
    log = HandoverLog.open(tmp_path / "db.sqlite3")
    for n in range(130):  # 130 chats handed over, 3 emergencies from three people
        stored = log.record_inbound(Inbound("telegram", str(n), str(n), "Mensch", platform_id=f"m{n}"))
        log.queue(stored.conversation.id, "escalate" if n % 50 == 7 else "handover", "x")
    first, third, past = queue_view(log, 1), queue_view(log, 3), queue_view(log, 9)
    log.close()
    assert (first.emergency_count, len(first.emergencies), first.groups) == (3, 3, [])
    assert (first.waiting_count, len(first.waiting), first.pages) == (127, 50, 3)
    assert len(third.waiting) == 27 and third.emergencies == first.emergencies  # the emergencies on every page
    assert past.page == 3  # a page past the end shows the last one
    assert {c.id for c in first.waiting}.isdisjoint(c.id for c in third.waiting)
