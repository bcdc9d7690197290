"""Shifts and the drawer: open with a float, cash moves, no-sales, blind close, X/Z reports.

Cash the drawer should hold (`expected`) = opening float + cash sales + cash tips - cash refunds
+ pay-ins - pay-outs - drops. Cash tips stay in the drawer until paid out. The close is blind: the
expected cash is revealed only in the Z report, after the count; X reports leave it out too.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub.contract.commands import DrawerCash, DrawerOpen, ShiftClose, ShiftOpen, ShiftReport
from hub.domain.days import close_day_if_due
from hub.domain.errors import Conflict, NotFound
from hub.domain.reports import shift_report
from hub.domain.tickets import close_settled
from hub.domain.views import shift_summary

if TYPE_CHECKING:
    from hub.domain.work import Work


def open_shift(w: Work) -> dict[str, Any]:
    """`shift.open` (manager) → the shift summary (`state/shift` shape)."""
    body = w.body(ShiftOpen)
    current = w.state.current_shift
    if current is not None:
        raise Conflict(f"Shift {current.shift_id} is already open", shift_id=current.shift_id)
    close_day_if_due(w)
    day = w.state.business_day or w.ctx.settings.business_day_of(w.now).isoformat()
    w.emit(
        "shift.opened",
        {"shift_id": w.ctx.new_id("shf"), "business_day": day, "opening_float": body.opening_float},
    )
    return shift_summary(w.state)


def close_shift(w: Work) -> dict[str, Any]:
    """`shift.close` (manager, blind count) → the Z report; refused while tickets are open (they are listed).

    Open tickets with nothing left to pay (reopened and left as they were, or only free items) are
    closed first (`ticket.closed`).
    """
    body = w.body(ShiftClose)
    w.open_shift()
    close_settled(w, sorted(w.state.open_tickets))
    shift = w.open_shift()  # read again: closing settled tickets changed its totals
    still_open = [
        {"ticket_id": tid, "number": number}
        for tid, number in sorted(w.state.open_tickets.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    if still_open:
        numbers = ", ".join(f"#{t['number']}" for t in still_open)
        raise Conflict(f"Close or void the open tickets first ({numbers})", tickets=still_open)
    expected = shift.expected
    report = shift_report(w.state, shift, "z", closed_by=w.actor, closed_at=w.stamp, counted=body.counted_cash)
    w.emit(
        "shift.closed",
        {
            "shift_id": shift.shift_id,
            "business_day": shift.business_day,
            "counted_cash": body.counted_cash,
            "expected_cash": expected,
            "over_short": body.counted_cash - expected,
            "report": report,
            "grand_totals": report["grand_totals"],
        },
    )
    return report


def report(w: Work) -> dict[str, Any]:
    """`shift.report` (manager): `x` → the open shift's running report; `z` → a closed shift's Z (default: the last)."""
    body = w.body(ShiftReport)
    if body.kind == "x":
        shift = w.open_shift()
        if body.shift_id is not None and body.shift_id != shift.shift_id:
            raise Conflict("An X report is only for the open shift; ask for a Z report", shift_id=body.shift_id)
        return shift_report(w.state, shift, "x")
    shift_id = body.shift_id or w.state.last_shift_id
    closed = w.state.shifts.get(shift_id) if shift_id else None
    if closed is None:
        raise NotFound("No such closed shift" if shift_id else "No shift was closed yet", shift_id=shift_id)
    if closed.z is None:
        raise Conflict(f"Shift {closed.shift_id} is still open; ask for an X report", shift_id=closed.shift_id)
    return copy.deepcopy(closed.z)


def cash_move(w: Work) -> dict[str, Any]:
    """`drawer.pay_in` / `drawer.pay_out` / `drawer.drop` (cashier+) → `{"shift_id","kind","amount","reason"}`."""
    body = w.body(DrawerCash)
    shift = w.open_shift()
    kind = w.cmd.type.removeprefix("drawer.")
    data = {
        "shift_id": shift.shift_id,
        "business_day": shift.business_day,
        "kind": kind,
        "amount": body.amount,
        "reason": body.reason,
    }
    w.emit("shift.cash_moved", data)
    return {"shift_id": shift.shift_id, "kind": kind, "amount": body.amount, "reason": body.reason}


def open_drawer(w: Work) -> None:
    """`drawer.open` (manager or approval): a no-sale, ledgered with reason, actor and approver → no result."""
    body = w.body(DrawerOpen)
    shift = w.open_shift()
    w.emit(
        "drawer.opened",
        {
            "shift_id": shift.shift_id,
            "business_day": shift.business_day,
            "reason": body.reason,
            "by": w.actor,
            "approved_by": w.approved_by,
        },
    )
