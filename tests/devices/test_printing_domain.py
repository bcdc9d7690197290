"""Which print jobs a command causes, and the routing table: pure domain, no printer involved."""

from __future__ import annotations

from devices.escpos.paper import Paper
from devices.printers.render import Capabilities, render
from tests.domain.harness import store

ROUTING = {
    "printers": [
        {"printer_id": "kitchen-1", "name": "Kitchen", "backup": "front-1"},
        {"printer_id": "bar-1", "name": "Bar", "paper_mm": 58},
        {"printer_id": "front-1", "name": "Front", "drawer_pins": [2]},
    ],
    "stations": {"grill": ["kitchen-1"], "fry": ["kitchen-1"], "bar": ["bar-1"]},
    "receipts": "front-1",
    "expo": "front-1",
}


def routed():
    h = store()
    h.admin("printers.configure", ROUTING)
    return h


def test_fire_queues_one_chit_per_station_printer_and_one_for_expo_with_the_whole_document():
    h = routed()
    t = h.open_ticket()
    h.add(t, {"menu_item_id": "burger", "qty": 2, "note": "no bun"}, {"menu_item_id": "soda", "qty": 1})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    jobs = [e.data for e in h.events("print.queued")]
    assert sorted((j["printer"], j["station"]) for j in jobs) == [
        ("bar-1", "bar"),
        ("front-1", "expo"),
        ("kitchen-1", "grill"),
    ]
    grill = next(j for j in jobs if j["station"] == "grill")
    assert grill["doc"]["job_id"] == grill["print_job_id"]
    assert grill["doc"]["lines"][0]["qty"] == 2
    assert grill["doc"]["lines"][0]["note"] == "no bun"
    assert grill["doc"]["lines"][0]["modifiers"]
    text = Paper.from_bytes(render(grill["doc"], Capabilities())).text()
    assert "GRILL" in text
    assert f"JOB {grill['print_job_id']}" in text
    expo = next(j for j in jobs if j["station"] == "expo")
    assert len(expo["doc"]["lines"]) == 2


def test_a_course_fire_says_so_and_a_fired_void_prints_a_void_chit():
    h = routed()
    t = h.open_ticket()
    h.add(t, {"menu_item_id": "steak", "qty": 1, "course": 2, "line_id": "l-steak"})
    h.ok("ticket.fire", {"ticket_id": t, "course": 2}, as_="srv")
    fired = next(e.data for e in h.events("print.queued") if e.data["station"] == "grill")
    assert fired["doc"]["banners"] == ["FIRE COURSE 2"]
    h.ok("ticket.void_item", {"ticket_id": t, "line_id": "l-steak", "reason": "guest left"}, as_="mgr")
    void = h.last("print.queued").data
    assert void["printer"] == "kitchen-1"
    assert void["doc"]["banners"] == ["VOID"]
    text = Paper.from_bytes(render(void["doc"], Capabilities())).text()
    assert "VOID 1 x Steak" in text
    assert "Reason: guest left" in text


def test_payment_queues_a_receipt_and_ticket_print_a_check_on_the_receipt_printer():
    h = routed()
    t = h.open_ticket()
    h.add(t, {"menu_item_id": "soda", "qty": 2})
    result = h.ok("ticket.print", {"ticket_id": t, "kind": "check"}, as_="srv")
    check = h.last("print.queued").data
    assert check["print_job_id"] == result["print_job_id"]
    assert check["printer"] == "front-1"
    assert check["doc"]["kind"] == "check"
    h.pay_cash(t)
    receipt = h.last("print.queued").data
    assert receipt["doc"]["kind"] == "receipt"
    assert receipt["doc"]["payments"][0]["kind"] == "cash"
    assert receipt["doc"]["total"] == h.state.tickets[t].totals.total


def test_without_printers_nothing_is_queued_for_fires():
    h = store()
    t = h.open_ticket()
    h.add(t, {"menu_item_id": "soda", "qty": 1})
    h.ok("ticket.fire", {"ticket_id": t}, as_="srv")
    assert not h.events("print.queued")


def test_routing_refuses_unknown_printers_and_self_backup_and_is_replayed():
    h = store()
    h.fail("printers.configure", ROUTING, code="forbidden", as_="mgr")  # the operator's, not a tablet's
    bad = {"printers": [], "stations": {"grill": ["ghost"]}}
    err = h.fail("printers.configure", bad, code="conflict", device="admin", kind="admin")
    assert "ghost" in err.message
    own = {"printers": [{"printer_id": "p", "name": "P", "backup": "p"}]}
    h.fail("printers.configure", own, code="conflict", device="admin", kind="admin")
    h.admin("printers.configure", ROUTING)
    h.admin("printers.route", {"station": "grill", "printers": ["bar-1"]})
    assert h.state.printing.stations["grill"] == ["bar-1"]
    assert h.replay().printing == h.state.printing
    count = len(h.ledger)
    h.admin("printers.configure", h.state.printing.model_dump(mode="json") | {"printers": ROUTING["printers"]})
    assert len(h.ledger) == count, "the same table again writes nothing"


def test_a_report_is_printed_on_request_and_refused_without_a_receipt_printer():
    h = routed()
    h.ok("shift.report", {"kind": "x", "print": True}, as_="mgr")
    job = h.last("print.queued").data
    assert job["printer"] == "front-1"
    assert job["doc"]["report_kind"] == "x"
    text = Paper.from_bytes(render(job["doc"], Capabilities())).text()
    assert "X REPORT" in text.upper()
    before = len(h.events("print.queued"))
    h.ok("shift.report", {"kind": "x"}, as_="mgr")
    assert len(h.events("print.queued")) == before, "without `print` the report only answers"
    bare = store()
    error = bare.fail("shift.report", {"kind": "x", "print": True}, code="conflict", as_="mgr")
    assert "receipt printer" in error.message


def test_a_test_page_is_queued_like_any_job_and_names_the_manager():
    h = routed()
    result = h.admin("print.test", {"printer": "bar-1", "actor": "mgr"})
    queued = h.last("print.queued")
    assert queued.actor == "mgr"
    assert queued.data["printer"] == "bar-1"
    assert queued.data["kind"] == "test"
    assert result == {"print_job_id": queued.data["print_job_id"], "printer": "bar-1"}
    text = Paper.from_bytes(render(queued.data["doc"], Capabilities(paper_mm=58))).text()
    assert "StoreHub test page" in text
    assert "Bar: test page asked by" in text
    assert f"JOB {result['print_job_id']}" in text
    h.fail("print.test", {"printer": "nope-1"}, code="not_found", device="admin", kind="admin")
    h.fail("print.test", {"printer": "bar-1"}, code="forbidden", as_="mgr")  # an operator command, not a tablet's
