"""Tickets: opening, items and modifiers, firing, voids, discounts, void/reopen, print."""

from __future__ import annotations

from hub.domain import ApproverIn, token_hash
from hub.domain.money import exclusive_tax

from .harness import MENU, store


def test_open_numbers_tickets_and_seats_a_free_table():
    h = store()
    first = h.ok("ticket.open", {"table_id": "t1", "guests": 2}, as_="srv")
    second = h.ok("ticket.open", {"channel": "takeout", "name": "Ada"}, as_="srv")
    assert (first["number"], second["number"]) == (1, 2)
    assert first["business_day"] == "2026-11-22"
    table = h.state.tables["t1"]
    assert table.status == "seated"
    assert table.guests == 2
    assert table.server == "srv"
    assert table.ticket_ids == [first["ticket_id"]]
    assert [e.type for e in h.ledger[-3:]] == ["table.seated", "ticket.opened", "ticket.opened"]


def test_a_client_ticket_id_is_kept_and_reusing_it_is_a_conflict():
    h = store()
    assert h.ok("ticket.open", {"ticket_id": "T-abc"}, as_="srv")["ticket_id"] == "T-abc"
    error = h.fail("ticket.open", {"ticket_id": "T-abc"}, code="conflict", as_="srv")
    assert "already exists" in error.message


def test_add_items_prices_lines_from_the_menu():
    h = store()
    t = h.open_ticket()
    ticket = h.add(
        t,
        {"line_id": "l1", "menu_item_id": "burger", "qty": 2, "modifiers": ["rare", "cheese", "bacon"]},
        {"line_id": "l2", "menu_item_id": "soda", "qty": 3, "note": "no ice"},
    )
    l1, l2 = ticket["lines"]
    assert l1["unit_price"] == 1200
    assert [m["name"] for m in l1["modifiers"]] == ["Rare", "Cheese", "Bacon"]
    assert l1["amounts"]["gross"] == (1200 + 150 + 200) * 2
    assert l1["state"] == "held"
    assert l1["course"] == 2  # from the menu item
    assert l2["inclusive"] is True
    assert l2["note"] == "no ice"
    totals = ticket["totals"]
    assert totals["subtotal"] == 3100 + 900
    assert totals["tax"] == 271 + 150  # 3100 x 8.75 % = 271.25; 900 x 20/120 = 150
    assert totals["total"] == 3100 + 271 + 900
    assert totals["balance"] == totals["total"]
    event = h.last("ticket.items_added")
    assert event.data["totals"]["total"] == totals["total"]
    assert event.data["lines"][0]["amounts"]["gross"] == 3100
    assert event.actor == "srv"
    assert ticket == h.state.tickets[t].model_dump(mode="json")


def test_modifier_rules():
    h = store()
    t = h.open_ticket()
    missing = h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "a", "menu_item_id": "burger", "modifiers": ["cheese"]}]},
        code="conflict",
        as_="srv",
    )
    assert missing.message == "Burger: choose at least 1 from Temperature"
    too_many = h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "a", "menu_item_id": "burger", "modifiers": ["rare", "well"]}]},
        code="conflict",
        as_="srv",
    )
    assert "at most 1" in too_many.message
    unknown = h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "a", "menu_item_id": "fries", "modifiers": ["cheese"]}]},
        code="not_found",
        as_="srv",
    )
    assert unknown.details == {"menu_item_id": "fries", "option_id": "cheese"}
    h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "a", "menu_item_id": "caviar"}]},
        code="not_found",
        as_="srv",
    )
    assert h.state.tickets[t].lines == []


def test_line_ids_are_unique_on_a_ticket():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "l1", "menu_item_id": "fries"})
    h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "l1", "menu_item_id": "fries"}]},
        code="conflict",
        as_="srv",
    )


def test_fire_all_or_one_course():
    h = store()
    t = h.open_ticket()
    h.add(
        t,
        {"line_id": "s", "menu_item_id": "salad"},
        {"line_id": "b", "menu_item_id": "burger"},
        {"line_id": "p", "menu_item_id": "pie"},
    )
    fired = h.ok("ticket.fire", {"ticket_id": t, "course": 1}, as_="srv")
    assert [line["line_id"] for line in fired["fired"]] == ["s"]
    assert fired["fired"][0]["state"] == "fired"
    assert fired["fired"][0]["fired_at"] == "2026-11-22T16:00:00.000Z"
    event = h.last("ticket.fired")
    assert event.data["lines"] == [
        {"line_id": "s", "name": "Salad", "qty": 1, "stations": ["cold"], "course": 1, "seat": None}
    ]
    h.fail("ticket.fire", {"ticket_id": t, "course": 1}, code="conflict", as_="srv")
    rest = h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    assert [line["line_id"] for line in rest["fired"]] == ["b", "p"]
    assert h.state.tables["t1"].status == "ordered"


def test_void_held_by_server_but_fired_needs_a_manager():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"}, {"line_id": "b", "menu_item_id": "steak"})
    ticket = h.ok("ticket.void_item", {"ticket_id": t, "line_id": "a", "reason": "changed mind"}, as_="srv")
    assert ticket["lines"][0]["state"] == "voided"
    assert ticket["totals"]["subtotal"] == 2800
    assert h.last("ticket.item_voided").data["amount"] == 450
    assert "approved_by" not in h.last("ticket.item_voided").data

    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    error = h.fail(
        "ticket.void_item", {"ticket_id": t, "line_id": "b", "reason": "burnt"}, code="approval_required", as_="srv"
    )
    assert error.message == "Line b was already fired; voiding it needs a manager's approval"
    assert error.details == {"needs": "manager"}

    cashier_ok = h.pin_of("csh")
    error = h.fail(
        "ticket.void_item",
        {"ticket_id": t, "line_id": "b", "reason": "burnt"},
        code="approval_required",
        as_="srv",
        approve=cashier_ok,
    )
    assert error.message.startswith("Cara is a cashier")

    h.ok("ticket.void_item", {"ticket_id": t, "line_id": "b", "reason": "burnt"}, as_="srv", approve=h.pin_of("mgr"))
    event = h.last("ticket.item_voided")
    assert event.data["approved_by"] == "mgr"
    assert event.actor == "srv"
    assert event.data["was"] == "fired"
    shift = h.state.current_shift
    assert shift is not None
    assert shift.totals.voids_amount == 450 + 2800


def test_a_manager_voids_a_fired_line_without_approval():
    h = store()
    t = h.open_ticket(as_="mgr")
    h.add(t, {"line_id": "a", "menu_item_id": "steak"}, as_="mgr")
    h.ok("ticket.fire", {"ticket_id": t}, as_="mgr")
    h.ok("ticket.void_item", {"ticket_id": t, "line_id": "a", "reason": "sent back"}, as_="mgr")
    assert "approved_by" not in h.last("ticket.item_voided").data


def test_wrong_approval_pin_is_unauthorized_and_ledgered():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "steak"})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    before = len(h.ledger)
    decision = h.run(
        "ticket.void_item",
        {"ticket_id": t, "line_id": "a", "reason": "x"},
        as_="srv",
        approve=ApproverIn(employee_id="mgr", pin="9999"),
    )
    assert decision.error is not None
    assert decision.error.code == "unauthorized"
    assert decision.error.message == "Wrong approval PIN"
    assert [e.type for e in h.ledger[before:]] == ["staff.login_failed"]
    assert h.ledger[-1].data["reason"] == "approval"
    assert h.state.tickets[t].lines[0].state == "fired"


def test_approval_by_token():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    approve = ApproverIn(token_hash=token_hash(h.tokens["mgr"]))
    h.ok(
        "ticket.discount",
        {"ticket_id": t, "kind": "percent", "value": 50, "reason": "regular"},
        as_="srv",
        approve=approve,
    )
    assert h.last("ticket.discounted").data["approved_by"] == "mgr"


def test_discounts_need_approval_and_carry_their_amount():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "steak"}, {"line_id": "b", "menu_item_id": "fries"})
    body = {"ticket_id": t, "line_id": "a", "kind": "percent", "value": 25, "reason": "late"}
    h.fail("ticket.discount", body, code="approval_required", as_="srv")
    ticket = h.ok("ticket.discount", body, as_="srv", approve=h.pin_of("mgr"))
    assert ticket["lines"][0]["amounts"]["discount"] == 700
    event = h.last("ticket.discounted")
    assert event.data["amount"] == 700
    assert event.data["discount"]["approved_by"] == "mgr"
    ticket = h.ok("ticket.discount", {"ticket_id": t, "kind": "amount", "value": 255, "reason": "coupon"}, as_="mgr")
    # 2100 + 450 = 2550 left; 255 off spread 210 / 45
    assert [line["amounts"]["discount"] for line in ticket["lines"]] == [910, 45]
    assert ticket["totals"]["discount"] == 955
    assert ticket["totals"]["total"] == 2295 + 201  # 2295 x 8.75 % = 200.81


def test_a_full_comp_closes_the_ticket():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    h.ok("ticket.discount", {"ticket_id": t, "kind": "percent", "value": 100, "reason": "comp"}, as_="mgr")
    assert h.state.tickets[t].status == "closed"
    assert h.state.tables["t1"].status == "paid"
    h.fail(
        "ticket.discount", {"ticket_id": t, "kind": "percent", "value": 10, "reason": "x"}, code="conflict", as_="mgr"
    )


def test_nothing_left_to_discount_is_a_conflict():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"}, {"line_id": "b", "menu_item_id": "water"})
    h.fail(
        "ticket.discount",
        {"ticket_id": t, "line_id": "b", "kind": "percent", "value": 10, "reason": "x"},
        code="conflict",
        as_="mgr",
    )


def test_void_whole_ticket_and_not_once_paid():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "steak"})
    h.fail("ticket.void", {"ticket_id": t, "reason": "walkout"}, code="approval_required", as_="srv")
    ticket = h.ok("ticket.void", {"ticket_id": t, "reason": "walkout"}, as_="mgr")
    assert ticket["status"] == "voided"
    assert ticket["totals"]["total"] == 0
    assert h.last("ticket.voided").data["amount"] == 2800 + 245
    assert t not in h.state.open_tickets
    assert h.state.tables["t1"].status == "seated"

    t2 = h.open_ticket("t2")
    h.add(t2, {"line_id": "a", "menu_item_id": "steak"})
    h.ok("ticket.pay", {"ticket_id": t2, "tenders": [{"kind": "external", "amount": 1000}]}, as_="csh")
    error = h.fail("ticket.void", {"ticket_id": t2, "reason": "x"}, code="conflict", as_="mgr")
    assert "refund" in error.message


def test_reopen_takes_sales_off_until_closed_again():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    h.pay_cash(t)
    shift = h.state.current_shift
    assert shift is not None
    assert shift.totals.tickets_closed == 1
    h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "b", "menu_item_id": "pie"}]},
        code="conflict",
        as_="srv",
    )
    h.ok("ticket.reopen", {"ticket_id": t, "reason": "forgot dessert"}, as_="mgr")
    totals = h.state.shifts[shift.shift_id].totals
    assert (totals.tickets_closed, totals.net_sales, totals.reopened_count) == (0, 0, 1)
    h.add(t, {"line_id": "b", "menu_item_id": "pie"})
    assert h.state.tickets[t].totals.balance == 600 + 53  # 52.5 rounds up
    h.pay_cash(t)
    totals = h.state.shifts[shift.shift_id].totals
    assert (totals.tickets_closed, totals.net_sales) == (1, 1050)
    assert totals.total == 1050 + exclusive_tax(1050, 875)


def test_print_queues_a_job():
    h = store()
    t = h.open_ticket()
    result = h.ok("ticket.print", {"ticket_id": t, "kind": "check"}, as_="srv")
    assert result["print_job_id"].startswith("job-")
    event = h.last("print.queued")
    assert event.data == {"print_job_id": result["print_job_id"], "kind": "check", "ticket_id": t, "number": 1}


def test_priority():
    h = store()
    t = h.open_ticket()
    h.ok("ticket.priority", {"ticket_id": t, "priority": True}, as_="srv")
    assert h.state.tickets[t].priority is True
    count = len(h.ledger)
    h.ok("ticket.priority", {"ticket_id": t, "priority": True}, as_="srv")
    assert len(h.ledger) == count  # unchanged: nothing written
    h.ok("ticket.priority", {"ticket_id": t, "priority": False}, device="kds-expo", kind="kds", stations=("expo",))
    assert h.last("ticket.priority_changed").actor == "kds-expo"


def test_open_ticket_prices_survive_a_new_menu():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    menu = {**MENU, "version": "v2", "items": [{**i, "price": i["price"] * 2} for i in MENU["items"]]}
    assert h.ok("menu.publish", menu, as_="mgr") == {"version": "v2", "changed": True}
    assert h.state.tickets[t].lines[0].unit_price == 450
    ticket = h.add(t, {"line_id": "b", "menu_item_id": "fries"})
    assert [line["unit_price"] for line in ticket["lines"]] == [450, 900]
