"""Device pairing: one-time 6-digit codes that a new device trades once for its own credentials.

    codes = PairingCodes(clock)
    offer = codes.issue(kind="kds", stations=("grill",))      # shown by `storehub device pair` / the web
    claim = codes.claim(code, device_id, kind, stations, who)  # POST /api/pair; raises PairingError
    ... run `device.add` through the engine ...
    codes.release(claim) if the hub refused it, codes.consume(claim) once it succeeded

A code is valid for `ttl_s` (10 minutes) and can be claimed by exactly one request: it is reserved
while the engine registers the device, consumed when that succeeded, and released when the engine
refused (a device id already taken), so a corrected retry works. Wrong codes are counted per client:
`max_failures` wrong codes within `window_s` lock that client out for `lockout_s`, so the 10^6 code
space cannot be walked. Codes are known by their sha256 (`code_hash`): the hub stores that (the
manager page keeps open codes across a restart, `restore`), never the digits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

CODE_DIGITS: Final = 6
CODE_TTL_S: Final = 600
PAIRABLE_KINDS: Final = ("tablet", "kds", "drawer", "display", "button")
"""What a code may pair; `relay` and `printer` are registered by the operator, never over the air."""


class PairingError(Exception):
    """A pairing request that cannot be honoured; `code` is the contract error code, `status` the HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def code_hash(code: str) -> str:
    """How a code is known once its digits are off the screen (stored, looked up)."""
    return hashlib.sha256(f"storehub-pair:{code}".encode()).hexdigest()


@dataclass(slots=True)
class Offer:
    """A code on screen: what it may pair and until when (`code` is "" for one restored after a restart)."""

    code: str
    expires_at: datetime
    kind: str | None = None
    stations: tuple[str, ...] = ()
    issued_by: str | None = None
    state: str = "open"  # open → reserved → used
    device_id: str | None = None
    issued_at: datetime | None = None
    hash: str = ""

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = code_hash(self.code)


@dataclass(slots=True)
class _Failures:
    times: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class PairingCodes:
    """The hub's live pairing codes (in memory, one per pending pairing)."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        ttl_s: int = CODE_TTL_S,
        max_failures: int = 5,
        window_s: int = 300,
        lockout_s: int = 300,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ttl = timedelta(seconds=ttl_s)
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self.lockout = timedelta(seconds=lockout_s)
        self._offers: dict[str, Offer] = {}
        self._failures: dict[str, _Failures] = {}

    def issue(self, *, kind: str | None = None, stations: tuple[str, ...] = (), issued_by: str | None = None) -> Offer:
        """A fresh code, optionally pinned to a kind (and KDS stations); valid for the TTL."""
        if kind is not None and kind not in PAIRABLE_KINDS:
            raise PairingError("invalid_payload", f"kind must be one of {', '.join(PAIRABLE_KINDS)}", 422)
        if stations and kind != "kds":
            raise PairingError("invalid_payload", "stations are only for kind kds", 422)
        if kind == "kds" and not stations:
            raise PairingError("invalid_payload", "a kds code needs its stations (for example grill)", 422)
        self._expire()
        while True:
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            if code_hash(code) not in self._offers:
                break
        now = self.clock()
        offer = Offer(code, now + self.ttl, kind, tuple(stations), issued_by, issued_at=now)
        self._offers[offer.hash] = offer
        return offer

    def restore(self, offers: list[Offer]) -> None:
        """Take back codes stored before a restart (open or used, not expired); their digits are not known."""
        for offer in offers:
            if offer.state in ("open", "used") and offer.expires_at > self.clock():
                self._offers.setdefault(offer.hash, offer)

    def pending(self) -> list[Offer]:
        """Codes still open, soonest expiry first."""
        self._expire()
        return sorted((o for o in self._offers.values() if o.state == "open"), key=lambda o: o.expires_at)

    def claim(self, code: str, device_id: str, kind: str, stations: tuple[str, ...], client: str) -> Offer:
        """Reserve a code for this device, or raise PairingError (wrong, used, expired, mismatched, locked out)."""
        now = self.clock()
        self._expire()
        failures = self._failures.get(client)
        if failures is not None and failures.locked_until is not None and now < failures.locked_until:
            wait = int((failures.locked_until - now).total_seconds()) + 1
            raise PairingError("rate_limited", f"Too many wrong pairing codes; try again in {wait} s", 429)
        offer = self._offers.get(code_hash(code))
        if offer is None or offer.state != "open":
            self._fail(client, now)
            used = offer is not None
            message = "This pairing code was already used" if used else "Unknown or expired pairing code"
            raise PairingError("unauthorized", message, 403)
        if kind not in PAIRABLE_KINDS:
            raise PairingError("invalid_payload", f"kind must be one of {', '.join(PAIRABLE_KINDS)}", 422)
        if offer.kind is not None and (offer.kind != kind or (offer.stations and offer.stations != stations)):
            wanted = offer.kind + (f" with stations {','.join(offer.stations)}" if offer.stations else "")
            raise PairingError("conflict", f"This code pairs a {wanted}", 409)
        if kind == "kds" and not stations:
            raise PairingError("invalid_payload", "a kds device needs its stations", 422)
        if stations and kind != "kds":
            raise PairingError("invalid_payload", "stations are only for kind kds", 422)
        offer.state = "reserved"
        offer.device_id = device_id
        self._failures.pop(client, None)
        return offer

    def consume(self, offer: Offer) -> None:
        """The device is registered: the code is spent for good."""
        offer.state = "used"

    def release(self, offer: Offer) -> None:
        """The registration was refused: the code may be tried again (until it expires)."""
        if offer.state == "reserved":
            offer.state = "open"
            offer.device_id = None

    def _fail(self, client: str, now: datetime) -> None:
        entry = self._failures.setdefault(client, _Failures())
        entry.times = [t for t in entry.times if now - t <= self.window]
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.locked_until = now + self.lockout
            entry.times.clear()

    def _expire(self) -> None:
        now = self.clock()
        # A used code stays known until its expiry, so a replay is told "already used" rather than "unknown".
        for key in [k for k, o in self._offers.items() if o.expires_at <= now and o.state != "reserved"]:
            del self._offers[key]
        stale = [c for c, f in self._failures.items() if (f.locked_until or now) <= now and not f.times]
        for client in stale:
            del self._failures[client]
