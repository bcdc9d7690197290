"""Browser sessions of the manager page: an opaque cookie id → the staff token the engine issued.

The staff token never leaves the hub: the browser holds only a random session id (HttpOnly,
SameSite=Strict cookie) and a CSRF token bound to that session. A web session ends when the
manager logs out, when it reaches its lifetime, or when the engine ends the staff session behind it
(deactivated employee, revoked device, expiry) — `WebSessions.get` checks the engine's state each time.
Wrong PINs are counted per client address before the engine is even asked (`LoginLimiter`), on top
of the engine's own per-employee and per-device lockout.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from hub.domain import token_hash

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.domain.model import StoreState

SESSION_COOKIE: Final = "storehub_session"
CSRF_COOKIE: Final = "storehub_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"


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


class WebSessions:
    """Live browser sessions, in memory (a hub restart logs everyone out, like the tablets' tokens)."""

    def __init__(self, lifetime_s: int, clock: Callable[[], datetime] | None = None) -> None:
        self.lifetime = timedelta(seconds=lifetime_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._by_sid: dict[str, WebSession] = {}

    def create(self, token: str, employee_id: str, name: str, role: str, token_expires: datetime) -> WebSession:
        """A new session for a successful staff login."""
        expires = min(self.clock() + self.lifetime, token_expires)
        session = WebSession(
            sid=secrets.token_urlsafe(32),
            token=token,
            employee_id=employee_id,
            name=name,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires_at=expires,
        )
        self._by_sid[session.sid] = session
        return session

    def get(self, sid: str | None, state: StoreState) -> WebSession | None:
        """The live session of a cookie, or None (unknown, expired, or ended by the engine)."""
        if not sid:
            return None
        session = self._by_sid.get(sid)
        if session is None:
            return None
        staff = state.sessions.get(token_hash(session.token))
        now = self.clock()
        if now >= session.expires_at or staff is None or now >= staff.expires_at:
            self._by_sid.pop(sid, None)
            return None
        session.role = staff.role  # a role change applies at once
        return session

    def end(self, sid: str) -> WebSession | None:
        """Forget a session (logout); returns it so the caller can end the staff token too."""
        return self._by_sid.pop(sid, None)

    def count(self) -> int:
        """How many browser sessions are open."""
        return len(self._by_sid)


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
    """`max_failures` wrong PINs within `window_s` from one client lock it out for `lockout_s`."""

    def __init__(
        self, max_failures: int, window_s: int, lockout_s: int, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self.lockout = timedelta(seconds=lockout_s)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._clients: dict[str, _Client] = {}

    def locked_for(self, client: str) -> int:
        """Seconds this client must still wait (0 when it may try)."""
        entry = self._clients.get(client)
        now = self.clock()
        if entry is None or entry.locked_until is None or now >= entry.locked_until:
            return 0
        return int((entry.locked_until - now).total_seconds()) + 1

    def failed(self, client: str) -> None:
        """Count a wrong PIN."""
        now = self.clock()
        entry = self._clients.setdefault(client, _Client())
        entry.times = [t for t in entry.times if now - t <= self.window]
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.locked_until = now + self.lockout
            entry.times.clear()
        if len(self._clients) > 10_000:  # noqa: PLR2004 - bound memory against address churn
            self._clients = {k: v for k, v in self._clients.items() if v.locked_until and v.locked_until > now}

    def succeeded(self, client: str) -> None:
        """A right PIN clears the client's count."""
        self._clients.pop(client, None)
