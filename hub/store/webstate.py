"""The manager page's own rows in the hub database (migration 0003): browser sessions and pairing codes.

    state = SqliteWebState(db)                  # db: the hub's Database (its one writer connection)
    sessions = await state.load_sessions(now)    # at start: what survived the restart
    await state.save_session(row)                # a login
    await state.delete_sessions([sid_hash, …])   # logout, expiry, a staff session the engine ended

These rows are not the books (nothing here is ledgered) and hold no secret in the clear: a session
is keyed by the sha256 of its cookie and keeps the staff token sealed with a key only the cookie
gives; a pairing code is kept as its sha256. Writes go through `Database.transaction`, on the
hub's single writer connection (between the engine's batches), like the print queue's marks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.store.db import open_reader

if TYPE_CHECKING:
    from hub.store.db import Database


@dataclass(frozen=True, slots=True)
class StoredSession:
    """One browser session as stored: never the cookie, never the staff token in the clear."""

    sid_hash: str
    employee_id: str
    name: str
    role: str
    token_hash: str
    token_box: bytes
    created_at: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class StoredCode:
    """One pairing code as stored: its sha256, what it may pair, who showed it, until when."""

    code_hash: str
    kind: str | None
    stations: tuple[str, ...]
    issued_by: str | None
    state: str
    device_id: str | None
    issued_at: str
    expires_at: str


_SAVE_SESSION = (
    "INSERT OR REPLACE INTO web_sessions "
    "(sid_hash, employee_id, name, role, token_hash, token_box, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_SESSION = "DELETE FROM web_sessions WHERE sid_hash = ?"
_PRUNE_SESSIONS = "DELETE FROM web_sessions WHERE expires_at <= ?"
_SAVE_CODE = (
    "INSERT OR REPLACE INTO web_pair_codes "
    "(code_hash, kind, stations, issued_by, state, device_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_PRUNE_CODES = "DELETE FROM web_pair_codes WHERE expires_at <= ?"


class SqliteWebState:
    """Sessions and pairing codes of the manager page in the hub's SQLite database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load_sessions(self, now: str) -> list[StoredSession]:
        """Sessions not yet expired at `now` (expired ones are deleted first)."""
        await self.db.transaction([(_PRUNE_SESSIONS, [(now,)])])
        async with (
            open_reader(self.db.path) as conn,
            conn.execute(
                "SELECT sid_hash, employee_id, name, role, token_hash, token_box, created_at, expires_at "
                "FROM web_sessions ORDER BY created_at"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [StoredSession(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], r[7]) for r in rows]

    async def save_session(self, row: StoredSession) -> None:
        """Store a new session (durable once this returns)."""
        values = (
            row.sid_hash,
            row.employee_id,
            row.name,
            row.role,
            row.token_hash,
            row.token_box,
            row.created_at,
            row.expires_at,
        )
        await self.db.transaction([(_SAVE_SESSION, [values])])

    async def delete_sessions(self, sid_hashes: list[str]) -> None:
        """Forget sessions for good."""
        await self.db.transaction([(_DELETE_SESSION, [(h,) for h in sid_hashes])])

    async def load_codes(self, now: str) -> list[StoredCode]:
        """Pairing codes not yet expired at `now` (expired ones are deleted first)."""
        await self.db.transaction([(_PRUNE_CODES, [(now,)])])
        async with (
            open_reader(self.db.path) as conn,
            conn.execute(
                "SELECT code_hash, kind, stations, issued_by, state, device_id, issued_at, expires_at "
                "FROM web_pair_codes ORDER BY expires_at"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            StoredCode(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]

    async def save_code(self, row: StoredCode) -> None:
        """Store (or update: used) a pairing code, and drop the expired ones."""
        values = (
            row.code_hash,
            row.kind,
            json.dumps(list(row.stations)),
            row.issued_by,
            row.state,
            row.device_id,
            row.issued_at,
            row.expires_at,
        )
        await self.db.transaction([(_PRUNE_CODES, [(row.issued_at,)]), (_SAVE_CODE, [values])])
