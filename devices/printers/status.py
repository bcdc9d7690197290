"""ESC/POS status, read by our own code: DLE EOT 1-4 replies, ASB frames and GS ( H answers.

A printer's answers share one byte stream, so `ResponseReader` tells them apart by their first byte:
`37 22 …` is a process-id answer (7 bytes), `xxx1xx00` starts a 4-byte ASB frame, `0xx1xx10` is a
one-byte DLE EOT reply. The same bits are produced by the virtual printer (`encode_*` below).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

DLE_EOT: Final = b"\x10\x04"
PROCESS_ID_ANSWER: Final = b"\x37\x22"
ASB_ALL: Final = b"\x1d\x61\x0f"
"""`GS a 15`: push drawer, online, error and paper changes."""
ASB_OFF: Final = b"\x1d\x61\x00"

Paper = Literal["ok", "near_end", "end"]


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What a printer says about itself."""

    online: bool = True
    cover_open: bool = False
    paper: Paper = "ok"
    drawer_open: bool = False
    cutter_error: bool = False
    error: bool = False
    feed_button: bool = False

    @property
    def can_print(self) -> bool:
        """Online with paper, cover closed and no error (near-end paper still prints)."""
        return self.online and not self.cover_open and self.paper != "end" and not self.error

    @property
    def fault(self) -> str | None:
        """The reason the printer cannot print, in words, or None."""
        if self.cover_open:
            return "cover open"
        if self.paper == "end":
            return "paper end"
        if self.cutter_error:
            return "cutter error"
        if self.error:
            return "error"
        if not self.online:
            return "offline"
        return None


HEALTHY: Final = PrinterStatus()


class StatusError(ValueError):
    """A status byte that does not match the ESC/POS pattern."""


def status_request(n: int) -> bytes:
    """`DLE EOT n`."""
    return DLE_EOT + bytes([n])


def process_id_request(pid: bytes) -> bytes:
    """`GS ( H 06 00 30 30 d1 d2 d3 d4`: ask for an answer once everything before has printed."""
    if len(pid) != 4 or not all(0x30 <= b <= 0x39 for b in pid):  # noqa: PLR2004
        raise ValueError("a process id is four ASCII digits")
    return b"\x1d\x28\x48\x06\x00\x30\x30" + pid


def is_eot_reply(byte: int) -> bool:
    """Whether a byte has the DLE EOT reply pattern 0xx1xx10."""
    return byte & 0x93 == 0x12  # noqa: PLR2004


def is_asb_first(byte: int) -> bool:
    """Whether a byte can start an ASB frame (bits 0-1 clear, bit 4 set, bit 7 clear)."""
    return byte & 0x93 == 0x10  # noqa: PLR2004


def apply_eot(status: PrinterStatus, n: int, byte: int) -> PrinterStatus:
    """Fold the reply `byte` to `DLE EOT n` into `status`."""
    if not is_eot_reply(byte):
        raise StatusError(f"0x{byte:02x} is not a DLE EOT {n} reply")
    if n == 1:
        return replace(status, online=not byte & 0x08, drawer_open=bool(byte & 0x04))
    if n == 2:  # noqa: PLR2004
        return replace(
            status,
            cover_open=bool(byte & 0x04),
            feed_button=bool(byte & 0x08),
            paper="end" if byte & 0x20 else ("ok" if status.paper == "end" else status.paper),
            error=bool(byte & 0x40),
        )
    if n == 3:  # noqa: PLR2004
        return replace(status, cutter_error=bool(byte & 0x08), error=status.error or bool(byte & 0x68))
    if n == 4:  # noqa: PLR2004
        end = bool(byte & 0x60)
        near = bool(byte & 0x0C)
        return replace(status, paper="end" if end else "near_end" if near else "ok")
    raise StatusError(f"DLE EOT {n} is not a status kind (1-4)")


def parse_asb(frame: bytes) -> PrinterStatus:
    """The status in a 4-byte ASB frame."""
    if len(frame) != 4 or not is_asb_first(frame[0]):  # noqa: PLR2004
        raise StatusError(f"{frame.hex(' ')} is not an ASB frame")
    b1, b2, b3 = frame[0], frame[1], frame[2]
    return PrinterStatus(
        online=not b1 & 0x08,
        drawer_open=bool(b1 & 0x04),
        cover_open=bool(b1 & 0x20),
        feed_button=bool(b1 & 0x40),
        cutter_error=bool(b2 & 0x08),
        error=bool(b2 & 0x6C),
        paper="end" if b3 & 0x0C else "near_end" if b3 & 0x03 else "ok",
    )


def encode_eot(status: PrinterStatus, n: int) -> int:
    """The byte a printer in `status` answers to `DLE EOT n` (the virtual printer's side)."""
    byte = 0x12
    if n == 1:
        byte |= (0x04 if status.drawer_open else 0) | (0 if status.online and status.can_print else 0x08)
    elif n == 2:  # noqa: PLR2004
        byte |= 0x04 if status.cover_open else 0
        byte |= 0x08 if status.feed_button else 0
        byte |= 0x20 if status.paper == "end" else 0
        byte |= 0x40 if status.error or status.cutter_error else 0
    elif n == 3:  # noqa: PLR2004
        byte |= 0x08 if status.cutter_error else 0
    elif n == 4:  # noqa: PLR2004
        byte |= {"ok": 0, "near_end": 0x0C, "end": 0x6C}[status.paper]
    return byte


def encode_asb(status: PrinterStatus) -> bytes:
    """The 4-byte ASB frame a printer in `status` pushes."""
    b1 = 0x10
    b1 |= 0x04 if status.drawer_open else 0
    b1 |= 0 if status.can_print else 0x08
    b1 |= 0x20 if status.cover_open else 0
    b1 |= 0x40 if status.feed_button else 0
    b2 = (0x08 if status.cutter_error else 0) | (0x40 if status.error else 0)
    b3 = {"ok": 0, "near_end": 0x03, "end": 0x0F}[status.paper]
    return bytes([b1, b2, b3, 0x0F])


@dataclass(frozen=True, slots=True)
class EotReply:
    """One DLE EOT reply byte."""

    byte: int


@dataclass(frozen=True, slots=True)
class AsbFrame:
    """One ASB frame, parsed."""

    status: PrinterStatus


@dataclass(frozen=True, slots=True)
class ProcessIdAnswer:
    """A GS ( H answer: the job before it has printed."""

    pid: bytes


@dataclass(frozen=True, slots=True)
class Garbage:
    """A byte that fits no pattern (skipped)."""

    byte: int


Response = EotReply | AsbFrame | ProcessIdAnswer | Garbage


class ResponseReader:
    """Split a printer's byte stream into replies, ASB frames and process-id answers."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Response]:
        """Every complete response in the stream so far."""
        self._buffer.extend(data)
        out: list[Response] = []
        buf = self._buffer
        while buf:
            first = buf[0]
            if first == PROCESS_ID_ANSWER[0]:
                if len(buf) < 7:  # noqa: PLR2004
                    break
                if buf[1] == PROCESS_ID_ANSWER[1]:
                    out.append(ProcessIdAnswer(bytes(buf[2:6])))
                    del buf[:7]
                    continue
            if is_asb_first(first):
                if len(buf) < 4:  # noqa: PLR2004
                    break
                out.append(AsbFrame(parse_asb(bytes(buf[:4]))))
                del buf[:4]
                continue
            if is_eot_reply(first):
                out.append(EotReply(first))
            else:
                out.append(Garbage(first))
            del buf[:1]
        return out
