"""`storehub-fw printer-test`: ask an ESC/POS printer how it is, print a self-test chit, prove it printed.

The chit is rendered with python-escpos (no I/O) and sent over raw TCP (port 9100) or serial.
Before printing, real-time status (DLE EOT 1, 2, 4) is read; a printer that reports offline, cover
open or paper end is refused with the reason. After the chit, `GS ( H` asks the printer to answer
once everything before it has printed (PRINTERS.md); clone printers that never answer it are
checked with DLE EOT again instead, and the result says which proof was obtained.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from escpos.printer import Dummy  # type: ignore[import-untyped, unused-ignore]

if TYPE_CHECKING:
    from collections.abc import Iterator

DLE_EOT: Final = b"\x10\x04"
STATUS_TIMEOUT_S: Final = 2.0
CONFIRM_SILENCE_S: Final = 3.0
CONFIRM_TIMEOUT_S: Final = 10.0
_FIXED_MASK: Final = 0b10010011
_FIXED_BITS: Final = 0b00010010
_OFFLINE: Final = 0x08
_COVER_OPEN: Final = 0x04
_PAPER_END_STOP: Final = 0x20
_ERROR: Final = 0x40
_NEAR_END: Final = 0x0C
_PAPER_END: Final = 0x60


class PrinterTestError(Exception):
    """The printer cannot be reached or refuses to print; the message says why."""


class _Link(Protocol):
    def send(self, data: bytes) -> None: ...
    def receive(self, size: int, timeout: float) -> bytes: ...


def print_self_test(
    *,
    host: str | None = None,
    port: int = 9100,
    serial_device: str | None = None,
    baud: int = 19200,
    width: int = 48,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Print the self-test chit; returns the status read and how the print was confirmed."""
    where = f"{host}:{port}" if host else str(serial_device)
    with _connect(host, port, serial_device, baud, timeout) as link:
        before = read_status(link)
        problem = blocking_problem(before)
        if problem is not None:
            raise PrinterTestError(f"printer at {where} reports {problem}: fix it and try again")
        job = f"{secrets.randbelow(10_000):04d}"
        link.send(render_chit(where, job, width))
        confirmed = _confirm(link, job.encode("ascii"))
        after = read_status(link) if confirmed != "gs_h" else before
        problem = blocking_problem(after)
        if problem is not None:
            raise PrinterTestError(f"printer at {where} reports {problem} after the test chit")
    return {"printer": where, "job": job, "status": after, "confirmed": confirmed}


def render_chit(where: str, job: str, width: int) -> bytes:
    """The self-test chit as ESC/POS bytes."""
    chit = Dummy()
    chit.hw("INIT")
    chit.set(align="center", bold=True, double_height=True, double_width=True)
    chit.text("STOREHUB\nPRINTER TEST\n")
    chit.set_with_default(align="center")
    chit.text(f"{where}\n{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC\njob {job}\n")
    chit.set_with_default()
    chit.text("-" * width + "\n")
    chit.text("".join(str(i % 10) for i in range(1, width + 1)) + "\n")
    chit.set(bold=True)
    chit.text("Bold line\n")
    chit.set_with_default(underline=1)
    chit.text("Underlined line\n")
    chit.set_with_default(double_height=True, double_width=True)
    chit.text("2x SIZE\n")
    chit.set_with_default()
    chit.text("Accents: é è ñ ü ß €\n")
    chit.text("-" * width + "\n")
    chit.set_with_default(align="center")
    chit.text("If you can read every line, the printer is ready.\n")
    chit.set_with_default()
    chit.cut()
    data: bytes = chit.output
    return data


def read_status(link: _Link) -> dict[str, Any]:
    """DLE EOT 1, 2 and 4; `answered` is False when the printer keeps silent (some clones)."""
    answers: dict[int, int] = {}
    for n in (1, 2, 4):
        link.send(DLE_EOT + bytes([n]))
        byte = link.receive(1, STATUS_TIMEOUT_S)
        if len(byte) != 1 or byte[0] & _FIXED_MASK != _FIXED_BITS:
            return {"answered": False}
        answers[n] = byte[0]
    return {
        "answered": True,
        "online": not answers[1] & _OFFLINE,
        "cover_open": bool(answers[2] & _COVER_OPEN),
        "paper_end_stop": bool(answers[2] & _PAPER_END_STOP),
        "error": bool(answers[2] & _ERROR),
        "paper_near_end": bool(answers[4] & _NEAR_END),
        "paper_end": bool(answers[4] & _PAPER_END),
    }


def blocking_problem(status: dict[str, Any]) -> str | None:
    """Why the printer cannot print now, from its status (None when fine or unknown)."""
    if not status.get("answered"):
        return None
    for key, text in (
        ("cover_open", "cover open"),
        ("paper_end", "paper end"),
        ("paper_end_stop", "paper end"),
        ("error", "an error (cutter jam or overheat)"),
    ):
        if status.get(key):
            return text
    if not status.get("online"):
        return "offline"
    return None


def _confirm(link: _Link, process_id: bytes) -> str:
    """GS ( H with 4 ASCII digits: the printer answers 37 22 d1..d4 00 once everything before has printed."""
    link.send(b"\x1d\x28\x48\x06\x00\x30\x30" + process_id)
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    buffer = b""
    expected = b"\x37\x22" + process_id + b"\x00"
    while (remaining := deadline - time.monotonic()) > 0:
        chunk = link.receive(1, min(remaining, CONFIRM_SILENCE_S))
        if not chunk:
            break  # a clone that never answers GS ( H
        buffer += chunk
        if expected in buffer:
            return "gs_h"
    return "dle_eot"


@contextlib.contextmanager
def _connect(host: str | None, port: int, serial_device: str | None, baud: int, timeout: float) -> Iterator[_Link]:
    if host:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PrinterTestError(
                f"printer at {host}:{port} unreachable: {exc.strerror or exc} (power, cable, IP address?)"
            ) from exc
        try:
            yield _TcpLink(sock)
        except OSError as exc:
            raise PrinterTestError(f"printer at {host}:{port} dropped the connection: {exc}") from exc
        finally:
            sock.close()
        return
    import serial  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    try:
        port_handle = serial.Serial(serial_device, baud, timeout=timeout, write_timeout=timeout, exclusive=True)
    except serial.SerialException as exc:
        raise PrinterTestError(f"printer at {serial_device}: cannot open: {exc}") from exc
    try:
        yield _SerialLink(port_handle)
    except serial.SerialException as exc:
        raise PrinterTestError(f"printer at {serial_device}: {exc}") from exc
    finally:
        port_handle.close()


class _TcpLink:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, size: int, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            return b""


class _SerialLink:
    def __init__(self, port: Any) -> None:
        self.port = port

    def send(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def receive(self, size: int, timeout: float) -> bytes:
        self.port.timeout = timeout
        data: bytes = self.port.read(size)
        return data
