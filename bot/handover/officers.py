"""Officer accounts for the inbox: argon2 password hashes, a lockout after wrong passwords, sessions."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.handover.store import HandoverLog

MAX_FAILED_LOGINS = 5  # this many wrong passwords in a row ...
LOCKOUT_MINUTES = 15  # ... lock the account for this long
SESSION_HOURS = 12  # one shift
MIN_PASSWORD_LENGTH = 10
INITIAL_OFFICER = "officer"

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown names (made on first use: hashing costs ~0.5 s at start-up)."""
    return _hasher.hash("no such officer")


class OfficerError(ValueError):
    """An account request that cannot be carried out (name taken, password too short)."""


class LoginError(Exception):
    """Name or password wrong (the message never says which)."""


class LockedOut(LoginError):
    """Too many wrong passwords: the account is locked for a while."""

    def __init__(self, until: str) -> None:
        super().__init__(f"account locked until {until}")
        self.until = until


@dataclass(frozen=True)
class Session:
    """A logged-in officer: the cookie holds `token`, every form carries `csrf`."""

    token: str
    officer: str
    csrf: str
    expires_at: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _later(now: str, **delta: float) -> str:
    return (datetime.fromisoformat(now) + timedelta(**delta)).isoformat(timespec="milliseconds")


class Officers:
    """Accounts and sessions, stored in the handover log's officers and sessions tables."""

    def __init__(self, log: HandoverLog) -> None:
        self.log = log
        self.db = log.db

    def names(self) -> list[str]:
        """The names of all active officers."""
        return [r[0] for r in self.db.execute("SELECT name FROM officers WHERE active = 1 ORDER BY name").fetchall()]

    def add(self, name: str, password: str, actor: str = "cli") -> None:
        """Create an account (or set a new password for an existing one)."""
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise OfficerError("the name must be 1-64 printable characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise OfficerError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        hashed = _hasher.hash(password)
        with self.log.transaction():
            exists = self.db.execute("SELECT 1 FROM officers WHERE name = ?", [name]).fetchone()
            if exists:
                self.db.execute(
                    "UPDATE officers SET password_hash = ?, failed_logins = 0, locked_until = NULL, active = 1 WHERE name = ?",
                    [hashed, name],
                )
                self.db.execute("DELETE FROM sessions WHERE officer = ?", [name])
            else:
                self.db["officers"].insert({"name": name, "password_hash": hashed, "created_at": self.log.clock()})
            self.log.audit(actor, "officer_password" if exists else "officer_add", None, officer=name)

    def ensure_initial(self) -> str | None:
        """On first start (no account yet): create "officer" and return its password, else None."""
        if self.db.execute("SELECT 1 FROM officers LIMIT 1").fetchone():
            return None
        password = secrets.token_urlsafe(12)
        self.add(INITIAL_OFFICER, password, actor="system")
        return password

    async def login(self, name: str, password: str) -> Session:
        """Check the password (hashing off the event loop) and open a session; raise LoginError or LockedOut."""
        row = self.db.execute(
            "SELECT password_hash, locked_until FROM officers WHERE name = ? AND active = 1", [name]
        ).fetchone()
        if row is None:
            await asyncio.to_thread(lambda: _verify(_dummy_hash(), password))  # same work as for a real account, off the loop
            raise LoginError("wrong name or password")
        password_hash, locked_until = row
        if locked_until and locked_until > self.log.clock():
            raise LockedOut(locked_until)
        if not await asyncio.to_thread(_verify, password_hash, password):
            self._failed(name)
        now = self.log.clock()
        if _hasher.check_needs_rehash(password_hash):
            self.db.execute("UPDATE officers SET password_hash = ? WHERE name = ?", [_hasher.hash(password), name])
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = _later(now, hours=SESSION_HOURS)
        with self.log.transaction():
            self.db.execute("UPDATE officers SET failed_logins = 0, locked_until = NULL WHERE name = ?", [name])
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])
            self.db["sessions"].insert(
                {"token_hash": _hash_token(token), "officer": name, "csrf": csrf, "created_at": now, "expires_at": expires}
            )
            self.log.audit(name, "login", None)
        return Session(token, name, csrf, expires)

    def _failed(self, name: str) -> None:
        """Count a wrong password; lock the account after MAX_FAILED_LOGINS in a row. Always raises."""
        now = self.log.clock()
        with self.log.transaction():
            self.db.execute(
                "UPDATE officers SET failed_logins = failed_logins + 1, locked_until = NULL "
                "WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?)",
                [name, now],
            )
            failed = self.db.execute("SELECT failed_logins FROM officers WHERE name = ?", [name]).fetchone()[0]
            lock = _later(now, minutes=LOCKOUT_MINUTES) if failed >= MAX_FAILED_LOGINS else None
            if lock:
                self.db.execute("UPDATE officers SET failed_logins = 0, locked_until = ? WHERE name = ?", [lock, name])
            self.log.audit(name, "login_locked" if lock else "login_failed", None)
        if lock:
            raise LockedOut(lock)
        raise LoginError("wrong name or password")

    def session(self, token: str | None) -> Session | None:
        """The session for a cookie value, if it is valid and the officer still active."""
        if not token:
            return None
        row = self.db.execute(
            "SELECT s.officer, s.csrf, s.expires_at FROM sessions s JOIN officers o ON o.name = s.officer "
            "WHERE s.token_hash = ? AND o.active = 1",
            [_hash_token(token)],
        ).fetchone()
        if row is None or row[2] < self.log.clock():
            return None
        return Session(token, row[0], row[1], row[2])

    def logout(self, session: Session) -> None:
        """End a session."""
        self.db.execute("DELETE FROM sessions WHERE token_hash = ?", [_hash_token(session.token)])
        self.log.audit(session.officer, "logout", None)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
