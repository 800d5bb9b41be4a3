"""Data protection: a citizen's data on request (export, delete) and the retention period for transcripts.

Deleting means gone from the files too: SQLite overwrites deleted rows (secure_delete), the
write-ahead log is checkpointed and truncated, and the audit trail of a deleted conversation
keeps who did what and when, but no detail (no intent such as domestic_violence, no reason).
A citizen may end and delete their own web chat; when officers had it open, a line without
content tells them so until one of them marks it as seen (`deleted_chats`, `mark_deleted_seen`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.handover import comment_privacy
from bot.handover.records import HandoverError, utcnow
from bot.handover.search import forget_deleted_soon
from bot.handover.stats_tables import purging
from bot.handover.store import HandoverLog

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 24 * 60 * 60
OPEN_STATES = ("queued", "claimed")  # a chat with the team is never purged under the officers' hands
DELETED_NOTICE_DAYS = 7  # how long the inbox shows an unseen "the citizen deleted this open chat"
NOTICES_KEY = "inbox:deleted_chats"  # the unseen notices, in the key-value table
CHECKPOINT_WAIT_MS = 250  # how long a checkpoint after a deletion waits for other connections


def _rows(log_: HandoverLog, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    rows = [dict(r) for r in log_.db.query(sql, args)]
    for row in rows:
        if isinstance(row.get("meta"), str):
            row["meta"] = json.loads(row["meta"] or "{}")
        if isinstance(row.get("detail"), str):
            row["detail"] = json.loads(row["detail"] or "{}")
    return rows


def _conversation_ids(log_: HandoverLog, citizen: str) -> list[int]:
    ids = [r[0] for r in log_.db.execute("SELECT id FROM conversations WHERE citizen = ? ORDER BY id", [citizen])]
    if not ids and not comment_privacy.has_comments(log_, citizen):  # comments under posts count too (issue 14)
        raise HandoverError(f"no data for citizen {citizen}")
    return ids


def export_citizen(log_: HandoverLog, citizen: str) -> dict[str, Any]:
    """Everything stored about one citizen (by pseudonym): conversations, messages, notes, audit events."""
    ids = _conversation_ids(log_, citizen)
    marks = ",".join("?" * len(ids))
    return {
        "citizen": citizen,
        "exported_at": utcnow(),
        "conversations": _rows(log_, f"SELECT * FROM conversations WHERE id IN ({marks}) ORDER BY id", ids),
        "messages": _rows(log_, f"SELECT * FROM messages WHERE conversation_id IN ({marks}) ORDER BY id", ids),
        "notes": _rows(log_, f"SELECT * FROM notes WHERE conversation_id IN ({marks}) ORDER BY id", ids),
        "events": _rows(log_, f"SELECT * FROM events WHERE conversation_id IN ({marks}) ORDER BY id", ids),
        **comment_privacy.export(log_, citizen),  # comments, their actions, evidence (and which is kept)
    }


def _unlink_audit(log_: HandoverLog, ids_sql: str, args: list[Any]) -> None:
    """Keep who did what and when to deleted conversations, nothing more; SQLite may reuse their ids."""
    log_.db.execute(
        f"UPDATE events SET detail = '{{\"conversation\": ' || conversation_id || '}}', conversation_id = NULL "
        f"WHERE conversation_id IN ({ids_sql})", args,
    )


def _erase(log_: HandoverLog, ids: list[int]) -> dict[str, int]:
    """Delete conversations with their messages and notes; unlink their audit events (inside a transaction)."""
    marks = ",".join("?" * len(ids))
    _unlink_audit(log_, marks, ids)
    return {
        "messages": log_.db.execute(f"DELETE FROM messages WHERE conversation_id IN ({marks})", ids).rowcount,
        "notes": log_.db.execute(f"DELETE FROM notes WHERE conversation_id IN ({marks})", ids).rowcount,
        "conversations": log_.db.execute(f"DELETE FROM conversations WHERE id IN ({marks})", ids).rowcount,
    }


def checkpoint(log_: HandoverLog, wait_ms: int = CHECKPOINT_WAIT_MS) -> bool:
    """Move the write-ahead log into the database file and truncate it; False when another process kept it busy.

    Waits at most `wait_ms` for other connections (the service's event loop must not stall on a CLI reader).
    PostgreSQL keeps its own write-ahead log: nothing to do there.
    """
    if log_.backend != "sqlite":
        return True
    before = log_.db.execute("PRAGMA busy_timeout").fetchone()[0]
    log_.db.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        row = log_.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        log_.db.execute(f"PRAGMA busy_timeout = {int(before)}")
    if row and row[0]:
        log.warning("WAL checkpoint after a deletion was kept busy by another connection; the next deletion or "
                    "retention run truncates it")
    return not (row and row[0])


def _secure(log_: HandoverLog) -> None:
    log_.db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not just unlinked


def delete_citizen(log_: HandoverLog, citizen: str, actor: str) -> dict[str, int]:
    """Erase a citizen's conversations, messages and notes; the audit trail keeps that it happened."""
    ids = _conversation_ids(log_, citizen)
    _secure(log_)
    with log_.transaction():
        counts = _erase(log_, ids)
        counts.update({k: v for k, v in comment_privacy.delete(log_, citizen).items() if v})  # comments under posts
        for conversation_id in ids:
            log_.audit(actor, "privacy_delete", None, conversation=conversation_id, citizen=citizen, **counts)
        if not ids:  # only comments
            log_.audit(actor, "privacy_delete", None, citizen=citizen, **counts)
    checkpoint(log_)
    forget_deleted_soon(log_, then=checkpoint)  # the search index's copy of the words too (in steps on the event loop)
    return counts


def delete_chat(log_: HandoverLog, conversation_id: int) -> dict[str, Any]:
    """The citizen ends and deletes their own chat; an open one leaves the officers a line without content."""
    conv = log_.conversation(conversation_id)
    _secure(log_)
    detail: dict[str, Any] = {"conversation": conversation_id, "channel": conv.channel, "open": conv.state in OPEN_STATES}
    if detail["open"]:  # officers must not lose an escalation silently (shown until one marks it seen)
        detail.update(state=conv.state, priority=conv.priority, queued_at=conv.queued_at, officer=conv.officer)
    with log_.transaction():
        counts = _erase(log_, [conversation_id])
        event_id = log_.audit("citizen", "citizen_deleted", None, **detail, **counts)
        if detail["open"]:
            notices = list(reversed(deleted_chats(log_))) + [{**detail, "event": event_id, "at": log_.clock()}]  # expired ones dropped
            log_.set_value(NOTICES_KEY, json.dumps(notices, ensure_ascii=False))
    checkpoint(log_)
    forget_deleted_soon(log_, then=checkpoint)  # the search index's copy of the words too (in steps on the event loop)
    return detail


def _notices(log_: HandoverLog) -> list[dict[str, Any]]:
    return json.loads(log_.get_value(NOTICES_KEY) or "[]")


def deleted_chats(log_: HandoverLog, now: datetime | None = None) -> list[dict[str, Any]]:
    """Open chats their citizens deleted in the last DELETED_NOTICE_DAYS that no officer marked as seen, newest first.

    Kept as one small list in the key-value table: the queue page reads it on every refresh.
    """
    since = ((now or datetime.now(timezone.utc)) - timedelta(days=DELETED_NOTICE_DAYS)).isoformat(timespec="milliseconds")
    return [n for n in reversed(_notices(log_)) if n["at"] >= since]


def mark_deleted_seen(log_: HandoverLog, event_id: int, officer: str) -> None:
    """An officer has taken note that a citizen deleted an open chat (the notice goes away for everyone)."""
    notices = _notices(log_)
    if not any(n["event"] == event_id for n in notices):
        raise HandoverError(f"no deleted chat notice {event_id}")
    with log_.transaction():
        log_.set_value(NOTICES_KEY, json.dumps([n for n in notices if n["event"] != event_id], ensure_ascii=False))
        log_.audit(officer, "citizen_deleted_seen", None, notice=event_id)


def purge_expired(log_: HandoverLog, retention_days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete transcripts older than the retention period; keep the audit trail, open chats and the dashboard's figures."""
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")
    marks = ",".join("?" * len(OPEN_STATES))
    _secure(log_)
    with log_.transaction(), purging(log_.db):  # the per-day counts hold no personal data: they stay
        open_ids = f"SELECT id FROM conversations WHERE state IN ({marks})"
        gone = (f"SELECT id FROM conversations WHERE state NOT IN ({marks}) AND updated_at < ? "
                "AND id NOT IN (SELECT conversation_id FROM messages WHERE created_at >= ?) "
                "AND id NOT IN (SELECT conversation_id FROM notes WHERE created_at >= ?)")
        _unlink_audit(log_, gone, [*OPEN_STATES, cutoff, cutoff, cutoff])
        counts = {
            "messages": log_.db.execute(
                f"DELETE FROM messages WHERE created_at < ? AND conversation_id NOT IN ({open_ids})", [cutoff, *OPEN_STATES]
            ).rowcount,
            "notes": log_.db.execute(
                f"DELETE FROM notes WHERE created_at < ? AND conversation_id NOT IN ({open_ids})", [cutoff, *OPEN_STATES]
            ).rowcount,
            "conversations": log_.db.execute(
                f"DELETE FROM conversations WHERE state NOT IN ({marks}) AND updated_at < ? "
                "AND id NOT IN (SELECT conversation_id FROM messages) AND id NOT IN (SELECT conversation_id FROM notes)",
                [*OPEN_STATES, cutoff],
            ).rowcount,
        }
        counts.update({k: v for k, v in comment_privacy.purge(log_, cutoff, OPEN_STATES).items() if v})  # kept evidence stays
        if any(counts.values()):
            log_.audit("system", "retention", None, cutoff=cutoff, **counts)
    if any(counts.values()):
        checkpoint(log_)
        forget_deleted_soon(log_, then=checkpoint)  # the search index's copy of the words too (in steps on the event loop)
    return counts


async def retention_loop(log_: HandoverLog, retention_days: int, interval_s: float = RETENTION_INTERVAL_S) -> None:
    """Purge expired transcripts now and then once a day, until cancelled."""
    while True:
        try:
            counts = purge_expired(log_, retention_days)
            if any(counts.values()):
                log.info("retention (%s days): deleted %s", retention_days, counts)
        except Exception:  # the next run tries again; the bot keeps answering
            log.exception("retention run failed")
        await asyncio.sleep(interval_s)
