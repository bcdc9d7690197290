"""Payloads of the retained `state/…` topics (the menu is `hub.contract.menu.Menu`)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from hub.contract.envelopes import Omittable
from hub.contract.types import Cents, Id

Role = Literal["kitchen", "server", "cashier", "manager"]
"""An employee's role, lowest to highest."""


class ShiftState(BaseModel):
    """`state/shift`: the open shift's summary, or just `{"open":false}`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    open: bool
    shift_id: Omittable[Id] = None
    opened_at: Omittable[str] = None
    opened_by: Omittable[str] = None
    opening_float: Omittable[Cents] = None
    sales: Omittable[Cents] = None
    tickets_open: Omittable[Annotated[int, Field(ge=0)]] = None


class AvailabilityEntry(BaseModel):
    """One item on the 86 board: unavailable, or available with a count left."""

    model_config = ConfigDict(frozen=True)

    available: bool
    remaining: Annotated[int, Field(ge=0)] | None = None


class AvailabilityState(BaseModel):
    """`state/availability`: the 86 board by menu item id; items not listed are available."""

    model_config = ConfigDict(frozen=True)

    items: dict[Id, AvailabilityEntry] = Field(default_factory=dict)


class StaffEntry(BaseModel):
    """An active employee as login pickers show them (never a PIN)."""

    model_config = ConfigDict(frozen=True)

    employee_id: Id
    name: str
    role: Role


class StaffList(RootModel[list[StaffEntry]]):
    """`state/staff`: a JSON list of the active staff."""

    model_config = ConfigDict(frozen=True)


class PrinterState(BaseModel):
    """`state/printer/{printer}`: whether it prints, its paper and cover, and its queue."""

    model_config = ConfigDict(frozen=True)

    online: bool
    paper: Literal["ok", "low", "out", "unknown"] = "unknown"
    cover: Literal["closed", "open", "unknown"] = "unknown"
    queue_depth: Annotated[int, Field(ge=0)] = 0
    last_error: str | None = None
