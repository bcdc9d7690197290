"""Tables: seat, transfer, merge, clear, floor plan, attention timers."""

from __future__ import annotations

from .harness import Harness, store


def _status(h: Harness, table_id: str) -> str:
    return h.state.tables[table_id].status


def test_seat_and_status_through_a_meal():
    h = store()
    table = h.ok("table.seat", {"table_id": "t1", "guests": 3}, as_="srv")
    assert (table["status"], table["guests"], table["server"]) == ("seated", 3, "srv")
    h.fail("table.seat", {"table_id": "t1", "guests": 3}, code="conflict", as_="srv")
    h.fail("table.seat", {"table_id": "t99", "guests": 3}, code="not_found", as_="srv")
    t = h.open_ticket("t1")
    assert _status(h, "t1") == "seated"  # an empty ticket is not an order yet
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    assert _status(h, "t1") == "ordered"
    error = h.fail("table.clear", {"table_id": "t1"}, code="conflict", as_="srv")
    assert error.message == "Table T1 still has open tickets (#1)"
    h.pay_cash(t)
    assert _status(h, "t1") == "paid"
    table = h.ok("table.clear", {"table_id": "t1"}, as_="srv")
    assert (table["status"], table["guests"], table["ticket_ids"]) == ("free", None, [])
    h.fail("table.clear", {"table_id": "t1"}, code="conflict", as_="srv")


def test_transfer_moves_the_party_and_its_tickets():
    h = store()
    t = h.open_ticket("t1", guests=2)
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    h.ok("table.seat", {"table_id": "t3", "guests": 1}, as_="srv")
    h.fail("table.transfer", {"from": "t1", "to": "t3"}, code="conflict", as_="srv")
    h.fail("table.transfer", {"from": "t2", "to": "t4"}, code="conflict", as_="srv")
    result = h.ok("table.transfer", {"from": "t1", "to": "t2"}, as_="srv")
    src, dst = result["tables"]
    assert src["status"] == "free"
    assert (dst["status"], dst["guests"], dst["ticket_ids"]) == ("ordered", 2, [t])
    assert h.state.tickets[t].table_id == "t2"


def test_merge_joins_parties_and_clear_releases_them():
    h = store()
    t1 = h.open_ticket("t1", guests=2)
    h.add(t1, {"line_id": "a", "menu_item_id": "fries"})
    h.ok("table.seat", {"table_id": "t2", "guests": 3}, as_="srv")
    t2 = h.open_ticket("t2")
    result = h.ok("table.merge", {"tables": ["t2", "t3", "t1"], "into": "t1"}, as_="srv")
    into, t2_view, t3_view = result["tables"]
    assert into["guests"] == 5
    assert into["merged"] == ["t2", "t3"]
    assert sorted(into["ticket_ids"]) == sorted([t1, t2])
    assert (t2_view["status"], t2_view["merged_into"]) == ("merged", "t1")
    assert t3_view["status"] == "merged"
    assert h.state.tickets[t2].table_id == "t1"
    h.fail("table.seat", {"table_id": "t3", "guests": 1}, code="conflict", as_="srv")
    h.fail("ticket.open", {"table_id": "t2"}, code="conflict", as_="srv")
    h.fail("table.merge", {"tables": ["t1"], "into": "t1"}, code="conflict", as_="srv")
    h.ok("ticket.void", {"ticket_id": t2, "reason": "dup"}, as_="mgr")
    h.pay_cash(t1)
    h.ok("table.clear", {"table_id": "t1"}, as_="srv")
    assert {h.state.tables[t].status for t in ("t1", "t2", "t3")} == {"free"}
    assert all(h.state.tables[t].merged_into is None for t in ("t2", "t3"))


def test_floor_plan_diff_never_removes_a_seated_table():
    h = store()
    h.ok("table.seat", {"table_id": "t6", "guests": 1}, as_="srv")
    plan = [{"table_id": f"t{i}", "name": f"T{i}", "seats": 4, "area": "main"} for i in range(1, 5)]
    error = h.fail("tables.configure", {"tables": plan}, code="conflict", device="admin", kind="admin")
    assert error.details == {"tables": ["t6"]}
    plan.append({"table_id": "t6", "name": "Window", "seats": 2, "area": "main"})
    plan.append({"table_id": "p1", "name": "Patio 1", "seats": 2, "area": "patio"})
    result = h.admin("tables.configure", {"tables": plan})
    assert result == {"added": ["p1"], "updated": ["t6"], "removed": ["t5"]}
    assert h.state.tables["t6"].name == "Window"
    assert h.state.tables["t6"].guests == 1  # the party stays
    assert "t5" not in h.state.tables
    assert h.admin("tables.configure", {"tables": plan}) == {"added": [], "updated": [], "removed": []}


def test_attention_fires_once_per_condition():
    h = store()
    h.ok("table.seat", {"table_id": "t1", "guests": 2}, as_="srv")
    h.advance(599)
    h.tick()
    assert not h.events("table.attention")
    h.advance(1)
    h.tick()
    h.tick()
    (no_order,) = h.events("table.attention")
    assert no_order.data == {"table_id": "t1", "condition": "no_order", "since": "2026-11-22T16:00:00.000Z"}
    assert h.state.tables["t1"].attention == ["no_order"]
    t = h.open_ticket("t1")
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    assert h.state.tables["t1"].attention == []
    h.advance(1799)
    h.tick()
    assert len(h.events("table.attention")) == 1
    h.advance(1)
    h.tick()
    idle = h.last("table.attention")
    assert idle.data["condition"] == "idle"
    h.tick()
    assert len(h.events("table.attention")) == 2
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")  # activity resets the idle timer
    assert h.state.tables["t1"].attention == []
    h.advance(1800)
    h.tick()
    assert [e.data["condition"] for e in h.events("table.attention")] == ["no_order", "idle", "idle"]
