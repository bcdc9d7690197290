"""What the manager page shows, computed from the engine's state (pure: no I/O, the clock passed in).

Every function returns plain JSON-able dicts: the HTML templates and the JSON API render the same
views, so what the page shows is what `/api/…` returns.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from xml.sax.saxutils import escape

from hub.contract.types import format_time
from hub.domain import availability_board, shift_summary

if TYPE_CHECKING:
    from hub.domain.model import StoreState, Table, Ticket
    from hub.domain.settings import StoreSettings

BUCKETS: Final = ("open", "fired", "ready", "paid", "voided", "refunded")
"""Order-log buckets, in the order a ticket moves through them."""
SETTLED_ROWS: Final = 200
"""Settled tickets shown in the order log (open ones are always all there)."""
EXCEPTION_TYPES: Final = (
    "ticket.item_voided",
    "ticket.voided",
    "ticket.discounted",
    "ticket.refunded",
    "drawer.opened",
)
"""Ledger events the exceptions report lists (each names its actor and approver)."""


def money(cents: int | None, currency: str = "") -> str:
    """Minor units as `12.50` (with the currency code when given); `-` for None."""
    if cents is None:
        return "-"
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    text = f"{sign}{whole:,}.{part:02d}"
    return f"{text} {currency}" if currency else text


def bucket_of(ticket: Ticket) -> str:
    """The order-log bucket of a ticket (see BUCKETS)."""
    if ticket.refunds:
        return "refunded"
    if ticket.status == "voided":
        return "voided"
    if ticket.status in ("paid", "closed"):
        return "paid"
    live = [line for line in ticket.lines if line.state != "voided"]
    fired = [line for line in live if line.state != "held"]
    if not fired:
        return "open"
    if all(line.state == "ready" for line in fired) and len(fired) == len(live):
        return "ready"
    return "fired"


def ticket_row(state: StoreState, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """One order-log row."""
    table = state.tables.get(ticket.table_id) if ticket.table_id else None
    server = state.staff.get(ticket.server) if ticket.server else None
    return {
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "bucket": bucket_of(ticket),
        "status": ticket.status,
        "table": table.name if table else None,
        "channel": ticket.channel,
        "name": ticket.name,
        "server": server.name if server else ticket.server,
        "opened_at": format_time(ticket.opened_at),
        "age_min": int((now - ticket.opened_at).total_seconds() // 60),
        "items": sum(line.qty for line in ticket.lines if line.state != "voided"),
        "total": ticket.totals.total,
        "balance": ticket.totals.balance,
        "priority": ticket.priority,
        "search": " ".join(
            str(part).casefold()
            for part in (
                ticket.number,
                ticket.name or "",
                table.name if table else "",
                server.name if server else "",
                *(line.name for line in ticket.lines),
            )
        ),
    }


def order_log(
    state: StoreState, now: datetime, *, bucket: str | None = None, query: str | None = None, days: int = 1
) -> list[dict[str, Any]]:
    """Open tickets and the newest settled ones of the last `days` days, optionally filtered."""
    since = now - timedelta(days=days)
    rows = [
        ticket_row(state, t, now)
        for t in state.tickets.values()
        if t.ticket_id in state.open_tickets or (t.closed_at or t.opened_at) >= since
    ]
    live = [r for r in rows if r["bucket"] in ("open", "fired", "ready")]
    settled = sorted((r for r in rows if r["bucket"] not in ("open", "fired", "ready")), key=lambda r: -r["number"])
    rows = live + settled[:SETTLED_ROWS]
    if bucket:
        rows = [r for r in rows if r["bucket"] == bucket]
    if query:
        needle = query.casefold().strip()
        rows = [r for r in rows if needle in r["search"]]
    rows.sort(key=lambda r: (r["bucket"] not in ("open", "fired", "ready"), -r["number"]))
    return rows


def bucket_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows fall in each bucket."""
    counts = dict.fromkeys(BUCKETS, 0)
    for row in rows:
        counts[row["bucket"]] += 1
    return counts


def table_tile(state: StoreState, table: Table, now: datetime) -> dict[str, Any]:
    """One floor-plan tile: status colour, guests, server, minutes seated, attention flags."""
    server = state.staff.get(table.server) if table.server else None
    seated_min = int((now - table.seated_at).total_seconds() // 60) if table.seated_at else None
    balance = sum(state.tickets[tid].totals.balance for tid in table.ticket_ids if tid in state.tickets)
    return {
        "table_id": table.table_id,
        "name": table.name,
        "area": table.area or "Main",
        "seats": table.seats,
        "status": table.status,
        "guests": table.guests,
        "server": server.name if server else table.server,
        "seated_at": format_time(table.seated_at) if table.seated_at else None,
        "seated_min": seated_min,
        "attention": list(table.attention),
        "tickets": list(table.ticket_ids),
        "balance": balance,
        "merged_into": table.merged_into,
    }


def floor(state: StoreState, now: datetime) -> list[dict[str, Any]]:
    """Every table, by area then name (numbers sorted as numbers)."""
    tiles = [table_tile(state, t, now) for t in state.tables.values()]
    tiles.sort(key=lambda t: (t["area"], _natural(t["name"])))
    return tiles


def shift_panel(state: StoreState) -> dict[str, Any]:
    """The open shift's summary (blind: never the expected cash), with the opener's name."""
    summary = shift_summary(state)
    if summary.get("open"):
        opener = state.staff.get(summary.get("opened_by") or "")
        summary["opened_by_name"] = opener.name if opener else summary.get("opened_by")
    last = state.shifts.get(state.last_shift_id) if state.last_shift_id else None
    if last is not None and last.status == "closed":
        summary["last_closed"] = {
            "shift_id": last.shift_id,
            "closed_at": format_time(last.closed_at) if last.closed_at else None,
            "over_short": last.over_short,
        }
    return summary


def past_shifts(state: StoreState) -> list[dict[str, Any]]:
    """Every shift, newest first."""
    out = []
    for shift in sorted(state.shifts.values(), key=lambda s: s.opened_at, reverse=True):
        opener = state.staff.get(shift.opened_by or "")
        closer = state.staff.get(shift.closed_by or "")
        out.append(
            {
                "shift_id": shift.shift_id,
                "business_day": shift.business_day,
                "status": shift.status,
                "opened_at": format_time(shift.opened_at),
                "opened_by": opener.name if opener else shift.opened_by,
                "closed_at": format_time(shift.closed_at) if shift.closed_at else None,
                "closed_by": closer.name if closer else shift.closed_by,
                "opening_float": shift.opening_float,
                "net_sales": shift.totals.net_sales,
                "counted_cash": shift.counted_cash,
                "over_short": shift.over_short,
            }
        )
    return out


def availability(state: StoreState) -> list[dict[str, Any]]:
    """The 86 board: every menu item with its availability and remaining count."""
    board = availability_board(state)["items"]
    items = state.menu.items if state.menu is not None else []
    return [
        {
            "menu_item_id": item.id,
            "name": item.name,
            "price": item.price,
            "stations": list(item.stations),
            "available": board.get(item.id, {}).get("available", True),
            "remaining": board.get(item.id, {}).get("remaining"),
        }
        for item in items
    ]


def staff(state: StoreState) -> list[dict[str, Any]]:
    """Every employee (active first), with whether they have a live session."""
    live = {s.employee_id for s in state.sessions.values()}
    people = sorted(state.staff.values(), key=lambda e: (not e.active, e.name.casefold()))
    return [
        {
            "employee_id": e.employee_id,
            "name": e.name,
            "role": e.role,
            "active": e.active,
            "logged_in": e.employee_id in live,
        }
        for e in people
    ]


def devices(state: StoreState, presence: dict[str, dict[str, Any]], hidden: frozenset[str]) -> list[dict[str, Any]]:
    """Registered devices (and ones only seen on the broker) with presence from their `…/status`."""
    ids = sorted((set(state.devices) | set(presence)) - hidden)
    out = []
    for device_id in ids:
        device = state.devices.get(device_id)
        seen = presence.get(device_id) or {}
        out.append(
            {
                "device_id": device_id,
                "kind": device.kind if device else seen.get("kind"),
                "stations": list(device.stations) if device else [],
                "registered": device is not None,
                "active": bool(device and device.active),
                "presence": seen.get("state", "never seen"),
                "since": seen.get("since"),
                "fw": seen.get("fw"),
                "sess": seen.get("sess"),
                "paired_at": format_time(device.paired_at) if device and device.paired_at else None,
                "revoked_at": format_time(device.revoked_at) if device and device.revoked_at else None,
            }
        )
    return out


# -- reports ---------------------------------------------------------------------------------
def day_tickets(state: StoreState, settings: StoreSettings, now: datetime) -> list[Ticket]:
    """Tickets of the current business day (by opening time)."""
    today = settings.business_day_of(now)
    return [t for t in state.tickets.values() if settings.business_day_of(t.opened_at) == today]


def sales_by_hour(state: StoreState, settings: StoreSettings, now: datetime) -> list[dict[str, Any]]:
    """Payments taken today (without tips), by local hour of the store."""
    today = settings.business_day_of(now)
    hours: dict[int, int] = defaultdict(int)
    counts: dict[int, int] = defaultdict(int)
    for ticket in state.tickets.values():
        for payment in ticket.payments:
            if settings.business_day_of(payment.at) != today:
                continue
            hour = payment.at.astimezone(settings.zone).hour
            hours[hour] += payment.amount
            counts[hour] += 1
    return [{"hour": h, "amount": hours[h], "payments": counts[h]} for h in sorted(hours)]


def item_mix(tickets: list[Ticket]) -> list[dict[str, Any]]:
    """Quantity and net sales per menu item (voided lines left out), best sellers first."""
    mix: dict[str, dict[str, Any]] = {}
    for ticket in tickets:
        if ticket.status == "voided":
            continue
        for line in ticket.lines:
            if line.state == "voided":
                continue
            row = mix.setdefault(
                line.menu_item_id, {"menu_item_id": line.menu_item_id, "name": line.name, "qty": 0, "net": 0}
            )
            row["qty"] += line.qty - line.refunded_qty
            row["net"] += line.amounts.net
    return sorted(mix.values(), key=lambda r: (-r["qty"], r["name"]))


def kds_times(tickets: list[Ticket]) -> dict[str, Any]:
    """Average fired → ready time per station and overall (seconds), from the KDS bumps."""
    per_station: dict[str, list[float]] = defaultdict(list)
    per_ticket: list[float] = []
    for ticket in tickets:
        spans = []
        for line in ticket.lines:
            if line.fired_at is None or line.ready_at is None:
                continue
            seconds = (line.ready_at - line.fired_at).total_seconds()
            spans.append(seconds)
            for station in line.stations or ["(none)"]:
                per_station[station].append(seconds)
        if spans:
            per_ticket.append(max(spans))
    return {
        "tickets": len(per_ticket),
        "average_s": round(sum(per_ticket) / len(per_ticket), 1) if per_ticket else None,
        "stations": [
            {"station": s, "lines": len(v), "average_s": round(sum(v) / len(v), 1)}
            for s, v in sorted(per_station.items())
        ],
    }


def exception_row(
    entry_at: str, type_: str, actor: str | None, data: dict[str, Any], state: StoreState
) -> dict[str, Any]:
    """One void/discount/refund/no-sale with who did it and who approved it."""

    def name(employee: str | None) -> str | None:
        person = state.staff.get(employee or "")
        return person.name if person else employee

    amount = data.get("amount")
    if amount is None and isinstance(data.get("discount"), dict):
        amount = data["discount"].get("amount")
    reason = data.get("reason")
    for key in ("refund", "discount"):
        if reason is None and isinstance(data.get(key), dict):
            reason = data[key].get("reason")
    return {
        "at": entry_at,
        "type": type_,
        "number": data.get("number"),
        "ticket_id": data.get("ticket_id"),
        "amount": amount if isinstance(amount, int) else None,
        "reason": reason,
        "by": name(actor),
        "approved_by": name(data.get("approved_by")),
    }


def hour_chart_svg(rows: list[dict[str, Any]], currency: str, *, width: int = 720, height: int = 240) -> str:
    """Sales by hour as an accessible inline SVG bar chart (server-rendered, no script)."""
    pad_left, pad_bottom, pad_top = 64, 28, 12
    if not rows:
        return (
            f'<svg role="img" aria-label="No sales yet today" viewBox="0 0 {width} {height // 3}" class="chart">'
            f'<text x="{width // 2}" y="{height // 6}" text-anchor="middle">No sales yet today</text></svg>'
        )
    first, last = min(r["hour"] for r in rows), max(r["hour"] for r in rows)
    hours = list(range(first, last + 1))
    amounts = {r["hour"]: r["amount"] for r in rows}
    top = max(*amounts.values(), 1)
    plot_w = width - pad_left - 8
    plot_h = height - pad_bottom - pad_top
    slot = plot_w / len(hours)
    parts = [
        (
            f'<svg role="img" viewBox="0 0 {width} {height}" class="chart" '
            f'aria-label="Sales by hour, highest {escape(money(top, currency))}">'
        ),
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" class="axis"/>',
        f'<text x="{pad_left - 6}" y="{pad_top + 10}" text-anchor="end" class="tick">{escape(money(top))}</text>',
        f'<text x="{pad_left - 6}" y="{pad_top + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for i, hour in enumerate(hours):
        amount = amounts.get(hour, 0)
        bar_h = round(plot_h * amount / top, 1)
        bar_w = min(slot * 0.7, 48)
        x = round(pad_left + i * slot + (slot - bar_w) / 2, 1)
        y = round(pad_top + plot_h - bar_h, 1)
        label = f"{hour:02d}:00 {money(amount, currency)}"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{round(bar_w, 1)}" height="{bar_h}" class="bar">'
            f"<title>{escape(label)}</title></rect>"
        )
        parts.append(
            f'<text x="{round(pad_left + i * slot + slot / 2, 1)}" y="{height - 8}" text-anchor="middle" '
            f'class="tick">{hour:02d}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name.casefold())
