"""`storehub bench relay --json [--entries N]`: how fast a backlog reaches central, and the limit.

Everything is real: hub ledgers written by the hub's engine (`cloud_relay.sample`), central as its
own `storehub central run` process (uvicorn) on 127.0.0.1, the relay's own code over HTTP, and
PostgreSQL (`STOREHUB_TEST_PG`) and SQLite behind central. After each drain central is audited for
duplicates and gaps.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cloud_relay.central.config import load_central_config
from cloud_relay.central.keys import SecretBox, new_credentials
from cloud_relay.central.repository import Repository
from cloud_relay.central.schema import ledger_entries
from cloud_relay.config import load_relay_config
from cloud_relay.relay import Relay
from cloud_relay.sample import sell
from hub.contract.types import format_time
from hub.ports import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

QUICK_ENTRIES: Final = 5_000
RELAYS: Final = 20
ENTRIES_PER_TICKET: Final = 5
DEFAULT_PG: Final = "postgresql://postgres@127.0.0.1:5432/test"
REPO: Final = Path(__file__).resolve().parent.parent
MENU: Final = REPO / "config" / "menu.example.toml"

STORE_TOML: Final = """
[store]
id = "{store_id}"
name = "Bench Bistro"
currency = "EUR"
tax_rates = [
  {{ id = "food", rate_bp = 1000, inclusive = true }},
  {{ id = "alcohol", rate_bp = 2000, inclusive = true }},
  {{ id = "soft", rate_bp = 550, inclusive = true }},
]

[hub]
data_dir = "{data_dir}"
menu_file = "{menu}"

[[staff]]
id = "emp-bench"
name = "Bench"
role = "manager"
pin = "7410"
"""


def run_relay_bench(entries: int | None = None) -> dict[str, Any]:
    """Run the suite and return its figures."""
    return asyncio.run(_bench(entries or QUICK_ENTRIES))


async def _bench(target: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="storehub-bench-relay-"))
    try:
        hub_dir = work / "hub"
        store_toml = _store_config(hub_dir, "bench-000")
        started = time.perf_counter()
        head = await sell(store_toml, tickets=max(1, target // ENTRIES_PER_TICKET), concurrency=32)
        generate_s = time.perf_counter() - started
        small_dir = work / "hub-small"
        small_toml = _store_config(small_dir, "bench-small")
        small_head = await sell(small_toml, tickets=max(1, target // RELAYS // ENTRIES_PER_TICKET), concurrency=32)
        out: dict[str, Any] = {
            "suite": "relay",
            "backlog_entries": head,
            "generate_s": round(generate_s, 2),
            "projections_during_ingest": False,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        pg_url = os.environ.get("STOREHUB_TEST_PG", DEFAULT_PG)
        async with _pg_database(pg_url) as pg:
            if pg is None:
                out["postgresql"] = {"error": f"PostgreSQL not reachable at {pg_url}"}
            else:
                out["postgresql"] = await _drain_one(work / "pg", pg, store_toml, head)
                out["postgresql"]["limit"] = await _limit(pg, work / "pg" / "central.db", head)
                limit = out["postgresql"]["limit"]["entries_per_s"]
                out["postgresql"]["share_of_limit"] = round(out["postgresql"]["entries_per_s"] / limit, 3)
                out["postgresql"]["concurrent"] = await _concurrent(work / "pg-many", pg, small_dir, small_head)
        sqlite_url = "sqlite+aiosqlite:///" + str(work / "sqlite" / "central.db")
        out["sqlite"] = await _drain_one(work / "sqlite", sqlite_url, store_toml, head)
        out["duplicates"] = sum(v.get("duplicates", 0) for v in _backends(out))
        out["gaps"] = sum(v.get("gaps", 0) for v in _backends(out))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _backends(out: dict[str, Any]) -> list[dict[str, Any]]:
    found = [out["sqlite"]]
    pg = out.get("postgresql") or {}
    if "entries_per_s" in pg:
        found += [pg, pg["concurrent"]]
    return found


def _store_config(directory: Path, store_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "store.toml"
    path.write_text(STORE_TOML.format(store_id=store_id, data_dir=directory / "data", menu=MENU), encoding="utf-8")
    return path


def _relay_config(store_toml: Path, store_id: str, central_url: str, creds: dict[str, str]) -> Path:
    """A relay TOML for the hub of `store_toml`, shipping as `store_id` (secrets in files)."""
    directory = store_toml.parent
    (directory / f"{store_id}.key").write_text(creds["store_key"], encoding="utf-8")
    (directory / f"{store_id}.secret").write_text(creds["secret"], encoding="utf-8")
    path = directory / f"relay-{store_id}.toml"
    path.write_text(
        f'[store]\nid = "{store_id}"\n\n[hub]\ndata_dir = "{directory / "data"}"\n\n'
        f'[relay]\ncentral_url = "{central_url}"\nstate_dir = "state-{store_id}"\n'
        f'store_key_file = "{store_id}.key"\nsecret_file = "{store_id}.secret"\n'
        'store_key_env = "STOREHUB_BENCH_UNSET"\nsecret_env = "STOREHUB_BENCH_UNSET"\n'
        'mqtt_username = ""\nlinger_s = 0\n',  # batches as a store's relay cuts them by default
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def _central(directory: Path, database_url: str) -> AsyncIterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, outside every measured interval
    port = free_port()
    config = directory / "central.toml"
    # Ingest alone is measured: projections would fold the same entries on the same two cores.
    config.write_text(
        f'[central]\ndatabase_url = "{database_url}"\nport = {port}\nproject_on_ingest = false\n', encoding="utf-8"
    )
    log = (directory / "central.log").open("ab")
    proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own CLI, started before any measurement
        [sys.executable, "-m", "hub.cli", "central", "run", "--config", str(config), "--log-level", "WARNING"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if proc.poll() is not None:
                    raise RuntimeError(f"central exited: {(directory / 'central.log').read_text()[-2000:]}")
                try:
                    if (await client.get(url + "/healthz")).status_code == httpx.codes.OK:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield url, config, proc
    finally:
        proc.terminate()
        proc.wait(20)


async def _store_add(config: Path, store_id: str) -> dict[str, str]:
    """Register a store as `storehub central store add` does (in-process: 20 CLI start-ups would dominate)."""
    settings = load_central_config(config)
    box = SecretBox.from_file(settings.key_file, create=False)
    creds, key_hash, sealed = new_credentials(box)
    repo = Repository.open(settings.database_url)
    try:
        await repo.add_store(store_id, key_hash, sealed, format_time(datetime.now(UTC)))
    finally:
        await repo.close()
    return creds


async def _drain_one(directory: Path, database_url: str, store_toml: Path, head: int) -> dict[str, Any]:
    async with _central(directory, database_url) as (url, config, proc):
        store_id = "bench-" + directory.name
        creds = await _store_add(config, store_id)
        relay = Relay(load_relay_config(_relay_config(store_toml, store_id, url, creds)))
        cpu_before = _cpu_s(proc.pid), time.process_time()
        started = time.perf_counter()
        acked = await relay.drain()
        elapsed = time.perf_counter() - started
        central_cpu, relay_cpu = _cpu_s(proc.pid) - cpu_before[0], time.process_time() - cpu_before[1]
        audit = await _audit(database_url, store_id)
    return {
        "entries": acked,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(acked / elapsed),
        # CPU per entry holds still when other work shares the cores; the rate does not.
        "central_cpu_us_per_entry": round(central_cpu / max(1, acked) * 1e6, 1),
        "relay_cpu_us_per_entry": round(relay_cpu / max(1, acked) * 1e6, 1),
        "batches": relay.stats.batches,
        "batch_p50_ms": _ms(statistics.median(relay.stats.batch_latencies)),
        "batch_p99_ms": _ms(_p99(relay.stats.batch_latencies)),
        "duplicates": audit["duplicates"],
        "gaps": audit["gaps"],
        "complete": audit["entries"] == head,
    }


async def _concurrent(directory: Path, database_url: str, hub_dir: Path, head: int) -> dict[str, Any]:
    async with _central(directory, database_url) as (url, config, _proc):
        relays: list[Relay] = []
        for n in range(RELAYS):
            store_id = f"bench-many-{n:02d}"
            copy = directory / store_id
            shutil.copytree(hub_dir / "data", copy / "data")
            store_toml = _store_config(copy, store_id)
            creds = await _store_add(config, store_id)
            relays.append(Relay(load_relay_config(_relay_config(store_toml, store_id, url, creds))))
        started = time.perf_counter()
        acked = await asyncio.gather(*(r.drain() for r in relays))
        elapsed = time.perf_counter() - started
        audits = [await _audit(database_url, f"bench-many-{n:02d}") for n in range(RELAYS)]
    latencies = [x for r in relays for x in r.stats.batch_latencies]
    return {
        "relays": RELAYS,
        "entries": sum(acked),
        "seconds": round(elapsed, 3),
        "entries_per_s": round(sum(acked) / elapsed),
        "batch_p50_ms": _ms(statistics.median(latencies)),
        "batch_p99_ms": _ms(_p99(latencies)),
        "duplicates": sum(a["duplicates"] for a in audits),
        "gaps": sum(a["gaps"] for a in audits),
        "complete": all(a["entries"] == head for a in audits),
    }


async def _limit(database_url: str, _unused: Path, head: int) -> dict[str, Any]:
    """The same rows, prepared in advance, inserted with executemany in one PostgreSQL transaction."""
    repo = Repository.open(database_url)
    try:
        async with repo.engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(ledger_entries.select().limit(head))]  # noqa: SLF001
        for row in rows:
            row["store_id"] = "bench-limit"
        started = time.perf_counter()
        async with repo.engine.begin() as conn:
            await conn.execute(ledger_entries.insert(), rows)
        elapsed = time.perf_counter() - started
    finally:
        await repo.close()
    return {"entries": len(rows), "seconds": round(elapsed, 3), "entries_per_s": round(len(rows) / elapsed)}


async def _audit(database_url: str, store_id: str) -> dict[str, Any]:
    repo = Repository.open(database_url)
    try:
        return await repo.audit(store_id)
    finally:
        await repo.close()


@asynccontextmanager
async def _pg_database(url: str) -> AsyncIterator[str | None]:
    """A fresh database with a random name on the server at `url`, dropped afterwards."""
    admin_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    name = "storehub_bench_" + secrets.token_hex(4)
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, Exception):  # noqa: BLE001 - any failure to reach the server means "no PostgreSQL"
        await admin.dispose()
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p99(values: list[float]) -> float:
    if len(values) < 2:  # noqa: PLR2004
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[98]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
