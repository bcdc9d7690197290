"""Timers, driven by the engine's `clock.tick`: table attention and the business-day cut-off."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hub.contract.types import format_time
from hub.domain.days import close_day_if_due

if TYPE_CHECKING:
    from hub.domain.work import Work


def configure_store(w: Work) -> dict[str, Any]:
    """`store.configure` (admin, at every start) → `{"changed": bool}`.

    Ledgers `store.configured` with the store's id, name, currency, time zone and business-day
    start when they differ from what the ledger last said, so HQ reads the store's clock from the
    store's own ledger (its reports count hours and business days on it).
    """
    settings = w.ctx.settings
    data = {
        "store_id": settings.store_id,
        "name": settings.name,
        "currency": settings.currency,
        "timezone": settings.timezone,
        "business_day_starts_at": settings.business_day_starts_at.strftime("%H:%M"),
    }
    current = w.state.configured
    if current is not None and current.model_dump() == data:
        return {"changed": False}
    w.emit("store.configured", data)
    return {"changed": True}


def tick(w: Work) -> dict[str, Any]:
    """`clock.tick` (admin) → `{"events": n}`: `day.closed` past the cut-off, `table.attention` once per condition.

    `no_order`: seated for `attention_no_order_s` without anything ordered (once per seating).
    `idle`: nothing happened at an occupied table for `attention_idle_s` (again after new activity).
    """
    close_day_if_due(w)
    settings = w.ctx.settings
    no_order = timedelta(seconds=settings.attention_no_order_s)
    idle = timedelta(seconds=settings.attention_idle_s)
    for table_id, table in sorted(w.state.tables.items()):
        if table.seated_at is None or table.merged_into:
            continue
        if table.status == "seated" and not table.no_order_raised and w.now - table.seated_at >= no_order:
            w.emit(
                "table.attention",
                {"table_id": table_id, "condition": "no_order", "since": format_time(table.seated_at)},
            )
        last = table.last_activity_at or table.seated_at
        if "idle" not in table.attention and w.now - last >= idle:
            w.emit("table.attention", {"table_id": table_id, "condition": "idle", "since": format_time(last)})
    return {"events": len(w.events)}
