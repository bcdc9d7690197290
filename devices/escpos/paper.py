"""The paper a printer produced: lines of styled text, QR codes, barcodes, images and cuts.

`Paper.apply(op)` prints one decoded operation; `Paper.text()` gives the plain text (what tests and
the receipt preview search), `Paper.png()` draws the roll with Pillow (what the manager page shows).
The virtual printer and the hub's receipt preview share this code.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from devices.escpos.decoder import (
    Barcode,
    Cut,
    Decoder,
    DrawerKick,
    Feed,
    Init,
    Newline,
    Op,
    Qr,
    Raster,
    Style,
    Text,
)

DOTS_PER_CHAR: Final = 12
"""Font A is 12 dots wide: 48 columns on 80 mm (576 dots), 32 on 58 mm (384 dots)."""
LINE_DOTS: Final = 24
CUT_MARK: Final = "-" * 8 + " cut " + "-" * 8
FONT_FILES: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",  # Debian's fonts-dejavu-core
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
)
"""A monospaced face with the accented letters and € the printers' code pages carry; Pillow's own
default face has none of them (they drew as boxes) and is used only when none of these is there."""
FONT_PX: Final = 18


@dataclass(slots=True)
class PaperLine:
    """One printed line: runs of styled text, or a graphic element."""

    runs: list[Text] = field(default_factory=list)
    align: str = "left"
    graphic: Qr | Barcode | Raster | None = None
    cut: bool = False

    @property
    def text(self) -> str:
        """The line's plain text."""
        if self.cut:
            return CUT_MARK
        if isinstance(self.graphic, Qr):
            return f"[QR {self.graphic.data}]"
        if isinstance(self.graphic, Barcode):
            return f"[BARCODE {self.graphic.data}]"
        if isinstance(self.graphic, Raster):
            return f"[IMAGE {self.graphic.width_bytes * 8}x{self.graphic.height}]"
        return "".join(run.text for run in self.runs)

    @property
    def height(self) -> int:
        """Height in dots."""
        if self.graphic is not None:
            if isinstance(self.graphic, Raster):
                return self.graphic.height
            return 8 * LINE_DOTS if isinstance(self.graphic, Qr) else 4 * LINE_DOTS
        tallest = max((run.style.height for run in self.runs), default=1)
        return LINE_DOTS * tallest + (8 if self.cut else 0)


@dataclass(slots=True)
class Paper:
    """A roll of paper as printed so far (and the drawer kicks seen on the way)."""

    width_dots: int = 576
    lines: list[PaperLine] = field(default_factory=list)
    kicks: list[DrawerKick] = field(default_factory=list)
    _current: PaperLine = field(default_factory=PaperLine)

    @classmethod
    def from_bytes(cls, data: bytes, width_dots: int = 576) -> Paper:
        """Decode and print a complete byte string."""
        paper = cls(width_dots=width_dots)
        for op in Decoder().feed(data):
            paper.apply(op)
        paper.flush()
        return paper

    def apply(self, op: Op) -> None:
        """Print one operation (status and mode commands leave no mark)."""
        if isinstance(op, Text):
            if not self._current.runs:
                self._current.align = op.style.align
            self._current.runs.append(op)
        elif isinstance(op, Newline):
            self._end_line()
        elif isinstance(op, Feed):
            self.flush()
            for _ in range(op.lines):
                self._end_line()
        elif isinstance(op, Cut):
            self.flush()
            self.lines.append(PaperLine(cut=True))
        elif isinstance(op, Qr | Barcode | Raster):
            self.flush()
            self.lines.append(PaperLine(graphic=op, align="center"))
        elif isinstance(op, DrawerKick):
            self.kicks.append(op)
        elif isinstance(op, Init):
            self.flush()

    def flush(self) -> None:
        """Print a partly filled line (ESC/POS prints the line buffer on LF, a feed, or a cut)."""
        if self._current.runs:
            self._end_line()

    def _end_line(self) -> None:
        self.lines.append(self._current)
        self._current = PaperLine()

    def text(self) -> str:
        """Everything printed, as plain text, one line per printed line."""
        return "\n".join(line.text for line in self.lines)

    def png(self) -> bytes:
        """A PNG image of the paper."""
        font, _top = _font()
        height = sum(line.height for line in self.lines) + 2 * LINE_DOTS
        image = Image.new("L", (self.width_dots, max(height, LINE_DOTS)), 255)
        draw = ImageDraw.Draw(image)
        y = LINE_DOTS
        for line in self.lines:
            _draw_line(image, draw, font, line, y, self.width_dots)
            y += line.height
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()


def _draw_line(  # noqa: PLR0917 - a drawing helper with its canvas
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    line: PaperLine,
    y: int,
    width: int,
) -> None:
    if line.cut:
        draw.line([(0, y + 4), (width, y + 4)], fill=128, width=1)
        return
    if isinstance(line.graphic, Raster):
        bitmap = Image.frombytes("1", (line.graphic.width_bytes * 8, line.graphic.height), line.graphic.bits)
        image.paste(bitmap.convert("L").point(lambda v: 255 - v), ((width - bitmap.width) // 2, y))
        return
    if isinstance(line.graphic, Qr | Barcode):
        side = line.height - 16
        box_w = side if isinstance(line.graphic, Qr) else min(width - 32, side * 3)
        left = (width - box_w) // 2
        draw.rectangle([left, y + 4, left + box_w, y + 4 + side - 24], outline=0, width=3)
        draw.text((left + 6, y + side - 16), line.text[:40], fill=0, font=font)
        return
    cells = sum(len(run.text) * run.style.width for run in line.runs) * DOTS_PER_CHAR
    x = {"center": (width - cells) // 2, "right": width - cells}.get(line.align, 0)
    x = max(x, 0)
    for run in line.runs:
        _draw_run(image, font, run, x, y, line.height)
        x += len(run.text) * run.style.width * DOTS_PER_CHAR


def _draw_run(  # noqa: PLR0917
    image: Image.Image,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    run: Text,
    x: int,
    y: int,
    line_height: int,
) -> None:
    style: Style = run.style
    w = max(1, len(run.text) * DOTS_PER_CHAR)
    cell = Image.new("L", (w, LINE_DOTS), 0 if style.invert else 255)
    cell_draw = ImageDraw.Draw(cell)
    ink = 255 if style.invert else 0
    _face, top = _font()
    for i, char in enumerate(run.text):
        cell_draw.text((i * DOTS_PER_CHAR, top), char, fill=ink, font=font)
        if style.bold:
            cell_draw.text((i * DOTS_PER_CHAR + 1, top), char, fill=ink, font=font)
    if style.underline:
        cell_draw.line([(0, LINE_DOTS - 3), (w, LINE_DOTS - 3)], fill=ink, width=style.underline)
    scaled = cell.resize((w * style.width, LINE_DOTS * style.height), Image.Resampling.NEAREST)
    image.paste(scaled, (x, y + line_height - scaled.height))


@functools.cache
def _font() -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, int]:
    """The face the preview draws text with, and the top offset that sits it in a 24-dot line."""
    for path in FONT_FILES:
        try:
            return ImageFont.truetype(path, FONT_PX), 1
        except OSError:
            continue
    return ImageFont.load_default(), 6
