"""Real pieces for relay/central tests: hub ledgers sold by the hub's engine, central as a process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cloud_relay.central.keys import SecretBox, new_credentials
from cloud_relay.central.repository import Repository
from cloud_relay.config import RelayConfig, load_relay_config
from cloud_relay.sample import sell
from cloud_relay.wire import SIGNATURE_HEADER, encode_batch, ledger_path, sign
from hub.ports import free_port
from hub.store.ledger import GENESIS_HASH, LedgerEntry, make_entry
from tests.hubproc import REPO, write_config

SOLD: dict[int, Path] = {}


def hub_ledger(directory: Path, store_id: str, tickets: int, cache: Path | None = None) -> Path:
    """A store config whose hub database holds a ledger of `tickets` sold tickets (copied from a cache)."""
    config = write_config(directory, store_id=store_id)
    data = directory / "data"
    if cache is not None and (cache / "hub.db").exists():
        shutil.copytree(cache, data, dirs_exist_ok=True)
        return config
    asyncio.run(sell(config, tickets=tickets))
    if cache is not None:
        shutil.copytree(data, cache, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock", "hub.lock"))
    return config


def hub_entries(config: Path) -> tuple[int, str]:
    """(count, last hash) of the hub's ledger, read straight from its file."""
    path = config.parent / "data" / "hub.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
        last = conn.execute("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()[0]
    return count, str(last)


def relay_config(store_config: Path, central_url: str, creds: dict[str, str], **relay: Any) -> Path:
    """A relay TOML for the hub of `store_config` (secrets in files beside it)."""
    directory = store_config.parent
    (directory / "relay.key").write_text(creds["store_key"], encoding="utf-8")
    (directory / "relay.secret").write_text(creds["secret"], encoding="utf-8")
    options = {
        "central_url": central_url,
        "store_key_file": "relay.key",
        "secret_file": "relay.secret",
        "store_key_env": "STOREHUB_TEST_UNSET",
        "secret_env": "STOREHUB_TEST_UNSET",
        "state_dir": "relay-state",
        "mqtt_username": "",
        "linger_s": 0,
        "poll_s": 0.05,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "timeout_s": 5.0,
        "status_interval_s": 0.2,
        "batch_entries": 100,
    } | relay
    store_id = _store_id(store_config)
    lines = [f'[store]\nid = "{store_id}"\n\n[hub]\ndata_dir = "{directory / "data"}"\n\n[relay]']
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path = directory / "relay.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_relay(path: Path) -> RelayConfig:
    """The relay config at `path`."""
    return load_relay_config(path)


def _store_id(store_config: Path) -> str:
    for line in store_config.read_text(encoding="utf-8").splitlines():
        if line.startswith("id = "):
            return line.split('"')[1]
    raise AssertionError("no store id")


def storehub(
    *args: str, check: bool = True, env: dict[str, str] | None = None, input_: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        input=input_,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Central:
    """`storehub central run` as its own process on a free port (so it can be killed -9)."""

    directory: Path
    database_url: str
    extra: str = ""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""  # an HQ API token, when a test minted one

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "central.toml"
        self.config.write_text(
            f'[central]\ndatabase_url = "{self.database_url}"\nport = {self.port}\n{self.extra}', encoding="utf-8"
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.directory / "central.log"

    def start(self, timeout: float = 60.0) -> Central:
        """Start and wait for /healthz."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "central", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"central exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("central did not start")

    def kill9(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def add_store(self, store_id: str, *, cli: bool = False) -> dict[str, str]:
        """Register a store: through `storehub central store add`, or the same code in-process (faster)."""
        if cli:
            result = storehub("central", "store", "add", store_id, "--config", str(self.config))
            creds: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
            return creds
        return asyncio.run(_add_store(self.database_url, self.directory / "central.key", store_id))

    def hq_token(self, username: str = "hq-api", role: str = "analyst") -> str:
        """An HQ user (created if new) and a fresh API token of theirs, through the CLI."""
        storehub("central", "user", "add", username, "--role", role, "--config", str(self.config),
                 input_="a long password\n")  # fmt: skip
        minted = storehub("central", "user", "token", username, "--config", str(self.config))
        token: str = json.loads(minted.stdout.strip().splitlines()[-1])["token"]
        return token

    def audit(self, store_id: str) -> dict[str, Any]:
        """What central holds for a store."""
        return asyncio.run(_audit(self.database_url, store_id))

    def clock(self, store_id: str) -> tuple[str | None, str | None]:
        """The store's (time zone, business-day start) as central holds them."""
        return asyncio.run(_clock(self.database_url, store_id))

    def quarantined(self, store_id: str) -> list[dict[str, Any]]:
        """Refused batches of a store."""
        return asyncio.run(_quarantined(self.database_url, store_id))


async def _add_store(url: str, key_file: Path, store_id: str) -> dict[str, str]:
    creds, key_hash, sealed = new_credentials(SecretBox.from_file(key_file, create=False))
    repo = Repository.open(url)
    try:
        assert await repo.add_store(store_id, key_hash, sealed, "2026-11-30T00:00:00.000Z")
    finally:
        await repo.close()
    return creds


async def _audit(url: str, store_id: str) -> dict[str, Any]:
    repo = Repository.open(url)
    try:
        return await repo.audit(store_id)
    finally:
        await repo.close()


async def _clock(url: str, store_id: str) -> tuple[str | None, str | None]:
    repo = Repository.open(url)
    try:
        return (await repo.store_clocks()).get(store_id, (None, None))
    finally:
        await repo.close()


async def _quarantined(url: str, store_id: str) -> list[dict[str, Any]]:
    repo = Repository.open(url)
    try:
        return await repo.quarantined(store_id)
    finally:
        await repo.close()


def chain(events: list[tuple[str, str, dict[str, Any]]], after: LedgerEntry | None = None) -> list[LedgerEntry]:
    """Validly hash-chained ledger entries (the hub's own `make_entry`) for `(at, type, data)` events."""
    entries: list[LedgerEntry] = []
    prev, seq = (after.hash, after.seq) if after else (GENESIS_HASH, 0)
    for at, type_, data in events:
        seq += 1
        entry = make_entry(
            seq=seq, epoch=0, at=at, type_=type_, actor="emp-test", device="tab-1", cmd=f"c-{seq}", data=data,
            prev_hash=prev,
        )  # fmt: skip
        entries.append(entry)
        prev = entry.hash
    return entries


def post_entries(url: str, store_id: str, creds: dict[str, str], entries: list[LedgerEntry]) -> httpx.Response:
    """POST entries to central as a relay would: the contract's batch, gzip, HMAC signature, store key."""
    batch = {
        "store": store_id,
        "epoch": entries[0].epoch,
        "batch_id": f"test-{entries[0].seq}",
        "first_seq": entries[0].seq,
        "last_seq": entries[-1].seq,
        "prev_hash": entries[0].prev_hash,
        "last_hash": entries[-1].hash,
        "entries": [e.to_dict() for e in entries],
    }
    body = encode_batch(batch)
    headers = {
        "Authorization": f"Bearer {creds['store_key']}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(creds["secret"].encode("utf-8"), body),
    }
    return httpx.post(url + ledger_path(store_id), content=body, headers=headers, timeout=30)


def wait_for(probe: Any, timeout: float = 60.0) -> Any:
    """Poll `probe()` until it returns something truthy (projections follow ingest in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, "central did not catch up"
        time.sleep(0.1)
