"""Presence: who is online (live stream or a request in the last two minutes), and what citizens are told when nobody is."""

from __future__ import annotations

from datetime import datetime, timezone

import aiohttp

from bot.duty import DutyHours
from bot.handover.accounts import Presence
from bot.responses import Responses
from bot.safety_net import SafetyNet
from bot.settings import Settings
from bot.decision import Context
from bot.triage import Triage
from bot.web.accounts import PRESENCE
from bot.web.keys import OFFICERS
from tests.conftest import make_triage
from tests.web_support import Browser, next_event, served

NOBODY = "Gerade ist niemand aus dem Team online."
HANDOVER = "Ich will mit einem Menschen reden"
EMERGENCY = "Hilfe, hier ist ein Einbrecher im Haus!"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_presence_counts_streams_and_requests_of_the_last_two_minutes() -> None:
    clock, changes = Clock(), []
    presence = Presence(clock=clock)
    presence.on_change = lambda: changes.append([(o.name, o.live) for o in presence.online()])
    presence.seen("ben")
    presence.seen("ben")  # no news: ben was online already
    presence.stream_opened("anna", "token-a")
    clock.now += 90
    assert [(o.name, o.live, o.seconds_ago) for o in presence.online()] == [("anna", True, 0), ("ben", False, 90)]
    clock.now += 31
    assert [o.name for o in presence.online()] == ["anna"] and presence.anyone_online()
    presence.stream_closed("anna", "token-a")
    assert [(o.name, o.live) for o in presence.online()] == [("anna", False)]  # was there until just now
    clock.now += 121
    assert presence.online() == [] and not presence.anyone_online()
    assert changes == [[("ben", False)], [("anna", True), ("ben", False)], [("anna", False)]]


def test_a_forgotten_session_leaves_at_once_and_its_stream_closing_does_not_bring_it_back() -> None:
    presence = Presence(clock=Clock())
    presence.stream_opened("anna", "token-a")
    presence.forget("anna")
    presence.stream_closed("anna", "token-a")
    assert presence.online() == [] and presence.tokens("anna") == []


async def citizen_reply(server, text: str) -> str:
    async with Browser(server) as citizen:
        await citizen.open_chat()
        await citizen.write(text)
        return (await citizen.transcript())["messages"][-1]["text"]


async def test_the_header_shows_who_is_online_and_how_and_pages_hear_when_someone_comes(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, _), Browser(server) as anna, Browser(server) as ben:
        app[OFFICERS].add("ben", "bens-langes-passwort")
        await anna.login()
        stream = await anna.http.get(anna.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        alone = await anna.page("/inbox/presence")
        await ben.login("ben", "bens-langes-passwort")
        heard = await next_event(stream)
        both = await anna.page("/inbox/presence")
        app[PRESENCE].clock = lambda: 10**9  # ages every request out; anna's open stream still counts
        later = await anna.page("/inbox/presence")
        stream.close()
    assert "anna (du) ● live" in alone and "ben" not in alone
    assert heard == {"kind": "presence"}
    assert "anna (du) ● live" in both and "ben ○ vor 0 s" in both
    assert "anna (du) ● live" in later and "ben" not in later


async def test_nobody_online_on_duty_says_when_a_person_reads_it_and_an_emergency_still_gets_110(
    settings: Settings, triage_no_model: Triage
) -> None:
    async with served(settings, triage_no_model) as (_, server, _):
        nobody = await citizen_reply(server, HANDOVER)
        emergency = await citizen_reply(server, EMERGENCY)
        async with Browser(server) as anna:
            await anna.login()
            await anna.page("/inbox")
            someone = await citizen_reply(server, HANDOVER)
    unhooked = await triage_no_model.decide(EMERGENCY, Context(first_contact=True))  # the app has unhooked presence
    assert NOBODY in nobody and "spätestens zu Beginn des nächsten Dienstes (morgen ab 08:00 Uhr)" in nobody
    assert "110" in nobody  # the calm emergency line stays
    assert emergency == unhooked.reply and emergency.startswith("🚨") and "110" in emergency and NOBODY not in emergency
    assert NOBODY not in someone and "so schnell wie möglich" in someone


async def test_outside_duty_hours_and_round_the_clock_the_texts_stay_honest(responses: Responses, safety_net: SafetyNet) -> None:
    saturday = make_triage(responses, safety_net, now=datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc))
    saturday.team_online = lambda: False
    always = make_triage(responses, safety_net)
    always.duty = DutyHours.parse("24/7", "Europe/Berlin")
    always.team_online = lambda: False
    off = (await saturday.decide(HANDOVER, Context())).reply
    round_the_clock = (await always.decide(HANDOVER, Context())).reply
    assert "nicht im Dienst" in off and "Montag ab 08:00 Uhr" in off and NOBODY not in off
    assert NOBODY in round_the_clock and "spätestens" not in round_the_clock
