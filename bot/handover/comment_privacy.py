"""Comments under posts in `privacy export`/`delete` and the retention job (called from bot/handover/privacy.py).

A citizen's comments are found by their pseudonym (the same as their DM conversations': both come
from `log.pseudonym(channel, platform user id)`). Evidence marked for a criminal complaint and not
released is kept past a deletion and past retention; its comment row stays, emptied (no text, no
platform user id), so the evidence keeps its link, and so do its sent replies, emptied (the dashboard's
figures depend on them). The export says which evidence is kept and why.
"""

from __future__ import annotations

import json
from typing import Any

from bot.handover.store import HandoverLog

KEPT = "complaint = 1 AND released_at IS NULL"
KEPT_NOTE = ("Beweise, die für eine Strafanzeige markiert sind, bleiben gespeichert, bis ein Beamter sie freigibt "
             "(auch nach einer Löschung und nach der Aufbewahrungsfrist).")
SCRUB = "text = '', author_id = NULL, author_name = '', meta = '{}', conversation_id = NULL"
SENT_REPLY = "status = 'sent' AND kind IN ('public_reply', 'private_reply')"
SCRUB_REPLY = "text = '', error = NULL"


def _rows(log_: HandoverLog, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    rows = log_._select(sql, args)
    for row in rows:
        if isinstance(row.get("meta"), str):
            row["meta"] = json.loads(row["meta"] or "{}")
    return rows


def has_comments(log_: HandoverLog, citizen: str) -> bool:
    """True when the citizen wrote a comment we stored (or evidence about them is kept)."""
    return log_.db.execute("SELECT 1 FROM comments WHERE author = ? UNION SELECT 1 FROM evidence WHERE author = ? LIMIT 1",
                           [citizen, citizen]).fetchone() is not None


def export(log_: HandoverLog, citizen: str) -> dict[str, Any]:
    """The citizen's comments, the actions taken on them, and the evidence about them (kept or not)."""
    evidence = _rows(log_, "SELECT * FROM evidence WHERE author = ? ORDER BY id", [citizen])
    for row in evidence:
        row["kept"] = bool(row["complaint"]) and row["released_at"] is None
    return {
        "comments": _rows(log_, "SELECT * FROM comments WHERE author = ? ORDER BY id", [citizen]),
        "comment_actions": _rows(log_, "SELECT a.* FROM comment_actions a JOIN comments c ON c.id = a.comment_id "
                                       "WHERE c.author = ? ORDER BY a.id", [citizen]),
        "evidence": evidence,
        "evidence_kept": KEPT_NOTE if any(r["kept"] for r in evidence) else None,
    }


def _erase(log_: HandoverLog, ids_sql: str, args: list[Any]) -> dict[str, int]:
    """Delete comments (by an id subquery) with their actions and unkept evidence; comments with kept evidence are emptied."""
    ids = [r[0] for r in log_.db.execute(ids_sql, args)]
    if not ids:
        return {"comments": 0, "comment_actions": 0, "evidence": 0, "evidence_kept": 0}
    marks = ",".join("?" * len(ids))
    evidence = log_.db.execute(f"DELETE FROM evidence WHERE comment_id IN ({marks}) AND NOT ({KEPT})", ids).rowcount
    kept = [r[0] for r in log_.db.execute(f"SELECT DISTINCT comment_id FROM evidence WHERE comment_id IN ({marks})", ids)]
    gone = [i for i in ids if i not in set(kept)]
    actions = comments = 0
    if kept:
        keep_marks = ",".join("?" * len(kept))
        log_.db.execute(f"UPDATE comments SET {SCRUB} WHERE id IN ({keep_marks})", kept)
        # a sent reply stays, emptied: what happened to the comment (the dashboard's outcome) must not change
        # while retention pauses the per-day counts (bot/handover/stats_tables.py), or a later change moves it wrongly
        log_.db.execute(f"UPDATE comment_actions SET {SCRUB_REPLY} WHERE comment_id IN ({keep_marks}) AND {SENT_REPLY}", kept)
        actions += log_.db.execute(f"DELETE FROM comment_actions WHERE comment_id IN ({keep_marks}) AND NOT (status = 'pending' "
                                   f"AND kind IN ('hide', 'delete')) AND NOT ({SENT_REPLY})",  # a hide still goes out; no reply does
                                   kept).rowcount
    if gone:
        gone_marks = ",".join("?" * len(gone))
        actions += log_.db.execute(f"DELETE FROM comment_actions WHERE comment_id IN ({gone_marks})", gone).rowcount
        comments = log_.db.execute(f"DELETE FROM comments WHERE id IN ({gone_marks})", gone).rowcount
    return {"comments": comments, "comment_actions": actions, "evidence": evidence, "evidence_kept": len(kept)}


def delete(log_: HandoverLog, citizen: str) -> dict[str, int]:
    """Erase a citizen's comments (inside the caller's transaction); evidence kept for a complaint stays."""
    return _erase(log_, "SELECT id FROM comments WHERE author = ?", [citizen])


def purge(log_: HandoverLog, cutoff: str, open_states: tuple[str, ...]) -> dict[str, int]:
    """Retention: comments last touched before `cutoff` go (inside the caller's transaction).

    Kept: evidence marked for a complaint and not released (with its comment, emptied), comments with an
    action still pending, and comments linked to a DM that officers have open.
    """
    marks = ",".join("?" * len(open_states))
    released = log_.db.execute(f"DELETE FROM evidence WHERE captured_at < ? AND NOT ({KEPT})", [cutoff]).rowcount
    counts = _erase(log_, (
        "SELECT id FROM comments WHERE received_at < ? AND COALESCE(edited_at, '') < ? AND COALESCE(handled_at, '') < ? "
        "AND id NOT IN (SELECT comment_id FROM comment_actions WHERE status = 'pending' OR created_at >= ?) "
        "AND id NOT IN (SELECT comment_id FROM evidence WHERE captured_at >= ?) "
        f"AND (conversation_id IS NULL OR conversation_id NOT IN (SELECT id FROM conversations WHERE state IN ({marks}))) "
        "AND NOT (text = '' AND author_id IS NULL AND id IN (SELECT comment_id FROM evidence))"  # emptied already
    ), [cutoff, cutoff, cutoff, cutoff, cutoff, *open_states])
    counts["evidence"] += released
    log_.db.execute("DELETE FROM posts WHERE created_at < ? AND id NOT IN (SELECT post_id FROM comments)", [cutoff])
    return counts
