"""Splitting tickets: by lines and evenly; the parts always add up."""

from __future__ import annotations

from .harness import store


def _dinner(h):
    t = h.open_ticket()
    h.add(
        t,
        {"line_id": "a", "menu_item_id": "steak", "seat": 1},
        {"line_id": "b", "menu_item_id": "burger", "seat": 2},
        {"line_id": "c", "menu_item_id": "soda", "seat": 2},
        {"line_id": "d", "menu_item_id": "pie", "seat": 1},
    )
    return t


def test_split_by_lines_moves_lines_to_new_tickets():
    h = store()
    t = _dinner(h)
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    result = h.ok("ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["b", "c"]}]}, as_="srv")
    assert result["ticket_ids"][0] == t
    (new,) = result["new_ticket_ids"]
    assert [line.line_id for line in h.state.tickets[t].lines] == ["a", "d"]
    moved = h.state.tickets[new]
    assert [line.line_id for line in moved.lines] == ["b", "c"]
    assert moved.lines[0].state == "fired"  # kitchen state moves with the line
    assert moved.number == 2
    assert moved.table_id == "t1"
    assert moved.split_from == t
    assert h.state.tables["t1"].ticket_ids == [t, new]
    assert set(h.state.open_tickets) == {t, new}


def test_when_parts_cover_everything_the_first_part_stays():
    h = store()
    t = _dinner(h)
    result = h.ok(
        "ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["a", "d"]}, {"line_ids": ["b", "c"]}]}, as_="srv"
    )
    assert result["ticket_ids"][0] == t
    assert len(result["new_ticket_ids"]) == 1
    assert [line.line_id for line in h.state.tickets[t].lines] == ["a", "d"]
    h.fail("ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["a", "d"]}]}, code="conflict", as_="srv")


def test_split_refusals():
    h = store()
    t = _dinner(h)
    h.fail("ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["zz"]}]}, code="not_found", as_="srv")
    h.fail(
        "ticket.split",
        {"ticket_id": t, "parts": [{"line_ids": ["a"]}, {"line_ids": ["a"]}]},
        code="conflict",
        as_="srv",
    )
    h.ok("ticket.pay", {"ticket_id": t, "tenders": [{"kind": "external", "amount": 100}]}, as_="csh")
    h.fail("ticket.split", {"ticket_id": t, "even": 2}, code="conflict", as_="srv")


def test_ticket_discounts_follow_the_parts():
    h = store()
    t = _dinner(h)
    h.ok("ticket.discount", {"ticket_id": t, "kind": "percent", "value": 10, "reason": "regulars"}, as_="mgr")
    h.ok("ticket.discount", {"ticket_id": t, "kind": "amount", "value": 1001, "reason": "voucher"}, as_="mgr")
    result = h.ok("ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["b", "c"]}]}, as_="srv")
    (new,) = result["new_ticket_ids"]
    source, part = h.state.tickets[t], h.state.tickets[new]
    assert (source.discounts[0].kind, source.discounts[0].value) == ("percent", 10)
    assert (part.discounts[0].kind, part.discounts[0].value) == ("percent", 10)
    amounts = [d.value for d in source.discounts[1:]] + [d.value for d in part.discounts[1:]]
    assert sum(amounts) == 1001
    # The voucher is shared in proportion to each part's lines: steak + pie 3400, burger + soda 1500.
    assert amounts == [695, 306]  # 1001 x 3400 / 4900 = 694.6


def test_even_split_adds_up_to_the_cent():
    h = store()
    t = _dinner(h)
    h.ok("ticket.discount", {"ticket_id": t, "kind": "amount", "value": 333, "reason": "x"}, as_="mgr")
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    before = h.state.tickets[t].totals.model_copy()
    result = h.ok("ticket.split", {"ticket_id": t, "even": 3}, as_="srv")
    tickets = [h.state.tickets[tid] for tid in result["ticket_ids"]]
    assert len(tickets) == 3
    assert sum(x.totals.total for x in tickets) == before.total
    assert sum(x.totals.tax for x in tickets) == before.tax
    assert sum(x.totals.discount for x in tickets) == before.discount
    assert sum(x.totals.subtotal for x in tickets) == before.subtotal
    totals = [x.totals.total for x in tickets]
    assert max(totals) - min(totals) <= 2
    for x in tickets:
        assert x.totals.total == x.totals.subtotal - x.totals.discount + x.totals.tax_added
    # the kitchen keeps following the original lines; copies have no stations
    assert all(line.stations for line in tickets[0].lines)
    assert all(not line.stations for x in tickets[1:] for line in x.lines)
    assert [line.share for line in tickets[2].lines] == ["3/3"] * 4
    # shares are paid separately and each closes
    for x in tickets:
        h.pay_cash(x.ticket_id)
    assert all(h.state.tickets[x.ticket_id].status == "closed" for x in tickets)
    shift = h.state.current_shift
    assert shift is not None
    assert shift.totals.total == before.total
    assert shift.totals.payments["cash"].amount == before.total


def test_shares_cannot_be_voided_or_discounted():
    h = store()
    t = _dinner(h)
    result = h.ok("ticket.split", {"ticket_id": t, "even": 2}, as_="srv")
    other = result["new_ticket_ids"][0]
    h.fail("ticket.void_item", {"ticket_id": other, "line_id": "a", "reason": "x"}, code="conflict", as_="mgr")
    h.fail(
        "ticket.discount",
        {"ticket_id": other, "line_id": "a", "kind": "percent", "value": 5, "reason": "x"},
        code="conflict",
        as_="mgr",
    )
    # but a share can take a new item, priced normally
    ticket = h.add(other, {"line_id": "z", "menu_item_id": "fries"})
    assert ticket["lines"][-1]["amounts"]["total"] == 450 + 39
