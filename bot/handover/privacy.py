"""Data protection: a citizen's data on request (export, delete) and the retention period for transcripts."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.handover.store import HandoverError, HandoverLog, utcnow

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 24 * 60 * 60
OPEN_STATES = ("queued", "claimed")  # a chat with the team is never purged under the officers' hands


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
    if not ids:
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
    }


def delete_citizen(log_: HandoverLog, citizen: str, actor: str) -> dict[str, int]:
    """Erase a citizen's conversations, messages and notes; the audit trail keeps that it happened."""
    ids = _conversation_ids(log_, citizen)
    marks = ",".join("?" * len(ids))
    with log_.transaction():
        counts = {
            "messages": log_.db.execute(f"DELETE FROM messages WHERE conversation_id IN ({marks})", ids).rowcount,
            "notes": log_.db.execute(f"DELETE FROM notes WHERE conversation_id IN ({marks})", ids).rowcount,
            "conversations": log_.db.execute(f"DELETE FROM conversations WHERE id IN ({marks})", ids).rowcount,
        }
        for conversation_id in ids:
            log_.audit(actor, "privacy_delete", conversation_id, citizen=citizen, **counts)
    return counts


def purge_expired(log_: HandoverLog, retention_days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete transcripts older than the retention period; keep the audit trail and open chats."""
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")
    marks = ",".join("?" * len(OPEN_STATES))
    with log_.transaction():
        open_ids = f"SELECT id FROM conversations WHERE state IN ({marks})"
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
        if any(counts.values()):
            log_.audit("system", "retention", None, cutoff=cutoff, **counts)
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
