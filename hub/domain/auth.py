"""Secrets and login limits: token hashes, PIN hashes (scrypt), and wrong-PIN lockouts.

The hub never stores a session token, only its sha256 (`token_hash`), and never a PIN, only its
scrypt hash (`hash_pin`), which lives in a secret table outside the ledger and outside StoreState.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hub.domain.model import LoginFailure
    from hub.domain.settings import StoreSettings

SCRYPT_N = 2**12
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32


def token_hash(token: str) -> str:
    """The sha256 hex of a session token: how sessions are keyed and ledgered."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_pin(pin: str, salt: bytes) -> str:
    """`scrypt$<n>$<r>$<p>$<b64 salt>$<b64 hash>` of a PIN with a per-PIN random salt."""
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def verify_pin_hash(pin: str, stored: str) -> bool:
    """Whether `pin` matches a `hash_pin` string (constant-time compare; False for a malformed hash)."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        digest = hashlib.scrypt(
            pin.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected) or _DKLEN
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def locked_until(failures: Iterable[LoginFailure], settings: StoreSettings) -> datetime | None:
    """When the lockout earned by these failures ends, or None if they never earned one.

    `login_max_failures` wrong PINs within `login_window_s` lock for `login_lockout_s` after the last.
    """
    times = sorted(f.at for f in failures)
    need = settings.login_max_failures
    window = timedelta(seconds=settings.login_window_s)
    until: datetime | None = None
    for i in range(need - 1, len(times)):
        if times[i] - times[i - need + 1] <= window:
            end = times[i] + timedelta(seconds=settings.login_lockout_s)
            until = end if until is None or end > until else until
    return until


def prune_before(now: datetime, settings: StoreSettings) -> datetime:
    """Failures older than this can no longer lock anyone out."""
    return now - timedelta(seconds=settings.login_window_s + settings.login_lockout_s)
