"""Shifts, the drawer, Z reports and the business day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hub.domain import shift_summary

from .harness import store


def test_everything_on_the_floor_needs_an_open_shift():
    h = store(shift=False)
    commands: list[tuple[str, dict[str, Any]]] = [
        ("table.seat", {"table_id": "t1", "guests": 2}),
        ("ticket.open", {}),
        ("drawer.pay_in", {"amount": 100, "reason": "change"}),
        ("drawer.open", {"reason": "x"}),
        ("ticket.pay", {"ticket_id": "x", "tenders": [{"kind": "external", "amount": 1}]}),
    ]
    for type_, body in commands:
        error = h.fail(type_, body, code="shift_closed", as_="mgr")
        assert error.message == "No shift is open; a manager must open one first"
    h.fail("shift.report", {"kind": "x"}, code="shift_closed", as_="mgr")
    h.fail("shift.close", {"counted_cash": 0}, code="shift_closed", as_="mgr")
    assert shift_summary(h.state) == {"open": False}


def test_only_managers_open_shifts_and_only_one_at_a_time():
    h = store(shift=False)
    h.fail("shift.open", {"opening_float": 100}, code="forbidden", as_="csh")
    summary = h.ok("shift.open", {"opening_float": 15000}, as_="mgr")
    assert summary["open"] is True
    assert summary["opening_float"] == 15000
    assert summary["opened_by"] == "mgr"
    assert summary["business_day"] == "2026-11-22"
    assert "expected" not in str(summary)
    h.fail("shift.open", {"opening_float": 100}, code="conflict", as_="mgr")


def test_closing_with_open_tickets_lists_them():
    h = store()
    t1 = h.open_ticket("t1")
    h.open_ticket("t2")
    h.add(t1, {"line_id": "a", "menu_item_id": "fries"})
    h.pay_cash(t1)
    error = h.fail("shift.close", {"counted_cash": 0}, code="conflict", as_="mgr")
    assert error.message == "Close or void the open tickets first (#2)"
    assert [t["number"] for t in error.details["tickets"]] == [2]


def test_drawer_open_is_a_no_sale_with_approval():
    h = store()
    h.fail("drawer.open", {"reason": "change for a 50"}, code="approval_required", as_="csh")
    assert h.ok("drawer.open", {"reason": "change for a 50"}, as_="csh", approve=h.pin_of("mgr")) is None
    event = h.last("drawer.opened")
    assert event.actor == "csh"
    assert event.data["by"] == "csh"
    assert event.data["approved_by"] == "mgr"
    assert event.data["reason"] == "change for a 50"
    h.fail("drawer.pay_out", {"amount": 100, "reason": "x"}, code="forbidden", as_="srv")


def test_z_report_of_a_scripted_service():
    """Every number below is worked out by hand in the comments."""
    h = store()
    # T1: burger (medium, cheese) x2 = 2700, soda x2 = 600 incl. 100 tax; 2700 x 8.75 % = 236.25 -> 236.
    t1 = h.open_ticket("t1")
    h.add(
        t1,
        {"line_id": "a", "menu_item_id": "burger", "qty": 2, "modifiers": ["medium", "cheese"]},
        {"line_id": "b", "menu_item_id": "soda", "qty": 2},
    )
    assert h.state.tickets[t1].totals.total == 3536
    pay = h.ok(
        "ticket.pay",
        {"ticket_id": t1, "tenders": [{"kind": "cash", "amount": 3536, "tendered": 4000, "tip": 200}]},
        as_="csh",
    )
    assert pay["change_due"] == 264
    # T2: steak 2800 + fries 450 = 3250; 10 % off = 325 -> 2925; tax 255.94 -> 256; total 3181; external, tip 500.
    t2 = h.open_ticket("t2")
    h.add(t2, {"line_id": "a", "menu_item_id": "steak"}, {"line_id": "b", "menu_item_id": "fries"})
    h.ok("ticket.discount", {"ticket_id": t2, "kind": "percent", "value": 10, "reason": "birthday"}, as_="mgr")
    assert h.state.tickets[t2].totals.total == 3181
    h.ok("ticket.pay", {"ticket_id": t2, "tenders": [{"kind": "external", "amount": 3181, "tip": 500}]}, as_="csh")
    # T3 takeout: pie x2 = 1200 (+ fries voided while held: a void of 450); tax 105; total 1305 cash.
    t3 = h.open_ticket(None, channel="takeout", name="Bo")
    h.add(t3, {"line_id": "a", "menu_item_id": "pie", "qty": 2}, {"line_id": "b", "menu_item_id": "fries"})
    h.ok("ticket.void_item", {"ticket_id": t3, "line_id": "b", "reason": "typo"}, as_="srv")
    h.pay_cash(t3)
    # T4: salad 900 + 79 tax, voided whole by the manager: a ticket void of 979.
    t4 = h.open_ticket("t3")
    h.add(t4, {"line_id": "a", "menu_item_id": "salad"})
    h.ok("ticket.void", {"ticket_id": t4, "reason": "left"}, as_="mgr")
    # Refund one pie of T3 in cash: net 1200/2 = 600, tax 105/2 = 52.5 -> 53; 653.
    refund = h.ok(
        "ticket.refund",
        {"ticket_id": t3, "lines": [{"line_id": "a", "qty": 1}], "tender": "cash", "reason": "dropped"},
        as_="mgr",
    )
    assert (refund["amount"], refund["tax"]) == (653, 53)
    # Drawer: pay in 1000, pay out 500, drop 5000, one no-sale.
    h.ok("drawer.pay_in", {"amount": 1000, "reason": "coins"}, as_="csh")
    h.ok("drawer.pay_out", {"amount": 500, "reason": "window cleaner"}, as_="csh")
    h.ok("drawer.drop", {"amount": 5000, "reason": "safe"}, as_="csh")
    h.ok("drawer.open", {"reason": "change"}, as_="mgr")

    x = h.ok("shift.report", {"kind": "x"}, as_="mgr")
    assert x["kind"] == "x"
    assert "expected" not in x["cash"]  # blind until the count
    assert x["total"] == 8022

    z = h.ok("shift.close", {"counted_cash": 19900}, as_="mgr")
    assert z["kind"] == "z"
    assert z["tickets_closed"] == 3
    assert z["gross_sales"] == 3300 + 3250 + 1200
    assert z["discounts"] == 325
    assert z["net_sales"] == 7425
    assert z["tax"] == 336 + 256 + 105
    assert z["tax_added"] == 236 + 256 + 105
    assert z["total"] == 3536 + 3181 + 1305
    assert z["taxes"] == [
        {"rate_bp": 875, "inclusive": False, "base": 2700 + 2925 + 1200, "tax": 597},
        {"rate_bp": 2000, "inclusive": True, "base": 600, "tax": 100},
    ]
    assert z["tips"] == 700
    assert z["tenders"] == {
        "cash": {"count": 2, "amount": 4841, "tip": 200, "refunded": 653, "net": 4188},
        "external": {"count": 1, "amount": 3181, "tip": 500, "refunded": 0, "net": 3181},
    }
    assert z["refunds"]["count"] == 1
    assert z["refunds"]["amount"] == 653
    assert z["refunds"]["tax"] == 53
    assert z["voids"] == {"count": 1, "amount": 450}
    assert z["ticket_voids"] == {"count": 1, "amount": 979}
    assert z["no_sales"] == 1
    # expected = 20000 float + 4841 cash sales + 200 cash tips - 653 refund + 1000 - 500 - 5000
    assert z["cash"] == {
        "opening_float": 20000,
        "sales": 4841,
        "tips": 200,
        "refunds": 653,
        "pay_in": 1000,
        "pay_out": 500,
        "drops": 5000,
        "expected": 19888,
        "counted": 19900,
        "over_short": 12,
    }
    assert z["by_employee"]["srv"] == {
        "name": "Sam",
        "tickets": 3,
        "net_sales": 7425,
        "total": 8022,
        "tips": 700,
        "collected": 0,
    }
    assert z["by_employee"]["csh"]["collected"] == 8022
    assert z["grand_totals"]["total"] == 8022

    closed = h.last("shift.closed")
    assert closed.data["expected_cash"] == 19888
    assert closed.data["over_short"] == 12
    assert closed.data["report"] == z
    assert shift_summary(h.state) == {"open": False}
    assert h.ok("shift.report", {"kind": "z"}, as_="mgr") == z
    assert h.state.grand_totals.total == 8022
    h.fail("table.seat", {"table_id": "t5", "guests": 1}, code="shift_closed", as_="srv")


def test_a_second_shift_starts_from_zero_but_grand_totals_carry_on():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    h.pay_cash(t)
    h.ok("shift.close", {"counted_cash": 20489}, as_="mgr")
    h.ok("shift.open", {"opening_float": 10000}, as_="mgr")
    x = h.ok("shift.report", {"kind": "x"}, as_="mgr")
    assert x["total"] == 0
    assert x["grand_totals"]["total"] == 489
    t2 = h.open_ticket("t2")
    assert h.state.tickets[t2].number == 2  # same business day: numbers go on


def test_business_day_cut_off_closes_the_day_and_restarts_numbers():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    h.pay_cash(t)
    assert h.state.business_day == "2026-11-22"
    h.now = datetime.fromisoformat("2026-11-23T08:59:59+00:00")  # 03:59:59 in New York
    h.tick()
    assert not h.events("day.closed")
    h.advance(1)  # 04:00 local: the cut-off
    h.tick()
    closed = h.last("day.closed")
    assert closed.data["business_day"] == "2026-11-22"
    assert closed.data["next_business_day"] == "2026-11-23"
    assert closed.data["totals"]["total"] == 489
    assert closed.data["grand_totals"]["total"] == 489
    assert h.state.day_totals.total == 0
    h.fail("ticket.open", {}, code="unauthorized", as_="srv")  # 17 h later the 12 h token has expired
    h.login("srv")
    late = h.ok("ticket.open", {}, as_="srv")
    assert (late["number"], late["business_day"]) == (1, "2026-11-23")
    h.tick()
    assert len(h.events("day.closed")) == 1


def test_a_stale_day_is_closed_before_a_new_shift_opens():
    h = store()
    h.ok("shift.close", {"counted_cash": 20000}, as_="mgr")
    h.advance(timedelta(days=2).total_seconds())
    h.login("mgr")
    h.ok("shift.open", {"opening_float": 0}, as_="mgr")
    assert [e.type for e in h.ledger[-2:]] == ["day.closed", "shift.opened"]
    assert h.last("day.closed").data["next_business_day"] is None
    assert h.state.business_day == "2026-11-24"
