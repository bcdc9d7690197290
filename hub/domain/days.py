"""The business day: `day.closed` at the store's cut-off (`business_day_starts_at`, store time)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from hub.domain.reports import period_report

if TYPE_CHECKING:
    from hub.domain.work import Work


def close_day_if_due(w: Work) -> bool:
    """Write `day.closed` when the open business day's cut-off (store time) has passed; True if it did.

    The event carries the day's totals and the grand totals. If a shift is still open, the next
    business day starts at once (ticket numbers restart at 1).
    """
    day = w.state.business_day
    if day is None:
        return False
    settings = w.ctx.settings
    if w.now < settings.business_day_ends_at(date.fromisoformat(day)):
        return False
    next_day = settings.business_day_of(w.now).isoformat() if w.state.current_shift_id else None
    w.emit(
        "day.closed",
        {
            "business_day": day,
            "next_business_day": next_day,
            "totals": period_report(w.state.day_totals, w.state),
            "grand_totals": period_report(w.state.grand_totals, w.state),
        },
    )
    return True
