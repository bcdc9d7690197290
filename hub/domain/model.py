"""The store's state: entities the hub holds as the single source of truth.

Every field is JSON: `StoreState.model_dump(mode="json")` and `StoreState.model_validate` round-trip,
and `evolve` builds exactly this from the ledger. Times are aware UTC datetimes with milliseconds
(as the ledger spells them); money is int minor units.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from hub.contract.menu import Menu
from hub.contract.types import format_time
from hub.domain import money

Time = Annotated[datetime, PlainSerializer(format_time, return_type=str, when_used="json")]
"""An aware UTC time, spelled as the contract spells times in JSON."""

Role = Literal["kitchen", "server", "cashier", "manager"]
ROLE_RANK: dict[str, int] = {"kitchen": 0, "server": 1, "cashier": 2, "manager": 3}
"""Roles, lowest to highest."""

TableStatus = Literal["free", "seated", "ordered", "paid", "merged"]
TicketStatus = Literal["open", "paid", "closed", "voided"]
LineState = Literal["held", "fired", "started", "ready", "voided"]
Channel = Literal["dine_in", "takeout", "delivery"]
TenderKind = Literal["cash", "external", "card"]
CashMoveKind = Literal["pay_in", "pay_out", "drop"]


class Entity(BaseModel):
    """Base of every state model: mutable (evolve edits in place), unknown keys refused."""

    model_config = ConfigDict(extra="forbid")

    def clone(self) -> Any:
        """A deep copy that evolve may edit without touching the original (much faster than deepcopy)."""
        return _clone(self)


# -- menu and staff ---------------------------------------------------------------------------
class Availability(Entity):
    """An item's place on the 86 board."""

    available: bool = True
    remaining: int | None = None


class Employee(Entity):
    """An employee; PIN hashes live outside the ledger and outside this state."""

    employee_id: str
    name: str
    role: Role
    active: bool = True
    added_at: Time | None = None
    deactivated_at: Time | None = None


class StaffSession(Entity):
    """A staff session, keyed in the state by the sha256 of its token."""

    employee_id: str
    role: Role
    issued_at: Time
    expires_at: Time
    device: str


class LoginFailure(Entity):
    """One refused PIN, kept for rate limiting."""

    employee_id: str
    device: str
    at: Time


class Device(Entity):
    """A registered device."""

    device_id: str
    kind: str
    stations: list[str] = Field(default_factory=list)
    active: bool = True
    paired_at: Time | None = None
    revoked_at: Time | None = None


# -- tables -----------------------------------------------------------------------------------
class Table(Entity):
    """A table of the floor plan and the party at it."""

    table_id: str
    name: str
    seats: int = 0
    area: str | None = None
    status: TableStatus = "free"
    guests: int | None = None
    server: str | None = None
    seated_at: Time | None = None
    last_activity_at: Time | None = None
    ticket_ids: list[str] = Field(default_factory=list)
    merged_into: str | None = None
    merged: list[str] = Field(default_factory=list)
    attention: list[str] = Field(default_factory=list)
    no_order_raised: bool = False


# -- tickets ----------------------------------------------------------------------------------
class Modifier(Entity):
    """A chosen modifier option, with the name and price it had when ordered."""

    option_id: str
    group_id: str
    name: str
    price: int = 0


class Discount(Entity):
    """A discount of a whole ticket (`line_id` None) or of one line."""

    discount_id: str
    line_id: str | None = None
    kind: Literal["percent", "amount"]
    value: int
    reason: str
    at: Time
    by: str | None = None
    approved_by: str | None = None


class LineAmounts(Entity):
    """What a line comes to: `net = gross - discount`, `total = net + tax` unless tax is inclusive."""

    gross: int = 0
    discount: int = 0
    net: int = 0
    tax: int = 0
    total: int = 0


class Line(Entity):
    """A ticket line; its prices were copied from the menu when it was added."""

    line_id: str
    menu_item_id: str
    name: str
    qty: int
    unit_price: int
    modifiers: list[Modifier] = Field(default_factory=list)
    tax_class: str
    tax_rate_bp: int
    inclusive: bool = False
    note: str | None = None
    allergy: str | None = None
    seat: int | None = None
    course: int | None = None
    stations: list[str] = Field(default_factory=list)
    state: LineState = "held"
    added_at: Time | None = None
    added_by: str | None = None
    fired_at: Time | None = None
    started_at: Time | None = None
    ready_at: Time | None = None
    voided_at: Time | None = None
    void_reason: str | None = None
    refunded_qty: int = 0
    discounts: list[Discount] = Field(default_factory=list)
    amounts: LineAmounts = Field(default_factory=LineAmounts)
    fixed: bool = False
    share: str | None = None

    @property
    def gross(self) -> int:
        """`(unit price + modifier prices) x qty`, zero once voided."""
        if self.state == "voided":
            return 0
        return self.list_gross

    @property
    def list_gross(self) -> int:
        """`(unit price + modifier prices) x qty`, voided or not."""
        unit = self.unit_price
        for modifier in self.modifiers:
            unit += modifier.price
        return unit * self.qty


class Payment(Entity):
    """A tender taken against a ticket."""

    payment_id: str
    kind: TenderKind
    amount: int
    tip: int = 0
    tendered: int | None = None
    change: int = 0
    reference: str | None = None
    at: Time
    by: str | None = None
    shift_id: str | None = None


class RefundedLine(Entity):
    """Part of a refund: a quantity of one line and what it gave back."""

    line_id: str
    qty: int
    net: int
    tax: int
    amount: int


class Refund(Entity):
    """Money given back for lines of a closed ticket."""

    refund_id: str
    lines: list[RefundedLine]
    amount: int
    tax: int
    tender: TenderKind
    reason: str
    at: Time
    by: str | None = None
    approved_by: str | None = None
    shift_id: str | None = None


class TaxLine(Entity):
    """One tax rate's base and tax."""

    rate_bp: int
    inclusive: bool
    base: int = 0
    tax: int = 0


class TicketTotals(Entity):
    """A ticket's totals: `total = subtotal - discount + tax_added`, `balance = total - paid`."""

    subtotal: int = 0
    discount: int = 0
    tax: int = 0
    tax_added: int = 0
    total: int = 0
    paid: int = 0
    tip: int = 0
    balance: int = 0
    refunded: int = 0
    taxes: list[TaxLine] = Field(default_factory=list)


class Ticket(Entity):
    """A ticket (check) with its lines, discounts, payments and refunds."""

    ticket_id: str
    number: int
    business_day: str | None = None
    shift_id: str | None = None
    table_id: str | None = None
    channel: Channel = "dine_in"
    name: str | None = None
    guests: int | None = None
    server: str | None = None
    status: TicketStatus = "open"
    priority: bool = False
    opened_at: Time
    closed_at: Time | None = None
    lines: list[Line] = Field(default_factory=list)
    discounts: list[Discount] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    totals: TicketTotals = Field(default_factory=TicketTotals)
    split_from: str | None = None

    def line(self, line_id: str) -> Line | None:
        """The line with this id, or None."""
        return next((line for line in self.lines if line.line_id == line_id), None)

    def replace_line(self, line_id: str, **changes: Any) -> None:
        """Replace a line by a copy with `changes`: lines are never edited in place (copies share them)."""
        for i, line in enumerate(self.lines):
            if line.line_id == line_id:
                self.lines[i] = line.model_copy(update=changes)
                return

    def reprice(self) -> None:
        """Recompute every line's amounts and the totals (deterministic; evolve calls it)."""
        inputs = []
        for line in self.lines:
            fixed = None
            if line.fixed:
                mine = line.amounts
                fixed = money.Amounts(mine.gross, mine.discount, mine.net, mine.tax, mine.total)
                if line.state == "voided":
                    fixed = money.Amounts()
            inputs.append(
                money.LineInput(
                    gross=line.gross,
                    rate_bp=line.tax_rate_bp,
                    inclusive=line.inclusive,
                    discounts=tuple((d.kind, d.value) for d in line.discounts),
                    fixed=fixed,
                )
            )
        priced = money.price(inputs, [(d.kind, d.value) for d in self.discounts])
        for i, (line, a) in enumerate(zip(self.lines, priced.lines, strict=True)):
            have = line.amounts
            if (have.gross, have.discount, have.net, have.tax, have.total) != (
                a.gross,
                a.discount,
                a.net,
                a.tax,
                a.total,
            ):
                amounts = LineAmounts(gross=a.gross, discount=a.discount, net=a.net, tax=a.tax, total=a.total)
                self.lines[i] = line.model_copy(update={"amounts": amounts})
        paid = sum(p.amount for p in self.payments)
        self.totals = TicketTotals(
            subtotal=priced.subtotal,
            discount=priced.discount,
            tax=priced.tax,
            tax_added=priced.tax_added,
            total=priced.total,
            paid=paid,
            tip=sum(p.tip for p in self.payments),
            balance=priced.total - paid,
            refunded=sum(r.amount for r in self.refunds),
            taxes=[TaxLine(rate_bp=t.rate_bp, inclusive=t.inclusive, base=t.base, tax=t.tax) for t in priced.taxes],
        )


# -- shifts and period totals -----------------------------------------------------------------
class CashMovement(Entity):
    """Cash moved in or out of the drawer outside a sale."""

    kind: CashMoveKind
    amount: int
    reason: str
    at: Time
    by: str | None = None


class TenderTotals(Entity):
    """Count, amount and tips of one tender kind."""

    count: int = 0
    amount: int = 0
    tip: int = 0


class EmployeeTotals(Entity):
    """What one employee sold, collected and earned in tips."""

    tickets: int = 0
    net_sales: int = 0
    total: int = 0
    tips: int = 0
    collected: int = 0


class PeriodTotals(Entity):
    """Running totals of a shift, a business day, or the store's life (grand totals)."""

    tickets_closed: int = 0
    gross_sales: int = 0
    discounts: int = 0
    net_sales: int = 0
    tax: int = 0
    tax_added: int = 0
    total: int = 0
    taxes: dict[str, TaxLine] = Field(default_factory=dict)
    payments: dict[str, TenderTotals] = Field(default_factory=dict)
    refunds: dict[str, TenderTotals] = Field(default_factory=dict)
    refund_tax: int = 0
    refund_taxes: dict[str, TaxLine] = Field(default_factory=dict)
    voids_count: int = 0
    voids_amount: int = 0
    ticket_voids_count: int = 0
    ticket_voids_amount: int = 0
    reopened_count: int = 0
    reopened_amount: int = 0
    pay_in: int = 0
    pay_out: int = 0
    drops: int = 0
    no_sales: int = 0
    by_employee: dict[str, EmployeeTotals] = Field(default_factory=dict)

    @property
    def cash_in(self) -> int:
        """Cash taken into the drawer by sales: cash amounts plus cash tips."""
        cash = self.payments.get("cash")
        return cash.amount + cash.tip if cash else 0

    @property
    def cash_refunds(self) -> int:
        """Cash given back by refunds."""
        cash = self.refunds.get("cash")
        return cash.amount if cash else 0


class Shift(Entity):
    """A shift (drawer session) from its opening float to its blind count."""

    shift_id: str
    business_day: str | None = None
    status: Literal["open", "closed"] = "open"
    opened_at: Time
    opened_by: str | None = None
    opening_float: int = 0
    movements: list[CashMovement] = Field(default_factory=list)
    totals: PeriodTotals = Field(default_factory=PeriodTotals)
    closed_at: Time | None = None
    closed_by: str | None = None
    counted_cash: int | None = None
    expected_cash: int | None = None
    over_short: int | None = None
    z: dict[str, Any] | None = None

    @property
    def expected(self) -> int:
        """Cash the drawer should hold: float + cash sales and tips - cash refunds + pay-ins - pay-outs - drops."""
        t = self.totals
        return self.opening_float + t.cash_in - t.cash_refunds + t.pay_in - t.pay_out - t.drops


# -- printing (routing is ledger-recorded; jobs live in the print queue) ------------------------
class PrinterSpec(Entity):
    """A printer the store prints to: its backup, paper width and the drawer pins it kicks."""

    printer_id: str
    name: str
    backup: str | None = None
    paper_mm: Literal[58, 80] = 80
    drawer_pins: list[int] = Field(default_factory=list)


class StoreIdentity(Entity):
    """What the ledger last said of the store (`store.configured`): for HQ, its name, currency and clock."""

    store_id: str
    name: str
    currency: str
    timezone: str
    business_day_starts_at: str
    """Local time of day the business day starts, `HH:MM`."""


class PrintingConfig(Entity):
    """Station → printers, where receipts go (per register or tablet), and an optional expo printer."""

    printers: dict[str, PrinterSpec] = Field(default_factory=dict)
    stations: dict[str, list[str]] = Field(default_factory=dict)
    receipts: str | None = None
    receipts_by_device: dict[str, str] = Field(default_factory=dict)
    expo: str | None = None


# -- the whole store --------------------------------------------------------------------------
class StoreState(BaseModel):
    """Everything the hub knows about the store floor, rebuilt exactly by replaying the ledger."""

    model_config = ConfigDict(extra="forbid")

    menu: Menu | None = None
    availability: dict[str, Availability] = Field(default_factory=dict)
    staff: dict[str, Employee] = Field(default_factory=dict)
    sessions: dict[str, StaffSession] = Field(default_factory=dict)
    login_failures: dict[str, list[LoginFailure]] = Field(default_factory=dict)
    devices: dict[str, Device] = Field(default_factory=dict)
    tables: dict[str, Table] = Field(default_factory=dict)
    tickets: dict[str, Ticket] = Field(default_factory=dict)
    open_tickets: dict[str, int] = Field(default_factory=dict)
    shifts: dict[str, Shift] = Field(default_factory=dict)
    current_shift_id: str | None = None
    last_shift_id: str | None = None
    business_day: str | None = None
    ticket_counter: int = 0
    periods: dict[str, PeriodTotals] = Field(default_factory=dict)
    printing: PrintingConfig = Field(default_factory=PrintingConfig)
    configured: StoreIdentity | None = None
    """Replaced whole by `printers.configured`, never edited in place (so overlays need no copy)."""

    @classmethod
    def empty(cls) -> StoreState:
        """A store before its first ledger entry."""
        return cls()

    @property
    def current_shift(self) -> Shift | None:
        """The open shift, if any."""
        return self.shifts.get(self.current_shift_id) if self.current_shift_id else None

    @property
    def day_totals(self) -> PeriodTotals:
        """Totals of the open business day so far."""
        return self.periods.get("day") or PeriodTotals()

    @property
    def grand_totals(self) -> PeriodTotals:
        """Perpetual totals since the store's first ledger entry."""
        return self.periods.get("grand") or PeriodTotals()


def _clone(value: Any) -> Any:
    # Entities hold only immutable scalars (str, int, bool, None, datetime), lists, dicts and entities.
    kind = type(value)
    if kind is list:
        if not value or type(value[0]) in _SHARED:
            return list(value)
        return [_clone(v) for v in value]
    if kind is dict:
        return {k: _clone(v) for k, v in value.items()}
    if kind in _NEVER_EDITED or not isinstance(value, Entity):
        return value
    if kind in _FLAT:
        fields = value.__dict__.copy()  # only immutable scalars: a shallow copy is a deep one
    else:
        fields = {}
        for key, item in value.__dict__.items():
            item_kind = type(item)
            if item_kind is list or item_kind is dict or (isinstance(item, Entity) and item_kind not in _NEVER_EDITED):
                item = _clone(item)  # noqa: PLW2901 - the copy replaces the original
            fields[key] = item
    copied = object.__new__(kind)
    object.__setattr__(copied, "__dict__", fields)
    object.__setattr__(copied, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
    object.__setattr__(copied, "__pydantic_extra__", None)
    object.__setattr__(copied, "__pydantic_private__", None)
    return copied


_NEVER_EDITED: frozenset[type] = frozenset(
    {Line, Modifier, Discount, LineAmounts, Payment, RefundedLine, Refund, CashMovement, LoginFailure, StoreIdentity}
)
"""Entities evolve creates and replaces but never edits in place: copies may share them."""

_SHARED: frozenset[type] = _NEVER_EDITED | {str, int, bool}

_FLAT: frozenset[type] = frozenset({TaxLine, TenderTotals, EmployeeTotals, Availability})
"""Entities edited in place whose fields are all immutable scalars (a test checks it): copied shallowly."""


def tax_key(rate_bp: int, inclusive: bool) -> str:
    """The key of a tax rate in period totals: `875` (added on top) or `2000i` (included)."""
    return f"{rate_bp}{'i' if inclusive else ''}"
