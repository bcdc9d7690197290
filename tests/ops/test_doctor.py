"""`storehub doctor` against a real running hub (all green) and against broken installs (clear failures)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.config import load_config
from hub.doctor import Options, exit_code, mqtt_anonymous_connect, run_checks
from hub.ports import free_port
from hub.tls import ensure_store_pki
from tests.hubproc import HubProcess, storehub, write_config


def _doctor(config: Path, *extra: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = storehub("doctor", "--config", str(config), "--json", *extra, check=False)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is (result.returncode == 0)
    return result.returncode, {c["check"]: c for c in report["checks"]}


@pytest.fixture
def listener():
    """A real TCP server standing in for a network printer's port 9100."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    hub = HubProcess(write_config(tmp_path_factory.mktemp("doctor"))).start()
    hub.add_device("tab-doc")
    hub.add_device("kds-doc", kind="kds", stations="grill,expo")
    yield hub
    hub.stop()


def test_a_healthy_store_is_all_green(running, listener, tmp_path):
    cursor = tmp_path / "relay-cursor.json"
    cursor.write_text(json.dumps({"epoch": 1, "seq": 3, "hash": "0" * 64}))
    backups = tmp_path / "backups"
    storehub("backup", "run", "--config", str(running.config), "--dest", str(backups))
    code, checks = _doctor(
        running.config,
        "--printer",
        f"127.0.0.1:{listener}",
        "--relay-cursor",
        str(cursor),
        "--backup-dir",
        str(backups),
    )
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == {
        "hub": "ok",
        "broker": "ok",
        "broker files": "ok",
        "tls": "skip",
        "disk": "ok",
        "clock": "ok",
        "database": "ok",
        "printers": "ok",
        "relay": "ok",
        "backups": "ok",
    }
    assert "refuses anonymous clients" in checks["broker"]["detail"]
    assert "3 active device(s)" in checks["broker files"]["detail"]  # two added here, and the hub's own `web`
    assert "entries behind (cursor 3" in checks["relay"]["detail"]


def test_the_human_report_names_every_check(running):
    result = storehub("doctor", "--config", str(running.config))
    assert result.returncode == 0
    for name in ("hub", "broker", "broker files", "disk", "clock", "database", "printers", "relay", "backups"):
        assert f" {name} " in result.stdout
    assert result.stdout.rstrip().endswith("All checks passed.")


def test_printers_and_relay_cursor_come_from_the_config(running, listener, tmp_path):
    loaded = load_config(running.config)
    store_toml = tmp_path / "store.toml"
    store_toml.write_text(
        running.config.read_text()
        + '\n[relay]\nstate_dir = "relay-state"\n'
        + f'\n[[printers]]\nid = "kitchen-1"\naddress = "tcp://127.0.0.1:{listener}"\n'
        + '\n[[printers]]\nid = "bar-1"\naddress = "serial:/dev/ttyUSB-storehub-missing?baud=9600"\n'
    )
    (tmp_path / "relay-state").mkdir()
    (tmp_path / "relay-state" / "cursor.json").write_text(json.dumps({"epoch": 1, "seq": 2, "hash": "0" * 64}))
    findings = {f.check: f for f in run_checks(loaded.model_copy(update={"path": store_toml}))}
    assert findings["printers"].status == "fail"
    assert (
        findings["printers"].detail == "1 of 2 unreachable: /dev/ttyUSB-storehub-missing (no such device: unplugged?)"
    )
    assert findings["relay"].status == "ok"
    assert "(cursor 2," in findings["relay"].detail


def test_stale_or_missing_backups(running, tmp_path):
    loaded = load_config(running.config)
    storehub("backup", "run", "--config", str(running.config), "--dest", str(tmp_path))
    findings = {
        f.check: f for f in run_checks(loaded, Options(backup_dir=tmp_path, now=datetime.now(UTC) + timedelta(hours=3)))
    }
    assert findings["backups"].status == "warn"
    assert "(3.0 h old)" in findings["backups"].detail
    findings = {
        f.check: f for f in run_checks(loaded, Options(backup_dir=tmp_path, now=datetime.now(UTC) + timedelta(days=2)))
    }
    assert findings["backups"].status == "fail"
    assert findings["backups"].fix
    findings = {f.check: f for f in run_checks(loaded, Options(backup_dir=tmp_path / "unmounted"))}
    assert findings["backups"].status == "fail"
    assert "backup medium not mounted?" in findings["backups"].detail


def test_clock_behind_the_ledger_and_relay_lag(running, tmp_path):
    loaded = load_config(running.config)
    cursor = tmp_path / "cursor.json"
    cursor.write_text("0")
    past = {f.check: f for f in run_checks(loaded, Options(now=datetime.now(UTC) - timedelta(hours=1)))}
    assert past["clock"].status == "fail"
    assert "behind the newest ledger entry" in past["clock"].detail
    assert "clock_invalid" in past["clock"].detail
    later = {
        f.check: f for f in run_checks(loaded, Options(relay_cursor=cursor, now=datetime.now(UTC) + timedelta(hours=2)))
    }
    assert later["relay"].status == "warn"
    assert "oldest unsent 2.0 h old" in later["relay"].detail
    cursor.write_text("{not json")
    broken = {f.check: f for f in run_checks(loaded, Options(relay_cursor=cursor))}
    assert broken["relay"].status == "fail"
    assert exit_code(list(broken.values())) == 1


def test_a_broken_install_fails_clearly(tmp_path):
    hub = HubProcess(write_config(tmp_path / "store")).start()
    hub.add_device("tab-a")
    hub.add_device("tab-b")
    hub.stop()
    broker_dir = hub.data_dir / "broker"
    old_passwd = (broker_dir / "passwd").read_text()
    storehub("device", "revoke", "tab-b", "--config", str(hub.config))
    (broker_dir / "passwd").write_text(old_passwd)  # a stale file: the revoked tablet still gets in
    with (broker_dir / "acl").open("a") as acl:
        acl.write("\nuser tab-a\ntopic readwrite #\n")
    closed_port = free_port()

    code, checks = _doctor(hub.config, "--printer", f"127.0.0.1:{closed_port}")
    assert code == 1
    assert checks["hub"]["status"] == "fail"
    assert "no hub is running" in checks["hub"]["detail"]
    assert checks["broker"]["status"] == "fail"
    assert "cannot connect" in checks["broker"]["detail"]
    files = checks["broker files"]
    assert files["status"] == "fail"
    assert "passwd lets in unregistered or revoked tab-b" in files["detail"]
    assert "acl differs from the registry" in files["detail"]
    assert files["fix"]
    assert checks["printers"]["status"] == "fail"
    assert f"127.0.0.1:{closed_port}" in checks["printers"]["detail"]
    assert checks["database"]["status"] == "ok"

    # A corrupted database: pages overwritten in the middle of the file.
    db = hub.data_dir / "hub.db"
    data = bytearray(db.read_bytes())
    page = 4096
    data[3 * page : 6 * page] = b"\xa5" * (3 * page)
    db.write_bytes(bytes(data))
    _code, checks = _doctor(hub.config)
    assert checks["database"]["status"] == "fail"
    assert "storehub backup restore" in checks["database"]["fix"]


def test_a_broker_that_lets_anyone_in_is_a_failure(tmp_path):
    port = free_port()
    conf = tmp_path / "open.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                code = mqtt_anonymous_connect("127.0.0.1", port, 2)
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.05)
        else:
            pytest.fail("the open broker did not start")
        assert code == 0
        config = write_config(tmp_path / "store", port=port)
        findings = {f.check: f for f in run_checks(load_config(config))}
        assert findings["broker"].status == "fail"
        assert "accepts anonymous clients" in findings["broker"].detail
    finally:
        proc.terminate()
        proc.wait(10)


def test_something_that_is_not_mqtt_on_the_broker_port(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        config = write_config(tmp_path / "store", port=server.getsockname()[1])
        findings = {f.check: f for f in run_checks(load_config(config))}
        assert findings["broker"].status == "fail"
        assert "does not speak MQTT" in findings["broker"].detail
    finally:
        thread.join(5)
        server.close()


def test_bad_input_exits_2(tmp_path, running):
    result = storehub("doctor", "--config", str(running.config), "--printer", "host:notaport", check=False)
    assert result.returncode == 2
    assert "expected HOST or HOST:PORT" in result.stderr
    result = storehub("doctor", "--config", str(tmp_path / "missing.toml"), check=False)
    assert result.returncode == 2
    assert "no such file" in result.stderr


@pytest.fixture
def tls_store(tmp_path):
    config = write_config(tmp_path / "store")
    tls_port = free_port()
    config.write_text(
        f'[tls]\nenabled = true\nmqtt_port = {tls_port}\nnames = ["localhost", "127.0.0.1"]\n\n{config.read_text()}'
    )
    hub = HubProcess(config).start()
    yield hub
    hub.stop()


def test_tls_is_checked_end_to_end(tls_store, tmp_path):
    code, checks = _doctor(tls_store.config)
    assert code == 0, checks
    assert checks["tls"]["status"] == "ok"
    assert "verified by the store CA for localhost, 127.0.0.1" in checks["tls"]["detail"]

    loaded = load_config(tls_store.config)
    soon = {f.check: f for f in run_checks(loaded, Options(now=datetime.now(UTC) + timedelta(days=800)))}
    assert soon["tls"].status == "warn"
    assert "re-issues it" in soon["tls"].detail

    # A server certificate from another CA (a copied file, a forged hub) is caught.
    other = ensure_store_pki(tmp_path / "other", "other-store", ["localhost", "127.0.0.1"])
    (tls_store.data_dir / "tls" / "server.crt").write_bytes(other.server_cert.read_bytes())
    broken = {f.check: f for f in run_checks(loaded)}
    assert broken["tls"].status == "fail"
    assert broken["tls"].detail == "server.crt is not issued by the store CA (ca.crt)"
