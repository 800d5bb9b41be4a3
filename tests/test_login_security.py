"""Officer login under attack, over real HTTP on 127.0.0.1: the probes of issue 12 repeated (M1, M2, throttling, streams)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import aiohttp
import pytest

import bot.handover.officers as officers_module
from bot.handover.officers import LockedOut, LoginError, Officers
from bot.settings import Settings
from bot.triage import Triage
from bot.web import live
from tests.web_support import PASSWORD, Browser, csrf_of, from_address, next_event, served, with_settings


def behind_proxy(settings: Settings) -> Settings:
    """The app behind a reverse proxy on 127.0.0.1: X-Forwarded-For names the client."""
    return with_settings(settings, trusted_proxies=("127.0.0.1",))


class CountingVerify:
    """Wraps the real argon2 check and counts how many ran and how many ran at once."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real = real
        self.calls = 0
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.real(password_hash, password)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def verify(monkeypatch: pytest.MonkeyPatch) -> CountingVerify:
    counting = CountingVerify(officers_module._verify)
    monkeypatch.setattr(officers_module, "_verify", counting)
    return counting


async def guesses(officer: Browser, passwords: list[str], name: str = "anna", **kw: object) -> list[int]:
    """POST all the login attempts at once (one form, one CSRF token), as a script would."""
    page = await officer.get("/inbox/login")
    officer.csrf = csrf_of(await page.text())
    responses = await asyncio.gather(*(officer.post("/inbox/login", {"name": name, "password": p}, **kw) for p in passwords))
    return [r.status for r in responses]


async def test_forty_concurrent_guesses_cannot_race_the_lockout(settings: Settings, triage_no_model: Triage, verify: CountingVerify) -> None:
    passwords = [f"falsch-{n:02d}-xyz" for n in range(40)]
    passwords[35] = PASSWORD  # the right one as the 36th guess (M1)
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as attacker:
        statuses = await guesses(attacker, passwords)
        sessions = services.handover.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        failures = services.handover.db.execute(
            "SELECT COUNT(*) FROM events WHERE actor = 'anna' AND action IN ('login_failed', 'login_locked')").fetchone()[0]
    assert 303 not in statuses and sessions == 0
    assert verify.calls <= 5 and failures == verify.calls  # counted before the hash: at most five were ever checked
    assert statuses.count(429) >= 35


async def test_nobody_locks_an_officer_out_from_elsewhere_and_unknown_names_look_the_same(
    settings: Settings, triage_no_model: Triage
) -> None:
    async with served(behind_proxy(settings), triage_no_model) as (_, server, _), Browser(server) as attacker, \
            Browser(server) as anna:
        known = [await attacker.login("anna", f"falsch-{n}-abc", headers=from_address("203.0.113.9")) for n in range(6)]
        unknown = [await attacker.login("niemand", f"falsch-{n}-abc", headers=from_address("203.0.113.9")) for n in range(6)]
        texts = [re.sub(r'value="[^"]+"', "", await r.text()) for r in (known[-1], unknown[-1])]
        at_work = await anna.login("anna", PASSWORD, headers=from_address("198.51.100.20"))
        from_there = await attacker.login("anna", PASSWORD, headers=from_address("203.0.113.9"))
    assert [r.status for r in known] == [r.status for r in unknown] == [401, 401, 401, 401, 429, 429]
    assert texts[0] == texts[1] and "Zu viele Anmeldeversuche" in texts[0]  # no account enumeration (M2)
    assert at_work.status == 303  # the officer at her own desk is not locked out
    assert from_there.status == 429


async def test_a_forged_forwarded_header_is_ignored_without_a_trusted_proxy(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as attacker:
        statuses = [(await attacker.login("anna", f"falsch-{n}-abc", headers=from_address(f"192.0.2.{n}"))).status
                    for n in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_logins_are_throttled_per_address_before_any_hash(settings: Settings, triage_no_model: Triage, verify: CountingVerify) -> None:
    async with served(behind_proxy(settings), triage_no_model) as (_, server, _), Browser(server) as sprayer, \
            Browser(server) as anna:
        statuses = [(await sprayer.login(f"name-{n}", "passwort-123456", headers=from_address("203.0.113.50"))).status
                    for n in range(25)]
        hashed = verify.calls
        elsewhere = await anna.login(headers=from_address("198.51.100.7"))
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 5
    assert hashed == 20  # the five refused attempts cost no hash
    assert elsewhere.status == 303


async def test_at_most_two_password_hashes_run_at_once(settings: Settings, triage_no_model: Triage, verify: CountingVerify) -> None:
    async with served(behind_proxy(settings), triage_no_model) as (_, server, _), Browser(server) as many:
        page = await many.get("/inbox/login")
        many.csrf = csrf_of(await page.text())
        statuses = await asyncio.gather(*(
            many.post("/inbox/login", {"name": "anna", "password": f"falsch-{n}-abc"}, headers=from_address(f"10.0.0.{n}"))
            for n in range(8)
        ))
    assert [r.status for r in statuses] == [401] * 8
    assert verify.calls == 8 and verify.most <= officers_module.CONCURRENT_HASHES


async def test_the_lockout_counts_a_guess_before_its_hash_is_checked(handover, verify: CountingVerify) -> None:  # type: ignore[no-untyped-def]
    officers = Officers(handover)
    officers.add("anna", PASSWORD)
    results = await asyncio.gather(*(officers.login("anna", p, "203.0.113.1") for p in ["falsch-abcdef"] * 39 + [PASSWORD]),
                                   return_exceptions=True)
    assert all(isinstance(r, LoginError) for r in results)
    assert sum(isinstance(r, LockedOut) for r in results) >= 35 and verify.calls == 5
    assert (await officers.login("anna", PASSWORD, "198.51.100.1")).officer == "anna"


async def test_the_first_password_is_printed_once_and_never_logged(
    settings: Settings, triage_no_model: Triage, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with served(settings, triage_no_model):
        printed = capsys.readouterr().out
    password = re.search(r"'officer' with password: (\S+)", printed)[1]
    assert printed.count(password) == 1
    assert password not in caplog.text and "officer" in caplog.text  # the log says an account was made, not its password


async def test_logout_ends_the_officers_open_inbox_stream(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as officer:
        await officer.login()
        stream = await officer.http.get(officer.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        assert (await officer.post("/inbox/logout")).status == 303
        rest = await asyncio.wait_for(stream.content.read(), 5)  # the server ends it: EOF, not a timeout
        again = await officer.http.get(officer.url("/inbox/events"))
    assert b"update" not in rest and again.status == 401


async def test_an_expired_session_ends_its_inbox_stream(settings: Settings, triage_no_model: Triage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "KEEPALIVE_S", 0.2)
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as officer:
        await officer.login()
        stream = await officer.http.get(officer.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        services.handover.db.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000+00:00'")
        await asyncio.wait_for(stream.content.read(), 5)


async def test_inbox_streams_are_capped_per_session(settings: Settings, triage_no_model: Triage, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.web.intake as intake

    monkeypatch.setattr(intake, "INBOX_STREAMS_PER_SESSION", 3)
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as officer, Browser(server) as colleague:
        await officer.login()
        await colleague.login()
        timeout = aiohttp.ClientTimeout(total=20)
        streams = [await officer.http.get(officer.url("/inbox/events"), timeout=timeout) for _ in range(4)]
        other = await colleague.http.get(colleague.url("/inbox/events"), timeout=timeout)
        statuses = [s.status for s in streams] + [other.status]
        for s in [*streams, other]:
            s.close()
    assert statuses == [200, 200, 200, 429, 200]
