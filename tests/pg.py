"""A throwaway PostgreSQL server for tests, benches and the fault test, from the machine's binaries.

`start_server(directory)` runs initdb and pg_ctl from PostgreSQL 15 (`PG_BIN`, default
/usr/lib/postgresql/15/bin) in `directory` and returns a `PgServer` with its URL. PostgreSQL
refuses to run as root, and CI runs as root: then the server runs as the `postgres` user
(Debian's package creates it) through `runuser`. pytest-postgresql was tried first; its
executor calls pg_ctl directly and so cannot start a server as root.

Fixtures: `pg_server` (one per test session) and `pg_url` (a fresh empty database per test).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "streife"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(argv: list[str]) -> list[str]:
    """Run as `postgres` when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PgServer:
    """A running server: `url(db)` for a database on it, `stop()` to end it."""

    directory: Path
    port: int
    options: str = ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        """Start the server (again, after stop(): the same data and port)."""
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-l",
                                  str(self.directory / "server.log"), "-w", "-t", "60", "-o", self.options, "start"]),
                       check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        """Stop at once, like a crash (immediate shutdown: clients lose their connections)."""
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)


def available() -> bool:
    """True when the PostgreSQL binaries are installed."""
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


def start_server(directory: Path | str, settings: tuple[str, ...] = ()) -> PgServer:
    """initdb and start a server in `directory` (created; must be empty) on a free port of 127.0.0.1."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        directory.parent.chmod(directory.parent.stat().st_mode | 0o011)  # (mkdtemp's 0700: postgres must pass through)
        shutil.chown(directory, "postgres", "postgres")
        directory.chmod(0o700)
    data = directory / "data"
    subprocess.run(_as_owner([str(PG_BIN / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                              "--locale=C.UTF-8", "--no-sync"]), check=True, capture_output=True, timeout=120)
    port = _free_port()
    options = " ".join([f"-p {port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={directory}",
                        "-c fsync=off", "-c max_connections=200", *(f"-c {s}" for s in settings)])
    server = PgServer(directory, port, options)
    server.start()
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if not available():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    directory = Path(tempfile.mkdtemp(prefix="streife-pg-"))
    server = start_server(directory / "pg")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


_names = itertools.count(1)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_names)}")
