"""The hub's database file: the background WAL checkpointer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hub.store.db import SQLITE_AUTOCHECKPOINT, Database

if TYPE_CHECKING:
    from pathlib import Path

INSERT = "INSERT INTO processed_commands (device, cmd_id, type, body_hash, reply, at) VALUES (?, ?, ?, ?, ?, ?)"


async def _autocheckpoint(db: Database) -> int:
    async with db.writer.execute("PRAGMA wal_autocheckpoint") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def _write(db: Database, batches: int) -> None:
    reply = b"x" * 3000
    for batch in range(batches):
        rows = [("tab-01", f"{batch}-{i}", "ticket.open", "h", reply, "2026-11-30T12:00:00.000Z") for i in range(100)]
        await db.transaction([(INSERT, rows)])
        await asyncio.sleep(0.06)


def test_the_checkpointer_keeps_the_wal_small_while_commits_never_checkpoint(tmp_path: Path) -> None:
    async def go() -> None:
        db = await Database.open(tmp_path / "hub.db")
        checkpoints = asyncio.create_task(db.run_checkpoints(interval_s=0.05))
        await asyncio.sleep(0.1)
        assert await _autocheckpoint(db) == 0, "commits must not checkpoint while the checkpointer runs"
        await _write(db, 40)  # 12 MB through the WAL
        assert (tmp_path / "hub.db-wal").stat().st_size < 4 * 1024 * 1024
        checkpoints.cancel()
        await asyncio.gather(checkpoints, return_exceptions=True)
        assert await _autocheckpoint(db) == SQLITE_AUTOCHECKPOINT, "SQLite checkpoints again once it stops"
        async with db.writer.execute("SELECT COUNT(*) FROM processed_commands") as cursor:
            assert await cursor.fetchone() == (4000,)
        await db.close()

    asyncio.run(go())


def test_without_checkpoints_the_wal_would_keep_growing(tmp_path: Path) -> None:
    """The control for the test above: the same writes with no checkpoint at all."""

    async def go() -> None:
        db = await Database.open(tmp_path / "hub.db")
        await db.writer.execute("PRAGMA wal_autocheckpoint=0")
        await _write(db, 40)
        assert (tmp_path / "hub.db-wal").stat().st_size > 8 * 1024 * 1024
        await db.close()

    asyncio.run(go())
