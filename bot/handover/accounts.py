"""Accounts and the shift: roles, deactivation, sessions, password change, assignment, presence.

Every change is audited. Presence (who is online) is kept in memory by each running instance:
an instance only knows the officers whose pages talk to it, and forgets everything on restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from bot.handover.officers import (
    MAX_NAME, MIN_PASSWORD_LENGTH, LockedOut, Officers, Session, _hash_token, _hasher, _verify,
)
from bot.handover.records import Conversation, HandoverError

ROLES = ("officer", "admin")
PRESENCE_WINDOW_S = 120.0  # a request in the last two minutes counts as online


class AccountError(ValueError):
    """An account change that cannot be made; the message is shown to the officer (German)."""


@dataclass(frozen=True)
class Account:
    """One inbox account as the admin page lists it."""

    name: str
    role: str
    active: bool
    created_at: str


@dataclass(frozen=True)
class SessionInfo:
    """One of an officer's open sessions (identified by the hash of its cookie, never the cookie)."""

    token_hash: str
    created_at: str
    expires_at: str


class Accounts:
    """Account administration on top of `Officers` (same tables, same audit trail)."""

    def __init__(self, officers: Officers) -> None:
        self.officers = officers
        self.log = officers.log
        self.db = officers.db

    def roster(self) -> list[Account]:
        """Every account, active ones first, by name."""
        rows = self.db.execute("SELECT name, role, active, created_at FROM officers ORDER BY active DESC, name").fetchall()
        return [Account(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def get(self, name: str) -> Account:
        """The account called `name`."""
        row = self.db.execute("SELECT name, role, active, created_at FROM officers WHERE name = ?", [name]).fetchone()
        if row is None:
            raise AccountError(f"Ein Konto „{name[:MAX_NAME]}“ gibt es nicht.")
        return Account(row[0], row[1], bool(row[2]), row[3])

    def _active_admins(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM officers WHERE role = 'admin' AND active = 1").fetchone()[0]

    def add(self, name: str, password: str, role: str, actor: str, hashed: str | None = None) -> None:
        """Create a new account (an existing name is refused: nobody's password is replaced by mistake)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise AccountError(f"Der Name muss 1 bis {MAX_NAME} druckbare Zeichen haben.")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"Das Passwort muss mindestens {MIN_PASSWORD_LENGTH} Zeichen haben.")
        if role not in ROLES:
            raise AccountError("Die Rolle muss „officer“ oder „admin“ sein.")
        if self.db.execute("SELECT 1 FROM officers WHERE name = ?", [name]).fetchone():
            raise AccountError(f"Den Namen „{name}“ gibt es schon.")
        self.officers.add(name, password, actor=actor, hashed=hashed)
        if role != "officer":
            self.set_role(name, role, actor)

    def set_role(self, name: str, role: str, actor: str) -> None:
        """Make an account an admin or an officer (the last active admin stays one)."""
        if role not in ROLES:
            raise AccountError("Die Rolle muss „officer“ oder „admin“ sein.")
        with self.log.transaction():
            account = self.get(name)
            if account.role == role:
                return
            if account.role == "admin" and account.active and self._active_admins() <= 1:
                raise AccountError("Das ist das letzte aktive Admin-Konto; es bleibt Admin.")
            self.db.execute("UPDATE officers SET role = ? WHERE name = ?", [role, name])
            self.log.audit(actor, "officer_role", None, officer=name, role=role, was=account.role)

    def deactivate(self, name: str, actor: str) -> int:
        """Lock an account out at once: its sessions end; returns how many. Not yourself, not the last admin."""
        if name == actor:
            raise AccountError("Du kannst dein eigenes Konto nicht deaktivieren.")
        with self.log.transaction():
            account = self.get(name)
            if not account.active:
                return 0
            if account.role == "admin" and self._active_admins() <= 1:
                raise AccountError("Das ist das letzte aktive Admin-Konto; es kann nicht deaktiviert werden.")
            ended = self.db.execute("DELETE FROM sessions WHERE officer = ?", [name]).rowcount
            self.db.execute("UPDATE officers SET active = 0 WHERE name = ?", [name])
            self.log.audit(actor, "officer_deactivate", None, officer=name, sessions_ended=ended)
        return ended

    def reactivate(self, name: str, actor: str) -> None:
        """Let a deactivated account log in again (with its old password)."""
        with self.log.transaction():
            account = self.get(name)
            if account.active:
                return
            self.db.execute("UPDATE officers SET active = 1, failed_logins = 0, locked_until = NULL WHERE name = ?", [name])
            self.log.audit(actor, "officer_reactivate", None, officer=name)

    def sessions(self, name: str) -> list[SessionInfo]:
        """An officer's sessions that have not expired, newest first."""
        rows = self.db.execute(
            "SELECT token_hash, created_at, expires_at FROM sessions WHERE officer = ? AND expires_at >= ? ORDER BY created_at DESC",
            [name, self.log.clock()],
        ).fetchall()
        return [SessionInfo(*row) for row in rows]

    def end_session(self, name: str, token_hash: str) -> bool:
        """End one of `name`'s own sessions; False when there is no such session (of theirs)."""
        with self.log.transaction():
            gone = self.db.execute("DELETE FROM sessions WHERE officer = ? AND token_hash = ?", [name, token_hash]).rowcount
            if gone:
                self.log.audit(name, "session_end", None, session=token_hash[:12])
        return bool(gone)

    async def change_password(self, session: Session, old: str, new: str, address: str) -> list[str]:
        """Set a new password after checking the old one; the officer's other sessions end (their hashes returned).

        Wrong old passwords count towards the same lockout as logins (per name and address).
        """
        if len(new) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"Das neue Passwort muss mindestens {MIN_PASSWORD_LENGTH} Zeichen haben.")
        if new == old:
            raise AccountError("Das neue Passwort muss sich vom bisherigen unterscheiden.")
        key = (session.officer[:MAX_NAME], f"pw:{address}"[:MAX_NAME])
        self.officers.guard.reserve(key)  # raises LockedOut
        try:
            row = self.db.execute("SELECT password_hash FROM officers WHERE name = ? AND active = 1", [session.officer]).fetchone()
            ok = row is not None and await asyncio.to_thread(_verify, row[0], old)
        except BaseException:
            self.officers.guard.release(key)
            raise
        locked = self.officers.guard.settle(key, ok)
        if not ok:
            self.log.audit(session.officer, "password_change_failed", None)
            if locked:
                raise LockedOut(self.officers.guard.lockout_s)
            raise AccountError("Das bisherige Passwort stimmt nicht.")
        hashed = await asyncio.to_thread(_hasher.hash, new)
        mine = _hash_token(session.token)
        with self.log.transaction():
            others = [r[0] for r in self.db.execute(
                "SELECT token_hash FROM sessions WHERE officer = ? AND token_hash != ?", [session.officer, mine])]
            self.db.execute("DELETE FROM sessions WHERE officer = ? AND token_hash != ?", [session.officer, mine])
            self.db.execute("UPDATE officers SET password_hash = ? WHERE name = ?", [hashed, session.officer])
            self.log.audit(session.officer, "password_change", None, sessions_ended=len(others))
        return others

    def assign(self, conversation_id: int, to: str, actor: str) -> Conversation:
        """Hand a chat to a named, active colleague: it is claimed by them (audited)."""
        if to not in self.officers.names():
            raise AccountError("Zuweisen geht nur an aktive Kolleginnen und Kollegen.")
        with self.log.transaction():
            conv = self.log.conversation(conversation_id)  # HandoverError when unknown
            now = self.log.clock()
            self.log.audit(actor, "assign", conv.id, to=to, was=conv.state, previous_officer=conv.officer)
            return self.log.update_conversation(
                conv.id, state="claimed", officer=to, claimed_at=now, closed_at=None, queued_at=conv.queued_at or now,
                meta={"assigned_to": to, "assigned_by": actor, "assigned_at": now},
            )


@dataclass(frozen=True)
class Online:
    """An officer who is online: with an open live stream, or with a request `seconds_ago`."""

    name: str
    live: bool
    seconds_ago: int


class Presence:
    """Who is online on this instance (in memory): open inbox streams and requests in the last two minutes."""

    def __init__(self, window_s: float = PRESENCE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._streams: dict[str, dict[str, list]] = {}  # officer -> token hash -> [token, open streams]
        self._seen: dict[str, float] = {}
        self.on_change: Callable[[], None] | None = None  # told when someone comes or goes (not when a request ages out)

    def _state(self) -> frozenset[tuple[str, bool]]:
        return frozenset((o.name, o.live) for o in self.online())

    def _changed(self, before: frozenset[tuple[str, bool]]) -> None:
        if self.on_change is not None and self._state() != before:
            self.on_change()

    def seen(self, officer: str) -> None:
        """The officer made a request just now."""
        before = self._state()
        self._seen[officer] = self.clock()
        self._changed(before)

    def stream_opened(self, officer: str, token: str) -> None:
        """The officer's page opened its live stream."""
        before = self._state()
        entry = self._streams.setdefault(officer, {}).setdefault(_hash_token(token), [token, 0])
        entry[1] += 1
        self._changed(before)

    def stream_closed(self, officer: str, token: str) -> None:
        """A live stream of the officer ended."""
        streams = self._streams.get(officer, {})
        entry = streams.get(_hash_token(token))
        if entry is None:  # forgotten already (logout, deactivated)
            return
        before = self._state()
        self._seen[officer] = self.clock()  # was there until just now
        entry[1] -= 1
        if entry[1] <= 0:
            del streams[_hash_token(token)]
        if not streams:
            self._streams.pop(officer, None)
        self._changed(before)

    def tokens(self, officer: str, token_hash: str | None = None) -> list[str]:
        """The session tokens of the officer's open streams (of one session with `token_hash`)."""
        streams = self._streams.get(officer, {})
        return [entry[0] for key, entry in streams.items() if token_hash is None or key == token_hash]

    def forget(self, officer: str, token_hash: str | None = None) -> None:
        """A session ended (`token_hash`) or the officer was deactivated (None): their streams are being closed."""
        before = self._state()
        streams = self._streams.get(officer, {})
        for key in [k for k in streams if token_hash is None or k == token_hash]:
            del streams[key]
        if not streams:
            self._streams.pop(officer, None)
            self._seen.pop(officer, None)
        self._changed(before)

    def online(self) -> list[Online]:
        """Who is online now, by name."""
        now = self.clock()
        names = set(self._streams) | {n for n, at in self._seen.items() if now - at < self.window_s}
        return [Online(n, n in self._streams, int(now - self._seen.get(n, now))) for n in sorted(names)]

    def anyone_online(self) -> bool:
        """True while at least one officer is online on this instance."""
        return bool(self._streams) or any(self.clock() - at < self.window_s for at in self._seen.values())


__all__ = ["AccountError", "Accounts", "HandoverError", "Online", "Presence", "ROLES", "SessionInfo"]
