"""Checking a relay batch before it touches the database: shape, internal consistency, hash chain.

Pure functions; the hash is recomputed with the hub's own `make_entry`, so central and the hub can
never disagree on what a valid entry is. `make_entry` serialises `data` once (canonical JSON) for
both the hash and the stored row: that JSON is the hot path of ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from hub.store.ledger import make_entry

Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Seq = Annotated[StrictInt, Field(ge=1)]


class BatchRefusedError(Exception):
    """The batch cannot be stored as sent; `kind` is `invalid` or `chain` (422, quarantined)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class EntryIn(BaseModel):
    """One ledger entry as the relay sends it (CONTRACT.md "Ledger and relay")."""

    model_config = ConfigDict(extra="forbid")

    seq: Seq
    epoch: Annotated[StrictInt, Field(ge=0)]
    at: Annotated[StrictStr, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
    type: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    actor: Annotated[StrictStr, Field(max_length=64)] | None
    device: Annotated[StrictStr, Field(max_length=64)] | None
    cmd: Annotated[StrictStr, Field(max_length=128)] | None
    data: dict[str, Any]
    prev_hash: Hash
    hash: Hash


class BatchIn(BaseModel):
    """A relay batch."""

    model_config = ConfigDict(extra="forbid")

    store: StrictStr
    epoch: Annotated[StrictInt, Field(ge=0)]
    batch_id: Annotated[StrictStr, Field(max_length=200)]
    first_seq: Seq
    last_seq: Seq
    prev_hash: Hash
    last_hash: Hash
    entries: Annotated[list[EntryIn], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """A batch whose entries verify and chain onto `prev_hash`; `rows` are ready to insert."""

    store: str
    epoch: int
    first_seq: int
    last_seq: int
    prev_hash: str
    last_hash: str
    last_at: str
    seqs: list[int]
    hashes: list[str]
    rows: list[dict[str, Any]]


def check_batch(raw: bytes, store_id: str, max_entries: int) -> CheckedBatch:
    """Parse and verify a decompressed batch, or raise BatchRefusedError (or TooManyEntriesError)."""
    try:
        batch = BatchIn.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise BatchRefusedError("invalid", f"{loc}: {first['msg']}") from exc
    if len(batch.entries) > max_entries:
        raise TooManyEntriesError(f"{len(batch.entries)} entries; at most {max_entries} per batch")
    if batch.store != store_id:
        raise BatchRefusedError("invalid", f"batch for store {batch.store!r} sent to {store_id!r}")
    entries = batch.entries
    if entries[0].seq != batch.first_seq or entries[-1].seq != batch.last_seq:
        raise BatchRefusedError("invalid", "first_seq/last_seq do not match the entries")
    if entries[0].prev_hash != batch.prev_hash or entries[-1].hash != batch.last_hash:
        raise BatchRefusedError("chain", "prev_hash/last_hash do not match the entries")
    rows: list[dict[str, Any]] = []
    prev = batch.prev_hash
    for offset, entry in enumerate(entries):
        if entry.epoch != batch.epoch:
            message = f"seq {entry.seq}: epoch {entry.epoch} in a batch of epoch {batch.epoch}"
            raise BatchRefusedError("invalid", message)
        expected = batch.first_seq + offset
        if entry.seq != expected:
            raise BatchRefusedError("chain", f"seq {entry.seq}: expected seq {expected}, found {entry.seq} (a gap)")
        if entry.prev_hash != prev:
            raise BatchRefusedError("chain", f"seq {entry.seq}: prev_hash does not match the previous entry's hash")
        recomputed = make_entry(
            seq=entry.seq, epoch=entry.epoch, at=entry.at, type_=entry.type, actor=entry.actor, device=entry.device,
            cmd=entry.cmd, data=entry.data, prev_hash=entry.prev_hash,
        )  # fmt: skip
        if recomputed.hash != entry.hash:
            raise BatchRefusedError("chain", f"seq {entry.seq}: hash does not match the entry's content (altered)")
        prev = entry.hash
        rows.append(
            {
                "store_id": store_id,
                "epoch": entry.epoch,
                "seq": entry.seq,
                "at": entry.at,
                "type": entry.type,
                "actor": entry.actor,
                "device": entry.device,
                "cmd": entry.cmd,
                "data": recomputed.data_json,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            }
        )
    return CheckedBatch(
        store=store_id,
        epoch=batch.epoch,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        prev_hash=batch.prev_hash,
        last_hash=batch.last_hash,
        last_at=entries[-1].at,
        seqs=[e.seq for e in entries],
        hashes=[e.hash for e in entries],
        rows=rows,
    )


class TooManyEntriesError(Exception):
    """More entries than central takes in one batch (413: the relay halves)."""
