"""The kitchen: routing to stations, bump/start/recall, KDS messages."""

from __future__ import annotations

from hub.contract.kds import KdsTicket
from hub.domain import kds_messages

from .harness import store


def _messages(h, event):
    return [(station, kind, data) for station, kind, data in kds_messages(h.state, event)]


def test_fire_routes_lines_to_their_stations_and_expo():
    h = store()
    t = h.open_ticket("t1")
    h.add(
        t,
        {"line_id": "s", "menu_item_id": "salad", "allergy": "nuts"},
        {"line_id": "b", "menu_item_id": "burger", "modifiers": ["rare", "bacon"]},
        {"line_id": "w", "menu_item_id": "water"},
    )
    h.ok("ticket.fire", {"ticket_id": t, "course": 1}, as_="srv")
    messages = _messages(h, h.last("ticket.fired"))
    assert [(s, k) for s, k, _ in messages] == [("cold", "kds.ticket"), ("expo", "kds.ticket")]
    data = messages[0][2]
    KdsTicket.model_validate(data)
    assert data["table"] == "T1"
    assert data["server"] == "Sam"
    assert data["fired_at"] == "2026-11-22T16:00:00.000Z"
    assert data["items"] == [
        {
            "line_id": "s",
            "name": "Salad",
            "qty": 1,
            "modifiers": [],
            "note": None,
            "allergy": "nuts",
            "seat": None,
            "course": 1,
            "stations": ["cold"],
            "state": "new",
        }
    ]
    h.advance(60)
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    messages = _messages(h, h.last("ticket.fired"))
    assert [(s, k) for s, k, _ in messages] == [("expo", "kds.update"), ("grill", "kds.ticket")]
    grill = messages[1][2]
    assert [i["modifiers"] for i in grill["items"]] == [["Rare", "Bacon"]]
    assert [i["line_id"] for i in messages[0][2]["items"]] == ["s", "b"]  # water has no station


def test_bump_marks_ready_with_speed_of_service():
    h = store()
    t = h.open_ticket("t1")
    h.add(t, {"line_id": "b", "menu_item_id": "burger"}, {"line_id": "f", "menu_item_id": "fries"})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    grill = {"device": "kds-grill", "kind": "kds", "stations": ("grill",)}
    h.advance(30)
    view = h.ok("kds.start", {"ticket_id": t, "station": "grill"}, **grill)
    assert view["station"] == "grill"
    assert [i["state"] for i in view["items"]] == ["started"]
    h.advance(420)
    view = h.ok("kds.bump", {"ticket_id": t, "station": "grill"}, **grill)
    assert [i["state"] for i in view["items"]] == ["ready"]
    ready = h.last("ticket.item_ready")
    assert ready.actor == "kds-grill"
    assert ready.data["lines"] == [{"line_id": "b", "fired_to_ready_s": 450}]
    assert [(s, k) for s, k, _ in _messages(h, ready)] == [("expo", "kds.update"), ("grill", "kds.update")]
    assert h.state.tickets[t].lines[1].state == "fired"  # fries are another station's
    count = len(h.ledger)
    h.ok("kds.bump", {"ticket_id": t, "station": "grill"}, **grill)
    assert len(h.ledger) == count  # nothing left to bump: nothing written
    h.ok("kds.recall", {"ticket_id": t, "station": "grill"}, **grill)
    recalled = h.last("ticket.recalled")
    assert h.state.tickets[t].lines[0].state == "started"
    assert [(s, k) for s, k, _ in _messages(h, recalled)] == [("expo", "kds.recall"), ("grill", "kds.recall")]


def test_a_screen_only_works_its_own_stations():
    h = store()
    t = h.open_ticket("t1")
    h.add(t, {"line_id": "f", "menu_item_id": "fries"})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    h.fail(
        "kds.bump",
        {"ticket_id": t, "station": "fry"},
        code="forbidden",
        device="kds-grill",
        kind="kds",
        stations=("grill",),
    )
    h.fail(
        "kds.bump",
        {"ticket_id": t, "station": "grill", "line_ids": ["f"]},
        code="not_found",
        device="kds-grill",
        kind="kds",
        stations=("grill",),
    )
    h.fail("kds.bump", {"ticket_id": t, "station": "fry"}, code="forbidden", as_="srv")
    h.ok("kds.bump", {"ticket_id": t, "station": "expo"}, device="kds-expo", kind="kds", stations=("expo",))
    assert h.state.tickets[t].lines[0].state == "ready"


def test_voids_update_or_remove_the_kitchen_view():
    h = store()
    t = h.open_ticket("t1")
    h.add(t, {"line_id": "b", "menu_item_id": "burger"}, {"line_id": "p", "menu_item_id": "pie"})
    h.ok("ticket.fire", {"ticket_id": t, "course": 2}, as_="srv")
    h.ok("ticket.void_item", {"ticket_id": t, "line_id": "p", "reason": "x"}, as_="srv")
    assert _messages(h, h.last("ticket.item_voided")) == []  # it never reached the kitchen
    h.ok("ticket.priority", {"ticket_id": t, "priority": True}, as_="srv")
    updates = _messages(h, h.last("ticket.priority_changed"))
    assert [(s, k, d["priority"]) for s, k, d in updates] == [
        ("expo", "kds.update", True),
        ("grill", "kds.update", True),
    ]
    h.ok("ticket.void", {"ticket_id": t, "reason": "left"}, as_="mgr")
    removed = _messages(h, h.last("ticket.voided"))
    assert [(s, k) for s, k, _ in removed] == [("expo", "kds.remove"), ("grill", "kds.remove")]
    assert [i["state"] for i in removed[1][2]["items"]] == ["voided"]


def test_transfers_and_splits_tell_the_kitchen():
    h = store()
    t = h.open_ticket("t1")
    h.add(t, {"line_id": "b", "menu_item_id": "burger"}, {"line_id": "f", "menu_item_id": "fries"})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    h.ok("table.transfer", {"from": "t1", "to": "t4"}, as_="srv")
    moved = _messages(h, h.last("table.transferred"))
    assert {s for s, _, _ in moved} == {"expo", "grill", "fry"}
    assert all(d["table"] == "T4" for _, _, d in moved)
    h.ok("ticket.split", {"ticket_id": t, "parts": [{"line_ids": ["f"]}]}, as_="srv")
    split = _messages(h, h.last("ticket.split"))
    kinds = sorted((s, k, len(d["items"])) for s, k, d in split)
    assert kinds == [
        ("expo", "kds.ticket", 1),
        ("expo", "kds.update", 1),
        ("fry", "kds.remove", 0),
        ("fry", "kds.ticket", 1),
    ]


def test_a_kds_device_86es_items():
    h = store()
    result = h.ok(
        "menu.availability",
        {"menu_item_id": "steak", "available": False},
        device="kds-grill",
        kind="kds",
        stations=("grill",),
    )
    assert result == {"menu_item_id": "steak", "name": "Steak", "available": False, "remaining": None}
    assert h.last("menu.availability_changed").actor == "kds-grill"
