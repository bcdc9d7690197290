"""`storehub replay`: rebuild every projection from the ledger alone and diff it against the live one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hub import domain
from hub.contract.types import parse_time
from hub.store import projections
from hub.store.db import Database, open_reader
from hub.store.ledger import iter_entries


async def rebuild_state(ledger_db: Path) -> tuple[domain.StoreState, int]:
    """Evolve an empty state through every ledger entry; returns it with the entry count."""
    state = domain.StoreState.empty()
    count = 0
    async with open_reader(ledger_db) as conn:
        async for entry in iter_entries(conn):
            event = domain.LedgerEvent(
                entry.seq, parse_time(entry.at), entry.type, entry.actor, entry.device, entry.cmd, entry.data
            )
            domain.evolve(state, event)
            count += 1
    return state, count


async def replay_and_diff(live: Path, *, keep: Path | None = None, max_rows: int = 20) -> dict[str, Any]:
    """Replay `live`'s ledger into a scratch database and compare every projection table."""
    state, count = await rebuild_state(live)
    with tempfile.TemporaryDirectory(prefix="storehub-replay-") as tmp:
        scratch_path = keep or Path(tmp) / "replay.db"
        if scratch_path.exists():
            scratch_path.unlink()
        scratch = await Database.open(scratch_path)
        try:
            await scratch.transaction(projections.plan_writes(state, projections.all_refs(state)))
            await scratch.writer.execute("ATTACH DATABASE ? AS live", (f"file:{live}?mode=ro",))
            tables: dict[str, Any] = {}
            for table in projections.PROJECTION_TABLES:
                live_sql = f"SELECT * FROM live.{table} EXCEPT SELECT * FROM main.{table}"  # noqa: S608 - constant names
                replay_sql = f"SELECT * FROM main.{table} EXCEPT SELECT * FROM live.{table}"  # noqa: S608
                only_live = await _rows(scratch, live_sql, max_rows)
                only_replay = await _rows(scratch, replay_sql, max_rows)
                tables[table] = {"equal": not only_live and not only_replay}
                if only_live or only_replay:
                    tables[table] |= {"only_live": only_live, "only_replay": only_replay}
        finally:
            await scratch.close()
    return {
        "equal": all(t["equal"] for t in tables.values()),
        "entries_replayed": count,
        "tables": tables,
    }


async def _rows(db: Database, sql: str, limit: int) -> list[list[Any]]:
    async with db.writer.execute(sql) as cursor:
        rows = await cursor.fetchmany(limit)
    return [list(r) for r in rows]
