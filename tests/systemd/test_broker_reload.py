"""The shell steps of the Mosquitto drop-in and the reload service, run for real (as root, like CI).

TLS material is copied where only Mosquitto's group reads it (never the CA key), and a changed
config or certificate restarts the broker while a new password file or ACL only reloads it.
"""

from __future__ import annotations

import grp
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hub.tls import ensure_store_pki
from tests.hubproc import REPO


def _directives(path: Path, key: str) -> list[str]:
    """Every `key=` value of a unit file, with continuation lines joined and `$$` unescaped."""
    text = path.read_text().replace("\\\n", " ")
    values = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]
    return [v.replace("$$", "$") for v in values if v]


def _run(command: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        shlex.split(command.lstrip("+")), env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def store(tmp_path):
    assert os.geteuid() == 0, "these steps chown files to the mosquitto group: run the suite as root (as CI does)"
    data, run, units = tmp_path / "data", tmp_path / "run", tmp_path / "units"
    rendered = subprocess.run(
        ["bash", str(REPO / "systemd" / "install.sh"), "--render-only", str(units),
         "--bin", str(Path(sys.executable).parent), "--data-dir", str(data), "--run-dir", str(run)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    (data / "broker").mkdir(parents=True)
    (data / "broker" / "mosquitto.conf").write_text("listener 1883 192.168.10.2\n")
    ensure_store_pki(data / "tls", "bistro", ["hub.local", "192.168.10.2"])
    calls = tmp_path / "systemctl.calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = os.environ | {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    return {"data": data, "run": run, "units": units, "calls": calls, "env": env}


def _start_mosquitto(store) -> None:
    (pre,) = [
        c
        for c in _directives(store["units"] / "mosquitto.service.d" / "storehub.conf", "ExecStartPre")
        if c.startswith("+")
    ]
    _run(pre, store["env"])


def _reload(store) -> str:
    store["calls"].unlink(missing_ok=True)
    for command in _directives(store["units"] / "storehub-broker-reload.service", "ExecStart"):
        _run(command, store["env"])
    calls: Path = store["calls"]
    return calls.read_text().strip()


def test_mosquitto_gets_the_server_certificate_but_never_the_ca_key(store):
    _start_mosquitto(store)
    copied = store["run"] / "tls"
    assert sorted(p.name for p in copied.iterdir()) == ["ca.crt", "server.crt", "server.key"]
    key = (copied / "server.key").stat()
    assert oct(key.st_mode & 0o777) == "0o640"
    assert key.st_gid == grp.getgrnam("mosquitto").gr_gid
    assert (copied / "server.key").read_bytes() == (store["data"] / "tls" / "server.key").read_bytes()
    dropin = (store["units"] / "mosquitto.service.d" / "storehub.conf").read_text()
    assert f"BindReadOnlyPaths=-{copied}:{store['data']}/tls" in dropin


def test_passwords_reload_while_listener_or_certificate_changes_restart(store):
    _start_mosquitto(store)
    assert _reload(store) == "reload-or-restart mosquitto.service", "a device was paired: reload"
    with (store["data"] / "broker" / "mosquitto.conf").open("a") as conf:
        conf.write("listener 8883 192.168.10.2\n")
    assert _reload(store) == "restart mosquitto.service", "a new listener needs a restart"
    assert _reload(store) == "reload-or-restart mosquitto.service"
    ensure_store_pki(store["data"] / "tls", "bistro", ["hub.local", "192.168.10.3"])  # re-issued for a new IP
    assert _reload(store) == "restart mosquitto.service", "a new certificate needs a restart"
    assert (store["run"] / "tls" / "server.crt").read_bytes() == (store["data"] / "tls" / "server.crt").read_bytes()


def test_without_tls_nothing_is_copied_and_the_broker_still_reloads(store):
    for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
        (store["data"] / "tls" / name).unlink()
    _start_mosquitto(store)
    assert not (store["run"] / "tls").exists()
    assert _reload(store) == "reload-or-restart mosquitto.service"
