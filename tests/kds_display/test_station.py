"""The station view model: ordering rules, gaps, snapshots, merged cards, all-day counts, speed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.contract.kds import KdsMessage
from kds_display.station import Applied, Overlay, StationView

T0 = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def _item(line_id: str, name: str = "Steak frites", state: str = "new", **extra: Any) -> dict[str, Any]:
    return {"line_id": line_id, "name": name, "qty": 1, "stations": ["grill"], "state": state, **extra}


def _msg(seq: int, prev: int | None, tid: str, items: list[dict[str, Any]], kind: str = "kds.ticket", **head: Any):
    data = {"ticket_id": tid, "number": int(tid.strip("T") or 0), "channel": "dine_in", "fired_at": _at(0),
            "items": items, **head}  # fmt: skip
    return KdsMessage.model_validate({"v": 1, "seq": seq, "prev": prev, "type": kind, "data": data})


def _snapshot_ticket(tid: str, number: int, lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"ticket_id": tid, "number": number, "channel": "dine_in", "status": "open", "table_id": "t1",
            "server": "emp-hugo", "lines": lines, **extra}  # fmt: skip


def _line(line_id: str, stations: list[str], state: str = "fired", **extra: Any) -> dict[str, Any]:
    return {"line_id": line_id, "name": f"dish {line_id}", "qty": 2, "stations": stations, "state": state,
            "fired_at": None if state == "held" else _at(0), "modifiers": [{"name": "Rare"}], **extra}  # fmt: skip


def _synced(*stations: str, seq: int = 10) -> StationView:
    view = StationView(stations)
    view.load_snapshot(seq, {"tickets": [], "tables": []}, T0)
    return view


def test_messages_the_snapshot_covers_are_ignored_and_the_next_one_applies() -> None:
    view = _synced("grill", seq=10)
    assert view.apply("grill", _msg(9, 4, "T1", [_item("a")]), T0) is Applied.STALE
    assert view.apply("grill", _msg(12, 7, "T1", [_item("a")]), T0) is Applied.APPLIED
    assert view.apply("grill", _msg(12, 7, "T1", [_item("a")]), T0) is Applied.STALE
    assert view.apply("grill", _msg(15, 12, "T2", [_item("b")]), T0) is Applied.APPLIED
    assert [c.ticket_id for c in view.cards()] == ["T1", "T2"]


def test_a_prev_newer_than_anything_seen_is_a_gap_and_changes_nothing() -> None:
    view = _synced("grill", seq=10)
    assert view.apply("grill", _msg(12, 7, "T1", [_item("a")]), T0) is Applied.APPLIED
    assert view.apply("grill", _msg(20, 16, "T2", [_item("b")]), T0) is Applied.GAP
    assert view.ticket_ids() == {"T1"}
    # the first message of a station ever (prev None) is never a gap
    assert _synced("grill").apply("grill", _msg(11, None, "T3", [_item("c")]), T0) is Applied.APPLIED


def test_gaps_are_per_station_stream() -> None:
    view = _synced("grill", "fry", seq=10)
    assert view.apply("grill", _msg(11, 10, "T1", [_item("a")]), T0) is Applied.APPLIED
    # fry's previous message was seq 11, which fry never got (grill's seq 11 is another stream)
    assert view.apply("fry", _msg(13, 11, "T1", [_item("b")]), T0) is Applied.GAP
    assert view.apply("fry", _msg(13, 9, "T1", [_item("b")]), T0) is Applied.APPLIED


def test_snapshot_builds_station_views_from_full_tickets() -> None:
    view = StationView(("grill",))
    view.set_staff([{"employee_id": "emp-hugo", "name": "Hugo", "role": "server"}])
    snapshot = {
        "tables": [{"table_id": "t1", "name": "12"}],
        "tickets": [
            _snapshot_ticket("T1", 1, [_line("a", ["grill"]), _line("b", ["cold"]), _line("c", ["grill"], "held")]),
            _snapshot_ticket("T2", 2, [_line("d", ["cold"])]),
        ],
    }
    view.load_snapshot(40, snapshot, T0)
    [card] = view.cards()
    assert (card.ticket_id, card.table, card.server) == ("T1", "12", "Hugo")
    assert [i["line_id"] for i in card.items] == ["a"]
    assert card.items[0]["modifiers"] == ["Rare"]
    assert card.also_at == ["cold"]


def test_expo_sees_every_station_and_keeps_all_ready_tickets_until_it_bumps_them_out() -> None:
    view = _synced("expo")
    items = [_item("a", state="ready"), {**_item("b", "Salad", "new"), "stations": ["cold"]}]
    view.apply("expo", _msg(11, None, "T1", items), T0)
    [card] = view.cards()
    assert card.progress() == [("cold", 0, 1), ("grill", 1, 1)]
    view.apply("expo", _msg(12, 11, "T1", [_item("a", state="ready"), {**items[1], "state": "ready"}], "kds.update"),
               T0)  # fmt: skip
    [card] = view.cards()
    assert card.all_ready
    view.bump_out("T1", T0 + timedelta(seconds=90))
    assert view.cards() == []
    assert [c.ticket_id for c in view.recall_list()] == ["T1"]
    assert view.average_ticket_s(T0 + timedelta(seconds=100)) == 90


def test_bumped_tickets_go_to_the_recall_list_and_count_for_the_hour() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a")]), T0)
    view.apply("grill", _msg(12, 11, "T1", [_item("a", state="ready")], "kds.update"), T0 + timedelta(seconds=120))
    assert view.cards() == []
    assert [c.ticket_id for c in view.recall_list()] == ["T1"]
    assert view.average_ticket_s(T0 + timedelta(minutes=30)) == 120
    assert view.average_ticket_s(T0 + timedelta(minutes=70)) is None
    view.apply("grill", _msg(13, 12, "T1", [_item("a", state="new")], "kds.recall"), T0 + timedelta(seconds=130))
    assert [c.ticket_id for c in view.cards()] == ["T1"]
    assert view.recall_list() == []


def test_priority_pins_first_then_fire_time_in_the_configured_order() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a")], fired_at=_at(0)), T0)
    view.apply("grill", _msg(12, 11, "T2", [_item("b")], fired_at=_at(5)), T0)
    view.apply("grill", _msg(13, 12, "T3", [_item("c")], fired_at=_at(9), priority=True), T0)
    assert [c.ticket_id for c in view.cards()] == ["T3", "T1", "T2"]
    view.oldest_first = False
    assert [c.ticket_id for c in view.cards()] == ["T3", "T2", "T1"]


def test_all_day_counts_group_modifiers_and_skip_bumped_and_voided_lines() -> None:
    view = _synced("grill")
    rare: dict[str, Any] = {"modifiers": ["Rare", "Fries"]}
    view.apply("grill", _msg(11, None, "T1", [_item("a", **rare), _item("b", state="voided")]), T0)
    view.apply("grill", _msg(12, 11, "T2", [{**_item("c", **rare), "qty": 2}, _item("d", state="ready")]), T0)
    assert view.all_day() == [("Steak frites (Fries, Rare)", 3)]


def test_overlays_show_a_queued_bump_before_the_hub_confirms_it() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a"), _item("b")]), T0)
    card = view.card("T1", [Overlay("T1", frozenset({"a"}), "ready")])
    assert card is not None
    assert [i["state"] for i in card.items] == ["ready", "new"]
    assert view.cards([Overlay("T1", None, "ready")]) == []


def test_remove_takes_a_ticket_off_the_screen() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a")]), T0)
    view.apply("grill", _msg(12, 11, "T1", [_item("a")], "kds.remove"), T0)
    assert view.ticket_ids() == set()


def test_a_screen_needs_a_station() -> None:
    with pytest.raises(ValueError, match="at least one station"):
        StationView(())


def test_finished_tickets_leave_memory_with_the_recall_list_and_revisions_never_repeat() -> None:
    view = StationView(("grill",), recall_size=2)
    view.load_snapshot(10, {"tickets": []}, T0)
    seen_revs: list[int] = []
    seq = 10
    for n in range(1, 5):
        tid = f"T{n}"
        view.apply("grill", _msg(seq + 1, seq if n > 1 else None, tid, [_item(f"l{n}")]), T0)
        seen_revs.append(view.rev[tid])
        view.apply("grill", _msg(seq + 2, seq + 1, tid, [_item(f"l{n}", state="ready")], "kds.update"), T0)
        seq += 2
    assert [c.ticket_id for c in view.recall_list()] == ["T4", "T3"]
    assert view.ticket_ids() == {"T3", "T4"}  # T1 and T2 left memory with the recall list
    # T1 comes back (recalled by another screen): a revision it never had, so new command ids
    view.apply("grill", _msg(seq + 1, seq, "T1", [_item("l1")], "kds.recall"), T0)
    assert view.rev["T1"] not in seen_revs
    assert [c.ticket_id for c in view.cards()] == ["T1"]


def test_a_ticket_whose_lines_are_all_voided_leaves_the_screen() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a")]), T0)
    view.apply("grill", _msg(12, 11, "T1", [_item("a", state="voided")], "kds.update"), T0)
    assert view.ticket_ids() == set()
    assert view.recall_list() == []


def test_the_stations_of_other_tickets_are_remembered_within_bounds() -> None:
    view = _synced("grill")
    for n in range(5000):
        view.note_event({"type": "ticket.fired", "data": {"ticket_id": f"X{n}", "lines": [{"stations": ["cold"]}]}}, T0)
    assert len(view.ticket_stations) <= 2000
    assert view.ticket_stations["X4999"] == {"cold"}


def test_a_ticket_paid_before_its_food_is_out_survives_a_resync() -> None:
    view = _synced("grill")
    view.apply("grill", _msg(11, None, "T1", [_item("a")]), T0)
    view.apply("grill", _msg(12, 11, "T2", [_item("b")]), T0)
    view.apply("grill", _msg(13, 12, "T3", [_item("c", state="ready")], "kds.update"), T0)
    view.note_event({"type": "ticket.closed", "data": {"ticket_id": "T1"}}, T0)
    view.note_event({"type": "ticket.closed", "data": {"ticket_id": "T3"}}, T0)
    view.load_snapshot(20, {"tickets": []}, T0)  # the snapshot holds open tickets only
    assert [c.ticket_id for c in view.cards()] == ["T1"]  # T2 was not seen closed: gone (voided while away)
    assert view.ticket_ids() == {"T1"}  # T3 was bumped already: nothing to keep
