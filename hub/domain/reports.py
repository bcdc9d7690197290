"""X and Z reports of shifts, and the totals of any period (shift, business day, grand totals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.types import format_time

if TYPE_CHECKING:
    from hub.domain.model import PeriodTotals, Shift, StoreState, TaxLine


def shift_report(
    state: StoreState,
    shift: Shift,
    kind: str,
    *,
    closed_by: str | None = None,
    closed_at: str | None = None,
    counted: int | None = None,
) -> dict[str, Any]:
    """An X (running, blind) or Z (closing, with the cash count) report of a shift."""
    t = shift.totals
    cash: dict[str, Any] = {
        "opening_float": shift.opening_float,
        "sales": t.payments["cash"].amount if "cash" in t.payments else 0,
        "tips": t.payments["cash"].tip if "cash" in t.payments else 0,
        "refunds": t.cash_refunds,
        "pay_in": t.pay_in,
        "pay_out": t.pay_out,
        "drops": t.drops,
    }
    if kind == "z":
        cash["expected"] = shift.expected
        cash["counted"] = counted
        cash["over_short"] = None if counted is None else counted - shift.expected
    return {
        "kind": kind,
        "shift_id": shift.shift_id,
        "business_day": shift.business_day,
        "opened_at": format_time(shift.opened_at),
        "opened_by": shift.opened_by,
        "closed_at": closed_at,
        "closed_by": closed_by,
        **period_report(t, state),
        "cash": cash,
        "grand_totals": period_report(state.grand_totals, state, people=False),
    }


def period_report(t: PeriodTotals, state: StoreState, people: bool = True) -> dict[str, Any]:
    """Totals of a period: sales, tax per rate, tenders net of refunds, voids, cash moves, per employee."""
    kinds = sorted(set(t.payments) | set(t.refunds))
    tenders = {}
    for kind in kinds:
        paid = t.payments.get(kind)
        back = t.refunds.get(kind)
        amount = paid.amount if paid else 0
        refunded = back.amount if back else 0
        tenders[kind] = {
            "count": paid.count if paid else 0,
            "amount": amount,
            "tip": paid.tip if paid else 0,
            "refunded": refunded,
            "net": amount - refunded,
        }
    out: dict[str, Any] = {
        "tickets_closed": t.tickets_closed,
        "gross_sales": t.gross_sales,
        "discounts": t.discounts,
        "net_sales": t.net_sales,
        "tax": t.tax,
        "tax_added": t.tax_added,
        "total": t.total,
        "taxes": [x.model_dump() for x in sorted(t.taxes.values(), key=_rate)],
        "tips": sum(p.tip for p in t.payments.values()),
        "tenders": tenders,
        "refunds": {
            "count": sum(r.count for r in t.refunds.values()),
            "amount": sum(r.amount for r in t.refunds.values()),
            "tax": t.refund_tax,
            "taxes": [x.model_dump() for x in sorted(t.refund_taxes.values(), key=_rate)],
        },
        "voids": {"count": t.voids_count, "amount": t.voids_amount},
        "ticket_voids": {"count": t.ticket_voids_count, "amount": t.ticket_voids_amount},
        "reopened": {"count": t.reopened_count, "amount": t.reopened_amount},
        "pay_in": t.pay_in,
        "pay_out": t.pay_out,
        "drops": t.drops,
        "no_sales": t.no_sales,
    }
    if people:
        out["by_employee"] = {
            eid: {
                "name": state.staff[eid].name if eid in state.staff else eid,
                **e.model_dump(),
            }
            for eid, e in sorted(t.by_employee.items())
        }
    return out


def _rate(tax: TaxLine) -> tuple[int, bool]:
    return (tax.rate_bp, tax.inclusive)
