"""A streaming ESC/POS decoder: bytes in, typed operations out.

`Decoder.feed(data)` returns every operation completed by `data` and keeps an incomplete command
for the next call, so the virtual printer can decode a TCP stream as it arrives. Unknown commands
become `Unknown` operations (never an exception): a printer skips what it does not understand.

Real-time commands (`DLE EOT n`, `DLE ENQ n`) are recognised where a command may start. A real
printer also reacts to `10 04` inside image data; our renderer sends no raster data that could
contain it, and the decoder reports what a careful printer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ESC: Final = 0x1B
GS: Final = 0x1D
DLE: Final = 0x10
FS: Final = 0x1C

CODE_PAGES: Final[dict[int, str]] = {
    0: "cp437",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
}
"""`ESC t n` code pages the decoder turns back into text (the renderer uses 16, WPC1252)."""


@dataclass(slots=True)
class Style:
    """The print mode in force for a run of text."""

    bold: bool = False
    underline: int = 0
    width: int = 1
    height: int = 1
    align: str = "left"
    invert: bool = False
    font: int = 0

    def copy(self) -> Style:
        """An independent copy."""
        return Style(self.bold, self.underline, self.width, self.height, self.align, self.invert, self.font)


@dataclass(frozen=True, slots=True)
class Text:
    """Printable text in the given style (no newline inside)."""

    text: str
    style: Style


@dataclass(frozen=True, slots=True)
class Newline:
    """LF: print the line buffer and feed one line."""


@dataclass(frozen=True, slots=True)
class Feed:
    """`ESC d n`: print and feed n lines."""

    lines: int


@dataclass(frozen=True, slots=True)
class Cut:
    """`GS V`: cut the paper (partial or full)."""

    partial: bool


@dataclass(frozen=True, slots=True)
class Qr:
    """`GS ( k` print of the stored QR symbol."""

    data: str
    size: int


@dataclass(frozen=True, slots=True)
class Barcode:
    """`GS k`: a barcode of system `system`."""

    system: int
    data: str


@dataclass(frozen=True, slots=True)
class Raster:
    """`GS v 0`: a raster bit image, `width_bytes * 8` dots wide."""

    width_bytes: int
    height: int
    bits: bytes


@dataclass(frozen=True, slots=True)
class DrawerKick:
    """`ESC p m t1 t2` (pin 2 when m = 0, pin 5 when m = 1) or Star's BEL (pin None)."""

    pin: int | None
    on_ms: int
    off_ms: int


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """`DLE EOT n`: real-time status of kind n (1 printer, 2 offline, 3 error, 4 paper)."""

    n: int


@dataclass(frozen=True, slots=True)
class ProcessIdRequest:
    """`GS ( H` fn 48: answer `37 22 d1 d2 d3 d4 00` once everything before it has printed."""

    pid: bytes


@dataclass(frozen=True, slots=True)
class AsbEnable:
    """`GS a n`: automatic status back for the bits of n (0 turns it off)."""

    mask: int


@dataclass(frozen=True, slots=True)
class Recover:
    """`DLE ENQ n`: recover from a recoverable error (1) or clear buffers and recover (2)."""

    n: int


@dataclass(frozen=True, slots=True)
class Init:
    """`ESC @`: initialise the printer (modes back to default)."""


@dataclass(frozen=True, slots=True)
class Setting:
    """A mode command that changes no text style we draw (line spacing, barcode height, …)."""

    name: str
    args: bytes


@dataclass(frozen=True, slots=True)
class Unknown:
    """Bytes the decoder does not know; a printer skips them."""

    data: bytes


Op = (
    Text
    | Newline
    | Feed
    | Cut
    | Qr
    | Barcode
    | Raster
    | DrawerKick
    | StatusRequest
    | ProcessIdRequest
    | AsbEnable
    | Recover
    | Init
    | Setting
    | Unknown
)


class _NeedMoreError(Exception):
    """The buffer ends inside a command."""


@dataclass(slots=True)
class Decoder:
    """Decode a stream of ESC/POS bytes; the style and code page persist across `feed` calls."""

    style: Style = field(default_factory=Style)
    code_page: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _qr_data: bytes = b""
    _qr_size: int = 3

    def feed(self, data: bytes) -> list[Op]:
        """The operations completed by `data` (an incomplete trailing command waits for more)."""
        self._buffer.extend(data)
        ops: list[Op] = []
        pos = 0
        buf = bytes(self._buffer)
        while pos < len(buf):
            try:
                pos = self._one(buf, pos, ops)
            except _NeedMoreError:
                break
        del self._buffer[:pos]
        return _merge_text(ops)

    @property
    def pending(self) -> int:
        """Bytes received but not yet decoded (an incomplete command)."""
        return len(self._buffer)

    # -- one command --------------------------------------------------------------------------
    def _one(self, buf: bytes, pos: int, ops: list[Op]) -> int:
        byte = buf[pos]
        if byte == ESC:
            return self._esc(buf, pos, ops)
        if byte == GS:
            return self._gs(buf, pos, ops)
        if byte == DLE:
            need(buf, pos, 3)
            kind, n = buf[pos + 1], buf[pos + 2]
            if kind == 0x04:  # noqa: PLR2004 - EOT
                ops.append(StatusRequest(n))
            elif kind == 0x05:  # noqa: PLR2004 - ENQ
                ops.append(Recover(n))
            else:
                ops.append(Unknown(buf[pos : pos + 3]))
            return pos + 3
        if byte == FS:
            need(buf, pos, 2)
            ops.append(Setting("fs", buf[pos + 1 : pos + 2]))  # FS . / FS & (kanji mode on/off)
            return pos + 2
        if byte == 0x0A:  # noqa: PLR2004
            ops.append(Newline())
            return pos + 1
        if byte == 0x07:  # noqa: PLR2004 - Star's drawer kick
            ops.append(DrawerKick(None, 0, 0))
            return pos + 1
        if byte in {0x0D, 0x09, 0x0C}:  # CR is ignored by ESC/POS; HT and FF treated as spacing
            if byte == 0x09:  # noqa: PLR2004
                ops.append(Text("    ", self.style.copy()))
            return pos + 1
        if byte < 0x20:  # noqa: PLR2004
            ops.append(Unknown(buf[pos : pos + 1]))
            return pos + 1
        end = pos
        while end < len(buf) and buf[end] >= 0x20:  # noqa: PLR2004
            end += 1
        ops.append(Text(buf[pos:end].decode(CODE_PAGES.get(self.code_page, "cp437"), "replace"), self.style.copy()))
        return end

    def _esc(self, buf: bytes, pos: int, ops: list[Op]) -> int:
        need(buf, pos, 2)
        cmd = buf[pos + 1]
        one_arg = {ord("E"), ord("-"), ord("a"), ord("t"), ord("!"), ord("M"), ord("d"), ord("3"), ord("G")}
        one_arg |= {ord("V"), ord("{"), ord("J"), ord("R"), ord("c"), ord(" ")}
        if cmd == ord("@"):
            self.style = Style()
            self.code_page = 0
            ops.append(Init())
            return pos + 2
        if cmd == ord("2"):
            ops.append(Setting("line_spacing_default", b""))
            return pos + 2
        if cmd == ord("p"):
            need(buf, pos, 5)
            m, t1, t2 = buf[pos + 2], buf[pos + 3], buf[pos + 4]
            ops.append(DrawerKick(5 if m in {1, ord("1")} else 2, t1 * 2, t2 * 2))
            return pos + 5
        if cmd == ord("$"):
            need(buf, pos, 4)
            ops.append(Setting("absolute_position", buf[pos + 2 : pos + 4]))
            return pos + 4
        if cmd == ord("*"):  # bit image: ESC * m nL nH d…
            need(buf, pos, 5)
            m, count = buf[pos + 2], buf[pos + 3] + 256 * buf[pos + 4]
            size = count * (3 if m in {32, 33} else 1)
            need(buf, pos, 5 + size)
            ops.append(Setting("bit_image", buf[pos + 2 : pos + 5]))
            return pos + 5 + size
        if cmd in one_arg:
            need(buf, pos, 3)
            self._esc_mode(cmd, buf[pos + 2], ops)
            return pos + 3
        ops.append(Unknown(buf[pos : pos + 2]))
        return pos + 2

    def _esc_mode(self, cmd: int, n: int, ops: list[Op]) -> None:
        s = self.style
        if cmd == ord("E"):
            s.bold = bool(n & 1)
        elif cmd == ord("-"):
            s.underline = n if n in {0, 1, 2} else n - 0x30 if n in {0x30, 0x31, 0x32} else 0
        elif cmd == ord("a"):
            s.align = {0: "left", 1: "center", 2: "right", 0x30: "left", 0x31: "center", 0x32: "right"}.get(n, "left")
        elif cmd == ord("t"):
            self.code_page = n
        elif cmd == ord("!"):
            s.font = n & 1
            s.bold = bool(n & 0x08)
            s.height = 2 if n & 0x10 else 1
            s.width = 2 if n & 0x20 else 1
            s.underline = 1 if n & 0x80 else 0
        elif cmd == ord("M"):
            s.font = n & 1
        elif cmd == ord("d"):
            ops.append(Feed(n))
        elif cmd == ord("J"):
            ops.append(Feed(1 if n else 0))
        else:
            ops.append(Setting(f"esc_{chr(cmd)}", bytes([n])))

    def _gs(self, buf: bytes, pos: int, ops: list[Op]) -> int:
        need(buf, pos, 2)
        cmd = buf[pos + 1]
        if cmd == ord("V"):
            need(buf, pos, 3)
            m = buf[pos + 2]
            if m in {65, 66, 97, 98, 103, 104}:  # function B/C/D: a feed amount follows
                need(buf, pos, 4)
                ops.append(Cut(partial=m in {66, 98, 104}))
                return pos + 4
            ops.append(Cut(partial=m in {1, 49}))
            return pos + 3
        if cmd == ord("!"):
            need(buf, pos, 3)
            n = buf[pos + 2]
            self.style.width = (n >> 4) + 1
            self.style.height = (n & 0x0F) + 1
            return pos + 3
        if cmd == ord("B"):
            need(buf, pos, 3)
            self.style.invert = bool(buf[pos + 2] & 1)
            return pos + 3
        if cmd == ord("a"):
            need(buf, pos, 3)
            ops.append(AsbEnable(buf[pos + 2]))
            return pos + 3
        if cmd in {ord("h"), ord("w"), ord("f"), ord("H"), ord("b"), ord("L"), ord("W")}:
            size = 4 if cmd in {ord("L"), ord("W")} else 3
            need(buf, pos, size)
            ops.append(Setting(f"gs_{chr(cmd)}", buf[pos + 2 : pos + size]))
            return pos + size
        if cmd == ord("k"):
            return self._barcode(buf, pos, ops)
        if cmd == ord("v"):
            need(buf, pos, 8)
            xl, xh, yl, yh = buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]
            width, height = xl + 256 * xh, yl + 256 * yh
            need(buf, pos, 8 + width * height)
            ops.append(Raster(width, height, buf[pos + 8 : pos + 8 + width * height]))
            return pos + 8 + width * height
        if cmd == ord("("):
            need(buf, pos, 5)
            fn_class = buf[pos + 2]
            length = buf[pos + 3] + 256 * buf[pos + 4]
            need(buf, pos, 5 + length)
            payload = buf[pos + 5 : pos + 5 + length]
            self._gs_paren(fn_class, payload, ops)
            return pos + 5 + length
        ops.append(Unknown(buf[pos : pos + 2]))
        return pos + 2

    def _gs_paren(self, fn_class: int, payload: bytes, ops: list[Op]) -> None:
        if fn_class == ord("k") and len(payload) >= 3 and payload[0] == ord("1"):  # noqa: PLR2004 - cn 49: QR
            fn = payload[1]
            if fn == ord("P"):
                self._qr_data = payload[3:]
            elif fn == ord("C"):
                self._qr_size = payload[2]
            elif fn == ord("Q"):
                ops.append(Qr(self._qr_data.decode("utf-8", "replace"), self._qr_size))
            else:
                ops.append(Setting("qr", payload))
            return
        if fn_class == ord("H") and len(payload) == 6 and payload[:2] == b"00":  # noqa: PLR2004
            ops.append(ProcessIdRequest(payload[2:6]))
            return
        ops.append(Unknown(bytes([GS, ord("("), fn_class]) + payload))

    def _barcode(self, buf: bytes, pos: int, ops: list[Op]) -> int:
        need(buf, pos, 3)
        m = buf[pos + 2]
        if m <= 6:  # noqa: PLR2004 - function A: NUL-terminated data
            end = buf.find(b"\x00", pos + 3)
            if end < 0:
                raise _NeedMoreError
            ops.append(Barcode(m, buf[pos + 3 : end].decode("ascii", "replace")))
            return end + 1
        need(buf, pos, 4)
        n = buf[pos + 3]
        need(buf, pos, 4 + n)
        ops.append(Barcode(m, buf[pos + 4 : pos + 4 + n].decode("ascii", "replace")))
        return pos + 4 + n


def need(buf: bytes, pos: int, size: int) -> None:
    """Raise `_NeedMoreError` unless `size` bytes are available from `pos`."""
    if len(buf) - pos < size:
        raise _NeedMoreError


def decode(data: bytes) -> list[Op]:
    """Decode a complete byte string."""
    return Decoder().feed(data)


def _merge_text(ops: list[Op]) -> list[Op]:
    """Join adjacent text runs of the same style (code-page switches split them)."""
    merged: list[Op] = []
    for op in ops:
        last = merged[-1] if merged else None
        if isinstance(op, Text) and isinstance(last, Text) and last.style == op.style:
            merged[-1] = Text(last.text + op.text, op.style)
        else:
            merged.append(op)
    return merged
