"""`storehub-fw printer-test` against ESC/POS peers on real TCP sockets and a pty."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import tty

import pytest

from hub.ports import free_port
from tests.firmware_tools.conftest import storehub_fw


class EscposPeer:
    """Answers DLE EOT n with `status[n]` and, if `confirms`, GS ( H with 37 22 d1..d4 00; records all bytes."""

    def __init__(self, status: dict[int, int] | None = None, *, confirms: bool = True) -> None:
        self.status = status or {1: 0x12, 2: 0x12, 4: 0x12}
        self.confirms = confirms
        self.received = bytearray()

    def feed(self, data: bytes) -> bytes:
        self.received += data
        out = b""
        buffer = bytes(self.received[-len(data) - 12 :])
        for n in (1, 2, 4):
            if data.endswith(b"\x10\x04" + bytes([n])):
                out += bytes([self.status[n]])
        marker = b"\x1d\x28\x48\x06\x00\x30\x30"
        if self.confirms and marker in buffer and len(buffer) >= buffer.index(marker) + 11:
            digits = buffer[buffer.index(marker) + 7 : buffer.index(marker) + 11]
            out += b"\x37\x22" + digits + b"\x00"
        return out


@pytest.fixture
def tcp_printer():
    peers: list[EscposPeer] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            peer = peers[-1]
            conn.settimeout(0.2)
            with conn:
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    conn.sendall(peer.feed(data))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def attach(peer: EscposPeer) -> int:
        peers.append(peer)
        return int(server.getsockname()[1])

    yield attach
    stop.set()
    thread.join(5)
    server.close()


def test_a_healthy_printer_prints_and_confirms(tcp_printer):
    peer = EscposPeer()
    port = tcp_printer(peer)
    result = storehub_fw("printer-test", "--host", "127.0.0.1", "--port", str(port), "--width", "42")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["confirmed"] == "gs_h"
    assert report["status"]["online"] is True
    assert report["status"]["paper_near_end"] is False
    data = bytes(peer.received)
    assert b"\x1b\x40" in data, "initialised"
    assert b"PRINTER TEST" in data
    assert b"123456789012345678901234567890123456789012\n" in data, "a ruler as wide as the paper"
    assert f"job {report['job']}".encode() in data
    assert b"\x1d\x56" in data, "cut"


def test_a_clone_that_never_confirms_is_checked_by_status(tcp_printer):
    port = tcp_printer(EscposPeer(confirms=False))
    result = storehub_fw("printer-test", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["confirmed"] == "dle_eot"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({1: 0x1A, 2: 0x16, 4: 0x12}, "cover open"),
        ({1: 0x1A, 2: 0x32, 4: 0x72}, "paper end"),
        ({1: 0x1A, 2: 0x12, 4: 0x12}, "offline"),
    ],
)
def test_a_printer_that_cannot_print_is_refused_before_printing(tcp_printer, status, reason):
    peer = EscposPeer(status)
    port = tcp_printer(peer)
    result = storehub_fw("printer-test", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    assert f"reports {reason}: fix it and try again" in result.stderr
    assert b"PRINTER TEST" not in peer.received


def test_an_unreachable_printer():
    port = free_port()
    result = storehub_fw("printer-test", "--host", "127.0.0.1", "--port", str(port), "--timeout", "2")
    assert result.returncode == 2
    assert f"printer at 127.0.0.1:{port} unreachable" in result.stderr


def test_a_serial_printer_on_a_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    peer = EscposPeer()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                answer = peer.feed(os.read(master, 4096))
                if answer:
                    os.write(master, answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = storehub_fw("printer-test", "--serial", os.ttyname(slave), "--baud", "9600")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["confirmed"] == "gs_h"
        assert b"PRINTER TEST" in peer.received
    finally:
        stop.set()
        thread.join(5)
        os.close(master)
        os.close(slave)
