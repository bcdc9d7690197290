"""Commands of the store operator (the local CLI and control socket, device kind `admin`).

They are not part of contract v1: no tablet may send them. `ADMIN_COMMANDS` maps each type to its
body model, like `hub.contract.commands.COMMANDS` does for the wire commands.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.contract.commands import Pin, Station
from hub.contract.menu import Menu
from hub.contract.types import DeviceId, Id
from hub.domain.firmware import FIRMWARE_COMMANDS
from hub.domain.printing import PRINT_COMMANDS

Name = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
Role = Literal["kitchen", "server", "cashier", "manager"]
DeviceKind = Literal["tablet", "kds", "drawer", "button", "display", "relay", "printer"]


class AdminBody(BaseModel):
    """Base of every admin body: strict, unknown keys refused.

    `actor`: the manager on whose behalf the operator runs it (the manager page passes the
    logged-in manager through `Engine.admin(..., actor=…)`); it must be an active manager and is
    ledgered as the entries' actor. Without it the operator (`admin`) is the actor.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    actor: Id | None = None


class StaffAdd(AdminBody):
    """`staff.add`: a new employee (or an inactive one back); the engine stores the PIN's hash."""

    employee_id: Id
    name: Name
    role: Role
    pin: Pin | None = None


class StaffDeactivate(AdminBody):
    """`staff.deactivate`: the employee can no longer log in and their sessions end at once."""

    employee_id: Id


class StaffSetRole(AdminBody):
    """`staff.set_role`: change an employee's role (it applies to live sessions at once)."""

    employee_id: Id
    role: Role


class StaffResetPin(AdminBody):
    """`staff.reset_pin`: the engine stores the new PIN's hash; the event only says it happened."""

    employee_id: Id
    pin: Pin


class DeviceAdd(AdminBody):
    """`device.add`: register a device (KDS devices with their stations)."""

    device_id: DeviceId
    kind: DeviceKind
    stations: Annotated[list[Station], Field(max_length=20)] = Field(default_factory=list)


class DeviceRevoke(AdminBody):
    """`device.revoke`: the device may no longer connect; sessions opened on it end."""

    device_id: DeviceId


class TableSpec(AdminBody):
    """One table of the floor plan."""

    table_id: Id
    name: Name
    seats: Annotated[int, Field(ge=0, le=99, strict=True)] = 0
    area: Annotated[str, StringConstraints(max_length=40)] | None = None


class TablesConfigure(AdminBody):
    """`tables.configure`: the whole floor plan; the hub adds, updates and removes to match."""

    tables: Annotated[list[TableSpec], Field(max_length=500)]

    @model_validator(mode="after")
    def _unique(self) -> TablesConfigure:
        ids = [t.table_id for t in self.tables]
        if len(ids) != len(set(ids)):
            raise ValueError("table ids must be unique")
        return self


class MenuLoad(Menu):
    """`menu.load`: a whole menu from the operator; published only when it differs from the current one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StoreConfigure(AdminBody):
    """`store.configure`: ledger the store's name, currency and clock (the hub's config) when they changed."""


class ClockTick(AdminBody):
    """`clock.tick`: sent by the engine every ~30 s so timers (attention, business day) can fire."""


ADMIN_COMMANDS: dict[str, type[BaseModel]] = {
    "staff.add": StaffAdd,
    "staff.deactivate": StaffDeactivate,
    "staff.set_role": StaffSetRole,
    "staff.reset_pin": StaffResetPin,
    "device.add": DeviceAdd,
    "device.revoke": DeviceRevoke,
    "tables.configure": TablesConfigure,
    "menu.load": MenuLoad,
    "clock.tick": ClockTick,
    "store.configure": StoreConfigure,
    **PRINT_COMMANDS,
    **FIRMWARE_COMMANDS,
}
"""Every admin command type and the model of its body."""
