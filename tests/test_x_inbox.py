"""X in the officers' inbox: an emergency DM is on top of the queue, and the officer's answer goes out as an X DM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bot.triage import Triage
from tests.fake_x_api import FakeXApi, activity, deliver, dm_event
from tests.web_support import Browser, served
from tests.x_helpers import x_settings, xapi  # noqa: F401 (xapi: fixture)

CITIZEN, OTHER = "2500000000000000001", "2500000000000000002"


async def test_an_x_emergency_tops_the_queue_and_the_officers_answer_is_sent_as_a_dm(
    tmp_path: Path, xapi: FakeXApi, triage_no_model: Triage
) -> None:
    async with served(x_settings(tmp_path, xapi), triage_no_model) as (_, server, services), Browser(server) as officer:
        url = str(server.make_url("/x/webhook"))
        async with aiohttp.ClientSession() as session:
            await deliver(session, url, activity(dm_event(OTHER, text="Ich möchte mit einem Menschen sprechen")), attempts=1)
            await deliver(session, url, activity(dm_event(CITIZEN, text="Hilfe, jemand bricht gerade bei uns ein!")), attempts=1)
        await xapi.wait_for(2)
        emergency, other = services.handover.conversations(("queued",))[:2]
        assert (emergency.chat_id, emergency.priority, other.chat_id) == (CITIZEN, 2, OTHER)
        await officer.login()
        inbox = await officer.page("/inbox")
        assert inbox.index(emergency.citizen) < inbox.index(other.citizen) and CITIZEN not in inbox  # pseudonyms only
        assert (await officer.post(f"/inbox/c/{emergency.id}/claim")).status == 303
        assert (await officer.post(f"/inbox/c/{emergency.id}/reply", {"text": "Hier ist Anna. Die Streife ist unterwegs."})).status == 303
        for _ in range(100):
            if len(xapi.calls) == 3:
                break
            await asyncio.sleep(0.05)
        call = xapi.calls[-1]
        assert (call.status, call.participant, call.text) == (201, CITIZEN, "Hier ist Anna. Die Streife ist unterwegs.")
        answer = services.handover.transcript(emergency.id)[-1]
        assert (answer.author, answer.status, answer.platform_id) == ("officer", "sent", call.event_id)
