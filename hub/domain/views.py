"""Read-only views of the state: retained `state/…` payloads, the `sync` snapshot, reply shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.types import format_time

if TYPE_CHECKING:
    from datetime import datetime

    from hub.domain.model import StoreState, Table, Ticket


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    """A ticket as replies and snapshots show it: every field of `Ticket`, times as the contract spells them."""
    return ticket.model_dump(mode="json")


def table_view(table: Table) -> dict[str, Any]:
    """A table as replies and snapshots show it: every field of `Table`."""
    return table.model_dump(mode="json")


def shift_summary(state: StoreState) -> dict[str, Any]:
    """`state/shift`: `{"open": false}` or the open shift's summary (never the expected cash: the close is blind)."""
    shift = state.current_shift
    if shift is None:
        return {"open": False}
    return {
        "open": True,
        "shift_id": shift.shift_id,
        "business_day": shift.business_day,
        "opened_at": _time(shift.opened_at),
        "opened_by": shift.opened_by,
        "opening_float": shift.opening_float,
        "sales": shift.totals.net_sales,
        "tickets_closed": shift.totals.tickets_closed,
        "tickets_open": len(state.open_tickets),
    }


def availability_board(state: StoreState) -> dict[str, Any]:
    """`state/availability`: `{"items": {id: {"available", "remaining"}}}`; unlisted items are available."""
    return {
        "items": {
            item_id: {"available": a.available, "remaining": a.remaining}
            for item_id, a in sorted(state.availability.items())
        }
    }


def staff_list(state: StoreState) -> list[dict[str, Any]]:
    """`state/staff`: active staff for login pickers `[{"employee_id","name","role"}]` (never PINs)."""
    return [
        {"employee_id": e.employee_id, "name": e.name, "role": e.role}
        for e in sorted(state.staff.values(), key=lambda e: (e.name.casefold(), e.employee_id))
        if e.active
    ]


def menu_payload(state: StoreState) -> dict[str, Any] | None:
    """`state/menu`: the menu with its version, or None before the first menu."""
    return state.menu.model_dump(mode="json") if state.menu is not None else None


def snapshot(state: StoreState) -> dict[str, Any]:
    """The `sync` snapshot: shift, tables, open tickets, menu version, availability, printers."""
    return {
        "shift": shift_summary(state),
        "tables": [table_view(t) for _, t in sorted(state.tables.items())],
        "tickets": [
            ticket_view(state.tickets[tid])
            for tid, _ in sorted(state.open_tickets.items(), key=lambda kv: (kv[1], kv[0]))
            if tid in state.tickets
        ],
        "menu_version": state.menu.version if state.menu is not None else None,
        "availability": availability_board(state)["items"],
        "printers": [],
    }


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None
