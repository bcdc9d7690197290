"""Tables: seat, transfer, merge, clear, and the operator's floor plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.commands import TableClear, TableMerge, TableSeat, TableTransfer
from hub.domain.admin import TablesConfigure
from hub.domain.errors import Conflict, NotFound
from hub.domain.tickets import close_settled
from hub.domain.views import table_view

if TYPE_CHECKING:
    from hub.domain.model import Table
    from hub.domain.work import Work


def seat(w: Work) -> dict[str, Any]:
    """`table.seat` → the table (status `seated`)."""
    body = w.body(TableSeat)
    table = _table(w, body.table_id)
    _not_merged(table)
    if table.seated_at is not None:
        raise Conflict(f"Table {table.name} is already seated", table_id=table.table_id)
    w.emit("table.seated", {"table_id": table.table_id, "guests": body.guests, "server": w.employee_id})
    return table_view(w.state.tables[table.table_id])


def transfer(w: Work) -> dict[str, Any]:
    """`table.transfer` → `{"tables": [from, to]}`; the party and its tickets move to a free table."""
    body = w.body(TableTransfer)
    if body.from_ == body.to:
        raise Conflict("A party cannot move to the table it is at", table_id=body.to)
    src, dst = _table(w, body.from_), _table(w, body.to)
    _not_merged(src)
    _not_merged(dst)
    if src.seated_at is None:
        raise Conflict(f"Nobody is seated at table {src.name}", table_id=src.table_id)
    if dst.seated_at is not None:
        raise Conflict(f"Table {dst.name} is taken; merge the tables instead", table_id=dst.table_id)
    w.emit("table.transferred", {"from": src.table_id, "to": dst.table_id, "ticket_ids": list(src.ticket_ids)})
    return {"tables": [table_view(w.state.tables[src.table_id]), table_view(w.state.tables[dst.table_id])]}


def merge(w: Work) -> dict[str, Any]:
    """`table.merge` → `{"tables": [into, merged…]}`; parties, guests and tickets join the `into` table."""
    body = w.body(TableMerge)
    into = _table(w, body.into)
    _not_merged(into)
    sources: list[Table] = []
    for table_id in dict.fromkeys(body.tables):
        if table_id == into.table_id:
            continue
        table = _table(w, table_id)
        _not_merged(table)
        sources.append(table)
    if not sources:
        raise Conflict("Name at least one table besides the one to merge into", into=into.table_id)
    parties = [t for t in (into, *sources) if t.seated_at is not None]
    guests = sum(t.guests or 0 for t in parties) or None
    server = parties[0].server if parties else w.employee_id
    w.emit(
        "table.merged",
        {
            "into": into.table_id,
            "tables": [t.table_id for t in sources],
            "ticket_ids": [tid for t in sources for tid in t.ticket_ids],
            "guests": guests,
            "server": server,
        },
    )
    return {"tables": [table_view(w.state.tables[t.table_id]) for t in (into, *sources)]}


def clear(w: Work) -> dict[str, Any]:
    """`table.clear` → the table (status `free`); tables merged into it are freed too.

    Open tickets with nothing left to pay are closed first; any other open ticket is a `conflict`.
    """
    body = w.body(TableClear)
    table = _table(w, body.table_id)
    _not_merged(table)
    if table.seated_at is None:
        raise Conflict(f"Table {table.name} is already free", table_id=table.table_id)
    close_settled(w, list(table.ticket_ids))
    still_open = [
        {"ticket_id": tid, "number": w.state.tickets[tid].number}
        for tid in table.ticket_ids
        if tid in w.state.tickets and w.state.tickets[tid].status == "open"
    ]
    if still_open:
        numbers = ", ".join(f"#{t['number']}" for t in still_open)
        raise Conflict(f"Table {table.name} still has open tickets ({numbers})", tickets=still_open)
    w.emit("table.cleared", {"table_id": table.table_id, "released": list(table.merged)})
    return table_view(w.state.tables[table.table_id])


def configure(w: Work) -> dict[str, Any]:
    """`tables.configure` (admin) → `{"added","updated","removed"}` table ids; a seated table is never removed."""
    body = w.body(TablesConfigure)
    wanted = {t.table_id: t for t in body.tables}
    removed = sorted(tid for tid in w.state.tables if tid not in wanted)
    busy = [tid for tid in removed if w.state.tables[tid].seated_at is not None or w.state.tables[tid].merged_into]
    if busy:
        raise Conflict(f"Tables in use cannot be removed: {', '.join(busy)}", tables=busy)
    added: list[str] = []
    updated: list[str] = []
    for spec in body.tables:
        data = {"table_id": spec.table_id, "name": spec.name, "seats": spec.seats, "area": spec.area}
        current = w.state.tables.get(spec.table_id)
        if current is None:
            w.emit("table.added", data)
            added.append(spec.table_id)
        elif (current.name, current.seats, current.area) != (spec.name, spec.seats, spec.area):
            w.emit("table.updated", data)
            updated.append(spec.table_id)
    for tid in removed:
        w.emit("table.removed", {"table_id": tid})
    return {"added": added, "updated": updated, "removed": removed}


def _table(w: Work, table_id: str) -> Table:
    table = w.state.tables.get(table_id)
    if table is None:
        raise NotFound(f"Table {table_id} does not exist", table_id=table_id)
    return table


def _not_merged(table: Table) -> None:
    if table.merged_into:
        raise Conflict(
            f"Table {table.name} is merged into table {table.merged_into}",
            table_id=table.table_id,
            merged_into=table.merged_into,
        )
