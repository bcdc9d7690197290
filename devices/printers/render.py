"""Print documents → ESC/POS bytes, with python-escpos and a capability profile.

A document is the JSON the hub stored with the job (`hub.domain.printing` builds it): a kitchen
`chit`, a customer `receipt`, a `check` (pre-bill) or a shift `report` (X or Z). `render` adds the
banners a worker decides at print time ("REPRINT", "ROUTED FROM <printer>") and the job id, so every
piece of paper can be traced back to its job.

Text is sent in code page 16 (WPC1252, Western European) — every profile we target has it — and a
character outside it prints as "?" instead of breaking the job.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal


def _cache_dirs() -> list[Path]:
    """Where the shared pickle may live: systemd's `CACHE_DIRECTORY`, else the user's XDG cache."""
    found = []
    systemd = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd:
        found.append(Path(systemd))
    with contextlib.suppress(RuntimeError):  # no home directory at all
        found.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "storehub")
    return found


def _own(directory: Path) -> bool:
    """Ours alone: a real directory (not a link), owned by us, writable by nobody else.

    The pickle is loaded with `pickle.load`, so whoever can write it can run code as us.
    """
    info = directory.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _capabilities_cache() -> tuple[Path, Path | None]:
    """A private scratch directory for this import, and the shared cache directory (None: none usable)."""
    for base in _cache_dirs():
        directory = base / "escpos"
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _own(directory):
                continue
            return Path(tempfile.mkdtemp(prefix=".import-", dir=directory)), directory
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="storehub-escpos-")), None


def _fresh(pickle: Path) -> bool:
    """The pickle exists, is whole (only ever moved into place) and is newer than the database."""
    spec = importlib.util.find_spec("escpos")
    if spec is None or spec.origin is None:
        return False
    database = Path(spec.origin).parent / "capabilities.json"
    try:
        return pickle.stat().st_mtime >= database.stat().st_mtime
    except OSError:
        return False


def _import_dummy() -> Any:
    """`escpos.printer.Dummy`, imported with its capability cache kept between processes.

    On import, python-escpos parses its capability database (about 1 MB of JSON, read with a
    pure-Python YAML parser: a third of a second on a Pi-class CPU, in every process) unless it finds
    a pickle of it in `ESCPOS_CAPABILITIES_PICKLE_DIR`. Left alone it uses a fresh temporary
    directory per process, so the pickle is never reused, and it creates one even when told to use
    another, so every process would leave a directory behind in /tmp. We keep the pickle in
    `_cache_dirs()` and import the library with a private scratch directory as its temporary
    directory, removed afterwards.

    The library writes its pickle in place while it parses, so a process starting meanwhile could
    read half a file: a missing or stale pickle is built in the scratch directory and moved into
    place whole. A damaged one (a power cut before it reached the disk) is rebuilt. Children do not
    inherit the setting. An operator's own `ESCPOS_CAPABILITIES_PICKLE_DIR` is used as it is.
    """
    if os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR"):
        from escpos.printer import Dummy  # type: ignore[import-untyped]  # noqa: PLC0415

        return Dummy
    scratch, shared = _capabilities_cache()
    building = shared is None or not _fresh(shared / _PICKLE)
    saved = tempfile.tempdir
    tempfile.tempdir = str(scratch)  # where the library's stray temporary directory lands
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(scratch if building else shared)
    try:
        try:
            from escpos.printer import Dummy  # noqa: PLC0415
        except Exception:
            if building or shared is None:
                raise
            with contextlib.suppress(OSError):
                (shared / _PICKLE).unlink()
            building = True
            os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(scratch)
            from escpos.printer import Dummy  # noqa: PLC0415
        if building and shared is not None:
            with contextlib.suppress(OSError):
                (scratch / _PICKLE).replace(shared / _PICKLE)
        return Dummy
    finally:
        tempfile.tempdir = saved
        os.environ.pop("ESCPOS_CAPABILITIES_PICKLE_DIR", None)
        shutil.rmtree(scratch, ignore_errors=True)


_PICKLE: Final = f"{platform.python_version()}.capabilities.pickle"
"""The file name python-escpos gives its pickle."""
Dummy = _import_dummy()

CODE_PAGE: Final = 16
ENCODING: Final = "cp1252"
COLUMNS: Final = {58: 32, 80: 48}
"""Font A columns per paper width (384 and 576 dots at 12 dots a character)."""
PaperWidth = Literal[58, 80]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the target printer can do, from its python-escpos capability profile."""

    profile: str = "default"
    paper_mm: PaperWidth = 80
    columns: int = 48
    native_qr: bool = True
    partial_cut: bool = True

    @classmethod
    def for_printer(cls, profile: str = "default", paper_mm: PaperWidth = 80) -> Capabilities:
        """Capabilities of a python-escpos profile on a paper width."""
        probe = Dummy(profile=profile)
        return cls(
            profile=profile,
            paper_mm=paper_mm,
            columns=COLUMNS[paper_mm],
            native_qr=probe.profile.supports("qrCode"),
            partial_cut=probe.profile.supports("paperPartCut"),
        )


class RenderError(ValueError):
    """The document cannot be printed (unknown kind or missing field)."""


def render(doc: dict[str, Any], caps: Capabilities, *, banners: tuple[str, ...] = ()) -> bytes:
    """The ESC/POS bytes of one job: init, banners, job id, the document, feed and cut."""
    out = _Writer(caps)
    out.init()
    for banner in (*banners, *doc.get("banners", ())):
        out.banner(str(banner))
    kind = doc.get("kind")
    try:
        if kind == "chit":
            _chit(out, doc)
        elif kind in {"receipt", "check"}:
            _receipt(out, doc)
        elif kind == "report":
            _report(out, doc)
        elif kind == "test":
            out.line("StoreHub test page", bold=True, align="center", size=2)
            out.line(str(doc.get("note", "")), align="center")
        else:
            raise RenderError(f"unknown document kind {kind!r}")
    except KeyError as exc:
        raise RenderError(f"{kind} document lacks {exc.args[0]!r}") from exc
    out.small(f"JOB {doc.get('job_id', '?')}")
    out.cut()
    return out.bytes()


def kick_bytes(pin: int, on_ms: int = 100, off_ms: int = 200) -> bytes:
    """`ESC p m t1 t2` for drawer pin 2 or 5 (times in 2 ms units)."""
    if pin not in {2, 5}:
        raise ValueError("a drawer hangs on pin 2 or pin 5")
    return bytes([0x1B, 0x70, 0 if pin == 2 else 1, min(255, on_ms // 2), min(255, off_ms // 2)])  # noqa: PLR2004


def money(cents: int, currency: str = "") -> str:
    """`1234` → `12.34` (minus sign kept), with the currency code when given."""
    sign = "-" if cents < 0 else ""
    value = f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
    return f"{value} {currency}".strip()


# -- documents --------------------------------------------------------------------------------
def _chit(out: _Writer, doc: dict[str, Any]) -> None:
    out.line(str(doc["station"]).upper(), align="center", bold=True, size=2)
    where = f"Table {doc['table']}" if doc.get("table") else str(doc.get("channel", "")).replace("_", " ").title()
    out.line(f"#{doc['number']}  {where}", bold=True, size=2)
    if doc.get("name"):
        out.line(str(doc["name"]), size=2)
    details = [f"Server {doc['server']}" if doc.get("server") else "", str(doc.get("fired_at", ""))[11:16]]
    out.line("  ".join(d for d in details if d))
    if doc.get("course") is not None:
        out.line(f"COURSE {doc['course']}", bold=True)
    if doc.get("priority"):
        out.banner("RUSH")
    if doc.get("reason"):
        out.line(f"Reason: {doc['reason']}")
    out.rule()
    for line in doc["lines"]:
        seat = f" (seat {line['seat']})" if line.get("seat") else ""
        prefix = "VOID " if line.get("voided") else ""
        out.line(f"{prefix}{line['qty']} x {line['name']}{seat}", bold=True, size=2)
        for modifier in line.get("modifiers", []):
            out.line(f"    {modifier}", size=2)
        if line.get("allergy"):
            out.line(f"    ALLERGY: {line['allergy']}", bold=True, invert=True)
        if line.get("note"):
            out.line(f"    NOTE: {line['note']}")
    out.rule()


def _receipt(out: _Writer, doc: dict[str, Any]) -> None:
    store = doc.get("store", {})
    currency = str(store.get("currency", ""))
    out.line(str(store.get("name", "")), align="center", bold=True, size=2)
    title = "CHECK" if doc["kind"] == "check" else "RECEIPT"
    out.line(f"{title} #{doc['number']}", align="center", bold=True)
    who = [f"Table {doc['table']}" if doc.get("table") else "", f"Server {doc['server']}" if doc.get("server") else ""]
    out.line("  ".join(w for w in who if w), align="center")
    out.line(str(doc.get("at", ""))[:16].replace("T", " "), align="center")
    out.rule()
    for line in doc["lines"]:
        out.pair(f"{line['qty']} {line['name']}", money(line["amount"]))
        for modifier in line.get("modifiers", []):
            out.line(f"  {modifier}")
    out.rule()
    out.pair("Subtotal", money(doc["subtotal"]))
    if doc.get("discount"):
        out.pair("Discount", money(-int(doc["discount"])))
    for tax in doc.get("taxes", []):
        label = f"Tax {tax['rate_bp'] / 100:g}%{' incl.' if tax.get('inclusive') else ''}"
        out.pair(f"{label} on {money(tax['base'])}", money(tax["tax"]))
    out.pair("TOTAL", money(doc["total"], currency), bold=True, size=2)
    for payment in doc.get("payments", []):
        out.pair(str(payment["kind"]).title(), money(payment["amount"]))
        if payment.get("tendered"):
            out.pair("  Tendered", money(payment["tendered"]))
        if payment.get("change"):
            out.pair("  Change", money(payment["change"]), bold=True)
        if payment.get("tip"):
            out.pair("  Tip", money(payment["tip"]))
    if doc["kind"] == "check":
        out.ln()
        out.pair("Tip", "__________")
        out.ln()
        out.pair("Total", "__________")
    elif doc.get("balance"):
        out.pair("Balance due", money(doc["balance"], currency), bold=True)
    out.ln()
    out.qr(str(doc["ticket_id"]))
    out.line("Thank you!", align="center")


def _report(out: _Writer, doc: dict[str, Any]) -> None:
    kind = str(doc["report_kind"]).upper()
    out.line(f"{kind} REPORT", align="center", bold=True, size=2)
    out.line(str(doc.get("store", "")), align="center")
    out.line(f"Shift {doc['shift_id']}", align="center")
    out.rule()
    _report_items(out, doc.get("report", {}), indent=0)


def _report_items(out: _Writer, data: Any, indent: int) -> None:
    pad = " " * indent
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict | list):
                if value:
                    out.line(f"{pad}{key}:", bold=indent == 0)
                    _report_items(out, value, indent + 2)
            elif isinstance(value, int) and not isinstance(value, bool) and _is_money_key(str(key)):
                out.pair(f"{pad}{key}", money(value))
            else:
                out.pair(f"{pad}{key}", str(value))
    elif isinstance(data, list):
        for item in data:
            _report_items(out, item, indent)
            out.line("")
    else:
        out.line(f"{pad}{data}")


def _is_money_key(key: str) -> bool:
    words = ("amount", "sales", "total", "tax", "tip", "cash", "float", "pay", "drops", "discount", "refund", "over")
    return any(w in key for w in words) and "count" not in key


# -- the byte writer --------------------------------------------------------------------------
class _Writer:
    """python-escpos' Dummy printer with our text encoding and layout helpers."""

    def __init__(self, caps: Capabilities) -> None:
        self.caps = caps
        self.p = Dummy(profile=caps.profile)

    def init(self) -> None:
        self.p.hw("INIT")
        self.p._raw(bytes([0x1B, 0x74, CODE_PAGE]))  # noqa: SLF001 - _raw is python-escpos' output hook

    def text(self, text: str) -> None:
        self.p._raw(text.encode(ENCODING, "replace"))  # noqa: SLF001

    def line(
        self,
        text: str,
        *,
        bold: bool = False,
        align: str = "left",
        size: int = 1,
        invert: bool = False,
    ) -> None:
        width = self.caps.columns // size
        self.p.set(
            align=align,
            bold=bold,
            normal_textsize=size == 1,
            double_width=size == 2,  # noqa: PLR2004
            double_height=size == 2,  # noqa: PLR2004
            invert=invert,
        )
        chunks = _wrap(text, width)
        for chunk in chunks:
            self.text(chunk + "\n")
        self.p.set(align="left", bold=False, normal_textsize=True, invert=False)

    def pair(self, left: str, right: str, *, bold: bool = False, size: int = 1) -> None:
        width = self.caps.columns // size
        room = max(1, width - len(right) - 1)
        left = left if len(left) <= room else left[: room - 1] + "~"
        self.line(f"{left}{' ' * (width - len(left) - len(right))}{right}", bold=bold, size=size)

    def rule(self) -> None:
        self.text("-" * self.caps.columns + "\n")

    def banner(self, text: str) -> None:
        self.line(f" {text} ", bold=True, align="center", size=2, invert=True)

    def small(self, text: str) -> None:
        self.p.set(align="left", font="b")
        self.text(text + "\n")
        self.p.set(font="a")

    def ln(self) -> None:
        self.text("\n")

    def qr(self, data: str) -> None:
        if self.caps.native_qr:
            self.p.set(align="center")
            self.p.qr(data, native=True, size=6 if self.caps.paper_mm == 80 else 4)  # noqa: PLR2004
            self.p.set(align="left")
        else:  # no QR on this printer: the id in plain text still finds the ticket
            self.line(data, align="center")

    def cut(self) -> None:
        self.p.cut(mode="PART" if self.caps.partial_cut else "FULL")

    def bytes(self) -> bytes:
        return bytes(self.p.output)


def _wrap(text: str, width: int) -> list[str]:
    """Hard-wrap at word boundaries (long words are cut) so nothing runs off the paper."""
    if len(text) <= width:
        return [text]
    lead = len(text) - len(text.lstrip(" "))
    indent = " " * min(lead, width // 2)
    out: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else indent + word
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            out.append(current)
        current = indent + word
        while len(current) > width:
            out.append(current[:width])
            current = indent + current[width:]
    if current:
        out.append(current)
    return out
