"""Who is asking HQ's JSON API: an HQ user, by API token or by dashboard session.

`Authorization: Bearer hqt_…` (minted per user with `storehub central user token NAME`, kept as a
SHA-256 hash, revocable) or the dashboard's session cookie. A cookie-borne write must also send the
session's CSRF token in `X-CSRF-Token`. Anything else is a 401 that says what to send.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fastapi import HTTPException

from cloud_relay.central.keys import hash_key

if TYPE_CHECKING:
    from fastapi import Request

    from cloud_relay.central.keys import SecretBox
    from cloud_relay.central.repository import Repository

COOKIE: Final = "storehub_hq"
SESSION_TTL_S: Final = 8 * 3600
CSRF_HEADER: Final = "X-CSRF-Token"
NEEDED: Final = (
    "an HQ user's API token is required: Authorization: Bearer hqt_… "
    "(storehub central user token NAME), or a dashboard session"
)


@dataclass(frozen=True, slots=True)
class HqUser:
    """An authenticated HQ user and how they came in."""

    username: str
    role: str
    via: str  # "token" | "session"


class HqAuth:
    """Resolves the caller of an API request to an HQ user, or refuses with a clear 401/403."""

    def __init__(self, repo: Repository, box: SecretBox) -> None:
        self.repo = repo
        self.box = box

    def session(self, request: Request) -> dict[str, str] | None:
        """The dashboard session in the request's cookie, or None."""
        cookie = request.cookies.get(COOKIE)
        return self.box.open_session(cookie, SESSION_TTL_S) if cookie else None

    async def user(self, request: Request, *, write: bool = False, admin: bool = False) -> HqUser:
        """The HQ user behind `request`; `write` demands the CSRF header of a session, `admin` the role."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise HTTPException(401, NEEDED, headers={"WWW-Authenticate": "Bearer"})
            owner = await self.repo.token_owner(hash_key(token.strip()))
            if owner is None:
                raise HTTPException(401, "unknown API token; " + NEEDED, headers={"WWW-Authenticate": "Bearer"})
            username, role, revoked_at = owner
            if revoked_at is not None:
                message = f"this API token was revoked at {revoked_at}; mint a new one"
                raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
            found = HqUser(username, role, "token")
        else:
            sess = self.session(request)
            if sess is None:
                raise HTTPException(401, NEEDED, headers={"WWW-Authenticate": "Bearer"})
            if write and not secrets.compare_digest(sess.get("csrf", ""), request.headers.get(CSRF_HEADER, "")):
                raise HTTPException(403, f"a write with the session cookie needs the session's {CSRF_HEADER} header")
            found = HqUser(sess.get("user", ""), sess.get("role", ""), "session")
        if admin and found.role != "admin":
            raise HTTPException(403, f"{found.username} is an {found.role}; only an admin may do this")
        return found
