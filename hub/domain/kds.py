"""The kitchen: KDS start/bump/recall, and what each station's screen must be told after an event.

A line goes to the stations of its menu item; `expo` sees every station's lines. Only fired lines
reach a screen (held lines are the server's business). A station view has the contract's KDS shape
(`hub.contract.kds.KdsTicket`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.contract.commands import KdsAction
from hub.contract.types import format_time
from hub.domain.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from hub.domain.messages import LedgerEvent
    from hub.domain.model import Line, StoreState, Ticket
    from hub.domain.work import Work

EXPO = "expo"

_KDS_STATE = {"fired": "new", "started": "started", "ready": "ready", "voided": "voided"}


def start(w: Work) -> dict[str, Any]:
    """`kds.start` → the station view; lines fired but not started become `started`."""
    ticket, lines = _lines(w)
    todo = [line.line_id for line in lines if line.state == "fired"]
    if todo:
        w.emit(
            "ticket.item_started",
            {"ticket_id": ticket.ticket_id, "number": ticket.number, "station": _station(w), "line_ids": todo},
        )
    return _view(w, ticket.ticket_id)


def bump(w: Work) -> dict[str, Any]:
    """`kds.bump` → the station view; lines become `ready`, with fired→ready seconds for speed of service."""
    ticket, lines = _lines(w)
    todo = [line for line in lines if line.state in {"fired", "started"}]
    if todo:
        w.emit(
            "ticket.item_ready",
            {
                "ticket_id": ticket.ticket_id,
                "number": ticket.number,
                "station": _station(w),
                "lines": [
                    {
                        "line_id": line.line_id,
                        "fired_to_ready_s": int((w.now - line.fired_at).total_seconds()) if line.fired_at else None,
                    }
                    for line in todo
                ],
            },
        )
    return _view(w, ticket.ticket_id)


def recall(w: Work) -> dict[str, Any]:
    """`kds.recall` → the station view; bumped (`ready`) lines come back to the screen."""
    ticket, lines = _lines(w)
    todo = [line.line_id for line in lines if line.state == "ready"]
    if todo:
        w.emit(
            "ticket.recalled",
            {"ticket_id": ticket.ticket_id, "number": ticket.number, "station": _station(w), "line_ids": todo},
        )
    return _view(w, ticket.ticket_id)


def station_view(state: StoreState, ticket: Ticket, station: str) -> dict[str, Any] | None:
    """A ticket as `station` shows it (KdsTicket shape), or None when nothing of it goes there."""
    lines = [line for line in ticket.lines if _routed(line, station)]
    if not lines:
        return None
    view = _header(state, ticket, lines)
    view["items"] = [
        {
            "line_id": line.line_id,
            "name": line.name,
            "qty": line.qty,
            "modifiers": [m.name for m in line.modifiers],
            "note": line.note,
            "allergy": line.allergy,
            "seat": line.seat,
            "course": line.course,
            "stations": list(line.stations),
            "state": _KDS_STATE[line.state],
        }
        for line in lines
    ]
    return view


def kds_messages(state: StoreState, event: LedgerEvent) -> list[tuple[str, str, dict[str, Any]]]:
    """After `evolve(state, event)`: `(station, kds_type, data)` for each screen whose view changed.

    kds_type is `kds.ticket` (first lines of a ticket at that station), `kds.update`, `kds.recall`
    or `kds.remove` (the ticket was voided); data has the contract's KDS ticket shape.
    """
    d = event.data
    kind = event.type
    if kind == "ticket.fired":
        ticket = state.tickets.get(d["ticket_id"])
        if ticket is None:
            return []
        fired = set(d["line_ids"])
        out = []
        for station in _stations(ticket, fired):
            view = station_view(state, ticket, station)
            if view is not None:
                first = all(item["line_id"] in fired for item in view["items"])
                out.append((station, "kds.ticket" if first else "kds.update", view))
        return out
    if kind in {"ticket.item_started", "ticket.recalled", "ticket.item_voided", "ticket.item_ready"}:
        ticket = state.tickets.get(d["ticket_id"])
        if ticket is None:
            return []
        if kind == "ticket.item_voided":
            if d.get("was") == "held":
                return []
            ids = {d["line_id"]}
        elif kind == "ticket.item_ready":
            ids = {x["line_id"] for x in d["lines"]}
        else:
            ids = set(d["line_ids"])
        kds_type = "kds.recall" if kind == "ticket.recalled" else "kds.update"
        return _send(state, ticket, _stations(ticket, ids), kds_type)
    if kind in {"ticket.priority_changed", "ticket.voided"}:
        ticket = state.tickets.get(d["ticket_id"])
        if ticket is None:
            return []
        kds_type = "kds.remove" if kind == "ticket.voided" else "kds.update"
        return _send(state, ticket, _stations(ticket, None), kds_type)
    if kind in {"table.transferred", "table.merged"}:
        out = []
        for ticket_id in d.get("ticket_ids", []):
            ticket = state.tickets.get(ticket_id)
            if ticket is not None and ticket.status == "open":
                out.extend(_send(state, ticket, _stations(ticket, None), "kds.update"))
        return out
    if kind == "ticket.split" and d.get("mode") == "lines":
        return _split_messages(state, d)
    return []


def _split_messages(state: StoreState, d: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    source = state.tickets.get(d["ticket_id"])
    out: list[tuple[str, str, dict[str, Any]]] = []
    touched: set[str] = set()
    for part in d["parts"]:
        if part["ticket_id"] == d["ticket_id"]:
            continue
        ticket = state.tickets.get(part["ticket_id"])
        if ticket is None:
            continue
        stations = _stations(ticket, None)
        touched.update(stations)
        out.extend(_send(state, ticket, stations, "kds.ticket"))
    if source is not None:
        for station in sorted(touched):
            view = station_view(state, source, station)
            if view is None:
                out.append((station, "kds.remove", _empty_view(state, source)))
            else:
                out.append((station, "kds.update", view))
    return out


def _send(
    state: StoreState, ticket: Ticket, stations: list[str], kds_type: str
) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for station in stations:
        view = station_view(state, ticket, station)
        if view is not None:
            out.append((station, kds_type, view))
    return out


def _header(state: StoreState, ticket: Ticket, lines: list[Line]) -> dict[str, Any]:
    fired = [line.fired_at for line in lines if line.fired_at is not None]
    table = state.tables.get(ticket.table_id) if ticket.table_id else None
    server = state.staff.get(ticket.server) if ticket.server else None
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "table": table.name if table else ticket.table_id,
        "name": ticket.name,
        "channel": ticket.channel,
        "server": server.name if server else ticket.server,
        "fired_at": format_time(min(fired)) if fired else "",
        "priority": ticket.priority,
        "items": [],
    }


def _empty_view(state: StoreState, ticket: Ticket) -> dict[str, Any]:
    return _header(state, ticket, [line for line in ticket.lines if line.fired_at is not None])


def _routed(line: Line, station: str) -> bool:
    """Whether a line is on `station`'s screen: fired (or later) and made there (expo: made anywhere)."""
    if line.fired_at is None or not line.stations:
        return False
    return station == EXPO or station in line.stations


def _stations(ticket: Ticket, line_ids: set[str] | None) -> list[str]:
    """Stations of these lines (all fired lines when None), plus expo."""
    found: set[str] = set()
    for line in ticket.lines:
        if line.fired_at is not None and (line_ids is None or line.line_id in line_ids):
            found.update(line.stations)
    if found:
        found.add(EXPO)
    return sorted(found)


def _station(w: Work) -> str:
    return w.body(KdsAction).station


def _lines(w: Work) -> tuple[Ticket, list[Line]]:
    body = w.body(KdsAction)
    stations = w.cmd.device_stations
    if w.cmd.device_kind == "kds" and stations and body.station not in stations:
        raise Forbidden(
            f"This screen shows {', '.join(stations)}, not {body.station}",
            station=body.station,
            stations=list(stations),
        )
    ticket = w.ticket(body.ticket_id)
    routed = [line for line in ticket.lines if _routed(line, body.station)]
    if body.line_ids is None:
        return ticket, routed
    by_id = {line.line_id: line for line in routed}
    missing = [lid for lid in body.line_ids if lid not in by_id]
    if missing:
        raise NotFound(
            f"Line {missing[0]} of ticket #{ticket.number} is not on the {body.station} screen",
            line_ids=missing,
            station=body.station,
        )
    return ticket, [by_id[lid] for lid in dict.fromkeys(body.line_ids)]


def _view(w: Work, ticket_id: str) -> dict[str, Any]:
    station = _station(w)
    ticket = w.state.tickets[ticket_id]
    view = station_view(w.state, ticket, station)
    return {"station": station, **(view or _empty_view(w.state, ticket))}
