"""Central's repository contract, run against SQLite and PostgreSQL alike (one suite, both adapters)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cloud_relay.central.batch import BatchRefusedError, TooManyEntriesError, check_batch
from cloud_relay.central.repository import Acked, Fork, Gap, Repository, StorageUnavailableError
from cloud_relay.central.schema import ledger_entries, metadata
from hub.store.ledger import LedgerEntry, entry_from_row, make_entry
from tests.cloud_relay.helpers import hub_ledger

if TYPE_CHECKING:
    from pathlib import Path

NOW = "2026-11-30T12:00:00.000Z"


def read_ledger(config: Path) -> list[LedgerEntry]:
    path = config.parent / "data" / "hub.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT seq, epoch, at, type, actor, device, cmd, data, prev_hash, hash FROM ledger ORDER BY seq"
        ).fetchall()
    return [entry_from_row(row) for row in rows]


def body(store: str, entries: list[LedgerEntry], **override: Any) -> bytes:
    batch = {
        "store": store,
        "epoch": entries[0].epoch,
        "batch_id": f"b-{entries[0].seq}",
        "first_seq": entries[0].seq,
        "last_seq": entries[-1].seq,
        "prev_hash": entries[0].prev_hash,
        "last_hash": entries[-1].hash,
        "entries": [e.to_dict() for e in entries],
    } | override
    return json.dumps(batch).encode("utf-8")


@pytest.fixture
def ledger(tmp_path: Path, ledger_cache: Path) -> list[LedgerEntry]:
    return read_ledger(hub_ledger(tmp_path / "store", "s", 0, cache=ledger_cache))


def run_with_repo(url: str, fn: Any) -> Any:
    async def go() -> Any:
        repo = Repository.open(url)
        try:
            await repo.migrate()
            await repo.migrate()  # idempotent
            return await fn(repo)
        finally:
            await repo.close()

    return asyncio.run(go())


def new_store() -> str:
    return "st-" + secrets.token_hex(4)


async def register(repo: Repository, store: str) -> None:
    assert await repo.add_store(store, "0" * 64, "sealed", NOW)
    assert not await repo.add_store(store, "1" * 64, "sealed", NOW), "an id is registered once"


def test_migrations_create_exactly_the_schema(database_url: str) -> None:
    async def check(repo: Repository) -> list[Any]:
        async with repo.engine.connect() as conn:
            return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))

    assert run_with_repo(database_url, check) == []


def test_contiguous_batches_store_the_whole_ledger_and_resends_are_harmless(
    database_url: str, ledger: list[LedgerEntry]
) -> None:
    store = new_store()

    async def go(repo: Repository) -> tuple[list[Any], dict[str, Any], list[dict[str, Any]]]:
        await register(repo, store)
        results = []
        for start in range(0, len(ledger), 70):
            part = ledger[start : start + 70]
            results.append(await repo.ingest(check_batch(body(store, part), store, 1000), NOW))
        # the ack of the last batch was lost: the same batch again, and an overlapping one
        results.append(await repo.ingest(check_batch(body(store, ledger[-70:]), store, 1000), NOW))
        results.append(await repo.ingest(check_batch(body(store, ledger[5:20]), store, 1000), NOW))
        return results, await repo.audit(store), await repo.entries(store)

    results, audit, stored = run_with_repo(database_url, go)
    assert all(isinstance(r, Acked) for r in results)
    assert results[-2] == Acked(ledger[-1].seq, 0)
    assert results[-1] == Acked(ledger[19].seq, 0)
    assert audit == {
        "entries": len(ledger),
        "duplicates": 0,
        "gaps": 0,
        "last_seq": ledger[-1].seq,
        "last_hash": ledger[-1].hash,
    }
    assert [(r["seq"], r["hash"]) for r in stored] == [(e.seq, e.hash) for e in ledger]
    assert json.loads(stored[3]["data"]) == ledger[3].data


def test_a_gap_asks_for_the_first_missing_seq_and_stores_nothing(database_url: str, ledger: list[LedgerEntry]) -> None:
    store = new_store()

    async def go(repo: Repository) -> tuple[Any, Any, dict[str, Any]]:
        await register(repo, store)
        first = await repo.ingest(check_batch(body(store, ledger[:10]), store, 1000), NOW)
        gap = await repo.ingest(check_batch(body(store, ledger[20:30]), store, 1000), NOW)
        return first, gap, await repo.audit(store)

    first, gap, audit = run_with_repo(database_url, go)
    assert first == Acked(10, 10)
    assert gap == Gap(ledger[0].epoch, 11)
    assert audit["entries"] == 10


def test_a_different_history_is_a_fork_and_changes_nothing(database_url: str, ledger: list[LedgerEntry]) -> None:
    store = new_store()
    # Another hub with the same store id diverged after seq 10: a validly chained, different entry 11.
    other = make_entry(
        seq=11, epoch=ledger[10].epoch, at=ledger[10].at, type_="drawer.opened", actor="emp-x", device="tab-9",
        cmd="c-other", data={"reason": "fork"}, prev_hash=ledger[9].hash,
    )  # fmt: skip

    async def go(repo: Repository) -> tuple[Any, Any, Any, dict[str, Any]]:
        await register(repo, store)
        await repo.ingest(check_batch(body(store, ledger[:12]), store, 1000), NOW)
        overlap = await repo.ingest(check_batch(body(store, [*ledger[9:10], other]), store, 1000), NOW)
        await repo.ingest(check_batch(body(store, ledger[12:20]), store, 1000), NOW)
        chained_elsewhere = make_entry(
            seq=21, epoch=ledger[20].epoch, at=ledger[20].at, type_="drawer.opened", actor=None, device=None,
            cmd=None, data={}, prev_hash=other.hash,
        )  # fmt: skip
        bad_next = await repo.ingest(check_batch(body(store, [chained_elsewhere]), store, 1000), NOW)
        return overlap, bad_next, None, await repo.audit(store)

    overlap, bad_next, _, audit = run_with_repo(database_url, go)
    assert isinstance(overlap, Fork)
    assert "seq 11" in overlap.reason
    assert isinstance(bad_next, Fork)
    assert "does not continue" in bad_next.reason
    assert audit["entries"] == 20
    assert audit["last_hash"] == ledger[19].hash


def test_a_restored_hub_continues_in_a_new_epoch_and_central_keeps_both(
    database_url: str, ledger: list[LedgerEntry]
) -> None:
    store = new_store()
    epoch = ledger[0].epoch
    # Restored from a backup taken at seq 30: epoch + 1 continues from seq 30's hash.
    restored = []
    prev = ledger[29].hash
    for n in range(31, 36):
        entry = make_entry(
            seq=n, epoch=epoch + 1, at=ledger[-1].at, type_="drawer.opened", actor=None, device=None, cmd=None,
            data={"n": n}, prev_hash=prev,
        )  # fmt: skip
        restored.append(entry)
        prev = entry.hash

    async def go(repo: Repository) -> tuple[Any, Any, Any]:
        await register(repo, store)
        await repo.ingest(check_batch(body(store, ledger[:40]), store, 1000), NOW)
        too_far = await repo.ingest(check_batch(body(store, restored[2:]), store, 1000), NOW)
        ok = await repo.ingest(check_batch(body(store, restored), store, 1000), NOW)
        return too_far, ok, await repo.heads(store)

    too_far, ok, heads = run_with_repo(database_url, go)
    assert isinstance(too_far, Fork), "seq 32 of the old epoch is not what the restored chain's seq 33 follows"
    assert ok == Acked(35, 5)
    assert [(h["epoch"], h["last_seq"]) for h in heads] == [(epoch, 40), (epoch + 1, 35)]


def test_check_batch_refuses_tampering_and_nonsense(ledger: list[LedgerEntry]) -> None:
    store = "s"
    tampered = json.loads(body(store, ledger[:5]))
    tampered["entries"][2]["data"]["tampered"] = 1
    with pytest.raises(BatchRefusedError, match="altered"):
        check_batch(json.dumps(tampered).encode(), store, 100)
    with pytest.raises(BatchRefusedError, match="gap"):
        check_batch(body(store, [ledger[0], ledger[2]], last_hash=ledger[2].hash), store, 100)
    with pytest.raises(BatchRefusedError, match="sent to"):
        check_batch(body("other", ledger[:2]), store, 100)
    with pytest.raises(BatchRefusedError, match="first_seq"):
        check_batch(body(store, ledger[:2], first_seq=5), store, 100)
    with pytest.raises(BatchRefusedError, match="Field required"):
        check_batch(b'{"store":"s"}', store, 100)
    with pytest.raises(TooManyEntriesError):
        check_batch(body(store, ledger[:5]), store, 4)
    money = json.loads(body(store, ledger[:1]))
    money["entries"][0]["seq"] = 1.0
    with pytest.raises(BatchRefusedError, match="seq"):
        check_batch(json.dumps(money).encode(), store, 100)


def test_a_failed_copy_into_postgresql_changes_nothing_and_says_storage_unavailable(
    pg_server: str, ledger: list[LedgerEntry]
) -> None:
    store = new_store()

    async def go(repo: Repository) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
        await register(repo, store)
        await repo.ingest(check_batch(body(store, ledger[:10]), store, 1000), NOW)
        # A row central's head does not know about (written behind its back): the COPY of the next
        # batch meets it, and the whole transaction must go, head and all.
        stray = check_batch(body(store, ledger[10:15]), store, 1000).rows[3] | {"received_at": NOW}
        async with repo.engine.begin() as conn:
            await conn.execute(ledger_entries.insert().values(**stray))
        with pytest.raises(StorageUnavailableError, match="COPY"):
            await repo.ingest(check_batch(body(store, ledger[10:20]), store, 1000), NOW)
        return await repo.heads(store), await repo.audit(store), await repo.get_store(store)

    heads, audit, record = run_with_repo(pg_server, go)
    assert [h["last_seq"] for h in heads] == [10]
    assert audit["entries"] == 11  # the first batch and the stray row; nothing of the refused batch
    assert record is not None
