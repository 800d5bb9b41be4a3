"""Data protection: export and delete a citizen's data, the retention period, and the admin commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.channels.base import LogOnlySender
from bot.dispatcher import Dispatcher
from bot.handover import HandoverError, HandoverLog, Inbound
from bot.handover.officers import Officers
from bot.handover.privacy import delete_citizen, export_citizen, purge_expired
from bot.handover.states import HandoverStates
from bot.settings import Settings
from bot.triage import Triage
from tests.conftest import ROOT
from tests.web_support import served

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="milliseconds")


class Clock:
    """A clock the test moves (stored timestamps say when things happened)."""

    def __init__(self) -> None:
        self.now = at(0)

    def __call__(self) -> str:
        return self.now


async def two_citizens(handover: HandoverLog, triage: Triage) -> tuple[str, str]:
    dispatcher = Dispatcher(handover, triage, {"webchat": LogOnlySender()})
    await dispatcher.handle(Inbound("webchat", "c1", "u1", "Mensch, bitte"))
    await dispatcher.handle(Inbound("webchat", "c2", "u2", "Hilfe einbrecher"))
    first = handover.find_conversation("webchat", "c1")
    HandoverStates(handover, triage.responses).note(first.id, "anna", "ruft morgen wieder an")
    return first.citizen, handover.find_conversation("webchat", "c2").citizen


async def test_an_export_holds_everything_about_one_citizen_and_nothing_else(handover: HandoverLog, triage_no_model: Triage) -> None:
    citizen, other = await two_citizens(handover, triage_no_model)
    export = export_citizen(handover, citizen)
    assert [c["citizen"] for c in export["conversations"]] == [citizen]
    assert [m["author"] for m in export["messages"]] == ["citizen", "bot"]
    assert export["messages"][0]["text"] == "Mensch, bitte"
    assert [n["text"] for n in export["notes"]] == ["ruft morgen wieder an"]
    assert [e["action"] for e in export["events"]] == ["queue", "note"]
    json.dumps(export, ensure_ascii=False)  # it is plain JSON


async def test_deleting_a_citizen_erases_their_chats_but_the_audit_keeps_that_it_happened(handover: HandoverLog, triage_no_model: Triage) -> None:
    citizen, other = await two_citizens(handover, triage_no_model)
    conv_id = handover.find_conversation("webchat", "c1").id
    counts = delete_citizen(handover, citizen, "cli:root")
    assert counts == {"messages": 2, "notes": 1, "conversations": 1}
    assert handover.find_conversation("webchat", "c1") is None and handover.find_conversation("webchat", "c2") is not None
    with pytest.raises(HandoverError, match="no data"):
        export_citizen(handover, citizen)
    last = handover.db.execute("SELECT actor, action, conversation_id, detail FROM events ORDER BY id DESC LIMIT 1").fetchone()
    assert last[:3] == ("cli:root", "privacy_delete", None) and json.loads(last[3])["conversation"] == conv_id
    unlinked = handover.db.execute("SELECT action, detail FROM events WHERE action IN ('queue', 'note') ORDER BY id").fetchall()
    assert ("queue", json.dumps({"conversation": conv_id})) in unlinked  # who did what when, no reason, no intent
    assert len(export_citizen(handover, other)["messages"]) == 2


async def test_retention_deletes_old_transcripts_keeps_open_chats_and_the_audit(triage_no_model: Triage) -> None:
    clock = Clock()
    handover = HandoverLog.open(":memory:", clock=clock)
    dispatcher = Dispatcher(handover, triage_no_model, {"webchat": LogOnlySender()})
    states = HandoverStates(handover, triage_no_model.responses)
    clock.now = at(40)
    await dispatcher.handle(Inbound("webchat", "old", "u1", "Mensch"))       # closed 40 days ago
    await dispatcher.handle(Inbound("webchat", "waiting", "u2", "Mensch"))   # still waiting for the team
    old = handover.find_conversation("webchat", "old")
    await dispatcher.deliver([states.close(old.id, "anna")])
    states.note(old.id, "anna", "erledigt")
    clock.now = at(1)
    await dispatcher.handle(Inbound("webchat", "recent", "u3", "Danke", kind="button", button="thanks"))
    events_before = handover.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    counts = purge_expired(handover, 30, now=NOW)
    assert counts == {"messages": 3, "notes": 1, "conversations": 1}
    assert handover.find_conversation("webchat", "old") is None
    assert len(handover.transcript(handover.find_conversation("webchat", "waiting").id)) == 2
    assert len(handover.transcript(handover.find_conversation("webchat", "recent").id)) == 2
    assert handover.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events_before + 1
    assert purge_expired(handover, 30, now=NOW) == {"messages": 0, "notes": 0, "conversations": 0}
    handover.close()


async def test_the_app_runs_the_retention_job_when_it_starts(settings: Settings, triage_no_model: Triage) -> None:
    log = HandoverLog.open(settings.database_path, clock=lambda: at(400))
    await Dispatcher(log, triage_no_model, {"webchat": LogOnlySender()}).handle(Inbound("webchat", "old", "u1", "Danke", kind="button", button="thanks"))
    log.close()
    async with served(settings, triage_no_model) as (_, _, services):
        for _ in range(100):
            if services.handover.find_conversation("webchat", "old") is None:
                break
            await asyncio.sleep(0.02)
        assert services.handover.find_conversation("webchat", "old") is None


def run_bot(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_PATH=str(settings.database_path), DATABASE_URL=settings.database_url, LOG_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


async def test_the_admin_commands_add_officers_export_delete_and_close(settings: Settings, triage_no_model: Triage) -> None:
    log = HandoverLog.open(settings.database_path)
    citizen, _ = await two_citizens(log, triage_no_model)
    conv_id = log.find_conversation("webchat", "c1").id
    log.close()

    added = run_bot(settings, "officers", "add", "maria", stdin="ein-langes-passwort\n")
    short = run_bot(settings, "officers", "add", "max", stdin="kurz\n")
    listed = run_bot(settings, "handover", "list")
    shown = run_bot(settings, "handover", "show", str(conv_id))
    closed = run_bot(settings, "handover", "close", str(conv_id))
    exported = run_bot(settings, "privacy", "export", citizen)
    deleted = run_bot(settings, "privacy", "delete", citizen)
    gone = run_bot(settings, "privacy", "export", citizen)

    assert added.returncode == 0 and short.returncode == 1 and "at least 10" in short.stderr
    log = HandoverLog.open(settings.database_path)
    assert (await Officers(log).login("maria", "ein-langes-passwort")).officer == "maria"
    log.close()
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t")[:3] == [lines[0].split("\t")[0], "queued", "EMERGENCY"] and "handover" in lines[1]
    assert "Mensch, bitte" in shown.stdout
    assert closed.returncode == 0 and "closed; hand-back message sent" in closed.stdout
    data = json.loads(exported.stdout)
    assert data["conversations"][0]["state"] == "closed" and data["messages"][-1]["text"].startswith("Das Team hat den Chat beendet.")
    assert deleted.returncode == 0 and gone.returncode == 1 and "no data" in gone.stderr


def test_the_admin_commands_are_documented_in_their_help() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=dict(os.environ, DATABASE_PATH=str(Path("/nonexistent/x.sqlite3"))))
    for command in ("officers", "privacy", "handover"):
        assert command in done.stdout


def _files(path: Path) -> bytes:
    """The database file and its write-ahead log, as they are on disk."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


@pytest.mark.sqlite_only
async def test_a_deleted_citizen_leaves_no_text_in_the_files_and_no_intent_in_the_audit(settings: Settings, triage_no_model: Triage) -> None:
    log = HandoverLog.open(settings.database_path)
    dispatcher = Dispatcher(log, triage_no_model, {"webchat": LogOnlySender()})
    secret = "Mein Mann schlägt mich, Kennwort Zitronenfalter-7731"
    await dispatcher.handle(Inbound("webchat", "victim", "u1", secret))
    await dispatcher.handle(Inbound("webchat", "other", "u2", "Wo ist das Fundbüro?"))
    victim = log.find_conversation("webchat", "victim")
    log.queue(victim.id, "handover", "domestic_violence")
    log.relabel(log.transcript(victim.id)[0].id, "domestic_violence", "anna")
    log.db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # some of it in the file, some still in the WAL
    assert b"Zitronenfalter-7731" in _files(settings.database_path)
    delete_citizen(log, victim.citizen, "cli:root")
    on_disk = _files(settings.database_path)
    audit = " ".join(str(row) for row in log.db.execute("SELECT action, detail FROM events"))
    wal = Path(f"{settings.database_path}-wal")
    log.close()
    assert b"Zitronenfalter-7731" not in on_disk and "Zitronenfalter".encode("utf-16-le") not in on_disk
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated
    assert "domestic_violence" not in audit and "privacy_delete" in audit and "relabel" in audit


async def test_retention_leaves_no_intent_of_a_purged_chat_in_the_audit(triage_no_model: Triage) -> None:
    clock = Clock()
    handover = HandoverLog.open(":memory:", clock=clock)
    dispatcher = Dispatcher(handover, triage_no_model, {"webchat": LogOnlySender()})
    clock.now = at(40)
    await dispatcher.handle(Inbound("webchat", "old", "u1", "Mensch"))
    old = handover.find_conversation("webchat", "old")
    handover.relabel(handover.transcript(old.id)[0].id, "domestic_violence", "anna")
    await dispatcher.deliver([HandoverStates(handover, triage_no_model.responses).close(old.id, "anna")])
    clock.now = at(0)
    purge_expired(handover, 30, now=NOW)
    details = [r[0] for r in handover.db.execute("SELECT detail FROM events WHERE action != 'retention'")]
    handover.close()
    assert details and all(d == json.dumps({"conversation": old.id}) for d in details)


@pytest.mark.sqlite_only
async def test_a_checkpoint_kept_busy_by_another_process_does_not_stall_and_a_later_one_truncates(
    settings: Settings, triage_no_model: Triage
) -> None:
    import sqlite3
    import time

    from bot.handover.privacy import checkpoint

    log = HandoverLog.open(settings.database_path)
    await Dispatcher(log, triage_no_model, {"webchat": LogOnlySender()}).handle(Inbound("webchat", "c1", "u1", "Mensch, bitte"))
    reader = sqlite3.connect(str(settings.database_path), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # a CLI reading, in the middle of its transaction
    started = time.monotonic()
    busy = checkpoint(log)
    took = time.monotonic() - started
    reader.execute("COMMIT")
    reader.close()
    done = checkpoint(log)
    wal = Path(f"{settings.database_path}-wal")
    log.close()
    assert busy is False and took < 2.0
    assert done is True and (not wal.exists() or wal.stat().st_size == 0)
