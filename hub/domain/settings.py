"""The store settings the rules depend on (business day, token lifetime, rate limits, timers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

PositiveSeconds = Annotated[int, Field(ge=1, le=366 * 86_400)]


class StoreSettings(BaseModel):
    """Per-store settings handed to `decide` in its Context; never part of the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: Annotated[str, Field(min_length=1, max_length=120)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    timezone: str = "UTC"
    business_day_starts_at: time = time(4, 0)
    token_ttl_s: PositiveSeconds = 12 * 3600
    login_max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    login_window_s: PositiveSeconds = 300
    login_lockout_s: PositiveSeconds = 300
    attention_no_order_s: PositiveSeconds = 600
    attention_idle_s: PositiveSeconds = 1800
    sync_max_events: Annotated[int, Field(ge=1)] = 500
    shared_devices: tuple[str, ...] = ()
    """Devices many people use at once, each from their own client (the manager page, `web`): their
    adapter limits wrong PINs per client, so here they count per employee only, never per device,
    and a login there does not end the employee's other sessions on the same device."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The store's time zone."""
        return ZoneInfo(self.timezone)

    def business_day_of(self, moment: datetime) -> date:
        """The business day `moment` belongs to: before the cut-off it is still the previous day."""
        local = moment.astimezone(self.zone)
        day = local.date()
        if local.time().replace(tzinfo=None) < self.business_day_starts_at:
            day -= timedelta(days=1)
        return day

    def business_day_ends_at(self, day: date) -> datetime:
        """The UTC moment the business day `day` ends (the next day's cut-off, store time)."""
        local = datetime.combine(day + timedelta(days=1), self.business_day_starts_at, tzinfo=self.zone)
        return local.astimezone(UTC)
