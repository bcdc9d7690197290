"""A tiny engine for domain tests: decide → assign seq → evolve, with a fake clock, ids and tokens.

Every event goes through a JSON round trip before `evolve`, as it would through the ledger, and
`decide` is checked not to touch the state it was given.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from hub.contract.kds import KdsTicket
from hub.domain import (
    ApproverIn,
    CommandIn,
    Context,
    Decision,
    DomainError,
    LedgerEvent,
    StoreSettings,
    StoreState,
    decide,
    evolve,
    kds_messages,
    token_hash,
)
from hub.domain.decide import BODIES

START = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # 11:00 in New York, a Sunday lunch

SETTINGS = StoreSettings(
    store_id="s1",
    name="Test Bistro",
    currency="USD",
    timezone="America/New_York",
    business_day_starts_at=time(4, 0),
)

MENU: dict[str, Any] = {
    "version": "v1",
    "currency": "USD",
    "tax_classes": [
        {"id": "food", "rate_bp": 875, "inclusive": False},
        {"id": "bev", "rate_bp": 2000, "inclusive": True},
    ],
    "modifier_groups": [
        {
            "id": "temp",
            "name": "Temperature",
            "min": 1,
            "max": 1,
            "options": [
                {"id": "rare", "name": "Rare"},
                {"id": "medium", "name": "Medium"},
                {"id": "well", "name": "Well done"},
            ],
        },
        {
            "id": "extras",
            "name": "Extras",
            "min": 0,
            "max": 3,
            "options": [
                {"id": "cheese", "name": "Cheese", "price": 150},
                {"id": "bacon", "name": "Bacon", "price": 200},
            ],
        },
    ],
    "items": [
        {
            "id": "burger",
            "name": "Burger",
            "price": 1200,
            "tax_class": "food",
            "stations": ["grill"],
            "modifier_groups": ["temp", "extras"],
            "course": 2,
        },
        {"id": "fries", "name": "Fries", "price": 450, "tax_class": "food", "stations": ["fry"], "course": 2},
        {"id": "soda", "name": "Soda", "price": 300, "tax_class": "bev", "stations": ["bar"]},
        {"id": "salad", "name": "Salad", "price": 900, "tax_class": "food", "stations": ["cold"], "course": 1},
        {"id": "steak", "name": "Steak", "price": 2800, "tax_class": "food", "stations": ["grill"], "course": 2},
        {"id": "pie", "name": "Pie", "price": 600, "tax_class": "food", "stations": ["pastry"], "course": 3},
        {"id": "water", "name": "Water", "price": 0, "tax_class": "bev"},
    ],
}

STAFF = {
    "mgr": ("Maria", "manager", "1111"),
    "csh": ("Cara", "cashier", "3333"),
    "srv": ("Sam", "server", "2222"),
    "srv2": ("Sol", "server", "2323"),
    "kit": ("Kai", "kitchen", "4444"),
}


@dataclass
class Harness:
    """Plays commands like the engine does and keeps the ledger."""

    settings: StoreSettings = SETTINGS
    now: datetime = START
    state: StoreState = field(default_factory=StoreState.empty)
    ledger: list[LedgerEvent] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    check_purity: bool = True
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _cmds: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    tokens: dict[str, str] = field(default_factory=dict)

    # -- the engine loop ------------------------------------------------------------------------
    def context(self) -> Context:
        return Context(
            now=self.now,
            settings=self.settings,
            new_id=lambda prefix: f"{prefix}-{next(self._ids)}",
            new_token=lambda: f"token-{next(self._ids)}",
            verify_pin=lambda employee_id, pin: self.pins.get(employee_id) == pin,
        )

    def command(
        self,
        type_: str,
        body: dict[str, Any] | None = None,
        *,
        device: str = "tab-1",
        kind: str = "tablet",
        stations: tuple[str, ...] = (),
        token: str | None = None,
        approve: ApproverIn | None = None,
    ) -> CommandIn:
        model = BODIES[type_]
        return CommandIn(
            cmd_id=f"c-{next(self._cmds)}",
            type=type_,
            body=model.model_validate(body or {}),
            device_id=device,
            device_kind=kind,
            device_stations=stations,
            token_hash=token_hash(token) if token else None,
            approve=approve,
        )

    def run_cmd(self, cmd: CommandIn) -> Decision:
        before = self.state.model_dump(mode="json") if self.check_purity else None
        decision = decide(self.state, cmd, self.context())
        if before is not None:
            assert self.state.model_dump(mode="json") == before, f"decide mutated the state ({cmd.type})"
        json.dumps(decision.result)  # results and error details go into JSON replies as they are
        if decision.error is not None:
            json.dumps(decision.error.details)
            assert decision.error.message
            assert not decision.events or {e.type for e in decision.events} == {"staff.login_failed"}
        for event in decision.events:
            self.append(event.type, event.data, event.actor, cmd)
        if decision.error is None and cmd.type == "staff.add" and getattr(cmd.body, "pin", None):
            self.pins[cmd.body.employee_id] = cmd.body.pin  # type: ignore[attr-defined]
        if decision.error is None and cmd.type == "staff.reset_pin":
            self.pins[cmd.body.employee_id] = cmd.body.pin  # type: ignore[attr-defined]
        return decision

    def append(self, type_: str, data: dict[str, Any], actor: str | None, cmd: CommandIn | None = None) -> LedgerEvent:
        event = LedgerEvent(
            seq=len(self.ledger) + 1,
            at=self.now,
            type=type_,
            actor=actor,
            device=cmd.device_id if cmd else None,
            cmd=cmd.cmd_id if cmd else None,
            data=json.loads(json.dumps(data)),
        )
        evolve(self.state, event)
        self.ledger.append(event)
        for station, kind, view in kds_messages(self.state, event):
            assert kind in {"kds.ticket", "kds.update", "kds.recall", "kds.remove"}
            assert station
            if kind != "kds.remove":
                KdsTicket.model_validate(view)
        return event

    def run(self, type_: str, body: dict[str, Any] | None = None, *, as_: str | None = None, **kw: Any) -> Decision:
        """Run a command; `as_` names an employee whose token (from `login`) is used."""
        if as_ is not None:
            kw.setdefault("token", self.tokens[as_])
        return self.run_cmd(self.command(type_, body, **kw))

    def ok(self, type_: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        decision = self.run(type_, body, **kw)
        assert decision.error is None, f"{type_} failed: {decision.error!r}"
        return decision.result

    def fail(self, type_: str, body: dict[str, Any] | None = None, *, code: str, **kw: Any) -> DomainError:
        events_before = len(self.ledger)
        decision = self.run(type_, body, **kw)
        assert decision.error is not None, f"{type_} should have failed with {code}"
        assert decision.error.code == code, f"{type_}: {decision.error!r}, wanted {code}"
        assert decision.result is None
        written = {e.type for e in self.ledger[events_before:]}
        assert written <= {"staff.login_failed"}, f"a refused command wrote {written}"
        return decision.error

    def admin(self, type_: str, body: dict[str, Any] | None = None) -> Any:
        return self.ok(type_, body, device="admin", kind="admin")

    # -- clock and replay -----------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def tick(self) -> Any:
        return self.admin("clock.tick")

    def replay(self) -> StoreState:
        state = StoreState.empty()
        for event in self.ledger:
            evolve(state, event)
        return state

    def events(self, type_: str) -> list[LedgerEvent]:
        return [e for e in self.ledger if e.type == type_]

    def last(self, type_: str) -> LedgerEvent:
        return self.events(type_)[-1]

    # -- store setup ----------------------------------------------------------------------------
    def login(self, employee_id: str, device: str = "tab-1") -> str:
        result = self.ok("staff.login", {"employee_id": employee_id, "pin": self.pins[employee_id]}, device=device)
        self.tokens[employee_id] = result["token"]
        return str(result["token"])

    def pin_of(self, employee_id: str) -> ApproverIn:
        return ApproverIn(employee_id=employee_id, pin=self.pins[employee_id])

    def open_ticket(self, table: str | None = "t1", as_: str = "srv", **body: Any) -> str:
        if table is not None:
            body["table_id"] = table
        return str(self.ok("ticket.open", body, as_=as_)["ticket_id"])

    def add(self, ticket_id: str, *items: dict[str, Any], as_: str = "srv") -> dict[str, Any]:
        lines = []
        for item in items:
            spec = dict(item)
            spec.setdefault("line_id", f"l-{next(self._ids)}")
            if spec["menu_item_id"] == "burger":
                spec.setdefault("modifiers", ["medium"])
            lines.append(spec)
        result: dict[str, Any] = self.ok("ticket.add_items", {"ticket_id": ticket_id, "items": lines}, as_=as_)
        return result

    def pay_cash(self, ticket_id: str, amount: int | None = None, tendered: int | None = None, tip: int = 0) -> Any:
        due = self.state.tickets[ticket_id].totals.balance if amount is None else amount
        body = {
            "ticket_id": ticket_id,
            "tenders": [{"kind": "cash", "amount": due, "tendered": tendered or due + tip, "tip": tip}],
        }
        return self.ok("ticket.pay", body, as_="csh")


def store(*, shift: bool = True, logins: tuple[str, ...] = ("mgr", "csh", "srv", "kit")) -> Harness:
    """A configured store: staff, devices, tables, menu; staff logged in; a shift open with a $200 float."""
    h = Harness()
    for employee_id, (name, role, pin) in STAFF.items():
        h.admin("staff.add", {"employee_id": employee_id, "name": name, "role": role, "pin": pin})
    h.admin("device.add", {"device_id": "kds-grill", "kind": "kds", "stations": ["grill"]})
    h.admin("device.add", {"device_id": "kds-expo", "kind": "kds", "stations": ["expo"]})
    h.admin(
        "tables.configure",
        {"tables": [{"table_id": f"t{i}", "name": f"T{i}", "seats": 4, "area": "main"} for i in range(1, 7)]},
    )
    h.admin("menu.load", MENU)
    for employee_id in logins:
        h.login(employee_id, device=f"tab-{employee_id}")
    if shift:
        h.ok("shift.open", {"opening_float": 20000}, as_="mgr")
    return h
