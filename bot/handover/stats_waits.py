"""Migration _v7 of the dashboard's figures: waits in the queue and first replies, kept by triggers.

`install` adds, fills from what is already stored, and from then on maintains:
- `stats_waits`: each wait in the queue, from the `queue` event to the next `claim`, `assign` or `close`;
- `stats_first_replies`: each handover's first officer reply (the first `queue` event after the
  previous first reply, to the next officer message).
Its `stats_hourly` was replaced in _v8 by per-day tables (bot/handover/stats_tables.py), which also
renews `WAIT_TRIGGERS` and replays the waits (`replay_waits`, `first_replies`). A privacy deletion of a
conversation takes its waits and first replies away; the retention job keeps them, detached from the
conversation (their conversation id turns negative).
"""

from __future__ import annotations

from collections import defaultdict

from sqlite_utils import Database

from bot.handover.stats_tables import PURGING

TABLES = (
    "CREATE TABLE stats_hourly (hour TEXT NOT NULL, channel TEXT NOT NULL, direction TEXT NOT NULL, author TEXT NOT NULL,"
    " intent TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (hour, channel, direction, author, intent, action)) WITHOUT ROWID",
    "CREATE TABLE stats_waits (id INTEGER PRIMARY KEY, conversation_id INTEGER, queued_at TEXT NOT NULL, ended_at TEXT)",
    "CREATE INDEX idx_stats_waits_queued ON stats_waits (queued_at)",
    "CREATE INDEX idx_stats_waits_ended ON stats_waits (ended_at)",
    "CREATE INDEX idx_stats_waits_conversation ON stats_waits (conversation_id)",
    "CREATE TABLE stats_first_replies (conversation_id INTEGER NOT NULL, queued_at TEXT NOT NULL, replied_at TEXT NOT NULL,"
    " PRIMARY KEY (conversation_id, queued_at))",
    "CREATE INDEX idx_stats_first_replies_queued ON stats_first_replies (queued_at)",
    "CREATE INDEX idx_events_action_at ON events (action, at)",  # relabels in a period
    "CREATE INDEX idx_messages_in_created ON messages (created_at) WHERE direction = 'in'",  # hours a shift starts or ends in
)
_KEY = "(hour, channel, direction, author, intent, action)"
_ADD = ("INSERT INTO stats_hourly VALUES (substr({r}.created_at, 1, 13), {r}.channel, {r}.direction, {r}.author,"
        " COALESCE({r}.intent, ''), COALESCE({r}.action, ''), 1) ON CONFLICT " + _KEY + " DO UPDATE SET n = n + 1;")
_TAKE = ("UPDATE stats_hourly SET n = n - 1 WHERE hour = substr(OLD.created_at, 1, 13) AND channel = OLD.channel"
         " AND direction = OLD.direction AND author = OLD.author AND intent = COALESCE(OLD.intent, '')"
         " AND action = COALESCE(OLD.action, '');")
ENDS_WAIT = ("claim", "assign", "close")  # an assigned chat is claimed by the colleague (bot/handover/accounts.py)
_FIRST_REPLY = (
    "INSERT OR IGNORE INTO stats_first_replies (conversation_id, queued_at, replied_at)"
    " SELECT NEW.conversation_id, MIN(e.at), NEW.created_at FROM events e"
    " WHERE e.conversation_id = NEW.conversation_id AND e.action = 'queue' AND e.at <= NEW.created_at"
    " AND e.at > COALESCE((SELECT MAX(r.replied_at) FROM stats_first_replies r WHERE r.conversation_id = NEW.conversation_id), '')"
    " HAVING MIN(e.at) IS NOT NULL;"
)
TRIGGERS = (
    f"CREATE TRIGGER stats_message_added AFTER INSERT ON messages BEGIN {_ADD.format(r='NEW')} END",
    "CREATE TRIGGER stats_message_changed AFTER UPDATE OF created_at, channel, direction, author, intent, action ON messages"
    " WHEN OLD.intent IS NOT NEW.intent OR OLD.action IS NOT NEW.action OR OLD.created_at IS NOT NEW.created_at"
    " OR OLD.channel IS NOT NEW.channel OR OLD.direction IS NOT NEW.direction OR OLD.author IS NOT NEW.author"
    f" BEGIN {_TAKE} {_ADD.format(r='NEW')} END",
    f"CREATE TRIGGER stats_message_deleted AFTER DELETE ON messages BEGIN {_TAKE} END",
    "CREATE TRIGGER stats_first_reply AFTER INSERT ON messages WHEN NEW.author = 'officer' AND NEW.direction = 'out'"
    f" BEGIN {_FIRST_REPLY} END",
    "CREATE TRIGGER stats_wait_started AFTER INSERT ON events WHEN NEW.action = 'queue' AND NEW.conversation_id IS NOT NULL"
    " BEGIN INSERT INTO stats_waits (conversation_id, queued_at) SELECT NEW.conversation_id, NEW.at WHERE NOT EXISTS"
    " (SELECT 1 FROM stats_waits WHERE conversation_id = NEW.conversation_id AND ended_at IS NULL); END",
)
WAIT_TRIGGERS = {  # (renewed by _v8 on a log that has _v7's first versions)
    "stats_wait_ended": "CREATE TRIGGER stats_wait_ended AFTER INSERT ON events"
    f" WHEN NEW.action IN {ENDS_WAIT!r} AND NEW.conversation_id IS NOT NULL"
    " BEGIN UPDATE stats_waits SET ended_at = NEW.at WHERE conversation_id = NEW.conversation_id AND ended_at IS NULL; END",
    "stats_conversation_deleted": "CREATE TRIGGER stats_conversation_deleted AFTER DELETE ON conversations BEGIN"
    f" UPDATE stats_waits SET conversation_id = -OLD.id, ended_at = COALESCE(ended_at, OLD.closed_at, OLD.updated_at)"
    f" WHERE conversation_id = OLD.id AND {PURGING};"  # (a chat retention removes waits no more)
    f" UPDATE stats_first_replies SET conversation_id = -OLD.id WHERE conversation_id = OLD.id AND {PURGING};"
    " DELETE FROM stats_waits WHERE conversation_id = OLD.id; DELETE FROM stats_first_replies WHERE conversation_id = OLD.id; END",
}


def install(db: Database) -> None:
    """Migration _v7: the tables, filled from the log as it is, then the triggers that keep them in step."""
    for sql in TABLES:
        db.execute(sql)
    db.execute(
        "INSERT INTO stats_hourly SELECT substr(created_at, 1, 13), channel, direction, author, COALESCE(intent, ''),"
        " COALESCE(action, ''), COUNT(*) FROM messages GROUP BY 1, 2, 3, 4, 5, 6"
    )
    first_replies(db, replay_waits(db))
    for sql in (*TRIGGERS, *WAIT_TRIGGERS.values()):
        db.execute(sql)


def replay_waits(db: Database) -> dict[int, list[str]]:
    """Fill `stats_waits` for the stored conversations from their events; return their `queue` times."""
    db.execute("DELETE FROM stats_waits WHERE conversation_id IN (SELECT id FROM conversations)")
    open_waits: dict[int, int] = {}
    queued: dict[int, list[str]] = defaultdict(list)
    for event_id, at, action, conv in db.execute(
        f"SELECT id, at, action, conversation_id FROM events WHERE action IN {('queue', *ENDS_WAIT)!r}"
        " AND conversation_id IN (SELECT id FROM conversations) ORDER BY id"
    ).fetchall():
        if action == "queue":
            queued[conv].append(at)
            if conv not in open_waits:
                open_waits[conv] = db.execute("INSERT INTO stats_waits (conversation_id, queued_at) VALUES (?, ?)", [conv, at]).lastrowid
        elif conv in open_waits:
            db.execute("UPDATE stats_waits SET ended_at = ? WHERE id = ?", [at, open_waits.pop(conv)])
    return queued


def first_replies(db: Database, queued: dict[int, list[str]] | None = None) -> None:
    """Fill `stats_first_replies` from the log: each officer reply that follows a `queue` event not yet answered."""
    if queued is None:
        queued = defaultdict(list)
        for at, conv in db.execute("SELECT at, conversation_id FROM events WHERE action = 'queue'"
                                   " AND conversation_id IN (SELECT id FROM conversations) ORDER BY id").fetchall():
            queued[conv].append(at)
    last_reply: dict[int, str] = {}
    rows = []
    for conv, created in db.execute(
        "SELECT conversation_id, created_at FROM messages WHERE author = 'officer' AND direction = 'out' ORDER BY id"
    ).fetchall():
        pending = [at for at in queued.get(conv, []) if last_reply.get(conv, "") < at <= created]
        if pending:
            rows.append((conv, min(pending), created))
            last_reply[conv] = created
    db.conn.executemany("INSERT OR IGNORE INTO stats_first_replies VALUES (?, ?, ?)", rows)
