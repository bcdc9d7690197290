"""evolve: apply one ledger event's facts to the state and say which entities it touched.

Everything that depends on the clock, the settings or a decision (prices, tax, ticket numbers,
business day, expiry times, change due, refund amounts) travels in the event data; evolve only
applies it, plus deterministic sums (a ticket's totals from its lines). Replaying the ledger from
seq 1 into `StoreState.empty()` therefore rebuilds the state exactly.

Entities are edited only through `edit()`, so `decide` can run evolve on a copy-on-write overlay.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.contract.menu import Menu
from hub.contract.types import parse_time
from hub.domain.model import (
    Availability,
    CashMovement,
    Device,
    Discount,
    Employee,
    EmployeeTotals,
    Line,
    LineAmounts,
    LoginFailure,
    Payment,
    PeriodTotals,
    PrintingConfig,
    Refund,
    Shift,
    StaffSession,
    StoreIdentity,
    StoreState,
    Table,
    TableStatus,
    TaxLine,
    TenderTotals,
    Ticket,
    tax_key,
)
from hub.domain.overlay import edit

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.domain.messages import EntityRef, LedgerEvent


def evolve(state: StoreState, event: LedgerEvent) -> set[EntityRef]:
    """Apply `event` to `state` in place; return the (kind, id) of every entity it touched."""
    apply = _APPLIERS.get(event.type)
    if apply is None:
        return set()  # device.status, printer.status, print.*: nothing of the store state changes
    step = _Step(state, event, ms(event.at))
    apply(step)
    return step.touched


def ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut to the millisecond the ledger keeps."""
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@dataclass(slots=True)
class _Step:
    state: StoreState
    event: LedgerEvent
    at: datetime
    touched: set[EntityRef] = field(default_factory=set)

    @property
    def data(self) -> dict[str, Any]:
        return self.event.data

    def ticket(self, ticket_id: str) -> Ticket:
        self.touched.add(("ticket", ticket_id))
        return edit(self.state.tickets, ticket_id)

    def table(self, table_id: str) -> Table:
        self.touched.add(("table", table_id))
        return edit(self.state.tables, table_id)

    def store(self) -> None:
        self.touched.add(("store", "store"))

    def book(self, shift_id: str | None, change: Callable[[PeriodTotals], None]) -> None:
        """Apply a change of running totals to the shift, the business day and the grand totals."""
        if shift_id and shift_id in self.state.shifts:
            change(edit(self.state.shifts, shift_id).totals)
            self.touched.add(("shift", shift_id))
        for period in ("day", "grand"):
            if period not in self.state.periods:
                self.state.periods[period] = PeriodTotals()
            change(edit(self.state.periods, period))
        self.store()


# -- staff, sessions, devices -----------------------------------------------------------------
def _staff_added(s: _Step) -> None:
    d = s.data
    eid = d["employee_id"]
    s.state.staff[eid] = Employee(employee_id=eid, name=d["name"], role=d["role"], active=True, added_at=s.at)
    s.touched.add(("staff", eid))


def _staff_deactivated(s: _Step) -> None:
    eid = s.data["employee_id"]
    if eid in s.state.staff:
        emp = edit(s.state.staff, eid)
        emp.active = False
        emp.deactivated_at = s.at
        s.touched.add(("staff", eid))
    _end_sessions(s, s.data.get("ended_sessions", []))


def _staff_role_changed(s: _Step) -> None:
    eid = s.data["employee_id"]
    edit(s.state.staff, eid).role = s.data["role"]
    s.touched.add(("staff", eid))
    for key in s.data.get("sessions", []):
        if key in s.state.sessions:
            edit(s.state.sessions, key).role = s.data["role"]
            s.touched.add(("session", key))


def _staff_pin_reset(s: _Step) -> None:
    eid = s.data["employee_id"]
    s.touched.add(("staff", eid))
    if s.state.login_failures.pop(f"emp:{eid}", None) is not None:
        s.store()


def _staff_login_failed(s: _Step) -> None:
    d = s.data
    failure = LoginFailure(employee_id=d["employee_id"], device=d["device"], at=s.at)
    prune_before = parse_time(d["prune_before"]) if d.get("prune_before") else None
    for key in (f"emp:{d['employee_id']}", f"dev:{d['device']}"):
        if key not in s.state.login_failures:
            s.state.login_failures[key] = []
        kept = edit(s.state.login_failures, key)
        kept.append(failure)
        if prune_before is not None:
            kept[:] = [f for f in kept if f.at >= prune_before]
    s.store()


def _staff_logged_in(s: _Step) -> None:
    d = s.data
    _end_sessions(s, d.get("ended_sessions", []))
    s.state.sessions[d["session"]] = StaffSession(
        employee_id=d["employee_id"],
        role=d["role"],
        issued_at=s.at,
        expires_at=parse_time(d["expires_at"]),
        device=d["device"],
    )
    s.touched.add(("session", d["session"]))
    if s.state.login_failures.pop(f"emp:{d['employee_id']}", None) is not None:
        s.store()


def _staff_logged_out(s: _Step) -> None:
    _end_sessions(s, [s.data["session"]])


def _end_sessions(s: _Step, keys: list[str]) -> None:
    for key in keys:
        s.state.sessions.pop(key, None)
        s.touched.add(("session", key))


def _device_paired(s: _Step) -> None:
    d = s.data
    s.state.devices[d["device_id"]] = Device(
        device_id=d["device_id"], kind=d["kind"], stations=list(d.get("stations", [])), active=True, paired_at=s.at
    )
    s.touched.add(("device", d["device_id"]))


def _device_revoked(s: _Step) -> None:
    did = s.data["device_id"]
    if did in s.state.devices:
        device = edit(s.state.devices, did)
        device.active = False
        device.revoked_at = s.at
        s.touched.add(("device", did))
    _end_sessions(s, s.data.get("ended_sessions", []))


# -- menu -------------------------------------------------------------------------------------
def _menu_published(s: _Step) -> None:
    menu = Menu.model_validate(s.data["menu"])
    s.state.menu = menu
    s.touched.add(("menu", "menu"))
    on_menu = {item.id for item in menu.items}
    for item_id in [i for i in s.state.availability if i not in on_menu]:
        del s.state.availability[item_id]
        s.touched.add(("availability", item_id))


def _availability_changed(s: _Step) -> None:
    d = s.data
    item_id = d["menu_item_id"]
    s.touched.add(("availability", item_id))
    if d["available"] and d.get("remaining") is None:
        s.state.availability.pop(item_id, None)  # back to normal: off the 86 board
        return
    s.state.availability[item_id] = Availability(available=d["available"], remaining=d.get("remaining"))


# -- tables -----------------------------------------------------------------------------------
def _store_configured(s: _Step) -> None:
    d = s.data
    s.state.configured = StoreIdentity(
        store_id=d["store_id"],
        name=d["name"],
        currency=d["currency"],
        timezone=d["timezone"],
        business_day_starts_at=d["business_day_starts_at"],
    )
    s.store()


def _table_added(s: _Step) -> None:
    d = s.data
    s.state.tables[d["table_id"]] = Table(
        table_id=d["table_id"], name=d["name"], seats=d.get("seats", 0), area=d.get("area")
    )
    s.touched.add(("table", d["table_id"]))


def _table_updated(s: _Step) -> None:
    d = s.data
    table = s.table(d["table_id"])
    table.name = d["name"]
    table.seats = d.get("seats", 0)
    table.area = d.get("area")


def _table_removed(s: _Step) -> None:
    s.state.tables.pop(s.data["table_id"], None)
    s.touched.add(("table", s.data["table_id"]))


def _table_seated(s: _Step) -> None:
    d = s.data
    table = s.table(d["table_id"])
    _reset_party(table)
    table.guests = d.get("guests")
    table.server = d.get("server")
    table.seated_at = s.at
    table.last_activity_at = s.at
    _refresh_table(s, table.table_id)


def _table_transferred(s: _Step) -> None:
    d = s.data
    src, dst = s.table(d["from"]), s.table(d["to"])
    dst.guests, dst.server, dst.seated_at = src.guests, src.server, src.seated_at
    dst.last_activity_at = s.at
    dst.ticket_ids = list(src.ticket_ids)
    dst.attention = []
    dst.no_order_raised = src.no_order_raised
    for merged in src.merged:
        s.table(merged).merged_into = dst.table_id
        dst.merged.append(merged)
    src.merged = []
    _reset_party(src)
    for ticket_id in d.get("ticket_ids", []):
        if ticket_id in s.state.tickets:
            s.ticket(ticket_id).table_id = dst.table_id
    _refresh_table(s, src.table_id)
    _refresh_table(s, dst.table_id)


def _table_merged(s: _Step) -> None:
    d = s.data
    into = s.table(d["into"])
    if into.seated_at is None:
        into.seated_at = s.at
        into.server = d.get("server")
        into.ticket_ids = []
    into.guests = d.get("guests")
    into.last_activity_at = s.at
    for table_id in d["tables"]:
        src = s.table(table_id)
        into.ticket_ids.extend(t for t in src.ticket_ids if t not in into.ticket_ids)
        for merged in src.merged:
            s.table(merged).merged_into = into.table_id
            into.merged.append(merged)
        src.merged = []
        _reset_party(src)
        src.merged_into = into.table_id
        src.status = "merged"
        into.merged.append(table_id)
    for ticket_id in d.get("ticket_ids", []):
        if ticket_id in s.state.tickets:
            s.ticket(ticket_id).table_id = into.table_id
    _refresh_table(s, into.table_id)


def _table_cleared(s: _Step) -> None:
    table = s.table(s.data["table_id"])
    for released in [*table.merged, *s.data.get("released", [])]:
        if released in s.state.tables:
            other = s.table(released)
            other.merged_into = None
            _reset_party(other)
            other.status = "free"
    table.merged = []
    _reset_party(table)
    table.status = "free"


def _table_attention(s: _Step) -> None:
    table = s.table(s.data["table_id"])
    condition = s.data["condition"]
    if condition not in table.attention:
        table.attention.append(condition)
    if condition == "no_order":
        table.no_order_raised = True


def _reset_party(table: Table) -> None:
    table.guests = None
    table.server = None
    table.seated_at = None
    table.last_activity_at = None
    table.ticket_ids = []
    table.attention = []
    table.no_order_raised = False
    table.status = "free"


def _refresh_table(s: _Step, table_id: str | None) -> None:
    """Derive a table's status from its party and tickets; edit it only when it changes."""
    if table_id is None or table_id not in s.state.tables:
        return
    table = s.state.tables[table_id]
    status = table_status(s.state, table)
    if status != table.status:
        s.table(table_id).status = status


def table_status(state: StoreState, table: Table) -> TableStatus:
    """free, seated (no order yet), ordered (an open ticket has lines), paid (all settled), merged."""
    if table.merged_into:
        return "merged"
    if table.seated_at is None:
        return "free"
    tickets = [state.tickets[t] for t in table.ticket_ids if t in state.tickets]
    if any(t.status == "open" and any(x.state != "voided" for x in t.lines) for t in tickets):
        return "ordered"
    if tickets and all(t.status != "open" for t in tickets) and any(t.status in {"paid", "closed"} for t in tickets):
        return "paid"
    return "seated"


def _activity(s: _Step, ticket: Ticket, ordered: bool = False) -> None:
    """Something happened for the party at the ticket's table: reset its idle timer."""
    table_id = ticket.table_id
    if table_id is None or table_id not in s.state.tables:
        return
    if ticket.ticket_id not in s.state.tables[table_id].ticket_ids:
        return
    table = s.table(table_id)
    table.last_activity_at = s.at
    drop = {"idle", "no_order"} if ordered else {"idle"}
    table.attention = [a for a in table.attention if a not in drop]
    _refresh_table(s, table_id)


# -- tickets ----------------------------------------------------------------------------------
def _ticket_opened(s: _Step) -> None:
    d = s.data
    tid = d["ticket_id"]
    s.state.tickets[tid] = Ticket(
        ticket_id=tid,
        number=d["number"],
        business_day=d.get("business_day"),
        shift_id=d.get("shift_id"),
        table_id=d.get("table_id"),
        channel=d.get("channel", "dine_in"),
        name=d.get("name"),
        guests=d.get("guests"),
        server=d.get("server"),
        opened_at=s.at,
    )
    s.touched.add(("ticket", tid))
    s.state.open_tickets[tid] = d["number"]
    s.state.ticket_counter = d["number"]
    if d.get("business_day"):
        s.state.business_day = d["business_day"]
    s.store()
    table_id = d.get("table_id")
    if table_id and table_id in s.state.tables:
        table = s.table(table_id)
        table.ticket_ids.append(tid)
        _activity(s, s.state.tickets[tid])


_LINE_KEYS = (
    "line_id",
    "menu_item_id",
    "name",
    "qty",
    "unit_price",
    "modifiers",
    "tax_class",
    "tax_rate_bp",
    "inclusive",
    "note",
    "allergy",
    "seat",
    "course",
    "stations",
)


def _items_added(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    for spec in s.data["lines"]:
        fields = {k: spec[k] for k in _LINE_KEYS if k in spec}
        ticket.lines.append(Line.model_validate({**fields, "added_at": s.at, "added_by": s.event.actor}))
    ticket.reprice()
    _activity(s, ticket, ordered=True)


def _fired(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    wanted = set(s.data["line_ids"])
    _each_line(ticket, wanted, {"held"}, lambda _: {"state": "fired", "fired_at": s.at})
    _activity(s, ticket)


def _item_voided(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    ticket.replace_line(s.data["line_id"], state="voided", voided_at=s.at, void_reason=s.data.get("reason"))
    ticket.reprice()
    s.book(s.data.get("shift_id"), lambda t: _add_void(t, s.data.get("amount", 0)))
    _activity(s, ticket)


def _add_void(t: PeriodTotals, amount: int) -> None:
    t.voids_count += 1
    t.voids_amount += amount


def _discounted(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    spec = s.data["discount"]
    discount = Discount(
        discount_id=spec["discount_id"],
        line_id=spec.get("line_id"),
        kind=spec["kind"],
        value=spec["value"],
        reason=spec["reason"],
        at=s.at,
        by=s.event.actor,
        approved_by=spec.get("approved_by"),
    )
    line = ticket.line(discount.line_id) if discount.line_id else None
    if line is not None:
        ticket.replace_line(line.line_id, discounts=[*line.discounts, discount])
    else:
        ticket.discounts.append(discount)
    ticket.reprice()
    _activity(s, ticket)


def _item_started(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    _each_line(ticket, set(s.data["line_ids"]), {"fired"}, lambda _: {"state": "started", "started_at": s.at})


def _item_ready(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    wanted = {x["line_id"] for x in s.data["lines"]}
    _each_line(ticket, wanted, {"fired", "started"}, lambda _: {"state": "ready", "ready_at": s.at})


def _recalled(s: _Step) -> None:
    ticket = s.ticket(s.data["ticket_id"])
    _each_line(
        ticket,
        set(s.data["line_ids"]),
        {"ready"},
        lambda line: {"state": "started" if line.started_at else "fired", "ready_at": None},
    )


def _each_line(
    ticket: Ticket, line_ids: set[str] | None, states: set[str], changes: Callable[[Line], dict[str, Any]]
) -> None:
    """Replace the lines with these ids (all when None) that are in one of `states`."""
    for i, line in enumerate(ticket.lines):
        if (line_ids is None or line.line_id in line_ids) and line.state in states:
            ticket.lines[i] = line.model_copy(update=changes(line))


def _priority_changed(s: _Step) -> None:
    s.ticket(s.data["ticket_id"]).priority = bool(s.data["priority"])


def _split(s: _Step) -> None:
    d = s.data
    src = s.ticket(d["ticket_id"])
    originals = {line.line_id: line for line in src.lines}
    new_ids: list[str] = []
    for part in d["parts"]:
        if part["ticket_id"] == src.ticket_id:
            target = src
        else:
            target = Ticket(
                ticket_id=part["ticket_id"],
                number=part["number"],
                business_day=src.business_day,
                shift_id=src.shift_id,
                table_id=src.table_id,
                channel=src.channel,
                name=src.name,
                server=src.server,
                priority=src.priority,
                opened_at=s.at,
                split_from=src.ticket_id,
            )
            s.state.tickets[target.ticket_id] = target
            s.touched.add(("ticket", target.ticket_id))
            s.state.open_tickets[target.ticket_id] = target.number
            s.state.ticket_counter = max(s.state.ticket_counter, target.number)
            new_ids.append(target.ticket_id)
        if d["mode"] == "lines":
            if target is not src:
                moved = set(part["line_ids"])
                target.lines = [line for line in src.lines if line.line_id in moved]
                src.lines = [line for line in src.lines if line.line_id not in moved]
                target.discounts = [_discount(x) for x in part.get("discounts", [])]
        else:
            fixed = {
                spec["line_id"]: {
                    "fixed": True,
                    "share": part.get("share"),
                    "amounts": LineAmounts.model_validate(spec["amounts"]),
                }
                for spec in part["lines"]
            }
            if target is src:
                src.lines = [
                    line.model_copy(update=fixed[line.line_id]) if line.line_id in fixed else line for line in src.lines
                ]
            else:
                # Copies for the bill only: no stations (the kitchen follows the original), discounts baked in.
                target.lines = [
                    originals[line_id].model_copy(update={**changes, "stations": [], "discounts": []})
                    for line_id, changes in fixed.items()
                ]
    if d["mode"] == "lines":
        src.discounts = [_discount(x) for x in d.get("source_discounts", [])]
    else:
        src.discounts = []
    src.reprice()
    for ticket_id in new_ids:
        s.state.tickets[ticket_id].reprice()
    s.store()
    if src.table_id and src.table_id in s.state.tables and src.ticket_id in s.state.tables[src.table_id].ticket_ids:
        s.table(src.table_id).ticket_ids.extend(new_ids)
        _refresh_table(s, src.table_id)


def _discount(spec: dict[str, Any]) -> Discount:
    return Discount.model_validate(spec)


def _paid(s: _Step) -> None:
    d = s.data
    ticket = s.ticket(d["ticket_id"])
    for spec in d["payments"]:
        ticket.payments.append(
            Payment(
                payment_id=spec["payment_id"],
                kind=spec["kind"],
                amount=spec["amount"],
                tip=spec.get("tip", 0),
                tendered=spec.get("tendered"),
                change=spec.get("change", 0),
                reference=spec.get("reference"),
                at=s.at,
                by=s.event.actor,
                shift_id=d.get("shift_id"),
            )
        )
    ticket.reprice()
    if ticket.totals.balance == 0 and ticket.status == "open":
        ticket.status = "paid"
    server = ticket.server
    actor = s.event.actor

    def change(t: PeriodTotals) -> None:
        for spec in d["payments"]:
            tender = t.payments.setdefault(spec["kind"], TenderTotals())
            tender.count += 1
            tender.amount += spec["amount"]
            tender.tip += spec.get("tip", 0)
            if server:
                t.by_employee.setdefault(server, EmployeeTotals()).tips += spec.get("tip", 0)
            if actor:
                t.by_employee.setdefault(actor, EmployeeTotals()).collected += spec["amount"]

    s.book(d.get("shift_id"), change)
    _activity(s, ticket)


def _closed(s: _Step) -> None:
    d = s.data
    ticket = s.ticket(d["ticket_id"])
    ticket.status = "closed"
    ticket.closed_at = s.at
    s.state.open_tickets.pop(ticket.ticket_id, None)
    s.book(d.get("shift_id"), lambda t: _add_sales(t, d, 1))
    _activity(s, ticket)
    _refresh_table(s, ticket.table_id)


def _reopened(s: _Step) -> None:
    d = s.data
    ticket = s.ticket(d["ticket_id"])
    ticket.status = "open"
    ticket.closed_at = None
    s.state.open_tickets[ticket.ticket_id] = ticket.number
    reversed_sales = d["reversed"]

    def change(t: PeriodTotals) -> None:
        _add_sales(t, reversed_sales, -1)
        t.reopened_count += 1
        t.reopened_amount += reversed_sales["total"]

    s.book(d.get("shift_id"), change)
    _refresh_table(s, ticket.table_id)


def _add_sales(t: PeriodTotals, d: dict[str, Any], sign: int) -> None:
    t.tickets_closed += sign
    t.gross_sales += sign * d["subtotal"]
    t.discounts += sign * d["discount"]
    t.net_sales += sign * (d["subtotal"] - d["discount"])
    t.tax += sign * d["tax"]
    t.tax_added += sign * d["tax_added"]
    t.total += sign * d["total"]
    for tax in d.get("taxes", []):
        key = tax_key(tax["rate_bp"], tax["inclusive"])
        line = t.taxes.setdefault(key, TaxLine(rate_bp=tax["rate_bp"], inclusive=tax["inclusive"]))
        line.base += sign * tax["base"]
        line.tax += sign * tax["tax"]
    server = d.get("server")
    if server:
        emp = t.by_employee.setdefault(server, EmployeeTotals())
        emp.tickets += sign
        emp.net_sales += sign * (d["subtotal"] - d["discount"])
        emp.total += sign * d["total"]


def _voided(s: _Step) -> None:
    d = s.data
    ticket = s.ticket(d["ticket_id"])
    live = {"held", "fired", "started", "ready"}
    _each_line(ticket, None, live, lambda _: {"state": "voided", "voided_at": s.at, "void_reason": d.get("reason")})
    ticket.status = "voided"
    ticket.closed_at = s.at
    ticket.reprice()
    s.state.open_tickets.pop(ticket.ticket_id, None)

    def change(t: PeriodTotals) -> None:
        t.ticket_voids_count += 1
        t.ticket_voids_amount += d.get("amount", 0)

    s.book(d.get("shift_id"), change)
    _refresh_table(s, ticket.table_id)


def _refunded(s: _Step) -> None:
    d = s.data
    ticket = s.ticket(d["ticket_id"])
    spec = d["refund"]
    refund = Refund.model_validate({**spec, "at": s.at, "by": s.event.actor, "shift_id": d.get("shift_id")})
    ticket.refunds.append(refund)
    for part in refund.lines:
        line = ticket.line(part.line_id)
        if line is not None:
            ticket.replace_line(part.line_id, refunded_qty=line.refunded_qty + part.qty)
    ticket.totals.refunded += refund.amount

    def change(t: PeriodTotals) -> None:
        tender = t.refunds.setdefault(refund.tender, TenderTotals())
        tender.count += 1
        tender.amount += refund.amount
        t.refund_tax += refund.tax
        for tax in d.get("taxes", []):
            key = tax_key(tax["rate_bp"], tax["inclusive"])
            line = t.refund_taxes.setdefault(key, TaxLine(rate_bp=tax["rate_bp"], inclusive=tax["inclusive"]))
            line.base += tax["base"]
            line.tax += tax["tax"]

    s.book(d.get("shift_id"), change)


# -- shifts, drawer, day ----------------------------------------------------------------------
def _shift_opened(s: _Step) -> None:
    d = s.data
    sid = d["shift_id"]
    s.state.shifts[sid] = Shift(
        shift_id=sid,
        business_day=d.get("business_day"),
        opened_at=s.at,
        opened_by=s.event.actor,
        opening_float=d["opening_float"],
    )
    s.touched.add(("shift", sid))
    s.state.current_shift_id = sid
    if d.get("business_day"):
        s.state.business_day = d["business_day"]
    s.store()


def _cash_moved(s: _Step) -> None:
    d = s.data
    sid = d["shift_id"]
    if sid in s.state.shifts:
        edit(s.state.shifts, sid).movements.append(
            CashMovement(kind=d["kind"], amount=d["amount"], reason=d["reason"], at=s.at, by=s.event.actor)
        )
    kind, amount = d["kind"], d["amount"]

    def change(t: PeriodTotals) -> None:
        if kind == "pay_in":
            t.pay_in += amount
        elif kind == "pay_out":
            t.pay_out += amount
        else:
            t.drops += amount

    s.book(sid, change)


def _drawer_opened(s: _Step) -> None:
    def change(t: PeriodTotals) -> None:
        t.no_sales += 1

    s.book(s.data.get("shift_id"), change)


def _shift_closed(s: _Step) -> None:
    d = s.data
    sid = d["shift_id"]
    shift = edit(s.state.shifts, sid)
    s.touched.add(("shift", sid))
    shift.status = "closed"
    shift.closed_at = s.at
    shift.closed_by = s.event.actor
    shift.counted_cash = d["counted_cash"]
    shift.expected_cash = d["expected_cash"]
    shift.over_short = d["over_short"]
    shift.z = copy.deepcopy(d["report"])  # never share a dict with the event's data
    if s.state.current_shift_id == sid:
        s.state.current_shift_id = None
    s.state.last_shift_id = sid
    s.store()


def _day_closed(s: _Step) -> None:
    s.state.business_day = s.data.get("next_business_day")
    s.state.ticket_counter = 0
    s.state.periods["day"] = PeriodTotals()
    s.store()


def _printers_configured(s: _Step) -> None:
    s.state.printing = PrintingConfig.model_validate(s.data)  # replaced whole: overlays share nothing
    s.store()


_APPLIERS: dict[str, Callable[[_Step], None]] = {
    "printers.configured": _printers_configured,
    "staff.added": _staff_added,
    "staff.deactivated": _staff_deactivated,
    "staff.role_changed": _staff_role_changed,
    "staff.pin_reset": _staff_pin_reset,
    "staff.login_failed": _staff_login_failed,
    "staff.logged_in": _staff_logged_in,
    "staff.logged_out": _staff_logged_out,
    "device.paired": _device_paired,
    "device.revoked": _device_revoked,
    "menu.published": _menu_published,
    "menu.availability_changed": _availability_changed,
    "store.configured": _store_configured,
    "table.added": _table_added,
    "table.updated": _table_updated,
    "table.removed": _table_removed,
    "table.seated": _table_seated,
    "table.transferred": _table_transferred,
    "table.merged": _table_merged,
    "table.cleared": _table_cleared,
    "table.attention": _table_attention,
    "ticket.opened": _ticket_opened,
    "ticket.items_added": _items_added,
    "ticket.fired": _fired,
    "ticket.item_voided": _item_voided,
    "ticket.discounted": _discounted,
    "ticket.item_started": _item_started,
    "ticket.item_ready": _item_ready,
    "ticket.recalled": _recalled,
    "ticket.priority_changed": _priority_changed,
    "ticket.split": _split,
    "ticket.paid": _paid,
    "ticket.closed": _closed,
    "ticket.reopened": _reopened,
    "ticket.voided": _voided,
    "ticket.refunded": _refunded,
    "shift.opened": _shift_opened,
    "shift.cash_moved": _cash_moved,
    "drawer.opened": _drawer_opened,
    "shift.closed": _shift_closed,
    "day.closed": _day_closed,
}

EVOLVED_TYPES: frozenset[str] = frozenset(_APPLIERS)
"""Event types that change the store state (others, like `print.queued`, change nothing here)."""
