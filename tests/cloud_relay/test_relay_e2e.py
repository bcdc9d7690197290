"""Hub ledger → relay → central over real HTTP, through crashes, outages, faults, tampering and forks.

Every ledger here was written by the hub's own engine; central is `storehub central run` (uvicorn)
on 127.0.0.1; the relay is either its own process (`storehub relay run`) or the same code in-process.
After each story central must hold exactly the hub's ledger: same count, same last hash, no
duplicate, no gap.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from cloud_relay import state
from cloud_relay.relay import Relay, RelayHaltedError
from cloud_relay.sample import sell
from cloud_relay.wire import SIGNATURE_HEADER, sign
from tests.cloud_relay.chaos import ChaosProxy
from tests.cloud_relay.helpers import Central, hub_entries, hub_ledger, load_relay, relay_config, storehub
from tests.hubproc import REPO, write_config
from tests.mqtt_helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    """One central for the module (each test its own store): at most 30 entries and 1 MiB per batch."""
    directory = tmp_path_factory.mktemp("central")
    c = Central(
        directory,
        "sqlite+aiosqlite:///" + str(directory / "central.db"),
        extra="max_entries = 30\nmax_batch_bytes = 1048576\n",
    ).start()
    try:
        yield c
    finally:
        c.stop()


def assert_holds_exactly(central: Central, store_id: str, store_config: Path) -> None:
    count, last_hash = hub_entries(store_config)
    audit = central.audit(store_id)
    assert audit == {"entries": count, "duplicates": 0, "gaps": 0, "last_seq": count, "last_hash": last_hash}


def relay_process(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = (config.parent / "relay.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "relay", "run", "--config", str(config), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    log.close()
    return proc


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_relay_killed_9_mid_stream_then_restarted_ships_exactly_the_ledger(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    store = hub_ledger(tmp_path / "store", "kill-relay", 0, cache=ledger_cache)
    count, _ = hub_entries(store)
    creds = central.add_store("kill-relay")
    config = relay_config(store, central.url, creds, batch_entries=10)
    state_dir = store.parent / "relay-state"
    proc = relay_process(config)
    try:
        wait_for(lambda: state.load_cursor(state_dir).seq > 0, what="the first acked batch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = state.load_cursor(state_dir).seq
    assert killed_at < count, "the relay was killed before it finished"
    result = storehub("relay", "run", "--drain", "--config", str(config))
    assert json.loads(result.stdout.strip().splitlines()[-1])["backlog"] == 0
    assert_holds_exactly(central, "kill-relay", store)
    status = json.loads(storehub("relay", "status", "--config", str(config)).stdout)
    assert status["cursor"] == count
    assert status["backlog"] == 0
    assert status["halted"] is False


def test_central_killed_9_and_refusing_connections_then_back(tmp_path: Path, ledger_cache: Path) -> None:
    store = hub_ledger(tmp_path / "store", "kill-central", 0, cache=ledger_cache)
    count, _ = hub_entries(store)
    central = Central(tmp_path / "central", "sqlite+aiosqlite:///" + str(tmp_path / "central" / "c.db")).start()
    creds = central.add_store("kill-central")
    config = relay_config(store, central.url, creds, batch_entries=5)
    state_dir = store.parent / "relay-state"
    proc = relay_process(config)
    try:
        wait_for(lambda: state.load_cursor(state_dir).seq > 0, what="the first acked batch")
        central.kill9()  # most likely mid-transaction: the relay sends back to back
        wait_for(
            lambda: "Connect" in str((state.load_status(state_dir) or {}).get("last_error")),
            what="the relay to notice central is gone",
        )
        stuck = state.load_cursor(state_dir).seq
        assert stuck < count
        central.start()
        wait_for(lambda: state.load_cursor(state_dir).seq == count, what="the relay to catch up")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        central.stop()
    assert proc.returncode == 0
    assert_holds_exactly(central, "kill-central", store)


def test_injected_5xx_timeouts_and_a_lost_ack_are_harmless(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    store = hub_ledger(tmp_path / "store", "chaos", 0, cache=ledger_cache)
    creds = central.add_store("chaos")
    plan = ["ok", "500", "503", "stall", "ack_lost", "ok", "429", "ack_lost", "500"]
    with ChaosProxy(central.url, plan, stall_s=1.0) as proxy:
        config = relay_config(store, proxy.url, creds, batch_entries=30, timeout_s=0.4)
        relay = Relay(load_relay(config))
        acked = asyncio.run(relay.drain())
    count, _ = hub_entries(store)
    assert acked == count
    assert_holds_exactly(central, "chaos", store)
    lost = [code for fault, code in proxy.seen if fault == "ack_lost"]
    assert lost == [200, 200], "central stored the batches whose answers were lost"
    assert relay.stats.retries >= 7
    assert state.load_cursor(store.parent / "relay-state").seq == count


def _tampered_copy(source: Path, target: Path, seq: int) -> None:
    """A copy of a hub database whose entry `seq` was edited behind the hub's back."""
    target.mkdir(parents=True)
    with sqlite3.connect(source / "hub.db") as src, sqlite3.connect(target / "hub.db") as dst:
        src.backup(dst)
    with sqlite3.connect(target / "hub.db") as conn:
        conn.execute("DROP TRIGGER ledger_never_updated")
        conn.execute("UPDATE ledger SET data = json_set(data, '$.tampered', 1) WHERE seq = ?", (seq,))


def test_a_tampered_entry_is_refused_quarantined_and_stops_the_relay(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    directory = tmp_path / "store"
    store = write_config(directory, store_id="tampered")
    _tampered_copy(ledger_cache, directory / "data", 25)
    creds = central.add_store("tampered")
    config = relay_config(store, central.url, creds, batch_entries=10)
    relay = Relay(load_relay(config))
    with pytest.raises(RelayHaltedError, match="422"):
        asyncio.run(relay.drain())
    assert central.audit("tampered")["entries"] == 20, "batches before the tampered one are stored"
    [refused] = central.quarantined("tampered")
    assert refused["kind"] == "chain"
    assert "seq 25" in refused["reason"]
    status = json.loads(storehub("relay", "status", "--config", str(config)).stdout)
    assert status["halted"] is True
    assert "422" in status["last_error"]
    assert status["cursor"] == 20


def test_a_forked_ledger_is_refused_and_central_keeps_the_first_history(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    creds = central.add_store("forked")
    store_a = hub_ledger(tmp_path / "a", "forked", 0, cache=ledger_cache)
    store_b = hub_ledger(tmp_path / "b", "forked", 0, cache=ledger_cache)
    asyncio.run(sell(store_a, tickets=3))
    asyncio.run(sell(store_b, tickets=3))  # same past, different present: a fork
    relay_a = Relay(load_relay(relay_config(store_a, central.url, creds)))
    asyncio.run(relay_a.drain())
    relay_b = Relay(load_relay(relay_config(store_b, central.url, creds)))
    with pytest.raises(RelayHaltedError, match="fork"):
        asyncio.run(relay_b.drain())
    refused = central.quarantined("forked")
    assert [q["fork"] for q in refused] == [True]
    assert_holds_exactly(central, "forked", store_a)


def test_three_stores_at_once_into_postgresql(tmp_path: Path, pg_server: str, ledger_cache: Path) -> None:
    central = Central(tmp_path / "central", pg_server).start()
    stores = {f"trio-{n}-{tmp_path.name[-6:]}".lower().replace("_", "-")[:32]: n for n in range(3)}
    procs = []
    try:
        configs = {}
        for store_id, n in stores.items():
            store = hub_ledger(tmp_path / store_id, store_id, 0, cache=ledger_cache)
            asyncio.run(sell(store, tickets=1 + n))
            configs[store_id] = store
            config = relay_config(store, central.url, central.add_store(store_id), batch_entries=25 + 10 * n)
            procs.append(relay_process(config, "--drain"))
        for proc in procs:
            assert proc.wait(120) == 0
        for store_id, store in configs.items():
            assert_holds_exactly(central, store_id, store)
            # HQ never typed a clock in: the hub's own store.configured entry gave it (tests' [store]).
            wait_until(functools.partial(_clock_is, central, store_id, ("Europe/Paris", "04:00")), 10, "the clock")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        central.stop()


def _clock_is(central: Central, store_id: str, wanted: tuple[str, str]) -> bool:
    return central.clock(store_id) == wanted


def test_too_large_batches_are_halved_and_bad_credentials_stop_the_relay(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    store = hub_ledger(tmp_path / "store", "halve", 0, cache=ledger_cache)
    creds = central.add_store("halve")
    relay = Relay(load_relay(relay_config(store, central.url, creds, batch_entries=100)))
    asyncio.run(relay.drain())
    assert relay.stats.halvings >= 2, "central takes 30 entries at most: 100 -> 50 -> 25"
    assert_holds_exactly(central, "halve", store)

    other = hub_ledger(tmp_path / "other", "wrong-key", 0, cache=ledger_cache)
    central.add_store("wrong-key")
    bad = Relay(load_relay(relay_config(other, central.url, creds)))  # another store's key
    with pytest.raises(RelayHaltedError, match="401"):
        asyncio.run(bad.drain())
    assert bad.status()["halted"] is True
    assert central.audit("wrong-key")["entries"] == 0
    assert central.quarantined("wrong-key") == []


def test_central_refuses_bad_signatures_bombs_and_non_gzip(tmp_path: Path, central: Central) -> None:
    creds = central.add_store("raw", cli=True)
    again = storehub("central", "store", "add", "raw", "--config", str(central.config), check=False)
    assert again.returncode == 2
    assert "already registered" in again.stderr
    bad_id = storehub("central", "store", "add", "Bad Id", "--config", str(central.config), check=False)
    assert bad_id.returncode == 2
    url = central.url + "/v1/stores/raw/ledger"
    auth = {"Authorization": f"Bearer {creds['store_key']}", "Content-Encoding": "gzip"}
    body = gzip.compress(b'{"store":"raw"}')
    bad_sig = httpx.post(url, content=body, headers=auth | {SIGNATURE_HEADER: "sha256=" + "0" * 64})
    assert bad_sig.status_code == 422
    assert bad_sig.json()["kind"] == "signature"
    secret = creds["secret"].encode()
    bomb = gzip.compress(b"[" + b" " * (2 * 1024 * 1024) + b"]")  # 2 kB on the wire, 2 MiB unpacked
    too_big = httpx.post(url, content=bomb, headers=auth | {SIGNATURE_HEADER: sign(secret, bomb)}, timeout=30)
    assert too_big.status_code == 413
    plain = b'{"store":"raw"}'
    not_gzip = httpx.post(url, content=plain, headers=auth | {"Content-Encoding": "identity"})
    assert not_gzip.status_code == 415
    no_auth = httpx.post(url, content=body)
    assert no_auth.status_code == 401
    unknown = httpx.post(central.url + "/v1/stores/nobody/ledger", content=body, headers=auth)
    assert unknown.status_code == 401
    shape = httpx.post(url, content=body, headers=auth | {SIGNATURE_HEADER: sign(secret, body)})
    assert shape.status_code == 422
    assert [q["kind"] for q in central.quarantined("raw")] == ["invalid", "signature"]


def test_an_unreadable_hub_file_is_reported_and_the_relay_carries_on(
    tmp_path: Path, central: Central, ledger_cache: Path
) -> None:
    directory = tmp_path / "store"
    store = write_config(directory, store_id="unreadable")
    (directory / "data").mkdir()
    (directory / "data" / "hub.db").write_bytes(b"not a database, half-restored" * 100)
    config = relay_config(store, central.url, central.add_store("unreadable"), backoff_max_s=0.1)
    relay = Relay(load_relay(config))

    async def scenario() -> str | None:
        task = asyncio.create_task(relay.run())
        while not (relay.last_error or "").startswith("cannot read the hub's ledger"):
            await asyncio.sleep(0.02)
        seen = relay.last_error
        (directory / "data" / "hub.db").unlink()
        await asyncio.to_thread(shutil.copytree, ledger_cache, directory / "data", dirs_exist_ok=True)
        count, _ = hub_entries(store)
        while relay.cursor.seq < count:
            assert not task.done(), "the relay died"
            await asyncio.sleep(0.02)
        relay.stop()
        await asyncio.wait_for(task, 30)
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert "not a database" in (seen or "")
    assert_holds_exactly(central, "unreadable", store)
