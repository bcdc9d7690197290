"""The hash-chained ledger exactly as CONTRACT.md defines it ("Ledger and relay").

`hash = sha256_hex(canonical_json(entry without "hash"))`; the first entry's `prev_hash` is 64
zeros. Entries are never updated or deleted (triggers in the schema refuse it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    import aiosqlite

GENESIS_HASH: Final = "0" * 64
INSERT_SQL: Final = (
    "INSERT INTO ledger (seq, epoch, at, type, actor, device, cmd, data, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS: Final = "seq, epoch, at, type, actor, device, cmd, data, prev_hash, hash"


# json.dumps with options builds a new encoder per call; this is the same encoder, built once.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> bytes:
    """The contract's canonical JSON: sorted keys, no spaces, UTF-8, no ASCII escaping."""
    return _CANONICAL.encode(obj).encode("utf-8")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger entry; `data_json` is the canonical JSON of `data` as stored."""

    seq: int
    epoch: int
    at: str
    type: str
    actor: str | None
    device: str | None
    cmd: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str
    data_json: str = field(default="", compare=False, repr=False)
    """`data` as canonical JSON, when the entry was made or read with it (saves serialising it again)."""

    def body(self) -> dict[str, Any]:
        """The entry without its hash: what the hash is computed over."""
        return {
            "seq": self.seq,
            "epoch": self.epoch,
            "at": self.at,
            "type": self.type,
            "actor": self.actor,
            "device": self.device,
            "cmd": self.cmd,
            "data": self.data,
            "prev_hash": self.prev_hash,
        }

    def to_dict(self) -> dict[str, Any]:
        """The entry as the relay ships it."""
        return self.body() | {"hash": self.hash}

    def row(self) -> tuple[Any, ...]:
        """The values for INSERT_SQL."""
        return (
            self.seq,
            self.epoch,
            self.at,
            self.type,
            self.actor,
            self.device,
            self.cmd,
            self.data_json or canonical_json(self.data).decode("utf-8"),
            self.prev_hash,
            self.hash,
        )


def compute_hash(body: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of an entry without its hash."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def make_entry(
    *,
    seq: int,
    epoch: int,
    at: str,
    type_: str,
    actor: str | None,
    device: str | None,
    cmd: str | None,
    data: dict[str, Any],
    prev_hash: str,
) -> LedgerEntry:
    """A new entry chained onto `prev_hash`.

    The hashed body is assembled around `data`'s canonical JSON, serialised once and kept for the
    row; the bytes equal `canonical_json(entry.body())` (keys in sorted order), which a test checks.
    """
    data_json = canonical_json(data).decode("utf-8")
    text = _dumps_scalar
    body = (
        f'{{"actor":{text(actor)},"at":{text(at)},"cmd":{text(cmd)},"data":{data_json},"device":{text(device)},'
        f'"epoch":{int(epoch)},"prev_hash":{text(prev_hash)},"seq":{int(seq)},"type":{text(type_)}}}'
    )
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return LedgerEntry(seq, epoch, at, type_, actor, device, cmd, data, prev_hash, digest, data_json)


def _dumps_scalar(value: str | None) -> str:
    # json's own C string encoder, as json.dumps(value, ensure_ascii=False) uses, without its set-up.
    return "null" if value is None else _encode_string(value)


_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def entry_from_row(row: Iterable[Any]) -> LedgerEntry:
    """A LedgerEntry from a `SELECT {_COLUMNS}` row."""
    seq, epoch, at, type_, actor, device, cmd, data, prev_hash, digest = row
    return LedgerEntry(int(seq), int(epoch), at, type_, actor, device, cmd, json.loads(data), prev_hash, digest, data)


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry's seq, hash and time (seq 0 and the genesis hash for an empty ledger)."""

    seq: int
    hash: str
    at: str | None


async def read_head(conn: aiosqlite.Connection) -> Head:
    """The ledger's head."""
    async with conn.execute("SELECT seq, hash, at FROM ledger ORDER BY seq DESC LIMIT 1") as cursor:
        row = await cursor.fetchone()
    if row is None:
        return Head(0, GENESIS_HASH, None)
    return Head(int(row[0]), str(row[1]), str(row[2]))


async def read_entries(conn: aiosqlite.Connection, after_seq: int, limit: int) -> list[LedgerEntry]:
    """Up to `limit` entries with seq above `after_seq`, oldest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608 - constant columns
        (after_seq, limit),
    ) as cursor:
        rows = await cursor.fetchall()
    return [entry_from_row(row) for row in rows]


async def iter_entries(conn: aiosqlite.Connection, after_seq: int = 0, page: int = 2000) -> AsyncIterator[LedgerEntry]:
    """Every entry above `after_seq`, in pages of short read transactions."""
    cursor_seq = after_seq
    while True:
        entries = await read_entries(conn, cursor_seq, page)
        for entry in entries:
            yield entry
        if len(entries) < page:
            return
        cursor_seq = entries[-1].seq


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of walking the chain: `first_bad_seq` is None when every entry checks out."""

    count: int
    head_seq: int
    first_bad_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """Whether the whole chain verified."""
        return self.first_bad_seq is None


def check_entry(entry: LedgerEntry, expected_seq: int, prev_hash: str) -> str | None:
    """Why `entry` does not continue the chain at `expected_seq` after `prev_hash`, or None if it does."""
    if entry.seq != expected_seq:
        return f"expected seq {expected_seq}, found {entry.seq} (a gap)"
    if entry.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash"
    recomputed = compute_hash(entry.body())
    if recomputed != entry.hash:
        return "hash does not match the entry's content (altered)"
    return None


async def verify_ledger(conn: aiosqlite.Connection) -> VerifyResult:
    """Walk the whole chain from seq 1 and report the first entry that does not verify."""
    prev = GENESIS_HASH
    expected = 1
    count = 0
    async for entry in iter_entries(conn):
        reason = check_entry(entry, expected, prev)
        if reason is not None:
            return VerifyResult(count, entry.seq, min(entry.seq, expected), reason)
        prev = entry.hash
        expected += 1
        count += 1
    return VerifyResult(count, expected - 1, None, None)
