"""Tickets: open, add items, fire, priority, void items, discounts, void, reopen, print.

Lines are held until fired. Prices, modifiers and taxes come from the menu when a line is added and
stay on the line, so a new menu never changes an open ticket. Tickets' money rules are in money.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.contract.commands import (
    LineIn,
    TicketAddItems,
    TicketDiscount,
    TicketFire,
    TicketOpen,
    TicketPrint,
    TicketPriority,
    TicketReason,
    TicketVoidItem,
)
from hub.domain.days import close_day_if_due
from hub.domain.errors import Conflict, ItemUnavailable, NotFound
from hub.domain.model import Discount, Line, Ticket
from hub.domain.views import ticket_view

if TYPE_CHECKING:
    from hub.contract.menu import Menu, MenuItem, ModifierGroup, ModifierOption
    from hub.domain.work import Work


def open_ticket(w: Work) -> dict[str, Any]:
    """`ticket.open` → `{"ticket_id","number","business_day","table_id"}`; a free table gets seated."""
    body = w.body(TicketOpen)
    close_day_if_due(w)
    shift = w.open_shift()
    ticket_id = body.ticket_id or w.ctx.new_id("tkt")
    if ticket_id in w.state.tickets:
        raise Conflict(f"Ticket {ticket_id} already exists", ticket_id=ticket_id)
    if body.table_id is not None:
        table = w.state.tables.get(body.table_id)
        if table is None:
            raise NotFound(f"Table {body.table_id} does not exist", table_id=body.table_id)
        if table.merged_into:
            raise Conflict(
                f"Table {table.name} is merged into table {table.merged_into}",
                table_id=table.table_id,
                merged_into=table.merged_into,
            )
        if table.seated_at is None:
            w.emit("table.seated", {"table_id": table.table_id, "guests": body.guests, "server": w.employee_id})
    number = w.state.ticket_counter + 1
    business_day = w.state.business_day or shift.business_day
    w.emit(
        "ticket.opened",
        {
            "ticket_id": ticket_id,
            "number": number,
            "business_day": business_day,
            "shift_id": shift.shift_id,
            "table_id": body.table_id,
            "channel": body.channel,
            "name": body.name,
            "guests": body.guests,
            "server": w.employee_id,
        },
    )
    return {"ticket_id": ticket_id, "number": number, "business_day": business_day, "table_id": body.table_id}


def add_items(w: Work) -> dict[str, Any]:
    """`ticket.add_items` → the ticket (lines with server-computed prices, totals).

    Unknown items and modifier options are `not_found`; too few or too many options from a group are
    `conflict`; 86'd items or more than `remaining` are `item_unavailable`. Selling a counted item
    lowers its `remaining` (a `menu.availability_changed` event; at 0 it is 86'd).
    """
    body = w.body(TicketAddItems)
    ticket = open_for_change(w, body.ticket_id)
    menu = w.state.menu
    if menu is None:
        raise Conflict("No menu is loaded yet")
    index = _index(menu)
    seen = {line.line_id for line in ticket.lines}
    specs: list[dict[str, Any]] = []
    wanted: Counter[str] = Counter()
    for item_in in body.items:
        if item_in.line_id in seen:
            raise Conflict(f"Line {item_in.line_id} is already on the ticket", line_id=item_in.line_id)
        seen.add(item_in.line_id)
        item = index.items.get(item_in.menu_item_id)
        if item is None:
            raise NotFound(f"Item {item_in.menu_item_id} is not on the menu", menu_item_id=item_in.menu_item_id)
        wanted[item.id] += item_in.qty
        specs.append(_line_spec(index, item, item_in))
    sold: list[dict[str, Any]] = []
    for item_id, qty in wanted.items():
        availability = w.state.availability.get(item_id)
        if availability is None:
            continue
        name = index.items[item_id].name
        if not availability.available:
            raise ItemUnavailable(f"{name} is 86'd", menu_item_id=item_id)
        if availability.remaining is not None:
            if qty > availability.remaining:
                raise ItemUnavailable(
                    f"Only {availability.remaining} {name} left", menu_item_id=item_id, remaining=availability.remaining
                )
            left = availability.remaining - qty
            sold.append({"menu_item_id": item_id, "available": left > 0, "remaining": left, "reason": "sold"})
    data = {**ticket_facts(w, ticket), "lines": specs}
    w.emit("ticket.items_added", data)
    after = w.state.tickets[ticket.ticket_id]
    amounts = {line.line_id: line.amounts.model_dump() for line in after.lines}
    for spec in specs:
        spec["amounts"] = amounts[spec["line_id"]]
    data["totals"] = totals_of(after)
    for change in sold:
        w.emit("menu.availability_changed", change)
    return ticket_view(after)


def fire(w: Work) -> dict[str, Any]:
    """`ticket.fire` → `{"ticket_id","number","fired":[line…]}`: all held lines, or those of one course."""
    body = w.body(TicketFire)
    ticket = open_for_change(w, body.ticket_id)
    lines = [
        line for line in ticket.lines if line.state == "held" and (body.course is None or line.course == body.course)
    ]
    if not lines:
        what = f"course {body.course}" if body.course is not None else "this ticket"
        raise Conflict(f"Nothing is waiting to be fired for {what}", ticket_id=ticket.ticket_id)
    w.emit(
        "ticket.fired",
        {
            "ticket_id": ticket.ticket_id,
            "number": ticket.number,
            "table_id": ticket.table_id,
            "course": body.course,
            "line_ids": [line.line_id for line in lines],
            "lines": [
                {
                    "line_id": line.line_id,
                    "name": line.name,
                    "qty": line.qty,
                    "stations": list(line.stations),
                    "course": line.course,
                    "seat": line.seat,
                }
                for line in lines
            ],
        },
    )
    after = w.state.tickets[ticket.ticket_id]
    fired = {line.line_id for line in lines}
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "fired": [line.model_dump(mode="json") for line in after.lines if line.line_id in fired],
    }


def priority(w: Work) -> dict[str, Any]:
    """`ticket.priority` → the ticket; unchanged priority writes nothing."""
    body = w.body(TicketPriority)
    ticket = w.ticket(body.ticket_id)
    if ticket.status == "voided":
        raise Conflict(f"Ticket #{ticket.number} was voided", ticket_id=ticket.ticket_id)
    if ticket.priority != body.priority:
        w.emit("ticket.priority_changed", {"ticket_id": ticket.ticket_id, "priority": body.priority})
    return ticket_view(w.state.tickets[ticket.ticket_id])


def void_item(w: Work) -> dict[str, Any]:
    """`ticket.void_item` → the ticket. A held line: server+; a fired one needs a manager or approval."""
    body = w.body(TicketVoidItem)
    ticket = open_for_change(w, body.ticket_id)
    line = _line(ticket, body.line_id)
    if line.state == "voided":
        raise Conflict(f"Line {line.line_id} ({line.name}) is already voided", line_id=line.line_id)
    if line.fixed:
        raise Conflict(
            f"Line {line.line_id} ({line.name}) was split evenly between tickets; it can no longer be voided",
            line_id=line.line_id,
        )
    if line.state != "held":
        w.require("manager", f"Line {line.line_id} was already fired; voiding it")
    probe = ticket.clone()
    probe.replace_line(line.line_id, state="voided")
    probe.reprice()
    _not_below_paid(probe)
    data = {
        **ticket_facts(w, ticket),
        "line_id": line.line_id,
        "name": line.name,
        "qty": line.qty,
        "was": line.state,
        "reason": body.reason,
        "amount": line.list_gross,
        **w.approval(),
    }
    w.emit("ticket.item_voided", data)
    data["totals"] = totals_of(w.state.tickets[ticket.ticket_id])
    close_if_settled(w, ticket.ticket_id)
    return ticket_view(w.state.tickets[ticket.ticket_id])


def discount(w: Work) -> dict[str, Any]:
    """`ticket.discount` (a manager, or approval) → the ticket; the event carries the amount taken off."""
    body = w.body(TicketDiscount)
    ticket = open_for_change(w, body.ticket_id)
    if body.line_id is not None:
        line = _line(ticket, body.line_id)
        if line.state == "voided":
            raise Conflict(f"Line {line.line_id} ({line.name}) is voided", line_id=line.line_id)
        if line.fixed:
            raise Conflict(
                f"Line {line.line_id} ({line.name}) was split evenly; discount before splitting",
                line_id=line.line_id,
            )
    w.require("manager", "A discount")
    spec = {
        "discount_id": w.ctx.new_id("dsc"),
        "line_id": body.line_id,
        "kind": body.kind,
        "value": body.value,
        "reason": body.reason,
        "approved_by": w.approved_by,
    }
    probe = ticket.clone()
    entry = Discount.model_validate({**spec, "at": w.now, "by": w.actor})
    probe_line = probe.line(body.line_id) if body.line_id else None
    if probe_line is not None:
        probe.replace_line(probe_line.line_id, discounts=[*probe_line.discounts, entry])
    else:
        probe.discounts.append(entry)
    probe.reprice()
    amount = probe.totals.discount - ticket.totals.discount
    if amount <= 0:
        raise Conflict("There is nothing left to discount", ticket_id=ticket.ticket_id)
    _not_below_paid(probe)
    data = {**ticket_facts(w, ticket), "discount": spec, "amount": amount, **w.approval()}
    w.emit("ticket.discounted", data)
    data["totals"] = totals_of(w.state.tickets[ticket.ticket_id])
    close_if_settled(w, ticket.ticket_id)
    return ticket_view(w.state.tickets[ticket.ticket_id])


def void(w: Work) -> dict[str, Any]:
    """`ticket.void` (manager) → the ticket, voided; refused once payments were taken (refund first)."""
    body = w.body(TicketReason)
    ticket = w.ticket(body.ticket_id)
    if ticket.status != "open":
        raise Conflict(f"Ticket #{ticket.number} is {ticket.status}; it cannot be voided", ticket_id=ticket.ticket_id)
    if ticket.payments:
        raise Conflict(
            f"Ticket #{ticket.number} has payments; refund them before voiding it", ticket_id=ticket.ticket_id
        )
    w.emit(
        "ticket.voided",
        {
            **ticket_facts(w, ticket),
            "reason": body.reason,
            "amount": ticket.totals.total,
            "line_ids": [line.line_id for line in ticket.lines if line.state != "voided"],
            **w.approval(),
        },
    )
    return ticket_view(w.state.tickets[ticket.ticket_id])


def reopen(w: Work) -> dict[str, Any]:
    """`ticket.reopen` (manager) → the ticket, open again; its sales leave the current shift until it closes again."""
    body = w.body(TicketReason)
    ticket = w.ticket(body.ticket_id)
    if ticket.status not in {"closed", "paid"}:
        raise Conflict(
            f"Ticket #{ticket.number} is {ticket.status}; only a closed ticket can be reopened",
            ticket_id=ticket.ticket_id,
        )
    w.emit(
        "ticket.reopened",
        {**ticket_facts(w, ticket), "reason": body.reason, "reversed": sales_facts(ticket), **w.approval()},
    )
    return ticket_view(w.state.tickets[ticket.ticket_id])


def print_ticket(w: Work) -> dict[str, Any]:
    """`ticket.print` → `{"print_job_id"}` and a `print.queued` event (printing is the print queue's job)."""
    body = w.body(TicketPrint)
    ticket = w.ticket(body.ticket_id)
    job = w.ctx.new_id("job")
    w.emit(
        "print.queued",
        {"print_job_id": job, "kind": body.kind, "ticket_id": ticket.ticket_id, "number": ticket.number},
    )
    return {"print_job_id": job}


# -- shared with payments and splits ----------------------------------------------------------
def open_for_change(w: Work, ticket_id: str) -> Ticket:
    """The ticket if it is open, else NotFound or Conflict."""
    ticket = w.ticket(ticket_id)
    if ticket.status != "open":
        hint = "; reopen it first" if ticket.status in {"closed", "paid"} else ""
        raise Conflict(f"Ticket #{ticket.number} is {ticket.status}{hint}", ticket_id=ticket_id, status=ticket.status)
    return ticket


def ticket_facts(w: Work, ticket: Ticket) -> dict[str, Any]:
    """Who and where of a ticket event: ticket, number, table, and the current shift and business day."""
    shift = w.state.current_shift
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "table_id": ticket.table_id,
        "shift_id": shift.shift_id if shift else ticket.shift_id,
        "business_day": w.state.business_day or ticket.business_day,
    }


def totals_of(ticket: Ticket) -> dict[str, Any]:
    """A ticket's totals as event data."""
    return ticket.totals.model_dump()


def sales_facts(ticket: Ticket) -> dict[str, Any]:
    """What a closed ticket adds to the sales totals (and a reopen takes off again)."""
    t = ticket.totals
    return {
        "subtotal": t.subtotal,
        "discount": t.discount,
        "tax": t.tax,
        "tax_added": t.tax_added,
        "total": t.total,
        "taxes": [x.model_dump() for x in t.taxes],
        "server": ticket.server,
    }


def close_if_settled(w: Work, ticket_id: str) -> None:
    """Close an open ticket whose balance reached zero by payments, discounts or voids."""
    ticket = w.state.tickets[ticket_id]
    t = ticket.totals
    live = any(line.state != "voided" for line in ticket.lines)
    if ticket.status in {"open", "paid"} and t.balance == 0 and live and (t.paid > 0 or t.discount > 0):
        w.emit(
            "ticket.closed",
            {**ticket_facts(w, ticket), **sales_facts(ticket), "paid": t.paid, "tip": t.tip},
        )


def close_settled(w: Work, ticket_ids: list[str]) -> None:
    """Close those open tickets that have nothing left to pay and something on them."""
    for ticket_id in ticket_ids:
        ticket = w.state.tickets.get(ticket_id)
        if ticket is None or ticket.status != "open" or ticket.totals.balance != 0:
            continue
        if any(line.state != "voided" for line in ticket.lines):
            t = ticket.totals
            w.emit("ticket.closed", {**ticket_facts(w, ticket), **sales_facts(ticket), "paid": t.paid, "tip": t.tip})


def _not_below_paid(probe: Ticket) -> None:
    if probe.totals.total < probe.totals.paid:
        raise Conflict(
            f"Ticket #{probe.number} already has {probe.totals.paid} paid; that would bring its total to "
            f"{probe.totals.total}. Refund instead",
            ticket_id=probe.ticket_id,
        )


def _line(ticket: Ticket, line_id: str) -> Line:
    line = ticket.line(line_id)
    if line is None:
        raise NotFound(f"Line {line_id} is not on ticket #{ticket.number}", line_id=line_id)
    return line


# -- the menu, indexed ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _MenuIndex:
    items: dict[str, MenuItem]
    groups: dict[str, ModifierGroup]
    taxes: dict[str, tuple[int, bool]]


_last_index: list[tuple[Menu, _MenuIndex]] = []


def _index(menu: Menu) -> _MenuIndex:
    # Menus are immutable; remember the index of the last one (a pure cache, no I/O).
    if _last_index and _last_index[0][0] is menu:
        return _last_index[0][1]
    index = _MenuIndex(
        items={i.id: i for i in menu.items},
        groups={g.id: g for g in menu.modifier_groups},
        taxes={t.id: (t.rate_bp, t.inclusive) for t in menu.tax_classes},
    )
    _last_index[:] = [(menu, index)]
    return index


def _line_spec(index: _MenuIndex, item: MenuItem, item_in: LineIn) -> dict[str, Any]:
    options: dict[str, tuple[ModifierGroup, ModifierOption]] = {}
    for group_id in item.modifier_groups:
        group = index.groups[group_id]
        for option in group.options:
            options.setdefault(option.id, (group, option))
    chosen: list[dict[str, Any]] = []
    per_group: Counter[str] = Counter()
    for option_id in item_in.modifiers:
        found = options.get(option_id)
        if found is None:
            raise NotFound(
                f"Option {option_id} is not offered with {item.name}", menu_item_id=item.id, option_id=option_id
            )
        group, option = found
        per_group[group.id] += 1
        chosen.append({"option_id": option.id, "group_id": group.id, "name": option.name, "price": option.price})
    for group_id in item.modifier_groups:
        group = index.groups[group_id]
        count = per_group[group_id]
        if count < group.min:
            raise Conflict(
                f"{item.name}: choose at least {group.min} from {group.name}", menu_item_id=item.id, group_id=group_id
            )
        if count > group.max:
            raise Conflict(
                f"{item.name}: choose at most {group.max} from {group.name}", menu_item_id=item.id, group_id=group_id
            )
    rate, inclusive = index.taxes[item.tax_class]
    return {
        "line_id": item_in.line_id,
        "menu_item_id": item.id,
        "name": item.name,
        "qty": item_in.qty,
        "unit_price": item.price,
        "modifiers": chosen,
        "tax_class": item.tax_class,
        "tax_rate_bp": rate,
        "inclusive": inclusive,
        "note": item_in.note or None,
        "allergy": item_in.allergy or None,
        "seat": item_in.seat,
        "course": item_in.course if item_in.course is not None else item.course,
        "stations": list(item.stations),
    }
