"""Payments and refunds: tenders against a ticket's balance, money back for sold lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.commands import CardTender, CashTender, TicketPay, TicketRefund
from hub.domain import money
from hub.domain.errors import Conflict, NotFound, PaymentDeclined
from hub.domain.tickets import close_if_settled, open_for_change, ticket_facts

if TYPE_CHECKING:
    from hub.domain.work import Work

CARD_DECLINED = "card payments need the central payments service, which is not connected"


def pay(w: Work) -> dict[str, Any]:
    """`ticket.pay` → `{"ticket_id","number","payments":[…],"change_due","paid","total","balance","closed","status"}`.

    Tenders apply in order against the balance. An `external` tender above what is left is refused
    (`conflict`); a `cash` tender above it is capped at the balance and the rest comes back as change,
    so `change = tendered - amount applied - tip`. `card` is `payment_declined` until central's
    payments API is connected. The ticket closes when the balance reaches zero (`ticket.paid`, then
    `ticket.closed`); tips are kept apart from the ticket's total.
    """
    body = w.body(TicketPay)
    ticket = open_for_change(w, body.ticket_id)
    if any(isinstance(t, CardTender) for t in body.tenders):
        raise PaymentDeclined(CARD_DECLINED.capitalize(), ticket_id=ticket.ticket_id)
    remaining = ticket.totals.balance
    if remaining <= 0:
        raise Conflict(f"Ticket #{ticket.number} has nothing left to pay", ticket_id=ticket.ticket_id)
    payments: list[dict[str, Any]] = []
    for tender in body.tenders:
        if remaining == 0:
            raise Conflict("The earlier tenders already cover the balance", ticket_id=ticket.ticket_id)
        if isinstance(tender, CashTender):
            applied = min(tender.amount, remaining)
            payments.append(
                {
                    "payment_id": w.ctx.new_id("pay"),
                    "kind": "cash",
                    "amount": applied,
                    "tip": tender.tip,
                    "tendered": tender.tendered,
                    "change": tender.tendered - applied - tender.tip,
                    "reference": None,
                }
            )
        else:
            if tender.amount > remaining:
                raise Conflict(
                    f"{tender.amount} is more than the {remaining} left to pay on ticket #{ticket.number}",
                    ticket_id=ticket.ticket_id,
                    balance=remaining,
                )
            applied = tender.amount
            payments.append(
                {
                    "payment_id": w.ctx.new_id("pay"),
                    "kind": tender.kind,
                    "amount": applied,
                    "tip": tender.tip,
                    "tendered": None,
                    "change": 0,
                    "reference": getattr(tender, "reference", None),
                }
            )
        remaining -= applied
    change_due = sum(p["change"] for p in payments)
    w.emit(
        "ticket.paid",
        {
            **ticket_facts(w, ticket),
            "payments": payments,
            "amount": sum(p["amount"] for p in payments),
            "tip": sum(p["tip"] for p in payments),
            "change": change_due,
            "balance": remaining,
        },
    )
    close_if_settled(w, ticket.ticket_id)
    after = w.state.tickets[ticket.ticket_id]
    return {
        "ticket_id": after.ticket_id,
        "number": after.number,
        "payments": payments,
        "change_due": change_due,
        "paid": after.totals.paid,
        "total": after.totals.total,
        "balance": after.totals.balance,
        "closed": after.status == "closed",
        "status": after.status,
    }


def refund(w: Work) -> dict[str, Any]:
    """`ticket.refund` (manager) → `{"refund_id","ticket_id","amount","tax","tender","lines":[…],"refunded_total"}`.

    The amount is the hub's: each line's sold total (after discounts, with its share of tax) for the
    quantity refunded, computed cumulatively so refunding every unit in any steps gives back exactly
    what was paid for the line. A quantity above what was sold and not yet refunded is a `conflict`.
    """
    body = w.body(TicketRefund)
    ticket = w.ticket(body.ticket_id)
    if ticket.status != "closed":
        raise Conflict(
            f"Ticket #{ticket.number} is {ticket.status}; only a paid and closed ticket can be refunded",
            ticket_id=ticket.ticket_id,
        )
    if body.tender == "card":
        raise PaymentDeclined(CARD_DECLINED.capitalize(), ticket_id=ticket.ticket_id)
    seen: set[str] = set()
    parts: list[dict[str, Any]] = []
    taxes: dict[tuple[int, bool], list[int]] = {}
    for ask in body.lines:
        if ask.line_id in seen:
            raise Conflict(f"Line {ask.line_id} is listed twice", line_id=ask.line_id)
        seen.add(ask.line_id)
        line = ticket.line(ask.line_id)
        if line is None:
            raise NotFound(f"Line {ask.line_id} is not on ticket #{ticket.number}", line_id=ask.line_id)
        if line.state == "voided":
            raise Conflict(f"Line {line.line_id} ({line.name}) was voided, not sold", line_id=line.line_id)
        left = line.qty - line.refunded_qty
        if ask.qty > left:
            raise Conflict(
                f"Only {left} of line {line.line_id} ({line.name}) can still be refunded",
                line_id=line.line_id,
                refundable=left,
            )
        net = money.cumulative_part(line.amounts.net, line.refunded_qty, ask.qty, line.qty)
        tax = money.cumulative_part(line.amounts.tax, line.refunded_qty, ask.qty, line.qty)
        amount = net if line.inclusive else net + tax
        parts.append({"line_id": line.line_id, "qty": ask.qty, "net": net, "tax": tax, "amount": amount})
        entry = taxes.setdefault((line.tax_rate_bp, line.inclusive), [0, 0])
        entry[0] += net
        entry[1] += tax
    amount = sum(p["amount"] for p in parts)
    if amount <= 0:
        raise Conflict("Those lines were sold for nothing; there is nothing to refund", ticket_id=ticket.ticket_id)
    spec = {
        "refund_id": w.ctx.new_id("rfd"),
        "lines": parts,
        "amount": amount,
        "tax": sum(p["tax"] for p in parts),
        "tender": body.tender,
        "reason": body.reason,
        "approved_by": w.approved_by,
    }
    w.emit(
        "ticket.refunded",
        {
            **ticket_facts(w, ticket),
            "refund": spec,
            "amount": amount,
            "tax": spec["tax"],
            "tender": body.tender,
            "taxes": [
                {"rate_bp": rate, "inclusive": inclusive, "base": base, "tax": tax}
                for (rate, inclusive), (base, tax) in sorted(taxes.items())
            ],
            **w.approval(),
        },
    )
    after = w.state.tickets[ticket.ticket_id]
    return {
        "refund_id": spec["refund_id"],
        "ticket_id": ticket.ticket_id,
        "amount": amount,
        "tax": spec["tax"],
        "tender": body.tender,
        "lines": parts,
        "refunded_total": after.totals.refunded,
    }
