"""Browser sessions of the manager page: an opaque cookie id → the staff token the engine issued.

The staff token never leaves the hub: the browser holds only a random session id (HttpOnly,
SameSite=Strict cookie) and a CSRF token derived from it. A web session ends when the manager logs
out, when it reaches its lifetime, or when the engine ends the staff session behind it (deactivated
employee, revoked device, expiry) — `WebSessions.get` checks the engine's state each time.

Sessions survive a hub restart: each is stored (`hub.store.webstate`) under the sha256 of its
cookie, with the staff token sealed (AES-GCM) by a key derived from the cookie, which the hub
never stores — a copy of the database opens no session. Wrong PINs are counted per browser (address
and employee, `LoginLimiter`) before the engine is even asked; the engine's own per-employee lockout
applies on top, its per-device one does not (the page is a shared device, `StoreSettings.shared_devices`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.contract.types import format_time, parse_time
from hub.domain import token_hash
from hub.store.webstate import StoredSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.domain.model import StoreState

SESSION_COOKIE: Final = "storehub_session"
CSRF_COOKIE: Final = "storehub_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
ADDRESS_FACTOR: Final = 4
"""Wrong PINs from one address for any employees, as a multiple of the per-employee limit, that lock the address."""

log = logging.getLogger("storehub.web")


@dataclass(slots=True)
class WebSession:
    """One logged-in browser."""

    sid: str
    token: str
    employee_id: str
    name: str
    role: str
    csrf: str
    expires_at: datetime

    @property
    def manager(self) -> bool:
        """Whether this session may act (the page is read-only for other roles)."""
        return self.role == "manager"


class SessionStore(Protocol):
    """Where sessions are kept across restarts (`hub.store.webstate.SqliteWebState`)."""

    async def load_sessions(self, now: str) -> list[StoredSession]:
        """Sessions not yet expired."""
        ...

    async def save_session(self, row: StoredSession) -> None:
        """Store one session."""
        ...

    async def delete_sessions(self, sid_hashes: list[str]) -> None:
        """Forget sessions."""
        ...


class WebSessions:
    """Live browser sessions: in memory, and in the hub database when a store is given."""

    def __init__(
        self, lifetime_s: int, clock: Callable[[], datetime] | None = None, store: SessionStore | None = None
    ) -> None:
        self.lifetime = timedelta(seconds=lifetime_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = store
        self._live: dict[str, WebSession] = {}
        """sid hash → session, for cookies seen since the start."""
        self._stored: dict[str, StoredSession] = {}
        """sid hash → stored row not yet opened by its cookie since the restart."""
        self._dead: set[str] = set()
        """sid hashes found dead, still to delete from the store."""

    async def restore(self, state: StoreState) -> int:
        """Load the stored sessions whose staff session the engine still holds; returns how many."""
        if self.store is None:
            return 0
        now = self.clock()
        rows = await self.store.load_sessions(format_time(now))
        for row in rows:
            staff = state.sessions.get(row.token_hash)
            if staff is None or now >= staff.expires_at:
                self._dead.add(row.sid_hash)
            else:
                self._stored[row.sid_hash] = row
        await self._flush_dead()
        return len(self._stored)

    async def create(self, token: str, employee_id: str, name: str, role: str, token_expires: datetime) -> WebSession:
        """A new session for a successful staff login (stored before the cookie is handed out)."""
        now = self.clock()
        expires = min(now + self.lifetime, token_expires)
        sid = secrets.token_urlsafe(32)
        session = WebSession(
            sid=sid,
            token=token,
            employee_id=employee_id,
            name=name,
            role=role,
            csrf=_csrf_of(sid),
            expires_at=expires,
        )
        key = _sid_hash(sid)
        self._live[key] = session
        if self.store is not None:
            row = StoredSession(
                sid_hash=key,
                employee_id=employee_id,
                name=name,
                role=role,
                token_hash=token_hash(token),
                token_box=_seal(sid, key, token),
                created_at=format_time(now),
                expires_at=format_time(expires),
            )
            try:
                await self.store.save_session(row)
            except sqlite3.Error:  # a full disk must not stop a login: the session just won't outlive a restart
                log.warning("could not store a browser session; it lasts until the hub restarts", exc_info=True)
        await self._flush_dead()
        return session

    def get(self, sid: str | None, state: StoreState) -> WebSession | None:
        """The live session of a cookie, or None (unknown, expired, or ended by the engine)."""
        if not sid:
            return None
        key = _sid_hash(sid)
        session = self._live.get(key)
        if session is None:
            session = self._open_stored(sid, key)
            if session is None:
                return None
        staff = state.sessions.get(token_hash(session.token))
        now = self.clock()
        if now >= session.expires_at or staff is None or now >= staff.expires_at:
            self._live.pop(key, None)
            self._dead.add(key)
            return None
        session.role = staff.role  # a role change applies at once
        return session

    async def end(self, sid: str) -> WebSession | None:
        """Forget a session (logout); returns it so the caller can end the staff token too."""
        key = _sid_hash(sid)
        session = self._live.pop(key, None)
        if session is None:
            session = self._open_stored(sid, key)
            self._live.pop(key, None)
        self._stored.pop(key, None)
        self._dead.add(key)
        await self._flush_dead()
        return session

    def count(self) -> int:
        """How many browser sessions are open."""
        return len(self._live) + len(self._stored)

    def _open_stored(self, sid: str, key: str) -> WebSession | None:
        """A stored session (from before a restart) opened by its cookie, or None."""
        row = self._stored.get(key)
        if row is None:
            return None
        token = _unseal(sid, key, row.token_box)
        if token is None or token_hash(token) != row.token_hash:
            return None
        del self._stored[key]
        session = WebSession(
            sid=sid,
            token=token,
            employee_id=row.employee_id,
            name=row.name,
            role=row.role,
            csrf=_csrf_of(sid),
            expires_at=parse_time(row.expires_at),
        )
        self._live[key] = session
        return session

    async def _flush_dead(self) -> None:
        if self.store is None or not self._dead:
            self._dead.clear()
            return
        dead = sorted(self._dead)
        self._dead.clear()
        try:
            await self.store.delete_sessions(dead)
        except sqlite3.Error:  # dead rows are harmless (the engine refuses their tokens); retried next time
            self._dead.update(dead)


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def _csrf_of(sid: str) -> str:
    """The session's CSRF token: derived from the cookie, so it needs no storage and reveals nothing of it."""
    digest = hmac.new(sid.encode("utf-8"), b"storehub-web-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _box_key(sid: str) -> bytes:
    return hmac.new(sid.encode("utf-8"), b"storehub-web-token-key", hashlib.sha256).digest()


def _seal(sid: str, key: str, token: str) -> bytes:
    """The staff token sealed with a key only the cookie gives (nonce ‖ AES-256-GCM ciphertext)."""
    nonce = os.urandom(12)
    return nonce + AESGCM(_box_key(sid)).encrypt(nonce, token.encode("utf-8"), key.encode("ascii"))


def _unseal(sid: str, key: str, box: bytes) -> str | None:
    try:
        return AESGCM(_box_key(sid)).decrypt(box[:12], box[12:], key.encode("ascii")).decode("utf-8")
    except (InvalidTag, ValueError):
        return None


def csrf_ok(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; False when either is missing."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


@dataclass(slots=True)
class _Client:
    times: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class LoginLimiter:
    """Wrong PINs counted per browser: per address and employee, and per address.

    `max_failures` for one employee from one address within `window_s` lock that address out for
    that employee for `lockout_s`; `ADDRESS_FACTOR` times as many from one address, whoever they
    were for, lock the whole address (guessing down the staff list). So one person's typos lock out
    only themselves at their browser: another manager, even at the same computer, still logs in.
    """

    def __init__(
        self, max_failures: int, window_s: int, lockout_s: int, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self.lockout = timedelta(seconds=lockout_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._clients: dict[str, _Client] = {}

    def locked_for(self, client: str, employee_id: str) -> int:
        """Seconds this client must still wait before trying this employee's PIN (0 when it may try)."""
        now = self.clock()
        waits = [0]
        for key in (_pair(client, employee_id), _address(client)):
            entry = self._clients.get(key)
            if entry is not None and entry.locked_until is not None and now < entry.locked_until:
                waits.append(int((entry.locked_until - now).total_seconds()) + 1)
        return max(waits)

    def failed(self, client: str, employee_id: str) -> None:
        """Count a wrong PIN."""
        now = self.clock()
        self._count(_pair(client, employee_id), self.max_failures, now)
        self._count(_address(client), self.max_failures * ADDRESS_FACTOR, now)
        if len(self._clients) > 10_000:  # noqa: PLR2004 - bound memory against address churn
            self._clients = {k: v for k, v in self._clients.items() if v.locked_until and v.locked_until > now}

    def succeeded(self, client: str, employee_id: str) -> None:
        """A right PIN clears that employee's count at this client (the address count stays)."""
        self._clients.pop(_pair(client, employee_id), None)

    def _count(self, key: str, limit: int, now: datetime) -> None:
        entry = self._clients.setdefault(key, _Client())
        entry.times = [t for t in entry.times if now - t <= self.window]
        entry.times.append(now)
        if len(entry.times) >= limit:
            entry.locked_until = now + self.lockout
            entry.times.clear()


def _pair(client: str, employee_id: str) -> str:
    return f"{client}\x00{employee_id}"


def _address(client: str) -> str:
    return f"{client}\x00*"
