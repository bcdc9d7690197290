"""The state as a whole: JSON round trip, replay, snapshot, touched entities, purity helpers."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime

from hub.contract.commands import COMMANDS
from hub.contract.events import EVENT_TYPES
from hub.contract.state import AvailabilityState, ShiftState, StaffList
from hub.domain import (
    CommandIn,
    LedgerEvent,
    StoreState,
    availability_board,
    decide,
    evolve,
    model,
    shift_summary,
    snapshot,
    staff_list,
)
from hub.domain.decide import BODIES, RULES
from hub.domain.errors import DomainError
from hub.domain.evolve import EVOLVED_TYPES
from hub.domain.overlay import OVERLAID, Overlay, edit, overlay_of

from .harness import store


def _dinner():
    h = store()
    t = h.open_ticket("t1", guests=2)
    h.add(t, {"line_id": "a", "menu_item_id": "burger", "qty": 2}, {"line_id": "b", "menu_item_id": "soda"})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    h.ok("ticket.discount", {"ticket_id": t, "kind": "percent", "value": 10, "reason": "x"}, as_="mgr")
    h.pay_cash(t, tendered=10000, tip=100)
    h.ok(
        "ticket.refund",
        {"ticket_id": t, "lines": [{"line_id": "b", "qty": 1}], "tender": "cash", "reason": "x"},
        as_="mgr",
    )
    t2 = h.open_ticket("t2")
    h.add(t2, {"line_id": "a", "menu_item_id": "pie"})
    h.ok("drawer.drop", {"amount": 1000, "reason": "safe"}, as_="csh")
    return h


def test_state_round_trips_through_json():
    h = _dinner()
    dumped = h.state.model_dump(mode="json")
    text = json.dumps(dumped)
    assert StoreState.model_validate(json.loads(text)).model_dump(mode="json") == dumped
    assert StoreState.model_validate(json.loads(text)) == h.state


def test_replay_rebuilds_the_state():
    h = _dinner()
    assert h.replay().model_dump(mode="json") == h.state.model_dump(mode="json")


def test_evolve_reports_what_it_touched():
    h = store()
    t = h.open_ticket("t1")
    opened = h.last("ticket.opened")
    fresh = StoreState.empty()
    touched: set[tuple[str, str]] = set()
    for event in h.ledger:
        touched |= evolve(fresh, event)
        if event is opened:
            break
    assert ("ticket", t) in touched
    assert ("table", "t1") in touched
    assert ("store", "store") in touched
    assert evolve(fresh, LedgerEvent(0, h.now, "printer.status", None, None, None, {})) == set()


def test_snapshot_and_summary():
    h = _dinner()
    snap = snapshot(h.state)
    json.dumps(snap)
    assert snap["menu_version"] == "v1"
    assert snap["printers"] == []
    assert [t["number"] for t in snap["tickets"]] == [2]
    assert {t["table_id"] for t in snap["tables"]} == {f"t{i}" for i in range(1, 7)}
    summary = shift_summary(h.state)
    assert summary["tickets_open"] == 1
    assert summary["tickets_closed"] == 1
    closed = next(t for t in h.state.tickets.values() if t.status == "closed")
    assert summary["sales"] == closed.totals.subtotal - closed.totals.discount
    assert not any("expected" in key for key in summary)


def test_overlay_covers_every_mapping_and_never_writes_through():
    mappings = {name for name, f in StoreState.model_fields.items() if str(f.annotation).startswith("dict")}
    assert mappings == set(OVERLAID)
    h = _dinner()
    before = h.state.model_dump(mode="json")
    view = overlay_of(h.state)
    ticket_id = next(iter(h.state.open_tickets))
    edit(view.tickets, ticket_id).priority = True
    del view.tables["t3"]
    view.tables["t9"] = h.state.tables["t1"]
    assert "t3" not in view.tables
    assert "t9" in view.tables
    assert len(view.tables) == len(h.state.tables)
    assert view.tickets[ticket_id].priority is True
    assert h.state.model_dump(mode="json") == before
    assert isinstance(view.tickets, Overlay)


def test_every_command_has_a_body_model_and_every_event_type_is_in_the_contract():
    assert set(BODIES) == set(RULES)
    assert set(RULES) >= set(COMMANDS) - {"sync"}
    assert set(EVENT_TYPES) >= EVOLVED_TYPES
    h = _dinner()
    assert {e.type for e in h.ledger} - {"print.queued"} <= EVOLVED_TYPES


def test_retained_payloads_match_the_contract_models():
    h = _dinner()
    ShiftState.model_validate(shift_summary(h.state))
    AvailabilityState.model_validate(availability_board(h.state))
    StaffList.model_validate(staff_list(h.state))
    ShiftState.model_validate(shift_summary(StoreState.empty()))


def test_a_body_of_the_wrong_model_is_an_error_not_a_crash():
    h = store()
    cmd = h.command("ticket.open", {})
    wrong = CommandIn(cmd_id="x", type="ticket.fire", body=cmd.body, device_id="tab-1", device_kind="tablet")
    decision = decide(h.state, wrong, h.context())
    assert isinstance(decision.error, DomainError)
    assert decision.error.code == "invalid_payload"
    unknown = CommandIn(cmd_id="y", type="sync", body=cmd.body, device_id="tab-1", device_kind="tablet")
    error = decide(h.state, unknown, h.context()).error
    assert error is not None
    assert error.code == "unknown_command"


def test_decide_copies_only_what_the_command_touches(monkeypatch):
    h = store()
    tickets = [h.open_ticket(f"t{i}") for i in range(1, 7)]
    for t in tickets:
        h.add(t, {"menu_item_id": "fries"})
    copied: list[str] = []  # keys of the entities decide copied (once each) to apply its events
    writable = Overlay.writable

    def spy(self, key):
        copied.append(key)
        return writable(self, key)

    monkeypatch.setattr(Overlay, "writable", spy)
    h.add(tickets[2], {"menu_item_id": "pie"})
    assert set(copied) == {tickets[2], "t3"}
    copied.clear()
    h.pay_cash(tickets[4])
    shift_id = h.state.current_shift_id
    assert set(copied) == {tickets[4], "t5", shift_id, "day", "grand"}


def test_entities_copied_shallowly_hold_only_immutable_scalars():
    scalars = {int, str, bool, float, type(None), datetime}
    for kind in model._FLAT:
        assert issubclass(kind, model.Entity)
        for name, info in kind.model_fields.items():
            annotation = info.annotation
            union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
            parts = typing.get_args(annotation) if union else (annotation,)
            for part in parts:
                part = typing.get_args(part)[0] if typing.get_origin(part) is typing.Annotated else part  # noqa: PLW2901
                assert part in scalars or typing.get_origin(part) is typing.Literal, (kind.__name__, name, part)
    totals = model.PeriodTotals(taxes={"1000i": model.TaxLine(rate_bp=1000, inclusive=True, base=100, tax=9)})
    copy = totals.clone()
    copy.taxes["1000i"].tax += 1
    assert totals.taxes["1000i"].tax == 9
    assert copy.taxes["1000i"] == model.TaxLine(rate_bp=1000, inclusive=True, base=100, tax=10)
