"""Splitting a ticket, by lines or evenly, so that the parts always add up to the whole.

By lines: each part becomes a new ticket with those lines (kitchen state and line discounts move
with them); lines in no part stay. When the parts cover every line, the first part stays on the
original ticket. Percent ticket discounts apply to every part; amount ticket discounts are shared
out in proportion to each part's amount by largest remainder. Each part's tax is computed on its own
total, as if it had been rung up alone.

Evenly in N: the original ticket keeps its lines (the kitchen sees nothing change) as share 1 of N,
and N-1 new tickets get copies of the lines for the bill only (no stations). Every line's discount,
net and tax are split between the shares exactly (`money.share_amounts`) and frozen on the share
lines ("fixed" amounts), so the N totals add up to the original total to the cent. Shares cannot
be voided or discounted afterwards; discount before splitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.commands import TicketSplit
from hub.contract.types import format_time
from hub.domain import money
from hub.domain.errors import Conflict, NotFound
from hub.domain.tickets import open_for_change, totals_of
from hub.domain.views import ticket_view

if TYPE_CHECKING:
    from hub.domain.model import Discount, Line, Ticket
    from hub.domain.work import Work


def split(w: Work) -> dict[str, Any]:
    """`ticket.split` → `{"ticket_id","ticket_ids","new_ticket_ids","tickets":[ticket…]}`.

    The `ticket.split` event ends with the totals of every resulting ticket (`totals`: {ticket_id: totals}).
    """
    body = w.body(TicketSplit)
    ticket = open_for_change(w, body.ticket_id)
    if ticket.payments or ticket.refunds:
        raise Conflict(
            f"Ticket #{ticket.number} already has payments; split it before taking any", ticket_id=ticket.ticket_id
        )
    if body.even is not None:
        data = _even(w, ticket, body.even)
    else:
        data = _by_lines(w, ticket, [p.line_ids for p in body.parts or []])
    w.emit("ticket.split", data)
    ids = [p["ticket_id"] for p in data["parts"]]
    if ticket.ticket_id not in ids:
        ids.insert(0, ticket.ticket_id)
    data["totals"] = {tid: totals_of(w.state.tickets[tid]) for tid in ids}
    new = [tid for tid in ids if tid != ticket.ticket_id]
    return {
        "ticket_id": ticket.ticket_id,
        "ticket_ids": ids,
        "new_ticket_ids": new,
        "tickets": [ticket_view(w.state.tickets[tid]) for tid in ids],
    }


def _by_lines(w: Work, ticket: Ticket, parts: list[list[str]]) -> dict[str, Any]:
    live = [line.line_id for line in ticket.lines if line.state != "voided"]
    taken: set[str] = set()
    for line_ids in parts:
        for line_id in line_ids:
            line = ticket.line(line_id)
            if line is None:
                raise NotFound(f"Line {line_id} is not on ticket #{ticket.number}", line_id=line_id)
            if line.state == "voided":
                raise Conflict(f"Line {line_id} ({line.name}) is voided", line_id=line_id)
            if line_id in taken:
                raise Conflict(f"Line {line_id} is in two parts", line_id=line_id)
            taken.add(line_id)
    keeps_first = taken == set(live)
    if keeps_first and len(parts) == 1:
        raise Conflict("That split would leave the ticket as it is", ticket_id=ticket.ticket_id)

    groups: list[list[str]] = [[lid for lid in live if lid not in taken], *parts]
    if keeps_first:
        groups = groups[1:]
    # groups[0] stays on the original ticket; the others become new tickets.
    weights = [sum(_before_ticket_discounts(ticket.line(lid)) for lid in group) for group in groups]
    shared: list[list[dict[str, Any]]] = [[] for _ in groups]
    for d in ticket.discounts:
        values = [d.value] * len(groups) if d.kind == "percent" else money.allocate(d.value, weights)
        for k, value in enumerate(values):
            if value > 0:
                discount_id = d.discount_id if k == 0 else w.ctx.new_id("dsc")
                shared[k].append(_discount_data(d, discount_id, value))

    counter = w.state.ticket_counter
    out: list[dict[str, Any]] = []
    for k, group in enumerate(groups):
        if k == 0:
            if keeps_first:
                out.append({"ticket_id": ticket.ticket_id, "number": ticket.number, "line_ids": group, "discounts": []})
            continue
        counter += 1
        out.append({"ticket_id": w.ctx.new_id("tkt"), "number": counter, "line_ids": group, "discounts": shared[k]})
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "mode": "lines",
        "table_id": ticket.table_id,
        "shift_id": ticket.shift_id,
        "business_day": ticket.business_day,
        "parts": out,
        "source_discounts": shared[0],
    }


def _even(w: Work, ticket: Ticket, count: int) -> dict[str, Any]:
    live = [line for line in ticket.lines if line.state != "voided"]
    if not live or ticket.totals.total <= 0:
        raise Conflict(f"Ticket #{ticket.number} has nothing to split", ticket_id=ticket.ticket_id)
    amounts = [money.Amounts(**line.amounts.model_dump()) for line in live]
    shares = money.share_amounts(amounts, [line.inclusive for line in live], count)
    counter = w.state.ticket_counter
    out: list[dict[str, Any]] = []
    for k, share in enumerate(shares):
        if k == 0:
            ticket_id, number = ticket.ticket_id, ticket.number
        else:
            counter += 1
            ticket_id, number = w.ctx.new_id("tkt"), counter
        out.append(
            {
                "ticket_id": ticket_id,
                "number": number,
                "share": f"{k + 1}/{count}",
                "lines": [
                    {
                        "line_id": line.line_id,
                        "amounts": {
                            "gross": a.gross,
                            "discount": a.discount,
                            "net": a.net,
                            "tax": a.tax,
                            "total": a.total,
                        },
                    }
                    for line, a in zip(live, share, strict=True)
                ],
            }
        )
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "mode": "even",
        "count": count,
        "table_id": ticket.table_id,
        "shift_id": ticket.shift_id,
        "business_day": ticket.business_day,
        "total": ticket.totals.total,
        "parts": out,
    }


def _before_ticket_discounts(line: Line | None) -> int:
    if line is None or line.state == "voided":
        return 0
    if line.fixed:
        return line.amounts.net
    left = line.gross
    for d in line.discounts:
        left -= money.discount_amount(left, d.kind, d.value)
    return left


def _discount_data(d: Discount, discount_id: str, value: int) -> dict[str, Any]:
    return {
        "discount_id": discount_id,
        "line_id": None,
        "kind": d.kind,
        "value": value,
        "reason": d.reason,
        "at": format_time(d.at),
        "by": d.by,
        "approved_by": d.approved_by,
    }
