"""The menu and the 86 board."""

from __future__ import annotations

from hub.domain import availability_board, menu_payload

from .harness import MENU, Harness, store


def test_86_refuses_the_item():
    h = store()
    h.ok("menu.availability", {"menu_item_id": "steak", "available": False}, as_="mgr")
    assert availability_board(h.state) == {"items": {"steak": {"available": False, "remaining": None}}}
    t = h.open_ticket()
    error = h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "a", "menu_item_id": "steak"}]},
        code="item_unavailable",
        as_="srv",
    )
    assert error.message == "Steak is 86'd"
    h.ok("menu.availability", {"menu_item_id": "steak", "available": True}, as_="mgr")
    assert availability_board(h.state) == {"items": {}}
    h.add(t, {"line_id": "a", "menu_item_id": "steak"})


def test_remaining_counts_down_to_sold_out():
    h = store()
    h.ok("menu.availability", {"menu_item_id": "pie", "available": True, "remaining": 3}, as_="mgr")
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "pie", "qty": 2})
    assert h.last("menu.availability_changed").data == {
        "menu_item_id": "pie",
        "available": True,
        "remaining": 1,
        "reason": "sold",
    }
    error = h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "b", "menu_item_id": "pie"}, {"line_id": "c", "menu_item_id": "pie"}]},
        code="item_unavailable",
        as_="srv",
    )
    assert error.message == "Only 1 Pie left"
    h.add(t, {"line_id": "b", "menu_item_id": "pie"})
    assert availability_board(h.state)["items"]["pie"] == {"available": False, "remaining": 0}
    h.fail(
        "ticket.add_items",
        {"ticket_id": t, "items": [{"line_id": "d", "menu_item_id": "pie"}]},
        code="item_unavailable",
        as_="srv",
    )


def test_availability_rules():
    h = store()
    h.fail("menu.availability", {"menu_item_id": "nope", "available": False}, code="not_found", as_="mgr")
    h.fail("menu.availability", {"menu_item_id": "pie", "available": False}, code="forbidden", as_="srv")
    result = h.ok("menu.availability", {"menu_item_id": "pie", "available": True, "remaining": 0}, as_="mgr")
    assert result["available"] is False
    count = len(h.ledger)
    h.ok("menu.availability", {"menu_item_id": "pie", "available": True, "remaining": 0}, as_="mgr")
    assert len(h.ledger) == count


def test_menus_publish_only_when_they_change():
    h = Harness()
    assert h.admin("menu.load", MENU) == {"version": "v1", "changed": True}
    assert h.admin("menu.load", MENU) == {"version": "v1", "changed": False}
    assert len(h.events("menu.published")) == 1
    payload = menu_payload(h.state)
    assert payload is not None
    assert payload["version"] == "v1"
    error = h.fail("menu.load", {**MENU, "currency": "EUR"}, code="conflict", device="admin", kind="admin")
    assert "EUR" in error.message


def test_the_relay_publishes_menus_as_itself():
    h = store()
    h.ok("menu.availability", {"menu_item_id": "pie", "available": False}, as_="mgr")
    smaller = {**MENU, "version": "v2", "items": [i for i in MENU["items"] if i["id"] != "pie"]}
    h.ok("menu.publish", smaller, device="relay", kind="relay")
    assert h.last("menu.published").actor == "relay"
    assert h.state.menu is not None
    assert h.state.menu.version == "v2"
    assert "pie" not in h.state.availability  # the board forgets items no longer on the menu
    h.fail("menu.publish", smaller, code="unauthorized", device="tab-1", kind="tablet")
