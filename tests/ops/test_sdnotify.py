"""sd_notify: READY, WATCHDOG and STOPPING arrive on a real unix datagram socket from a real hub process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hub import sdnotify
from tests.hubproc import REPO, write_config


@pytest.fixture
def notify_socket():
    # A short directory: unix socket paths are limited to 107 bytes and tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = directory / "notify"
    sock.bind(str(path))
    sock.settimeout(30)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def _receive_until(sock: socket.socket, wanted: str, seen: list[str]) -> None:
    while not any(wanted in message.splitlines() for message in seen):
        seen.append(sock.recv(4096).decode())


def test_hub_process_notifies_ready_watchdog_and_stopping(tmp_path, notify_socket):
    sock, path = notify_socket
    config = write_config(tmp_path, tick=0.2)
    env = os.environ | {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    with (tmp_path / "hub.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "hub", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    seen: list[str] = []
    try:
        _receive_until(sock, "READY=1", seen)
        ready = next(m for m in seen if "READY=1" in m.splitlines())
        assert any(line.startswith("STATUS=ready in ") for line in ready.splitlines()), seen
        before = len(seen)
        while sum("WATCHDOG=1" in m.splitlines() for m in seen[before:]) < 3:
            seen.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        _receive_until(sock, "STOPPING=1", seen)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_without_notify_socket_nothing_is_sent():
    assert sdnotify.Notifier.from_environment({}).notify(sdnotify.READY) is False
    assert sdnotify.Notifier.from_environment({"NOTIFY_SOCKET": "relative"}).address is None


def test_environment_is_taken_so_children_do_not_inherit_it():
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}
    notifier = sdnotify.Notifier.from_environment(env)
    assert notifier == sdnotify.Notifier("/run/x", 30.0)
    assert env == {"PATH": "/bin"}
    assert sdnotify.Notifier.from_environment({"WATCHDOG_USEC": "0"}).watchdog_s is None
    assert sdnotify.Notifier.from_environment({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_abstract_socket_address_is_supported():
    name = f"storehub-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert sdnotify.Notifier("@" + name, None).notify("STATUS=hello")
        assert sock.recv(100) == b"STATUS=hello"


def test_watchdog_withholds_pings_while_unhealthy(notify_socket):
    sock, path = notify_socket
    healthy = {"now": False}
    dog = sdnotify.Watchdog(sdnotify.Notifier(str(path), 1.0), lambda: healthy["now"])
    assert dog.beat() is False
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(100)
    healthy["now"] = True
    assert dog.beat() is True
    sock.settimeout(10)
    assert sock.recv(100) == b"WATCHDOG=1"
    assert dog.pings == 1
