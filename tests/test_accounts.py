"""Accounts over real HTTP on a real SQLite file: roles, deactivation, the own password and sessions, assignment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from sqlite_utils import Database

from bot.handover import HandoverLog
from bot.handover.schema import MIGRATIONS
from bot.settings import Settings
from bot.triage import Triage
from bot.web.keys import OFFICERS
from tests.web_support import PASSWORD, Browser, next_event, served

ROOT = Path(__file__).resolve().parents[1]
BEN_PASSWORD = "bens-langes-passwort"


def audit(services, action: str) -> list[dict]:
    rows = services.handover.db.execute("SELECT actor, detail FROM events WHERE action = ? ORDER BY id", [action]).fetchall()
    return [{"actor": actor, **json.loads(detail)} for actor, detail in rows]


async def admin_login(app, server) -> Browser:
    """anna, made an admin, logged in."""
    app[OFFICERS].db.execute("UPDATE officers SET role = 'admin' WHERE name = 'anna'")
    browser = Browser(server)
    assert (await browser.login()).status == 303
    return browser


async def test_the_initial_officer_is_an_admin_and_new_accounts_are_officers(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, _, services):
        roles = dict(services.handover.db.execute("SELECT name, role FROM officers").fetchall())
    assert roles == {"officer": "admin", "anna": "officer"}


@pytest.mark.sqlite_only
def test_an_existing_database_makes_its_first_officer_the_admin(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = Database(path)
    for step in MIGRATIONS[:4]:  # a log from before accounts had roles
        step(db)
    db.execute("PRAGMA user_version = 4")
    for name in ("erste", "zweiter"):
        db["officers"].insert({"name": name, "password_hash": "x", "created_at": "2026-01-01T00:00:00.000+00:00"})
    db.conn.commit()
    db.close()
    log = HandoverLog.open(path)
    try:
        roles = dict(log.db.execute("SELECT name, role FROM officers").fetchall())
    finally:
        log.close()
    assert roles == {"erste": "admin", "zweiter": "officer"}


async def test_an_officer_who_is_not_admin_gets_403_on_the_accounts_page(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as anna:
        await anna.login()
        inbox = await anna.page("/inbox")
        page = await anna.get("/inbox/konten")
        added = await anna.post("/inbox/konten/neu", {"name": "mallory", "password": "ein-langes-passwort"})
        gone = await anna.post("/inbox/konten/deaktiviert", {"name": "officer"})
        accounts = dict(services.handover.db.execute("SELECT name, active FROM officers").fetchall())
    assert 'href="/inbox/konten"' not in inbox
    assert page.status == 403 and added.status == 403 and gone.status == 403
    assert "nur für Admins" in await page.text()
    assert accounts == {"officer": 1, "anna": 1}


async def test_admin_adds_then_deactivation_ends_the_officers_session_and_live_stream_at_once(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as ben:
        admin = await admin_login(app, server)
        async with admin:
            added = await admin.post("/inbox/konten/neu", {"name": "ben", "password": BEN_PASSWORD})
            listing = await admin.page("/inbox/konten")
            assert (await ben.login("ben", BEN_PASSWORD)).status == 303
            stream = await ben.http.get(ben.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
            await next_event(stream, "hello")
            deactivated = await admin.post("/inbox/konten/deaktiviert", {"name": "ben"})
            rest = await asyncio.wait_for(stream.content.read(), 5)  # the server ends it: EOF, not a timeout
            page = await ben.get("/inbox")
            form = await ben.post("/inbox/c/1/claim")
            again = await ben.http.get(ben.url("/inbox/events"))
            relogin = await ben.login("ben", BEN_PASSWORD)
            after = await admin.page("/inbox/konten?ok=deaktiviert")
            reactivated = await admin.post("/inbox/konten/aktiviert", {"name": "ben"})
            back = await ben.login("ben", BEN_PASSWORD)
        trail = {a: audit(services, a) for a in ("officer_add", "officer_deactivate", "officer_reactivate")}
    assert added.status == 303 and added.headers["Location"] == "/inbox/konten?ok=neu"
    assert 'data-account="ben"' in listing
    assert deactivated.status == 303 and b"update" not in rest
    assert page.status == 303 and page.headers["Location"].startswith("/inbox/login")
    assert form.status == 401 and again.status == 401 and relogin.status == 401
    assert "Das Konto ist deaktiviert; seine Sitzungen sind beendet." in after and "deaktiviert</td>" in after
    assert reactivated.status == 303 and back.status == 303
    assert [e["officer"] for e in trail["officer_add"]] == ["officer", "anna", "ben"]
    assert trail["officer_deactivate"] == [{"actor": "anna", "officer": "ben", "sessions_ended": 1}]
    assert trail["officer_reactivate"] == [{"actor": "anna", "officer": "ben"}]


async def test_an_admin_cannot_deactivate_themself_or_the_last_admin_and_bad_input_gets_a_message(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, services):
        services.handover.db.execute("UPDATE officers SET role = 'officer' WHERE name = 'officer'")
        admin = await admin_login(app, server)  # anna is now the only admin
        async with admin:
            me = await admin.post("/inbox/konten/deaktiviert", {"name": "anna"})
            demote = await admin.post("/inbox/konten/rolle", {"name": "anna", "role": "officer"})
            short = await admin.post("/inbox/konten/neu", {"name": "carl", "password": "kurz"})
            taken = await admin.post("/inbox/konten/neu", {"name": "officer", "password": "ein-langes-passwort"})
            nobody = await admin.post("/inbox/konten/deaktiviert", {"name": "niemand"})
            huge = await admin.post("/inbox/konten/neu", {"name": "x" * 10_000, "password": "ein-langes-passwort"})
            promote = await admin.post("/inbox/konten/rolle", {"name": "officer", "role": "admin"})
            bad_role = await admin.post("/inbox/konten/rolle", {"name": "officer", "role": "chef"})
            now_ok = await admin.post("/inbox/konten/rolle", {"name": "anna", "role": "officer"})
            no_longer = await admin.get("/inbox/konten")  # the role counts from the next request on
        roles = audit(services, "officer_role")
    assert (me.status, demote.status, short.status, taken.status, nobody.status) == (400, 400, 400, 400, 400)
    assert "Du kannst dein eigenes Konto nicht deaktivieren." in await me.text()
    assert "letzte aktive Admin-Konto" in await demote.text()
    assert "mindestens 10 Zeichen" in await short.text()
    assert "gibt es schon" in await taken.text()
    assert "gibt es nicht" in await nobody.text()
    assert huge.status == 400 and "1 bis 64 druckbare Zeichen" in await huge.text()
    assert promote.status == 303 and now_ok.status == 303 and bad_role.status == 400 and no_longer.status == 403
    assert [(e["officer"], e["role"]) for e in roles] == [("officer", "admin"), ("anna", "officer")]


async def test_an_officer_changes_the_password_and_the_other_sessions_end(settings: Settings, triage_no_model: Triage) -> None:
    new = "ein-ganz-neues-passwort"
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as here, Browser(server) as phone:
        await here.login()
        await phone.login()
        stream = await phone.http.get(phone.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        wrong = await here.post("/inbox/ich/passwort", {"old": "falsch-falsch", "new": new, "new_again": new})
        differ = await here.post("/inbox/ich/passwort", {"old": PASSWORD, "new": new, "new_again": new + "x"})
        short = await here.post("/inbox/ich/passwort", {"old": PASSWORD, "new": "kurz", "new_again": "kurz"})
        changed = await here.post("/inbox/ich/passwort", {"old": PASSWORD, "new": new, "new_again": new})
        rest = await asyncio.wait_for(stream.content.read(), 5)
        still = await here.page("/inbox/ich?ok=passwort")
        phone_page = await phone.get("/inbox")
        async with Browser(server) as fresh:
            old_login = await fresh.login("anna", PASSWORD)
            new_login = await fresh.login("anna", new)
        trail = {a: audit(services, a) for a in ("password_change_failed", "password_change")}
    assert (wrong.status, differ.status, short.status) == (400, 400, 400)
    assert "Das bisherige Passwort stimmt nicht." in await wrong.text()
    assert "nicht gleich" in await differ.text() and "mindestens 10 Zeichen" in await short.text()
    assert changed.status == 303 and b"update" not in rest
    assert "Dein Passwort ist geändert." in still
    assert phone_page.status == 303 and phone_page.headers["Location"].startswith("/inbox/login")
    assert old_login.status == 401 and new_login.status == 303
    assert len(trail["password_change_failed"]) == 1
    assert trail["password_change"] == [{"actor": "anna", "sessions_ended": 1}]


async def test_wrong_old_passwords_lock_the_password_change_like_a_login(settings: Settings, triage_no_model: Triage) -> None:
    new = "ein-ganz-neues-passwort"
    async with served(settings, triage_no_model) as (_, server, _), Browser(server) as anna:
        await anna.login()
        tries = [await anna.post("/inbox/ich/passwort", {"old": f"falsch-{n}", "new": new, "new_again": new}) for n in range(6)]
        right = await anna.post("/inbox/ich/passwort", {"old": PASSWORD, "new": new, "new_again": new})
    assert [t.status for t in tries] == [400, 400, 400, 400, 429, 429]
    assert right.status == 429 and "Zu viele falsche Versuche" in await right.text() and int(right.headers["Retry-After"]) > 0


async def test_an_officer_sees_the_own_sessions_and_ends_one_then_this_one(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (_, server, services), Browser(server) as here, Browser(server) as there:
        await there.login()
        await here.login()
        page = await here.page("/inbox/ich")
        hashes = [h for h in services.handover.db.execute("SELECT token_hash FROM sessions ORDER BY created_at").fetchall()]
        there_hash = hashes[0][0]
        foreign = await there.post("/inbox/ich/sitzung", {"session": "nicht-da"})
        ended = await here.post("/inbox/ich/sitzung", {"session": there_hash})
        there_after = await there.get("/inbox/ich")
        page_after = await here.page("/inbox/ich?ok=sitzung")
        here_hash = services.handover.db.execute("SELECT token_hash FROM sessions").fetchone()[0]
        self_end = await here.post("/inbox/ich/sitzung", {"session": here_hash})
        here_after = await here.get("/inbox")
        ends = audit(services, "session_end")
    assert page.count("<tr class=") == 2 and page.count("diese Sitzung") == 1
    assert foreign.status == 404 and "gibt es nicht" in await foreign.text()
    assert ended.status == 303 and there_after.status == 303
    assert page_after.count("<tr class=") == 1 and "Die Sitzung ist beendet." in page_after
    assert self_end.status == 303 and self_end.headers["Location"] == "/inbox/login"
    assert here_after.status == 303 and here_after.headers["Location"].startswith("/inbox/login")
    assert len(ends) == 2


async def test_a_chat_is_assigned_to_an_active_colleague_who_hears_it_live(settings: Settings, triage_no_model: Triage) -> None:
    async with served(settings, triage_no_model) as (app, server, services), Browser(server) as anna, \
            Browser(server) as ben, Browser(server) as citizen:
        app[OFFICERS].add("ben", BEN_PASSWORD)
        app[OFFICERS].add("carl", BEN_PASSWORD)
        services.handover.db.execute("UPDATE officers SET active = 0 WHERE name = 'carl'")
        await anna.login()
        await ben.login("ben", BEN_PASSWORD)
        await citizen.open_chat()
        await citizen.write("Ich will mit einem Menschen reden")
        conv = services.handover.conversations(("queued",))[0]
        page = await anna.page(f"/inbox/c/{conv.id}")
        stream = await ben.http.get(ben.url("/inbox/events"), timeout=aiohttp.ClientTimeout(total=20))
        await next_event(stream, "hello")
        to_carl = await anna.post(f"/inbox/c/{conv.id}/assign", {"officer": "carl"})
        to_nobody = await anna.post(f"/inbox/c/{conv.id}/assign", {"officer": "niemand"})
        no_chat = await anna.post("/inbox/c/999/assign", {"officer": "ben"})
        assigned = await anna.post(f"/inbox/c/{conv.id}/assign", {"officer": "ben"})
        event = await next_event(stream)
        stream.close()
        queue = await ben.page("/inbox")
        ben_view = await ben.page(f"/inbox/c/{conv.id}")
        replied = await ben.post(f"/inbox/c/{conv.id}/reply", {"text": "Hallo, hier ist Ben von der Polizei."})
        after = services.handover.conversation(conv.id)
        assigns = audit(services, "assign")
    assert '<option value="ben">' in page and '<option value="carl">' not in page
    assert to_carl.status == 400 and "nur an aktive" in await to_carl.text()
    assert to_nobody.status == 400 and no_chat.status == 404
    assert assigned.status == 303
    assert event == {"kind": "assigned", "conversation_id": conv.id, "state": "claimed", "priority": conv.priority,
                     "officer": "ben", "by": "anna"}
    assert "(von anna zugewiesen)" in queue
    assert "anna hat diesen Chat dir zugewiesen" in ben_view
    assert replied.status == 303 and (after.state, after.officer) == ("claimed", "ben")
    assert assigns == [{"actor": "anna", "to": "ben", "was": "queued", "previous_officer": None}]


def run_bot(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_PATH=str(settings.database_path), DATABASE_URL=settings.database_url, LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_the_cli_adds_admins_lists_deactivates_reactivates_and_keeps_the_last_admin(settings: Settings) -> None:
    first = run_bot(settings, "officers", "add", "maria", stdin="ein-langes-passwort\n")
    second = run_bot(settings, "officers", "add", "max", "--admin", stdin="noch-ein-passwort\n")
    third = run_bot(settings, "officers", "add", "olaf", stdin="olafs-passwort-123\n")
    off = run_bot(settings, "officers", "deactivate", "olaf")
    listed = run_bot(settings, "officers", "list")
    back = run_bot(settings, "officers", "reactivate", "olaf")
    demote = run_bot(settings, "officers", "role", "max", "officer")
    last = run_bot(settings, "officers", "deactivate", "maria")
    assert (first.returncode, second.returncode, third.returncode, off.returncode, back.returncode) == (0, 0, 0, 0, 0)
    rows = [line.split("\t")[:3] for line in listed.stdout.splitlines()]
    assert rows == [["maria", "admin", "active"], ["max", "admin", "active"], ["olaf", "officer", "deactivated"]]
    assert demote.returncode == 0 and last.returncode == 1 and "letzte aktive Admin-Konto" in last.stderr
    log = HandoverLog.open(settings.database_path)
    try:
        actions = [r[0] for r in log.db.execute("SELECT action FROM events WHERE action LIKE 'officer_%' ORDER BY id")]
    finally:
        log.close()
    assert actions == ["officer_add", "officer_add", "officer_role", "officer_add", "officer_deactivate",
                       "officer_reactivate", "officer_role"]



def test_a_new_password_for_a_deactivated_account_does_not_let_it_back_in(settings: Settings) -> None:
    """Setting a password with the CLI must not quietly undo an admin's deactivation."""
    run_bot(settings, "officers", "add", "maria", stdin="ein-langes-passwort\n")  # the first account: the admin
    run_bot(settings, "officers", "add", "olaf", stdin="olafs-passwort-123\n")
    run_bot(settings, "officers", "deactivate", "olaf")
    again = run_bot(settings, "officers", "add", "olaf", stdin="ein-neues-passwort\n")
    listed = run_bot(settings, "officers", "list")
    assert again.returncode == 0 and "still deactivated" in again.stdout
    assert ["olaf", "officer", "deactivated"] in [line.split("\t")[:3] for line in listed.stdout.splitlines()]
