"""The handover log on PostgreSQL: an adapter with the part of sqlite-utils' Database the log uses.

The log's SQL is written once, in the dialect both databases understand (ON CONFLICT, COALESCE,
LIMIT/OFFSET, partial indexes). This adapter changes what differs mechanically: `?` placeholders
become `%s`, `INSERT OR IGNORE` becomes `ON CONFLICT DO NOTHING`, an INSERT into a table with an id
returns it (`lastrowid`). SQLite's `json_extract`, `instr`, `ifnull` and `julianday` exist as SQL
functions (pg_schema.sql). psycopg's errors are raised as the sqlite3 classes the rest of the code
already handles: a unique violation is an `IntegrityError`; a lock that does not clear within
LOCK_TIMEOUT_MS, a deadlock or a lost connection is an `OperationalError` ("database is locked" for
the first two, so the dispatcher retries them off the event loop exactly as with SQLite).

One connection per log, in autocommit; `atomic()` opens a transaction (nested: a savepoint). The
connection is re-opened when it was lost between transactions. Queries stay synchronous like the
SQLite log's: on the same host or LAN a short query answers in well under a millisecond.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import psycopg
from psycopg import errors as pg_errors

RECONNECT_PAUSE_S = 1.0  # after a failed connect, calls fail at once for this long (the event loop never waits on it)
CONNECT_TIMEOUT_S = 2  # (psycopg's smallest)
LOCK_TIMEOUT_MS = 250  # a row lock another instance holds longer than this: "locked" (retried off the loop)
MIGRATION_LOCK = 0x57_72_65_69  # advisory lock key: two instances starting at once migrate once
SCHEMA_FILES = ("pg_schema.sql", "pg_features.sql")  # version n = the first n files applied
_LITERAL = re.compile(r"('(?:[^']|'')*')")
_EMPTY_IN = (re.compile(r"\bNOT\s+IN\s*\(\s*\)", re.I), re.compile(r"\bIN\s*\(\s*\)", re.I))  # SQLite takes "IN ()"
_WHERE_1 = re.compile(r"\bWHERE\s+1\b(?!\s*[=<>!])", re.I)
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+(IGNORE|REPLACE)\s+)?INTO\s+(\w+)", re.I)


@lru_cache(maxsize=2048)
def translate(sql: str, id_tables: frozenset[str]) -> tuple[str, bool]:
    """SQLite-dialect SQL as PostgreSQL runs it; True when the statement now returns the new row's id."""
    parts = _LITERAL.split(sql)
    sql = "".join(p.replace("%", "%%") if i % 2 else p.replace("%", "%%").replace("?", "%s") for i, p in enumerate(parts))
    sql = _EMPTY_IN[1].sub("= ANY('{}')", _EMPTY_IN[0].sub("<> ALL('{}')", sql))
    sql = _WHERE_1.sub("WHERE TRUE", sql)
    returning = False
    match = _INSERT.match(sql)
    if match:
        table = match.group(3).lower()
        sql = sql[: match.start(1)] + sql[match.end(1):] if match.group(1) else sql
        sql = sql.rstrip().rstrip(";")
        if match.group(2) and match.group(2).upper() == "IGNORE":
            sql += " ON CONFLICT DO NOTHING"
        elif match.group(2):  # OR REPLACE: only the key-value table's upsert is written this way
            if table != "kv":
                raise NotImplementedError(f"INSERT OR REPLACE into {table} has no PostgreSQL form here")
            sql += " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        if table in id_tables and not re.search(r"\bRETURNING\b", sql, re.I):
            sql += " RETURNING id"
            returning = True
    return sql, returning


def _number(data: bytes | None) -> int | float | None:
    """NUMERIC (SUM of integers, AVG) as SQLite gives it: an int when whole, else a float."""
    if data is None:
        return None
    text = bytes(data).decode()
    return float(Decimal(text)) if "." in text or "e" in text.lower() else int(text)


class _NumericLoader(psycopg.adapt.Loader):
    def load(self, data: Any) -> Any:
        return _number(data)


@contextlib.contextmanager
def sqlite_errors() -> Iterator[None]:
    """Raise psycopg's errors as the sqlite3 classes the log's callers handle."""
    try:
        yield
    except pg_errors.UniqueViolation as err:
        raise sqlite3.IntegrityError(f"UNIQUE constraint failed: {err.diag.constraint_name}") from err
    except psycopg.IntegrityError as err:
        raise sqlite3.IntegrityError(str(err).strip()) from err
    except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as err:
        raise sqlite3.OperationalError(f"database is locked ({type(err).__name__})") from err
    except psycopg.OperationalError as err:  # (transient like a lock: emergencies are answered from memory meanwhile)
        raise sqlite3.OperationalError(f"database is busy: PostgreSQL unavailable ({str(err).strip()[:200]})") from err
    except psycopg.DataError as err:
        raise sqlite3.DataError(str(err).strip()) from err
    except psycopg.ProgrammingError as err:
        raise sqlite3.OperationalError(str(err).strip()) from err


class PgCursor:
    """The result of one statement, read like sqlite3's cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any] | None, lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount if cursor is not None else -1
        self.description = cursor.description if cursor is not None and cursor.description else None

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cursor is None or self.description is None:
            return None
        with sqlite_errors():
            return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cursor is None or self.description is None:
            return []
        with sqlite_errors():
            return self._cursor.fetchall()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row


class PgConnection:
    """What the code reaches through `db.conn`."""

    def __init__(self, db: "PgDatabase") -> None:
        self._db = db
        self.trace: Callable[[str], None] | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> PgCursor:
        return self._db.executemany(sql, rows)

    def set_trace_callback(self, callback: Callable[[str], None] | None) -> None:
        self.trace = callback

    def commit(self) -> None:
        """Autocommit: statements outside atomic() are committed already."""

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def close(self) -> None:
        self._db.close()


class PgTable:
    """`db["name"]`: the few table helpers the code uses."""

    def __init__(self, db: "PgDatabase", name: str) -> None:
        self.db, self.name = db, name
        self.last_pk: Any = None

    def insert(self, row: dict[str, Any], **_: Any) -> "PgTable":
        names = list(row)
        sql = f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        self.last_pk = self.db.execute(sql, [_value(row[n]) for n in names]).lastrowid
        return self

    def insert_all(self, rows: Any, **_: Any) -> "PgTable":
        for row in rows:
            self.insert(row)
        return self

    def update(self, pk: Any, fields: dict[str, Any], **_: Any) -> "PgTable":
        names = list(fields)
        self.db.execute(f"UPDATE {self.name} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                        [*(_value(fields[n]) for n in names), pk])
        self.last_pk = pk
        return self


def _params(params: Any) -> list[Any]:
    """Parameters as PostgreSQL takes them: its text cannot hold NUL (SQLite's can), so a NUL becomes U+FFFD."""
    return [p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in (params or ())]


def _value(value: Any) -> Any:
    """sqlite-utils stores dicts and lists as JSON text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


class PgDatabase:
    """A PostgreSQL database with the interface of the SQLite log's `Database`."""

    backend = "postgresql"

    def __init__(self, url: str, lock_timeout_ms: int = LOCK_TIMEOUT_MS, application_name: str = "streife") -> None:
        self.url = url
        self.lock_timeout_ms = lock_timeout_ms
        self.application_name = application_name
        self.conn = PgConnection(self)
        self._pg: psycopg.Connection[Any] | None = None
        self._transactions: list[Any] = []
        self._down_until = 0.0
        self.id_tables: frozenset[str] = frozenset()
        self._connect()

    # -- the connection ---------------------------------------------------------------------

    def _connect(self) -> None:
        if time.monotonic() < self._down_until:
            raise sqlite3.OperationalError("database is busy: PostgreSQL unavailable (reconnecting)")
        try:
            with sqlite_errors():
                pg = psycopg.connect(self.url, autocommit=True, application_name=self.application_name,
                                     connect_timeout=CONNECT_TIMEOUT_S, keepalives=1, keepalives_idle=5,
                                     keepalives_interval=2, keepalives_count=3)
        except sqlite3.OperationalError:
            self._down_until = time.monotonic() + RECONNECT_PAUSE_S
            raise
        pg.adapters.register_loader("numeric", _NumericLoader)
        pg.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
        pg.execute("SET TIME ZONE 'UTC'")
        self._pg = pg
        self._transactions = []

    def _live(self) -> psycopg.Connection[Any]:
        """The connection; a lost one is opened again, but never in the middle of a transaction."""
        if self._pg is None or self._pg.closed or self._pg.broken:
            if self._transactions:
                raise sqlite3.OperationalError("PostgreSQL connection lost during a transaction")
            self._connect()
        assert self._pg is not None
        return self._pg

    @property
    def in_transaction(self) -> bool:
        return bool(self._transactions)

    def close(self) -> None:
        if self._pg is not None and not self._pg.closed:
            self._pg.close()

    # -- statements ---------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = ()) -> PgCursor:
        if sql.lstrip()[:6].upper() == "PRAGMA":
            return PgCursor(None)  # SQLite's settings mean nothing here
        query, returning = translate(sql, self.id_tables)
        if self.conn.trace is not None:
            self.conn.trace(query)
        with sqlite_errors():
            cursor = self._live().execute(query, _params(params))
            if returning:
                row = cursor.fetchone()
                return PgCursor(cursor, row[0] if row else None)
        return PgCursor(cursor)

    def executemany(self, sql: str, rows: Any) -> PgCursor:
        query, _ = translate(sql, frozenset())
        with sqlite_errors():
            cursor = self._live().cursor()
            cursor.executemany(query, [_params(r) for r in rows])
        return PgCursor(cursor)

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        keys = [d[0] for d in cursor.description or ()]
        return (dict(zip(keys, row)) for row in cursor)

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    @contextlib.contextmanager
    def atomic(self) -> Iterator["PgDatabase"]:
        """A transaction (nested: a savepoint); everything inside commits together or not at all."""
        with sqlite_errors():
            transaction = self._live().transaction()
            transaction.__enter__()
        self._transactions.append(transaction)
        try:
            yield self
        except BaseException as err:
            self._transactions.pop()
            with contextlib.suppress(psycopg.Error):
                transaction.__exit__(type(err), err, err.__traceback__)
            raise
        else:
            self._transactions.pop()
            with sqlite_errors():
                transaction.__exit__(None, None, None)

    def enable_wal(self) -> None:
        """(SQLite only.)"""

    # -- schema --------------------------------------------------------------------------------

    def migrate(self, seed: Callable[["PgDatabase"], None]) -> int:
        """Create or update the schema once, whichever instance comes first; the version reached."""
        here = Path(__file__).parent
        files = [here / name for name in SCHEMA_FILES if (here / name).exists()]
        with self.atomic():
            self.execute("SET LOCAL lock_timeout = 0")  # wait for the instance migrating first, however slow it is
            self.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = self.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0] or 0 if row else 0
            for number, path in enumerate(files[version:], version + 1):
                with sqlite_errors():
                    self._live().execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]
                if number == 1:
                    self._load_id_tables()
                    seed(self)
                self.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
        self._load_id_tables()
        return len(files)

    def _load_id_tables(self) -> None:
        rows = self.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
                            " AND column_name = 'id' AND is_identity = 'YES'").fetchall()
        self.id_tables = frozenset(r[0] for r in rows)
