"""A store's clock at central: its time zone and business-day cut-off, as the hub's `[store]` has them.

The hub writes `business_day` into its ticket and payment entries; central uses the store's clock
for what the entries leave to the reader (the local hour of a closing) and for entries that carry
no business day. Unknown: UTC and 04:00, the hub's defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE: Final = "UTC"
DEFAULT_CUTOFF: Final = "04:00"
_CUTOFF: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:00)?$")
_AT_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class StoreClock:
    """The store's zone and the local time its business day starts."""

    timezone: str = DEFAULT_ZONE
    day_starts_at: str = DEFAULT_CUTOFF

    @classmethod
    def of(cls, timezone: str | None, day_starts_at: str | None) -> StoreClock:
        """The clock for stored (possibly NULL) settings; raises ValueError for an unknown zone or cut-off."""
        return cls(check_zone(timezone or DEFAULT_ZONE), check_cutoff(day_starts_at or DEFAULT_CUTOFF))

    def local(self, at: str) -> datetime:
        """A ledger time (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC) on the store's clock."""
        return datetime.strptime(at, _AT_FORMAT).replace(tzinfo=UTC).astimezone(ZoneInfo(self.timezone))

    def hour(self, at: str) -> int:
        """The store-time hour (0-23) of a ledger time."""
        return self.local(at).hour

    def business_day(self, at: str) -> str:
        """The business day a ledger time belongs to: before the cut-off it is still the day before."""
        local = self.local(at)
        hours, minutes = (int(part) for part in self.day_starts_at.split(":")[:2])
        day = local.date()
        if local.time().replace(tzinfo=None) < time(hours, minutes):
            day -= timedelta(days=1)
        return day.isoformat()


def check_zone(name: str) -> str:
    """`name` if it is an IANA time zone, else ValueError naming it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from exc
    return name


def check_cutoff(value: str) -> str:
    """`HH:MM` (a trailing `:00` is dropped), else ValueError."""
    if not _CUTOFF.match(value):
        raise ValueError(f"business day start {value!r}: use HH:MM (24-hour store time), e.g. 04:00")
    return value[:5]
