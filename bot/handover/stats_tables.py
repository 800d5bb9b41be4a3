"""The dashboard's per-day tables (migration _v8), kept in step with the log by triggers.

Local days need the time zone, and SQLite has none: `stats_zone` holds the zone's UTC offsets
(one row from each change on: the UTC instant and a SQLite modifier such as '+60 minutes'), and
the triggers look a timestamp's offset up there. `kv['stats_zone']` names the zone the tables are
built for; when TIMEZONE changes, `ensure_zone` rebuilds them from the log (seconds, once).

- `stats_days_volume`: messages per local day, channel, direction and author;
- `stats_days_intents`, `stats_days_actions`: citizens' messages per local day and intent / action;
- `stats_hours_inbound`: citizens' messages per UTC hour (duty hours are cut by the hour);
- `stats_days_comments`: comments under posts per local day, channel and outcome (`OUTCOME` below);
- `stats_days_relabels`: officers' relabels per local day, model's intent and officers' intent (from the
  `relabel` events, whose detail a deletion empties).
An insert adds one, a decision or an edit moves it, a privacy deletion takes it away. The retention
job leaves every figure in place (the rows hold no personal data, and officers report whole years):
`purging(db)` puts a `kv` row there for the length of its transaction, and the triggers do nothing
while it is there. A rebuild for another zone keeps what the log no longer holds (see `rebuild`).
The waits and first replies of _v7 (bot/handover/stats_waits.py) are kept past retention the same way.
On PostgreSQL the tables and triggers (PL/pgSQL, same figures) are in pg_features.sql; the rebuild is this one.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from sqlite_utils import Database

DEFAULT_ZONE = "Europe/Berlin"  # Settings.timezone's default; the dashboard rebuilds for another zone
ZONE_KEY = "stats_zone"
FIRST_YEAR, LAST_YEAR = 1990, 2100
PURGE_KEY = "stats_retention"  # present in `kv` only inside the retention job's transaction
REBUILD_LOCK, REBUILD_WAIT_MS = 0x53_74_61_74, 120_000  # PostgreSQL: one rebuild at a time across instances
PURGING = f"EXISTS (SELECT 1 FROM kv WHERE key = '{PURGE_KEY}')"
COUNTING = f"NOT {PURGING}"

TABLES = (
    "CREATE TABLE stats_zone (since TEXT PRIMARY KEY, shift TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE stats_days_volume (day TEXT NOT NULL, channel TEXT NOT NULL, direction TEXT NOT NULL, author TEXT NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (day, channel, direction, author)) WITHOUT ROWID",
    "CREATE TABLE stats_days_intents (day TEXT NOT NULL, intent TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, intent)) WITHOUT ROWID",
    "CREATE TABLE stats_days_actions (day TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, action)) WITHOUT ROWID",
    "CREATE TABLE stats_hours_inbound (hour TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE stats_days_comments (day TEXT NOT NULL, channel TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (day, channel, outcome)) WITHOUT ROWID",
    "CREATE TABLE stats_days_relabels (day TEXT NOT NULL, was TEXT NOT NULL, intent TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (day, was, intent)) WITHOUT ROWID",
)
DAY_TABLES = ("stats_days_volume", "stats_days_intents", "stats_days_actions", "stats_hours_inbound", "stats_days_comments",
              "stats_days_relabels")
OLD = ("DROP TRIGGER IF EXISTS stats_message_added", "DROP TRIGGER IF EXISTS stats_message_changed",
       "DROP TRIGGER IF EXISTS stats_message_deleted", "DROP TABLE IF EXISTS stats_hourly")


def _day(stamp: str) -> str:
    """SQL: the local day of a UTC timestamp expression."""
    shifted = f"date({stamp}, (SELECT z.shift FROM stats_zone z WHERE z.since <= {stamp} ORDER BY z.since DESC LIMIT 1))"
    return f"COALESCE({shifted}, substr({stamp}, 1, 10))"  # past 9999-12-31 after the shift: the UTC day, never NULL


def _add(r: str) -> str:
    day = _day(f"{r}.created_at")
    upsert = " ON CONFLICT DO UPDATE SET n = n + 1;"
    return (
        f"INSERT INTO stats_days_volume SELECT {day}, {r}.channel, {r}.direction, {r}.author, 1 WHERE 1{upsert}"
        f" INSERT INTO stats_days_intents SELECT {day}, COALESCE({r}.intent, ''), 1 WHERE {r}.direction = 'in'{upsert}"
        f" INSERT INTO stats_days_actions SELECT {day}, COALESCE({r}.action, ''), 1 WHERE {r}.direction = 'in'{upsert}"
        f" INSERT INTO stats_hours_inbound SELECT substr({r}.created_at, 1, 13), 1 WHERE {r}.direction = 'in'{upsert}"
    )


def _take(r: str) -> str:
    day = _day(f"{r}.created_at")
    return (
        f"UPDATE stats_days_volume SET n = n - 1 WHERE day = {day} AND channel = {r}.channel AND direction = {r}.direction"
        f" AND author = {r}.author;"
        f" UPDATE stats_days_intents SET n = n - 1 WHERE {r}.direction = 'in' AND day = {day} AND intent = COALESCE({r}.intent, '');"
        f" UPDATE stats_days_actions SET n = n - 1 WHERE {r}.direction = 'in' AND day = {day} AND action = COALESCE({r}.action, '');"
        f" UPDATE stats_hours_inbound SET n = n - 1 WHERE {r}.direction = 'in' AND hour = substr({r}.created_at, 1, 13);"
    )


# What happened to a comment (the first that applies): hidden or deleted by the team (abuse), the public
# 110 prompt of an emergency, a private reply, another public reply, listed for the team, not yet decided, nothing.
OUTCOME = (
    "CASE WHEN c.hidden = 1 OR c.deleted = 1 THEN 'hidden'"
    " WHEN c.policy = 'escalate' AND EXISTS (SELECT 1 FROM comment_actions a WHERE a.comment_id = c.id"
    " AND a.kind = 'public_reply' AND a.status = 'sent') THEN 'public_110'"
    " WHEN EXISTS (SELECT 1 FROM comment_actions a WHERE a.comment_id = c.id AND a.kind = 'private_reply' AND a.status = 'sent')"
    " THEN 'private'"
    " WHEN EXISTS (SELECT 1 FROM comment_actions a WHERE a.comment_id = c.id AND a.kind = 'public_reply' AND a.status = 'sent')"
    " THEN 'public'"
    " WHEN c.policy = 'list' THEN 'listed' WHEN c.status = 'new' THEN 'open' ELSE 'nothing' END"
)
OUTCOMES = ("hidden", "public_110", "private", "public", "listed", "open", "nothing")


def _comment_add(cid: str) -> str:
    return (f"INSERT INTO stats_days_comments SELECT {_day('c.created_at')}, c.channel, {OUTCOME}, 1 FROM comments c"
            f" WHERE c.id = {cid} AND c.own = 0 ON CONFLICT DO UPDATE SET n = n + 1;")


def _comment_take(cid: str) -> str:
    return (f"UPDATE stats_days_comments SET n = n - 1 WHERE (day, channel, outcome) = (SELECT {_day('c.created_at')},"
            f" c.channel, {OUTCOME} FROM comments c WHERE c.id = {cid} AND c.own = 0);")


def _relabel(r: str, add: bool) -> str:
    """SQL: count the event `r` (NEW or OLD) once more or once less when it is a relabel whose detail is still there."""
    key = f"{_day(f'{r}.at')}, COALESCE(json_extract({r}.detail, '$.was'), ''), json_extract({r}.detail, '$.intent')"
    if add:
        return (f"INSERT INTO stats_days_relabels SELECT {key}, 1 WHERE {r}.action = 'relabel'"
                f" AND json_extract({r}.detail, '$.intent') IS NOT NULL ON CONFLICT DO UPDATE SET n = n + 1;")
    return f"UPDATE stats_days_relabels SET n = n - 1 WHERE {r}.action = 'relabel' AND (day, was, intent) = (SELECT {key});"


_COMMENT_COLUMNS = "created_at, channel, own, status, policy, hidden, deleted"
_REPLY = "{r}.status = 'sent' AND {r}.kind IN ('public_reply', 'private_reply')"
TRIGGERS = (
    f"CREATE TRIGGER stats_days_message_added AFTER INSERT ON messages BEGIN {_add('NEW')} END",
    "CREATE TRIGGER stats_days_message_changed AFTER UPDATE OF created_at, channel, direction, author, intent, action ON messages"
    " WHEN OLD.intent IS NOT NEW.intent OR OLD.action IS NOT NEW.action OR OLD.created_at IS NOT NEW.created_at"
    " OR OLD.channel IS NOT NEW.channel OR OLD.direction IS NOT NEW.direction OR OLD.author IS NOT NEW.author"
    f" BEGIN {_take('OLD')} {_add('NEW')} END",
    f"CREATE TRIGGER stats_days_message_deleted AFTER DELETE ON messages WHEN {COUNTING} BEGIN {_take('OLD')} END",
    # comments: the outcome depends on the comment and its actions, so each change takes the comment out
    # before (BEFORE trigger: the tables still hold the old state) and puts it back after
    f"CREATE TRIGGER stats_days_comment_added AFTER INSERT ON comments BEGIN {_comment_add('NEW.id')} END",
    # (retention changes nothing: the guard is the same for a BEFORE trigger and its AFTER twin)
    f"CREATE TRIGGER stats_days_comment_changing BEFORE UPDATE OF {_COMMENT_COLUMNS} ON comments WHEN {COUNTING}"
    f" BEGIN {_comment_take('OLD.id')} END",
    f"CREATE TRIGGER stats_days_comment_changed AFTER UPDATE OF {_COMMENT_COLUMNS} ON comments WHEN {COUNTING}"
    f" BEGIN {_comment_add('NEW.id')} END",
    f"CREATE TRIGGER stats_days_comment_deleted BEFORE DELETE ON comments WHEN {COUNTING} BEGIN {_comment_take('OLD.id')} END",
    f"CREATE TRIGGER stats_days_action_adding BEFORE INSERT ON comment_actions WHEN {_REPLY.format(r='NEW')}"
    f" BEGIN {_comment_take('NEW.comment_id')} END",
    f"CREATE TRIGGER stats_days_action_added AFTER INSERT ON comment_actions WHEN {_REPLY.format(r='NEW')}"
    f" BEGIN {_comment_add('NEW.comment_id')} END",
    "CREATE TRIGGER stats_days_action_changing BEFORE UPDATE OF status, kind, comment_id ON comment_actions"
    f" WHEN (({_REPLY.format(r='OLD')}) OR ({_REPLY.format(r='NEW')})) AND {COUNTING}"
    f" BEGIN {_comment_take('OLD.comment_id')} {_comment_take('NEW.comment_id').replace('c.own = 0', 'c.own = 0 AND NEW.comment_id IS NOT OLD.comment_id')} END",
    "CREATE TRIGGER stats_days_action_changed AFTER UPDATE OF status, kind, comment_id ON comment_actions"
    f" WHEN (({_REPLY.format(r='OLD')}) OR ({_REPLY.format(r='NEW')})) AND {COUNTING}"
    f" BEGIN {_comment_add('OLD.comment_id')} {_comment_add('NEW.comment_id').replace('c.own = 0', 'c.own = 0 AND NEW.comment_id IS NOT OLD.comment_id')} END",
    f"CREATE TRIGGER stats_days_action_deleting BEFORE DELETE ON comment_actions WHEN {_REPLY.format(r='OLD')} AND {COUNTING}"
    f" BEGIN {_comment_take('OLD.comment_id')} END",
    f"CREATE TRIGGER stats_days_action_deleted AFTER DELETE ON comment_actions WHEN {_REPLY.format(r='OLD')} AND {COUNTING}"
    f" BEGIN {_comment_add('OLD.comment_id')} END",
    # relabels: a privacy deletion empties the event's detail (bot/handover/privacy.py), retention does too but is not counted
    f"CREATE TRIGGER stats_days_relabel_added AFTER INSERT ON events WHEN NEW.action = 'relabel' BEGIN {_relabel('NEW', True)} END",
    "CREATE TRIGGER stats_days_relabel_changed AFTER UPDATE OF at, action, detail ON events"
    f" WHEN (OLD.action = 'relabel' OR NEW.action = 'relabel') AND {COUNTING} BEGIN {_relabel('OLD', False)} {_relabel('NEW', True)} END",
    f"CREATE TRIGGER stats_days_relabel_deleted AFTER DELETE ON events WHEN OLD.action = 'relabel' AND {COUNTING}"
    f" BEGIN {_relabel('OLD', False)} END",
)


def zone_offsets(zone: ZoneInfo) -> list[tuple[str, str]]:
    """The zone's UTC offsets as (UTC instant it starts, SQLite modifier), 1990 to 2100; the first starts at ''."""
    def offset(moment: datetime) -> int:
        return int((moment.astimezone(zone).utcoffset() or timedelta()).total_seconds() // 60)

    moment = datetime(FIRST_YEAR, 1, 1, tzinfo=timezone.utc)
    current = offset(moment)
    rows = [("", f"{current:+d} minutes")]
    stop = datetime(LAST_YEAR, 1, 1, tzinfo=timezone.utc)
    while moment < stop:
        following = moment + timedelta(days=1)
        if offset(following) != current:
            hour = moment
            while offset(hour) == current:  # the change within this day, to the hour
                hour += timedelta(hours=1)
            current = offset(hour)
            rows.append((hour.isoformat(timespec="milliseconds"), f"{current:+d} minutes"))
        moment = following
    return rows


KEYS = {"stats_days_volume": "day, channel, direction, author", "stats_days_intents": "day, intent",  # (PostgreSQL's
        "stats_days_actions": "day, action", "stats_hours_inbound": "hour", "stats_days_comments": "day, channel, outcome",  # ON CONFLICT
        "stats_days_relabels": "day, was, intent"}  # needs them; pg_features.sql has the tables and triggers)


def _pg_day(stamp: str) -> str:
    """SQL on PostgreSQL: the local day of a UTC timestamp expression (pg_features.sql's stats_day, as `_day`)."""
    return f"stats_day({stamp})"


def _from_log(_day: Callable[[str], str] = _day) -> dict[str, str]:
    """Per table: the SELECT that counts its rows from the log as it is, in the zone `stats_zone` holds."""
    hour_day = _day("(hour || ':00:00.000+00:00')")  # offsets change on whole UTC hours: group by hour first
    per_key = {table: (f"SELECT {hour_day}, k, SUM(n) FROM (SELECT substr(created_at, 1, 13) AS hour, COALESCE({column}, '') AS k,"
                       " COUNT(*) AS n FROM messages WHERE direction = 'in' GROUP BY 1, 2) GROUP BY 1, 2")
               for table, column in (("stats_days_intents", "intent"), ("stats_days_actions", "action"))}
    return {
        "stats_days_volume": f"SELECT {hour_day}, channel, direction, author, SUM(n) FROM (SELECT substr(created_at, 1, 13)"
                             " AS hour, channel, direction, author, COUNT(*) AS n FROM messages GROUP BY 1, 2, 3, 4) GROUP BY 1, 2, 3, 4",
        **per_key,
        "stats_hours_inbound": "SELECT substr(created_at, 1, 13), COUNT(*) FROM messages WHERE direction = 'in' GROUP BY 1",
        "stats_days_comments": f"SELECT {_day('c.created_at')}, c.channel, {OUTCOME}, COUNT(*) FROM comments c"
                               " WHERE c.own = 0 GROUP BY 1, 2, 3",
        "stats_days_relabels": f"SELECT {_day('at')}, COALESCE(json_extract(detail, '$.was'), ''), json_extract(detail, '$.intent'),"
                               " COUNT(*) FROM events WHERE action = 'relabel' AND json_extract(detail, '$.intent') IS NOT NULL"
                               " GROUP BY 1, 2, 3",
    }


def _pg_from_log() -> dict[str, str]:
    """`_from_log` for PostgreSQL: its days from stats_day(), and a name for each subquery (PostgreSQL 15 wants one)."""
    return {table: query.replace(") GROUP BY", ") AS hours GROUP BY") for table, query in _from_log(_pg_day).items()}


def _kept(db: Database) -> dict[str, Counter[tuple[str, ...]]]:
    """What the tables count beyond the log (messages and comments the retention job removed), per table."""
    kept = {}
    for table, query in (_pg_from_log() if getattr(db, "backend", "sqlite") == "postgresql" else _from_log()).items():
        rows: Counter[tuple[str, ...]] = Counter({tuple(r[:-1]): r[-1] for r in db.execute(f"SELECT * FROM {table}")})
        rows.subtract({tuple(r[:-1]): r[-1] for r in db.execute(query)})
        kept[table] = +rows  # (only the positive: a table that counted too little is simply put right)
    return kept


def rebuild(db: Database, zone_name: str) -> None:
    """Fill the per-day tables from the log for `zone_name` (inside the caller's transaction).

    Figures of days the retention job has cleared from the log are carried over under the day they had
    (in the former zone: near midnight a few hours may count to the neighbouring day); UTC hours stay exact.
    """
    built = db.execute("SELECT 1 FROM kv WHERE key = ?", [ZONE_KEY]).fetchone() is not None
    kept = _kept(db) if built else {}
    db.execute("DELETE FROM stats_zone")
    db.conn.executemany("INSERT INTO stats_zone VALUES (?, ?)", zone_offsets(ZoneInfo(zone_name)))
    postgres = getattr(db, "backend", "sqlite") == "postgresql"
    for table, query in (_pg_from_log() if postgres else _from_log()).items():
        db.execute(f"DELETE FROM {table}")
        db.execute(f"INSERT INTO {table} {query}")
        rows = kept.get(table)
        if rows:
            marks = ", ".join("?" * (len(next(iter(rows))) + 1))
            update = f"({KEYS[table]}) DO UPDATE SET n = {table}.n" if postgres else "DO UPDATE SET n = n"  # (PostgreSQL names the key)
            db.conn.executemany(f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT {update} + excluded.n",
                                [(*key, n) for key, n in rows.items()])
    if postgres:
        db.execute("SELECT stats_comments_recounted()")  # (pg_features.sql: each comment's key, for its triggers)
    db.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               [ZONE_KEY, zone_name])


def rebuild_first_replies(db: Database) -> None:
    """Find each handover's first officer reply again from the log (a bulk import may write messages before events)."""
    from bot.handover.stats_waits import first_replies  # (the rule lives with _v7's tables)

    db.execute("DELETE FROM stats_first_replies WHERE conversation_id IN (SELECT id FROM conversations)")  # kept: retention's
    first_replies(db)


def install(db: Database) -> None:
    """Migration _v8: the per-day tables replace `stats_hourly`, built from the log, then the triggers.

    It also renews two triggers of _v7 (an `assign` ends a wait; retention keeps waits and first
    replies) and finds the waits again from the events.
    """
    from bot.handover.stats_waits import WAIT_TRIGGERS, replay_waits

    for sql in OLD:
        db.execute(sql)
    for name in WAIT_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    for sql in TABLES:
        db.execute(sql)
    db["comments"].create_index(["created_at"], if_not_exists=True)
    rebuild(db, DEFAULT_ZONE)
    replay_waits(db)
    rebuild_first_replies(db)
    for sql in (*WAIT_TRIGGERS.values(), *TRIGGERS):
        db.execute(sql)


@contextmanager
def purging(db: Database) -> Iterator[None]:
    """The retention job's deletions, inside its transaction: the figures stay as they are."""
    db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, '1')", [PURGE_KEY])
    try:
        yield
    finally:
        db.execute("DELETE FROM kv WHERE key = ?", [PURGE_KEY])


def ensure_zone(db: Database, zone_name: str) -> bool:
    """Rebuild the per-day tables when they were built for another zone; True when it rebuilt."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", [ZONE_KEY]).fetchone()
    if row and row[0] == zone_name:
        return False
    with db.atomic():
        if getattr(db, "backend", "sqlite") == "postgresql":  # two instances starting at once: one rebuilds, the other waits
            db.execute(f"SET LOCAL lock_timeout = {REBUILD_WAIT_MS}")
            db.execute("SELECT pg_advisory_xact_lock(?)", [REBUILD_LOCK])
            row = db.execute("SELECT value FROM kv WHERE key = ?", [ZONE_KEY]).fetchone()
            if row and row[0] == zone_name:
                return False
        rebuild(db, zone_name)
    return True
