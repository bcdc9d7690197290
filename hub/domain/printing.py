"""Printing rules, pure: routing config, which jobs a command causes, and the print queue's events.

    follow_up(work)     after a command's handler: `print.queued` for every job its events cause
                        (kitchen chits per station printer on `ticket.fired`, a receipt on
                        `ticket.paid`, the check or receipt of `ticket.print`, the Z report on
                        `shift.closed`); each carries the whole document, so the job prints the
                        same after a restart and its ledger entry shows what was printed
    PRINT_COMMANDS      the operator's and the print service's commands: routing edits and the
                        job outcomes `print.printed` / `print.rerouted` / `print.failed`,
                        `printer.status`, `drawer.kicked`, and `print.test` (a test page queued
                        like any job)

The print queue itself (SQLite table, one worker per printer) is the hub's adapter
(`hub.printing`): it is written in the same transaction as these events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.contract.commands import Station
from hub.contract.types import DeviceId, Id
from hub.domain.errors import Conflict, NotFound
from hub.domain.model import PrinterSpec, PrintingConfig

if TYPE_CHECKING:
    from hub.domain.model import Line, StoreState, Ticket
    from hub.domain.work import Work

PrinterId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrinterIn(_Body):
    """One printer in `printers.configure`."""

    printer_id: PrinterId
    name: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    backup: PrinterId | None = None
    paper_mm: Literal[58, 80] = 80
    drawer_pins: list[Literal[2, 5]] = Field(default_factory=list)


class PrintersConfigure(_Body):
    """`printers.configure`: the whole routing table (replaces the current one)."""

    printers: list[PrinterIn] = Field(default_factory=list)
    stations: dict[Station, list[PrinterId]] = Field(default_factory=dict)
    receipts: PrinterId | None = None
    receipts_by_device: dict[DeviceId, PrinterId] = Field(default_factory=dict)
    expo: PrinterId | None = None


class PrintersRoute(_Body):
    """`printers.route`: point one station (or receipts, or expo) at printers at runtime."""

    station: Station | None = None
    printers: list[PrinterId] = Field(default_factory=list)
    receipts: PrinterId | None = None
    expo: PrinterId | None = None
    backup_of: PrinterId | None = None
    backup: PrinterId | None = None


class PrintDone(_Body):
    """`print.printed`: the printer confirmed the job (`reprint` when it came out again after a fault)."""

    job_id: Id
    printer: PrinterId
    reprint: bool = False
    confirmation: Literal["process_id", "status"] = "process_id"


class PrintReroute(_Body):
    """`print.reroute`: move a held job to the backup printer (`actor`: the manager who did it, see AdminBody)."""

    job_id: Id
    from_printer: PrinterId
    to: PrinterId
    reason: Text
    actor: Id | None = None


class PrintTest(_Body):
    """`print.test`: a test page through the durable queue to one printer (`actor` as in AdminBody)."""

    printer: PrinterId
    actor: Id | None = None


class PrintFailed(_Body):
    """`print.failed`: the job can never print (its document cannot be rendered, or no printer is left)."""

    job_id: Id
    printer: PrinterId
    error: Text


class PrinterStatusIn(_Body):
    """`printer.status`: what the printer reported, ledgered when it changes."""

    printer: PrinterId
    online: bool
    paper: Literal["ok", "near_end", "end"]
    cover_open: bool
    error: str | None = None
    confirmation: Literal["process_id", "status"] = "process_id"


class DrawerKicked(_Body):
    """`drawer.kicked`: a drawer was popped (or the kick expired): who, why, which drawer."""

    drawer: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    reason: Text
    employee_id: Id | None = None
    ticket_id: Id | None = None
    ok: bool
    detail: str | None = None


PRINT_COMMANDS: dict[str, type[BaseModel]] = {
    "printers.configure": PrintersConfigure,
    "printers.route": PrintersRoute,
    "print.printed": PrintDone,
    "print.reroute": PrintReroute,
    "print.test": PrintTest,
    "print.failed": PrintFailed,
    "printer.status": PrinterStatusIn,
    "drawer.kicked": DrawerKicked,
}
"""Operator / print-service commands (device kind `admin`)."""


# -- handlers ---------------------------------------------------------------------------------
def configure(w: Work) -> dict[str, Any]:
    """`printers.configure` → `printers.configured` with the whole table, checked for dangling names."""
    body = w.body(PrintersConfigure)
    config = PrintingConfig(
        printers={
            p.printer_id: PrinterSpec(
                printer_id=p.printer_id,
                name=p.name,
                backup=p.backup,
                paper_mm=p.paper_mm,
                drawer_pins=list(p.drawer_pins),
            )
            for p in body.printers
        },
        stations={s: list(ps) for s, ps in body.stations.items()},
        receipts=body.receipts,
        receipts_by_device=dict(body.receipts_by_device),
        expo=body.expo,
    )
    _check(config)
    data = config.model_dump(mode="json")
    if data == w.state.printing.model_dump(mode="json"):
        return data  # nothing changed: no event (the hub applies its config at every start)
    w.emit("printers.configured", data)
    return data


def route(w: Work) -> dict[str, Any]:
    """`printers.route`: one runtime edit, ledgered as the whole new table."""
    body = w.body(PrintersRoute)
    config = w.state.printing.model_copy(deep=True)
    if body.station is not None:
        if body.printers:
            config.stations[body.station] = list(body.printers)
        else:
            config.stations.pop(body.station, None)
    if body.receipts is not None:
        config.receipts = body.receipts
    if body.expo is not None:
        config.expo = body.expo
    if body.backup_of is not None:
        spec = config.printers.get(body.backup_of)
        if spec is None:
            raise NotFound(f"No printer {body.backup_of!r}", printer=body.backup_of)
        config.printers[body.backup_of] = spec.model_copy(update={"backup": body.backup})
    _check(config)
    data = config.model_dump(mode="json")
    w.emit("printers.configured", data)
    return data


def printed(w: Work) -> None:
    """`print.printed` → event."""
    body = w.body(PrintDone)
    w.emit("print.printed", body.model_dump())


def reroute(w: Work) -> None:
    """`print.reroute` → `print.rerouted` (the backup must be a known printer)."""
    body = w.body(PrintReroute)
    if body.to not in w.state.printing.printers:
        raise NotFound(f"No printer {body.to!r} to reroute to", printer=body.to)
    w.emit(
        "print.rerouted", {"job_id": body.job_id, "from": body.from_printer, "to": body.to, "reason": body.reason}
    )


def test_page(w: Work) -> dict[str, Any]:
    """`print.test` → `print.queued` of a test page on that printer → `{"print_job_id","printer"}`.

    The page goes through the same queue, confirmation and ledger as every chit, so a printed test
    page proves the whole path from the hub to the paper.
    """
    body = w.body(PrintTest)
    spec = w.state.printing.printers.get(body.printer)
    if spec is None:
        raise NotFound(f"No printer {body.printer!r} is configured", printer=body.printer)
    who = w.employee_name(w.actor) if w.employee is not None else "the operator"
    note = f"{spec.name}: test page asked by {who} at {w.stamp}"
    job_id = _queue(w, body.printer, {"kind": "test", "note": note, "store": w.ctx.settings.name})
    return {"print_job_id": job_id, "printer": body.printer}


def failed(w: Work) -> None:
    """`print.failed` → event."""
    w.emit("print.failed", w.body(PrintFailed).model_dump())


def printer_status(w: Work) -> None:
    """`printer.status` → event."""
    w.emit("printer.status", w.body(PrinterStatusIn).model_dump())


def drawer_kicked(w: Work) -> None:
    """`drawer.kicked` → event."""
    w.emit("drawer.kicked", w.body(DrawerKicked).model_dump())


def _check(config: PrintingConfig) -> None:
    known = set(config.printers)
    named = [p for ps in config.stations.values() for p in ps]
    named += [p for p in (config.receipts, config.expo) if p]
    named += list(config.receipts_by_device.values())
    named += [spec.backup for spec in config.printers.values() if spec.backup]
    unknown = sorted({p for p in named if p not in known})
    if unknown:
        raise Conflict(f"Unknown printer(s) {', '.join(unknown)}: add them first", printers=unknown)
    for spec in config.printers.values():
        if spec.backup == spec.printer_id:
            raise Conflict(f"Printer {spec.printer_id} cannot be its own backup", printer=spec.printer_id)


# -- jobs caused by commands ------------------------------------------------------------------
def follow_up(w: Work, result: dict[str, Any] | None = None) -> None:
    """Emit `print.queued` for every job the command's events cause (nothing without printers).

    A `shift.report` with `print` asks for its report on paper: the report in `result` is queued
    on the receipt printer (the command then writes that one event; without a printer it is refused).
    """
    config = w.state.printing
    if w.cmd.type == "shift.report" and getattr(w.cmd.body, "print", False) and result is not None:
        printer = _receipt_printer(config, w.cmd.device_id) if config.printers else None
        if printer is None:
            raise Conflict("No receipt printer is configured to print the report on")
        kind = str(result.get("kind") or getattr(w.cmd.body, "kind", "x"))
        doc = {
            "kind": "report",
            "report_kind": kind,
            "shift_id": result.get("shift_id"),
            "store": w.ctx.settings.name,
            "report": result,
        }
        _queue(w, printer, doc)
    for event in list(w.events):
        if event.type == "ticket.fired" and config.printers:
            _chits(w, event.data)
        elif event.type == "ticket.item_voided" and config.printers and event.data.get("was") != "held":
            _void_chits(w, event.data)
        elif event.type == "ticket.paid" and config.printers:
            printer = _receipt_printer(config, w.cmd.device_id)
            if printer is not None:
                ticket = w.state.tickets[event.data["ticket_id"]]
                _queue(w, printer, receipt_doc(w, ticket, "receipt"), ticket=ticket)
        elif event.type == "print.queued" and "printer" not in event.data:
            _ticket_print(w, event.data)
        elif event.type == "shift.closed" and config.printers:
            printer = _receipt_printer(config, w.cmd.device_id)
            if printer is not None:
                doc = {
                    "kind": "report",
                    "report_kind": "z",
                    "shift_id": event.data["shift_id"],
                    "store": w.ctx.settings.name,
                    "report": event.data["report"],
                }
                _queue(w, printer, doc)


def _receipt_printer(config: PrintingConfig, device_id: str) -> str | None:
    return config.receipts_by_device.get(device_id) or config.receipts


def _queue(w: Work, printer: str, doc: dict[str, Any], *, ticket: Ticket | None = None, station: str = "") -> str:
    job_id = w.ctx.new_id("job")
    doc = {**doc, "job_id": job_id}
    data: dict[str, Any] = {
        "print_job_id": job_id,
        "printer": printer,
        "kind": doc["kind"],
        "station": station or None,
        "ticket_id": ticket.ticket_id if ticket else None,
        "number": ticket.number if ticket else None,
        "doc": doc,
    }
    w.emit("print.queued", data)
    return job_id


def _ticket_print(w: Work, data: dict[str, Any]) -> None:
    """`ticket.print` emitted a bare `print.queued`: give it a printer and its document, in place."""
    printer = _receipt_printer(w.state.printing, w.cmd.device_id)
    if printer is None:
        return  # no printers configured: the job stays bare and the print service fails it, saying why
    ticket = w.state.tickets[data["ticket_id"]]
    doc = receipt_doc(w, ticket, data["kind"]) | {"job_id": data["print_job_id"]}
    data.update({"printer": printer, "station": None, "doc": doc})


def _chits(w: Work, fired: dict[str, Any]) -> None:
    config = w.state.printing
    ticket = w.state.tickets[fired["ticket_id"]]
    wanted = set(fired["line_ids"])
    lines = [line for line in ticket.lines if line.line_id in wanted]
    by_station: dict[str, list[Line]] = {}
    for line in lines:
        for station in line.stations:
            by_station.setdefault(station, []).append(line)
    for station, station_lines in sorted(by_station.items()):
        for printer in config.stations.get(station, []):
            _queue(w, printer, chit_doc(w.state, ticket, station, station_lines, fired), ticket=ticket, station=station)
    if config.expo is not None and lines:
        _queue(w, config.expo, chit_doc(w.state, ticket, "expo", lines, fired), ticket=ticket, station="expo")


def _fire_banner(fired: dict[str, Any]) -> list[str]:
    """A course fired on its own says so on top ("FIRE COURSE 2"); the first fire needs no banner."""
    course = fired.get("course")
    return [f"FIRE COURSE {course}"] if course is not None else []


def _void_chits(w: Work, voided: dict[str, Any]) -> None:
    """A fired line was voided: its stations get a chit with the VOID banner (the KDS shows it too)."""
    config = w.state.printing
    ticket = w.state.tickets[voided["ticket_id"]]
    line = next((x for x in ticket.lines if x.line_id == voided["line_id"]), None)
    if line is None:
        return
    for station in line.stations:
        for printer in config.stations.get(station, []):
            doc = chit_doc(w.state, ticket, station, [line], {}) | {"banners": ["VOID"], "reason": voided["reason"]}
            _queue(w, printer, doc, ticket=ticket, station=station)


def chit_doc(
    state: StoreState, ticket: Ticket, station: str, lines: list[Line], fired: dict[str, Any]
) -> dict[str, Any]:
    """A kitchen chit's document."""
    return {
        "kind": "chit",
        "station": station,
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "table": _table_name(state, ticket),
        "server": _person(state, ticket.server),
        "channel": ticket.channel,
        "name": ticket.name,
        "course": fired.get("course"),
        "banners": _fire_banner(fired),
        "fired_at": _iso(lines),
        "priority": ticket.priority,
        "lines": [
            {
                "line_id": line.line_id,
                "qty": line.qty,
                "name": line.name,
                "modifiers": [m.name for m in line.modifiers],
                "note": line.note,
                "allergy": line.allergy,
                "seat": line.seat,
                "voided": line.state == "voided",
            }
            for line in lines
        ],
    }


def receipt_doc(w: Work, ticket: Ticket, kind: str) -> dict[str, Any]:
    """A receipt's or check's document: lines, tax by rate, discounts, tenders, change."""
    state = w.state
    t = ticket.totals
    return {
        "kind": kind,
        "store": {"name": w.ctx.settings.name, "currency": w.ctx.settings.currency},
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "table": _table_name(state, ticket),
        "server": _person(state, ticket.server),
        "at": w.stamp,
        "lines": [
            {
                "qty": line.qty,
                "name": line.name,
                "amount": line.amounts.gross,
                "modifiers": [m.name for m in line.modifiers],
            }
            for line in ticket.lines
            if line.state != "voided"
        ],
        "subtotal": t.subtotal,
        "discount": t.discount,
        "taxes": [tax.model_dump() for tax in t.taxes],
        "tax_added": t.tax_added,
        "total": t.total,
        "payments": [
            {"kind": p.kind, "amount": p.amount, "tip": p.tip, "tendered": p.tendered, "change": p.change}
            for p in ticket.payments
        ],
        "balance": t.balance,
    }


def _table_name(state: StoreState, ticket: Ticket) -> str | None:
    table = state.tables.get(ticket.table_id) if ticket.table_id else None
    return table.name if table is not None else ticket.table_id


def _person(state: StoreState, employee_id: str | None) -> str | None:
    if employee_id is None:
        return None
    employee = state.staff.get(employee_id)
    return employee.name if employee is not None else employee_id


def _iso(lines: list[Line]) -> str | None:
    times = [line.fired_at for line in lines if line.fired_at is not None]
    if not times:
        return None
    moment = min(times)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
