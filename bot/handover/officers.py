"""Officer accounts for the inbox: argon2 password hashes, a lockout after wrong passwords, sessions.

The lockout counts per name *and* client address, in memory, before any hash is checked: nobody
can lock an officer out from elsewhere, concurrent guesses cannot race past it, and an unknown
name is answered exactly like a known one. Each argon2 check costs 64 MiB, so only a few run at
once (the web layer also gives each address a budget of attempts before any of this).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.handover.store import HandoverLog

MAX_FAILED_LOGINS = 5  # this many wrong passwords in a row for one name from one address ...
LOCKOUT_MINUTES = 15  # ... lock that name for that address this long
CONCURRENT_HASHES = 2  # argon2 checks running at once (64 MiB each)
WAITING_HASHES = 32  # logins waiting for a hash slot; more are told to try again shortly
MAX_TRACKED = 100_000  # (name, address) pairs remembered; the oldest is forgotten first
SESSION_HOURS = 12  # one shift
MIN_PASSWORD_LENGTH = 10
INITIAL_OFFICER = "officer"
MAX_NAME = 64

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
    """Too many attempts from this address (for this name, or at all): wait `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many attempts; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


class LoginBusy(LoginError):
    """Too many logins are being checked right now: try again in a moment."""


class LoginGuard:
    """Wrong passwords per (name, address), counted before the hash is checked (an attempt in flight counts)."""

    def __init__(self, max_failed: int = MAX_FAILED_LOGINS, lockout_s: float = LOCKOUT_MINUTES * 60,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failed = max_failed
        self.lockout_s = lockout_s
        self.clock = clock
        self._state: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # key -> [failed, in_flight, locked_until]

    def reserve(self, key: tuple[str, str]) -> None:
        """Count an attempt before it is checked; raise LockedOut when the key is locked or its attempts are used up."""
        state = self._state.setdefault(key, [0, 0, 0.0])
        self._state.move_to_end(key)
        now = self.clock()
        if state[2] > now:
            raise LockedOut(state[2] - now)
        if state[0] + state[1] >= self.max_failed:
            raise LockedOut(self.lockout_s)
        state[1] += 1
        while len(self._state) > MAX_TRACKED:
            self._state.popitem(last=False)

    def release(self, key: tuple[str, str]) -> None:
        """Give back a reserved attempt that was never checked."""
        state = self._state.get(key)
        if state is not None:
            state[1] = max(0, state[1] - 1)

    def settle(self, key: tuple[str, str], ok: bool) -> bool:
        """Record the outcome of a reserved attempt; True when this failure locked the key."""
        state = self._state.setdefault(key, [0, 1, 0.0])
        state[1] = max(0, state[1] - 1)
        if ok:
            self._state.pop(key, None)
            return False
        state[0] += 1
        if state[0] >= self.max_failed:
            state[0], state[2] = 0, self.clock() + self.lockout_s
            return True
        return False


@dataclass(frozen=True)
class Session:
    """A logged-in officer: the cookie holds `token`, every form carries `csrf`."""

    token: str
    officer: str
    csrf: str
    expires_at: str
    role: str = "officer"  # "officer" or "admin" (accounts, issue 15)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()  # a cookie may hold any bytes


def _later(now: str, **delta: float) -> str:
    return (datetime.fromisoformat(now) + timedelta(**delta)).isoformat(timespec="milliseconds")


class Officers:
    """Accounts and sessions, stored in the handover log's officers and sessions tables."""

    def __init__(self, log: HandoverLog) -> None:
        self.log = log
        self.db = log.db
        self.guard = LoginGuard()
        self._hashing = asyncio.Semaphore(CONCURRENT_HASHES)
        self._waiting = 0

    def names(self) -> list[str]:
        """The names of all active officers."""
        return [r[0] for r in self.db.execute("SELECT name FROM officers WHERE active = 1 ORDER BY name").fetchall()]

    def add(self, name: str, password: str, actor: str = "cli", hashed: str | None = None) -> None:
        """Create an account (or set a new password for an existing one; a deactivated account stays deactivated).

        `hashed`: the password's argon2 hash, made beforehand off the event loop (`hash_password`).
        """
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise OfficerError(f"the name must be 1-{MAX_NAME} printable characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise OfficerError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        hashed = hashed or _hasher.hash(password)
        with self.log.transaction():
            exists = self.db.execute("SELECT 1 FROM officers WHERE name = ?", [name]).fetchone()
            if exists:
                self.db.execute(
                    "UPDATE officers SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE name = ?",
                    [hashed, name],
                )
                self.db.execute("DELETE FROM sessions WHERE officer = ?", [name])
            else:
                first = self.db.execute("SELECT 1 FROM officers LIMIT 1").fetchone() is None  # the first account is an admin
                self.db["officers"].insert({"name": name, "password_hash": hashed, "created_at": self.log.clock(),
                                            "role": "admin" if first else "officer"})
            self.log.audit(actor, "officer_password" if exists else "officer_add", None, officer=name)

    def ensure_initial(self) -> str | None:
        """On first start (no account yet): create "officer" and return its password, else None."""
        if self.db.execute("SELECT 1 FROM officers LIMIT 1").fetchone():
            return None
        password = secrets.token_urlsafe(12)
        self.add(INITIAL_OFFICER, password, actor="system")
        return password

    async def login(self, name: str, password: str, address: str = "local") -> Session:
        """Check the password (off the event loop) and open a session; raise LoginError, LockedOut or LoginBusy.

        Unknown and known names take the same path and the same time; `address` is the client's network.
        """
        key = (name[:MAX_NAME], address[:MAX_NAME])  # what a stranger types is kept short in memory
        self.guard.reserve(key)  # no await before this: concurrent guesses are counted one by one
        try:
            password_hash, ok = await self._check(name, password)
        except BaseException:  # busy or cancelled: not a wrong password
            self.guard.release(key)
            raise
        locked = self.guard.settle(key, ok)
        if not ok:
            if password_hash is not None:
                self.log.audit(name, "login_locked" if locked else "login_failed", None)
            raise LockedOut(self.guard.lockout_s) if locked else LoginError("wrong name or password")
        assert password_hash is not None
        now = self.log.clock()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = _later(now, hours=SESSION_HOURS)
        with self.log.transaction():
            self.db.execute("UPDATE officers SET failed_logins = 0, locked_until = NULL WHERE name = ?", [name])
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])
            self.db["sessions"].insert(
                {"token_hash": _hash_token(token), "officer": name, "csrf": csrf, "created_at": now, "expires_at": expires}
            )
            self.log.audit(name, "login", None)
        role = self.db.execute("SELECT role FROM officers WHERE name = ?", [name]).fetchone()[0]
        return Session(token, name, csrf, expires, role)

    async def _check(self, name: str, password: str) -> tuple[str | None, bool]:
        """(the stored hash or None for an unknown name, whether the password fits), a few hashes at a time."""
        if self._waiting >= WAITING_HASHES:
            raise LoginBusy("too many logins at once")
        self._waiting += 1
        try:
            async with self._hashing:
                row = self.db.execute("SELECT password_hash FROM officers WHERE name = ? AND active = 1", [name]).fetchone()
                if row is None:
                    await asyncio.to_thread(lambda: _verify(_dummy_hash(), password))  # same work as for a real account
                    return None, False
                ok = await asyncio.to_thread(_verify, row[0], password)
                if ok and _hasher.check_needs_rehash(row[0]):
                    rehashed = await asyncio.to_thread(_hasher.hash, password)
                    self.db.execute("UPDATE officers SET password_hash = ? WHERE name = ?", [rehashed, name])
                return row[0], ok
        finally:
            self._waiting -= 1

    def session(self, token: str | None) -> Session | None:
        """The session for a cookie value, if it is valid and the officer still active."""
        if not token:
            return None
        row = self.db.execute(
            "SELECT s.officer, s.csrf, s.expires_at, o.role FROM sessions s JOIN officers o ON o.name = s.officer "
            "WHERE s.token_hash = ? AND o.active = 1",
            [_hash_token(token)],
        ).fetchone()
        if row is None or row[2] < self.log.clock():
            return None
        return Session(token, row[0], row[1], row[2], row[3])

    def logout(self, session: Session) -> None:
        """End a session."""
        self.db.execute("DELETE FROM sessions WHERE token_hash = ?", [_hash_token(session.token)])
        self.log.audit(session.officer, "logout", None)


def hash_password(password: str) -> str:
    """The argon2 hash of a password (64 MiB, about 0.1 s: call it in a thread from the event loop)."""
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
