"""Payments and refunds."""

from __future__ import annotations

from hub.domain.money import exclusive_tax

from .harness import store


def _ticket(h, *items):
    t = h.open_ticket()
    h.add(t, *items)
    return t


def test_cash_with_change_and_tip_closes_the_ticket():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "steak"})  # 2800 + 245 tax
    result = h.ok(
        "ticket.pay",
        {"ticket_id": t, "tenders": [{"kind": "cash", "amount": 3045, "tendered": 4000, "tip": 300}]},
        as_="csh",
    )
    assert result["change_due"] == 4000 - 3045 - 300
    assert result["balance"] == 0
    assert result["closed"] is True
    assert [e.type for e in h.ledger[-2:]] == ["ticket.paid", "ticket.closed"]
    paid = h.ledger[-2].data
    assert paid["amount"] == 3045
    assert paid["tip"] == 300
    assert paid["change"] == 655
    closed = h.ledger[-1].data
    assert (closed["subtotal"], closed["tax"], closed["total"]) == (2800, 245, 3045)
    ticket = h.state.tickets[t]
    assert ticket.status == "closed"
    assert ticket.totals.tip == 300
    assert h.state.tables["t1"].status == "paid"


def test_partial_payments_keep_the_ticket_open():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "steak"})
    first = h.ok(
        "ticket.pay", {"ticket_id": t, "tenders": [{"kind": "external", "amount": 1045, "reference": "T1"}]}, as_="csh"
    )
    assert (first["balance"], first["closed"], first["status"]) == (2000, False, "open")
    assert h.state.tickets[t].payments[0].reference == "T1"
    second = h.ok(
        "ticket.pay",
        {
            "ticket_id": t,
            "tenders": [
                {"kind": "external", "amount": 1000, "tip": 200},
                {"kind": "cash", "amount": 1000, "tendered": 1000},
            ],
        },
        as_="csh",
    )
    assert second["closed"] is True
    assert second["paid"] == 3045


def test_cash_above_the_balance_is_capped_and_given_back_as_change():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "fries"})  # 450 + 39
    result = h.ok(
        "ticket.pay", {"ticket_id": t, "tenders": [{"kind": "cash", "amount": 1000, "tendered": 2000}]}, as_="csh"
    )
    assert result["payments"][0]["amount"] == 489
    assert result["change_due"] == 2000 - 489
    assert result["closed"] is True


def test_external_above_the_balance_is_refused():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "fries"})
    error = h.fail(
        "ticket.pay", {"ticket_id": t, "tenders": [{"kind": "external", "amount": 500}]}, code="conflict", as_="csh"
    )
    assert error.details == {"ticket_id": t, "balance": 489}


def test_card_is_declined_until_central_exists():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "fries"})
    error = h.fail(
        "ticket.pay", {"ticket_id": t, "tenders": [{"kind": "card", "amount": 489}]}, code="payment_declined", as_="csh"
    )
    assert error.message == "Card payments need the central payments service, which is not connected"


def test_servers_cannot_take_payment_unless_a_cashier_approves():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "fries"})
    body = {"ticket_id": t, "tenders": [{"kind": "external", "amount": 489}]}
    error = h.fail("ticket.pay", body, code="forbidden", as_="srv")
    assert error.message == "Taking payment needs a cashier; you are signed in as a server"
    h.ok("ticket.pay", body, as_="srv", approve=h.pin_of("csh"))
    assert h.last("ticket.paid").data["approved_by"] == "csh"
    assert h.last("ticket.closed").data["approved_by"] == "csh"
    assert h.state.tickets[t].payments[0].by == "srv"  # the actor stays the server


def test_nothing_to_pay_on_an_empty_ticket():
    h = store()
    t = h.open_ticket()
    h.fail("ticket.pay", {"ticket_id": t, "tenders": [{"kind": "external", "amount": 1}]}, code="conflict", as_="csh")


def test_refund_amounts_come_from_what_was_sold():
    h = store()
    t = _ticket(
        h,
        {"line_id": "a", "menu_item_id": "fries", "qty": 3},  # 1350
        {"line_id": "b", "menu_item_id": "soda", "qty": 2},  # 600 incl. 100 tax
    )
    h.ok("ticket.discount", {"ticket_id": t, "kind": "amount", "value": 195, "reason": "x"}, as_="mgr")
    ticket = h.state.tickets[t]
    line_a = ticket.lines[0].amounts
    h.pay_cash(t)
    body = {"ticket_id": t, "lines": [{"line_id": "a", "qty": 1}], "tender": "cash", "reason": "cold"}
    h.fail("ticket.refund", body, code="approval_required", as_="csh")
    first = h.ok("ticket.refund", body, as_="csh", approve=h.pin_of("mgr"))
    second = h.ok("ticket.refund", {**body, "lines": [{"line_id": "a", "qty": 2}]}, as_="mgr")
    assert first["amount"] + second["amount"] == line_a.total
    assert first["tax"] + second["tax"] == line_a.tax
    error = h.fail("ticket.refund", body, code="conflict", as_="mgr")
    assert error.details["refundable"] == 0
    soda = h.ok("ticket.refund", {**body, "lines": [{"line_id": "b", "qty": 2}], "tender": "external"}, as_="mgr")
    assert soda["amount"] == ticket.lines[1].amounts.total
    assert soda["refunded_total"] == ticket.totals.total
    event = h.last("ticket.refunded")
    assert event.data["refund"]["lines"] == [
        {
            "line_id": "b",
            "qty": 2,
            "net": ticket.lines[1].amounts.net,
            "tax": ticket.lines[1].amounts.tax,
            "amount": ticket.lines[1].amounts.total,
        }
    ]
    shift = h.state.current_shift
    assert shift is not None
    assert shift.totals.refunds["cash"].amount == line_a.total
    assert shift.totals.refunds["external"].amount == soda["amount"]


def test_refund_rules():
    h = store()
    t = _ticket(h, {"line_id": "a", "menu_item_id": "fries"}, {"line_id": "v", "menu_item_id": "pie"})
    body = {"ticket_id": t, "lines": [{"line_id": "a", "qty": 1}], "tender": "cash", "reason": "x"}
    h.fail("ticket.refund", body, code="conflict", as_="mgr")  # still open
    h.ok("ticket.void_item", {"ticket_id": t, "line_id": "v", "reason": "x"}, as_="srv")
    h.pay_cash(t)
    h.fail("ticket.refund", {**body, "tender": "card"}, code="payment_declined", as_="mgr")
    h.fail("ticket.refund", {**body, "lines": [{"line_id": "v", "qty": 1}]}, code="conflict", as_="mgr")
    h.fail("ticket.refund", {**body, "lines": [{"line_id": "zz", "qty": 1}]}, code="not_found", as_="mgr")
    h.fail("ticket.refund", {**body, "lines": [{"line_id": "a", "qty": 2}]}, code="conflict", as_="mgr")
    h.fail(
        "ticket.refund",
        {**body, "lines": [{"line_id": "a", "qty": 1}, {"line_id": "a", "qty": 1}]},
        code="conflict",
        as_="mgr",
    )
    assert h.ok("ticket.refund", body, as_="mgr")["amount"] == 450 + exclusive_tax(450, 875)
