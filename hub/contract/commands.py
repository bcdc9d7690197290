"""Command bodies of contract v1: one model per command type, field names exactly as CONTRACT.md.

`COMMANDS` maps each wire `type` to its body model; nothing else in the code base spells a
command type. Bodies are strict (no float for money, no string for a number) and refuse
unknown keys, so a typo in a client comes back as a clear `invalid_payload`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.contract.menu import Menu
from hub.contract.types import Cents, Id, PositiveCents, Reason, Text

Quantity = Annotated[int, Field(ge=1, le=999, strict=True)]
Course = Annotated[int, Field(ge=1, le=9, strict=True)]
Seat = Annotated[int, Field(ge=1, le=99, strict=True)]
Guests = Annotated[int, Field(ge=1, le=99, strict=True)]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]
Station = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]


class Body(BaseModel):
    """Base of every command body: strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Sync(Body):
    """`sync`: events since `since_seq` when the gap is small, else a snapshot."""

    since_seq: Annotated[int, Field(ge=0, strict=True)] | None = None


class StaffLogin(Body):
    """`staff.login`: a PIN for a session token."""

    employee_id: Id
    pin: Pin


class StaffLogout(Body):
    """`staff.logout`: ends the token given in `auth`."""


class ShiftOpen(Body):
    """`shift.open` with the counted opening float."""

    opening_float: Cents


class ShiftClose(Body):
    """`shift.close`: blind close; the expected cash is only revealed with the Z report."""

    counted_cash: Cents


class ShiftReport(Body):
    """`shift.report`: X (running) or Z (closing) report of the current or a named shift."""

    kind: Literal["x", "z"]
    shift_id: Id | None = None
    print: bool = False
    """Extension: also print it on the receipt printer (an X report, or a Z report again)."""


class DrawerCash(Body):
    """`drawer.pay_in`, `drawer.pay_out`, `drawer.drop`: cash in or out of the drawer with a reason."""

    amount: PositiveCents
    reason: Reason


class DrawerOpen(Body):
    """`drawer.open`: a no-sale drawer open, with its reason."""

    reason: Reason


class TableSeat(Body):
    """`table.seat`."""

    table_id: Id
    guests: Guests


class TableTransfer(Body):
    """`table.transfer`: move the party and its open tickets from one table to another."""

    from_: Id = Field(alias="from")
    to: Id


class TableMerge(Body):
    """`table.merge`: join tables into one; their open tickets follow."""

    tables: Annotated[list[Id], Field(min_length=1, max_length=20)]
    into: Id


class TableClear(Body):
    """`table.clear`: the party has left."""

    table_id: Id


class TicketOpen(Body):
    """`ticket.open`; clients may mint `ticket_id` so an offline retry stays idempotent."""

    ticket_id: Id | None = None
    table_id: Id | None = None
    guests: Guests | None = None
    channel: Literal["dine_in", "takeout", "delivery"] = "dine_in"
    name: Annotated[str, StringConstraints(min_length=1, max_length=60, strip_whitespace=True)] | None = None


class LineIn(Body):
    """One line of `ticket.add_items`; the price is always computed by the hub."""

    line_id: Id
    menu_item_id: Id
    qty: Quantity = 1
    modifiers: Annotated[list[Id], Field(max_length=30)] = Field(default_factory=list)
    note: Text | None = None
    allergy: Text | None = None
    seat: Seat | None = None
    course: Course | None = None


class TicketAddItems(Body):
    """`ticket.add_items`: lines are held until fired."""

    ticket_id: Id
    items: Annotated[list[LineIn], Field(min_length=1, max_length=100)]


class TicketFire(Body):
    """`ticket.fire`: all unfired lines, or one course."""

    ticket_id: Id
    course: Course | None = None


class TicketPriority(Body):
    """`ticket.priority`: rush tickets are pinned first on the KDS."""

    ticket_id: Id
    priority: bool


class SplitPart(Body):
    """One part of a split by lines."""

    line_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


class TicketSplit(Body):
    """`ticket.split`: by lines (`parts`) or evenly (`even`), exactly one of them."""

    ticket_id: Id
    parts: Annotated[list[SplitPart], Field(min_length=1, max_length=20)] | None = None
    even: Annotated[int, Field(ge=2, le=20, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> TicketSplit:
        if (self.parts is None) == (self.even is None):
            raise ValueError("give exactly one of 'parts' or 'even'")
        return self


class TicketVoidItem(Body):
    """`ticket.void_item`: needs approval once the line was fired."""

    ticket_id: Id
    line_id: Id
    reason: Reason


class TicketDiscount(Body):
    """`ticket.discount` of the ticket or one line: `percent` is 1-100 (whole percent), `amount` in cents."""

    ticket_id: Id
    line_id: Id | None = None
    kind: Literal["percent", "amount"]
    value: Annotated[int, Field(gt=0, le=100_000_000_00, strict=True)]
    reason: Reason

    @model_validator(mode="after")
    def _percent_in_range(self) -> TicketDiscount:
        if self.kind == "percent" and self.value > 100:  # noqa: PLR2004 - a percentage
            raise ValueError("a percent discount is at most 100")
        return self


class CashTender(Body):
    """Cash into the drawer: `tendered` is what the guest handed over; change is computed."""

    kind: Literal["cash"]
    amount: PositiveCents
    tendered: Cents
    tip: Cents = 0

    @model_validator(mode="after")
    def _tendered_covers(self) -> CashTender:
        if self.tendered < self.amount + self.tip:
            raise ValueError("tendered is less than amount plus tip")
        return self


class ExternalTender(Body):
    """Paid on a standalone card terminal or by another method outside the hub."""

    kind: Literal["external"]
    amount: PositiveCents
    tip: Cents = 0
    reference: Annotated[str, StringConstraints(max_length=64)] | None = None


class CardTender(Body):
    """Processed through central's payments API (refused until that exists)."""

    kind: Literal["card"]
    amount: PositiveCents
    tip: Cents = 0


Tender = Annotated[CashTender | ExternalTender | CardTender, Field(discriminator="kind")]


class TicketPay(Body):
    """`ticket.pay`: one or more tenders; the ticket closes when its balance reaches zero."""

    ticket_id: Id
    tenders: Annotated[list[Tender], Field(min_length=1, max_length=10)]


class RefundLine(Body):
    """A quantity of one sold line to refund."""

    line_id: Id
    qty: Quantity


class TicketRefund(Body):
    """`ticket.refund`: the amount is computed by the hub from what was sold and not yet refunded.

    `external` is an extension of v1: a refund given back on the standalone terminal.
    """

    ticket_id: Id
    lines: Annotated[list[RefundLine], Field(min_length=1, max_length=100)]
    tender: Literal["cash", "card", "external"]
    reason: Reason


class TicketReason(Body):
    """`ticket.void` and `ticket.reopen`."""

    ticket_id: Id
    reason: Reason


class TicketPrint(Body):
    """`ticket.print`: a check (pre-bill) or a receipt."""

    ticket_id: Id
    kind: Literal["check", "receipt"]


class KdsAction(Body):
    """`kds.start`, `kds.bump`, `kds.recall`: the whole station part of a ticket, or some lines."""

    ticket_id: Id
    station: Station
    line_ids: Annotated[list[Id], Field(min_length=1, max_length=100)] | None = None


class MenuAvailability(Body):
    """`menu.availability`: 86 an item, bring it back, or set a remaining count."""

    menu_item_id: Id
    available: bool
    remaining: Annotated[int, Field(ge=0, le=100_000, strict=True)] | None = None


class DeviceResult(Body):
    """`device.result`: a device's answer to a job on `device/{id}/do`."""

    of: Id
    ok: bool
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class MenuPublish(Menu):
    """`menu.publish`: a whole menu; prices of open tickets never change."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


COMMANDS: dict[str, type[BaseModel]] = {
    "sync": Sync,
    "staff.login": StaffLogin,
    "staff.logout": StaffLogout,
    "shift.open": ShiftOpen,
    "shift.close": ShiftClose,
    "shift.report": ShiftReport,
    "drawer.pay_in": DrawerCash,
    "drawer.pay_out": DrawerCash,
    "drawer.drop": DrawerCash,
    "drawer.open": DrawerOpen,
    "table.seat": TableSeat,
    "table.transfer": TableTransfer,
    "table.merge": TableMerge,
    "table.clear": TableClear,
    "ticket.open": TicketOpen,
    "ticket.add_items": TicketAddItems,
    "ticket.fire": TicketFire,
    "ticket.priority": TicketPriority,
    "ticket.split": TicketSplit,
    "ticket.void_item": TicketVoidItem,
    "ticket.discount": TicketDiscount,
    "ticket.pay": TicketPay,
    "ticket.refund": TicketRefund,
    "ticket.void": TicketReason,
    "ticket.reopen": TicketReason,
    "ticket.print": TicketPrint,
    "kds.start": KdsAction,
    "kds.bump": KdsAction,
    "kds.recall": KdsAction,
    "menu.availability": MenuAvailability,
    "device.result": DeviceResult,
    "menu.publish": MenuPublish,
}
"""Every command type of contract v1 and the model of its body."""

READ_ONLY_COMMANDS: frozenset[str] = frozenset({"sync", "shift.report"})
"""Commands that never write the ledger: served even while the hub refuses writes."""
