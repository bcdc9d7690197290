"""Property tests: random services (valid and invalid commands) keep every invariant.

Each example plays a random sequence of commands through the harness (decide → seq → evolve), which
already checks that `decide` never mutates its state and never raises. After each step the books
must balance; at the end, replaying the ledger must rebuild the exact state.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.domain import ApproverIn, StoreState, token_hash
from hub.domain.views import ticket_view

from .harness import MENU, STAFF, Harness, store

ITEMS = [i["id"] for i in MENU["items"]]
EMPLOYEES = list(STAFF)
TABLES = [f"t{i}" for i in range(1, 7)]


def _ticket_ids(h: Harness, d: st.DataObject, status: str | None = None) -> str:
    ids = sorted(t for t, x in h.state.tickets.items() if status is None or x.status == status)
    if not ids or d.draw(st.integers(0, 15)) == 0:
        return "nope"
    return d.draw(st.sampled_from(ids))


def _line_ids(h: Harness, d: st.DataObject, ticket_id: str) -> list[str]:
    ticket = h.state.tickets.get(ticket_id)
    ids = [line.line_id for line in ticket.lines] if ticket else []
    if not ids or d.draw(st.integers(0, 15)) == 0:
        return ["zz"]
    return d.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))


_ACTIONS = [
    *["login", "logout", "shift.open", "shift.close", "shift.report", "drawer", "drawer.open"],
    *["table.seat", "table.transfer", "table.merge", "table.clear", "table.clear"],
    *["ticket.open"] * 3,
    *["ticket.add_items"] * 5,
    *["ticket.fire"] * 2,
    *["ticket.pay"] * 5,
    *["ticket.refund"] * 2,
    *["ticket.priority", "ticket.void_item", "ticket.discount", "ticket.void", "ticket.reopen", "ticket.print"],
    *["ticket.split", "kds", "kds", "menu.availability", "tick", "advance", "admin"],
]

_FITTING = {
    "shift.open": "mgr",
    "shift.close": "mgr",
    "shift.report": "mgr",
    "drawer": "csh",
    "drawer.open": "mgr",
    "ticket.pay": "csh",
    "ticket.refund": "mgr",
    "ticket.void": "mgr",
    "ticket.reopen": "mgr",
    "ticket.discount": "mgr",
    "menu.availability": "mgr",
}


def _approve(h: Harness, d: st.DataObject) -> ApproverIn | None:
    choice = d.draw(st.sampled_from(["none", "none", "mgr", "csh", "wrong", "token"]))
    if choice == "none":
        return None
    if choice == "wrong":
        return ApproverIn(employee_id="mgr", pin="0000")
    if choice == "token":
        token = h.tokens.get("mgr")
        return ApproverIn(token_hash=token_hash(token)) if token else None
    return ApproverIn(employee_id=choice, pin=STAFF[choice][2])


def _items(d: st.DataObject, h: Harness) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for _ in range(d.draw(st.integers(min_value=1, max_value=3))):
        item = d.draw(st.sampled_from([*ITEMS, *ITEMS, *ITEMS, "ghost"]))
        mods = []
        if item == "burger":
            temp = d.draw(st.sampled_from([["rare"], ["medium"], ["well"], [], ["rare", "well"]]))
            mods = temp + d.draw(st.lists(st.sampled_from(["cheese", "bacon"]), max_size=2))
        elif d.draw(st.integers(0, 20)) == 0:
            mods = ["cheese"]
        items.append(
            {
                "line_id": f"L{len(h.ledger)}-{len(items)}",
                "menu_item_id": item,
                "qty": d.draw(st.integers(min_value=1, max_value=4)),
                "modifiers": mods,
                "course": d.draw(st.sampled_from([None, 1, 2])),
            }
        )
    return items


def _tender(d: st.DataObject, balance: int) -> dict[str, Any]:
    kind = d.draw(st.sampled_from(["cash", "cash", "external", "external", "card"]))
    amount = d.draw(st.sampled_from([max(balance, 1)] * 3 + [max(balance // 2, 1), max(balance + 100, 1), 1]))
    tip = d.draw(st.sampled_from([0, 0, 150]))
    if kind == "cash":
        return {
            "kind": "cash",
            "amount": amount,
            "tendered": amount + tip + d.draw(st.sampled_from([0, 500])),
            "tip": tip,
        }
    return {"kind": kind, "amount": amount, "tip": tip}


def _step(h: Harness, d: st.DataObject) -> None:
    action = d.draw(st.sampled_from(_ACTIONS))
    fitting = _FITTING.get(action, "srv")
    who = d.draw(st.sampled_from([fitting, fitting, fitting, fitting, "mgr", "csh", "srv", "srv2", "kit"]))
    if h.state.current_shift_id is None and action not in {"login", "logout", "tick", "advance"}:
        action, who = "shift.open", "mgr"
    payable = [t for t in h.state.tickets.values() if t.status == "open" and t.totals.balance > 0]
    if action == "ticket.pay" and not payable:
        action = "ticket.add_items"
    if action == "ticket.add_items" and not h.state.open_tickets:
        action = "ticket.open"
    token = h.tokens.get(who)
    if (token is None or token_hash(token) not in h.state.sessions) and d.draw(st.integers(0, 9)) > 0:
        decision = h.run("staff.login", {"employee_id": who, "pin": STAFF[who][2]}, device=f"tab-{who}")
        if decision.result:
            token = h.tokens[who] = decision.result["token"]
    kw: dict[str, Any] = {"token": token} if token else {}
    if action in {
        "ticket.void_item",
        "ticket.discount",
        "ticket.refund",
        "ticket.void",
        "ticket.reopen",
        "drawer.open",
        "ticket.pay",
    }:
        kw["approve"] = _approve(h, d)
    if action == "login":
        employee = d.draw(st.sampled_from(EMPLOYEES))
        pin = d.draw(st.sampled_from([STAFF[employee][2]] * 3 + ["0000"]))
        decision = h.run("staff.login", {"employee_id": employee, "pin": pin}, device=f"tab-{employee}")
        if decision.error is None and decision.result:
            h.tokens[employee] = decision.result["token"]
    elif action == "logout":
        h.run("staff.logout", **kw)
    elif action == "shift.open":
        h.run("shift.open", {"opening_float": d.draw(st.integers(0, 50_000))}, **kw)
    elif action == "shift.close":
        if d.draw(st.integers(0, 3)) == 0:
            h.run("shift.close", {"counted_cash": d.draw(st.integers(0, 100_000))}, **kw)
    elif action == "shift.report":
        h.run("shift.report", {"kind": d.draw(st.sampled_from(["x", "z"]))}, **kw)
    elif action == "drawer":
        kind = d.draw(st.sampled_from(["drawer.pay_in", "drawer.pay_out", "drawer.drop"]))
        h.run(kind, {"amount": d.draw(st.integers(1, 10_000)), "reason": "test"}, **kw)
    elif action == "drawer.open":
        h.run("drawer.open", {"reason": "no sale"}, **kw)
    elif action == "table.seat":
        h.run("table.seat", {"table_id": d.draw(st.sampled_from(TABLES)), "guests": d.draw(st.integers(1, 8))}, **kw)
    elif action == "table.transfer":
        src, dst = d.draw(st.sampled_from(TABLES)), d.draw(st.sampled_from(TABLES))
        h.run("table.transfer", {"from": src, "to": dst}, **kw)
    elif action == "table.merge":
        tables = d.draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=3))
        h.run("table.merge", {"tables": tables, "into": d.draw(st.sampled_from(TABLES))}, **kw)
    elif action == "table.clear":
        h.run("table.clear", {"table_id": d.draw(st.sampled_from(TABLES))}, **kw)
    elif action == "ticket.open":
        body: dict[str, Any] = {"channel": d.draw(st.sampled_from(["dine_in", "takeout"]))}
        if d.draw(st.booleans()):
            body["table_id"] = d.draw(st.sampled_from(TABLES))
        if d.draw(st.integers(0, 5)) == 0:
            body["ticket_id"] = _ticket_ids(h, d)
        h.run("ticket.open", body, **kw)
    elif action == "ticket.add_items":
        ticket_id = _ticket_ids(h, d, "open")
        decision = h.run("ticket.add_items", {"ticket_id": ticket_id, "items": _items(d, h)}, **kw)
        if decision.error is None:
            assert decision.result == ticket_view(h.state.tickets[ticket_id])
    elif action == "ticket.fire":
        h.run(
            "ticket.fire",
            {"ticket_id": _ticket_ids(h, d, "open"), "course": d.draw(st.sampled_from([None, 1, 2]))},
            **kw,
        )
    elif action == "ticket.priority":
        h.run("ticket.priority", {"ticket_id": _ticket_ids(h, d), "priority": d.draw(st.booleans())}, **kw)
    elif action == "ticket.void_item":
        ticket_id = _ticket_ids(h, d, "open")
        line_id = _line_ids(h, d, ticket_id)[0]
        h.run("ticket.void_item", {"ticket_id": ticket_id, "line_id": line_id, "reason": "x"}, **kw)
    elif action == "ticket.discount":
        ticket_id = _ticket_ids(h, d, "open")
        kind = d.draw(st.sampled_from(["percent", "amount"]))
        value = d.draw(st.integers(1, 100) if kind == "percent" else st.integers(1, 5000))
        body = {"ticket_id": ticket_id, "kind": kind, "value": value, "reason": "x"}
        if d.draw(st.booleans()):
            body["line_id"] = _line_ids(h, d, ticket_id)[0]
        h.run("ticket.discount", body, **kw)
    elif action == "ticket.pay":
        ticket_id = d.draw(st.sampled_from(sorted(t.ticket_id for t in payable)))
        ticket = h.state.tickets.get(ticket_id)
        balance = ticket.totals.balance if ticket else 100
        tenders = [_tender(d, balance) for _ in range(d.draw(st.sampled_from([1, 1, 1, 2])))]
        h.run("ticket.pay", {"ticket_id": ticket_id, "tenders": tenders}, **kw)
    elif action == "ticket.refund":
        ticket_id = _ticket_ids(h, d, "closed")
        lines = [{"line_id": lid, "qty": d.draw(st.integers(1, 3))} for lid in _line_ids(h, d, ticket_id)]
        tender = d.draw(st.sampled_from(["cash", "external", "card"]))
        h.run("ticket.refund", {"ticket_id": ticket_id, "lines": lines, "tender": tender, "reason": "x"}, **kw)
    elif action in {"ticket.void", "ticket.reopen"}:
        status = "open" if action == "ticket.void" else "closed"
        h.run(action, {"ticket_id": _ticket_ids(h, d, status), "reason": "x"}, **kw)
    elif action == "ticket.print":
        h.run("ticket.print", {"ticket_id": _ticket_ids(h, d), "kind": "check"}, **kw)
    elif action == "ticket.split":
        ticket_id = _ticket_ids(h, d, "open")
        if d.draw(st.booleans()):
            h.run("ticket.split", {"ticket_id": ticket_id, "even": d.draw(st.integers(2, 4))}, **kw)
        else:
            parts = [{"line_ids": _line_ids(h, d, ticket_id)} for _ in range(d.draw(st.integers(1, 2)))]
            h.run("ticket.split", {"ticket_id": ticket_id, "parts": parts}, **kw)
    elif action == "kds":
        kind = d.draw(st.sampled_from(["kds.start", "kds.bump", "kds.recall"]))
        station = d.draw(st.sampled_from(["grill", "expo", "fry"]))
        h.run(
            kind,
            {"ticket_id": _ticket_ids(h, d), "station": station},
            device=f"kds-{station}",
            kind="kds",
            stations=(station,),
        )
    elif action == "menu.availability":
        body = {"menu_item_id": d.draw(st.sampled_from(ITEMS)), "available": d.draw(st.booleans())}
        if d.draw(st.booleans()):
            body["remaining"] = d.draw(st.integers(0, 5))
        h.run("menu.availability", body, **kw)
    elif action == "tick":
        h.tick()
    elif action == "admin":
        _admin(h, d)
    else:
        h.advance(d.draw(st.sampled_from([30, 600, 1800, 6 * 3600])))


def _admin(h: Harness, d: st.DataObject) -> None:
    employee = d.draw(st.sampled_from(EMPLOYEES))
    name, role, pin = STAFF[employee]
    choice = d.draw(st.sampled_from(["deactivate", "add", "role", "pin", "revoke", "pair", "tables", "menu"]))
    admin = {"device": "admin", "kind": "admin"}
    if choice == "deactivate":
        h.run("staff.deactivate", {"employee_id": employee}, **admin)
    elif choice == "add":
        h.run("staff.add", {"employee_id": employee, "name": name, "role": role, "pin": pin}, **admin)
    elif choice == "role":
        new_role = d.draw(st.sampled_from(["kitchen", "server", "cashier", "manager"]))
        h.run("staff.set_role", {"employee_id": employee, "role": new_role}, **admin)
    elif choice == "pin":
        h.run("staff.reset_pin", {"employee_id": employee, "pin": pin}, **admin)
    elif choice == "revoke":
        h.run("device.revoke", {"device_id": f"tab-{employee}"}, **admin)
    elif choice == "pair":
        h.run("device.add", {"device_id": f"tab-{employee}", "kind": "tablet"}, **admin)
    elif choice == "tables":
        keep = d.draw(st.lists(st.sampled_from(TABLES), min_size=1, unique=True))
        plan = [{"table_id": t, "name": t.upper(), "seats": d.draw(st.integers(2, 4))} for t in sorted(keep)]
        h.run("tables.configure", {"tables": plan}, **admin)
    else:
        prices = d.draw(st.sampled_from([1, 2]))
        menu = {**MENU, "version": f"v{prices}", "items": [{**i, "price": i["price"] * prices} for i in MENU["items"]]}
        h.run("menu.load", menu, **admin)


def _check_books(h: Harness) -> None:
    for ticket in h.state.tickets.values():
        t = ticket.totals
        assert t.total == t.subtotal - t.discount + t.tax_added
        assert t.total == sum(line.amounts.total for line in ticket.lines)
        assert t.paid == sum(p.amount for p in ticket.payments)
        assert min(t.subtotal, t.discount, t.tax, t.total, t.paid, t.balance, t.refunded) >= 0
        assert t.refunded <= t.paid
        for line in ticket.lines:
            a = line.amounts
            assert min(a.gross, a.discount, a.net, a.tax, a.total) >= 0
            assert 0 <= line.refunded_qty <= line.qty
        if ticket.status in {"paid", "closed"}:
            assert t.balance == 0
        assert (ticket.ticket_id in h.state.open_tickets) == (ticket.status == "open")
    shift = h.state.current_shift
    if shift is None:
        return
    paid: dict[str, int] = defaultdict(int)
    tips = 0
    refunded: dict[str, int] = defaultdict(int)
    moves = {"pay_in": 0, "pay_out": 0, "drop": 0}
    for event in h.ledger:
        if event.data.get("shift_id") != shift.shift_id:
            continue
        if event.type == "ticket.paid":
            for p in event.data["payments"]:
                paid[p["kind"]] += p["amount"]
                tips += p["tip"] if p["kind"] == "cash" else 0
        elif event.type == "ticket.refunded":
            refunded[event.data["tender"]] += event.data["amount"]
        elif event.type == "shift.cash_moved":
            moves[event.data["kind"]] += event.data["amount"]
    x = h.ok("shift.report", {"kind": "x"}, device="admin", kind="admin")
    for kind, tender in x["tenders"].items():
        assert tender["net"] == paid[kind] - refunded[kind]
    expected = (
        shift.opening_float
        + paid["cash"]
        + tips
        - refunded["cash"]
        + moves["pay_in"]
        - moves["pay_out"]
        - moves["drop"]
    )
    assert shift.expected == expected


def _close_out(h: Harness) -> None:
    """Settle every open ticket and close the shift: the Z report must match the ledger."""
    if h.state.current_shift is None:
        return
    admin = {"device": "admin", "kind": "admin"}  # the operator, with a manager's rights
    for ticket_id in sorted(h.state.open_tickets):
        ticket = h.state.tickets[ticket_id]
        if ticket.totals.balance > 0:
            tender = {"kind": "external", "amount": ticket.totals.balance}
            h.ok("ticket.pay", {"ticket_id": ticket_id, "tenders": [tender]}, **admin)
        elif not ticket.payments:
            h.ok("ticket.void", {"ticket_id": ticket_id, "reason": "closing"}, **admin)
        # else: settled (reopened and left as it was): shift.close closes it
    shift = h.state.current_shift
    _check_books(h)
    counted = max(shift.expected, 0)  # pay-outs beyond the drawer's cash are allowed (they show as over)
    z = h.ok("shift.close", {"counted_cash": counted}, **admin)
    assert z["cash"]["over_short"] == counted - shift.expected
    sales = [e for e in h.ledger if e.type in {"ticket.closed", "ticket.reopened"}]
    closed = sum(e.data["total"] for e in sales if e.type == "ticket.closed" and e.data["shift_id"] == shift.shift_id)
    reopened = sum(
        e.data["reversed"]["total"]
        for e in sales
        if e.type == "ticket.reopened" and e.data["shift_id"] == shift.shift_id
    )
    assert z["total"] == closed - reopened
    assert sum(t["tax"] for t in z["taxes"]) == z["tax"]
    assert z["net_sales"] == z["gross_sales"] - z["discounts"]
    grand = h.state.grand_totals
    assert z["grand_totals"]["total"] == grand.total


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_services_keep_the_books_and_replay_exactly(data):
    h = store(logins=("mgr", "csh", "srv", "srv2", "kit"))
    for _ in range(data.draw(st.integers(min_value=20, max_value=80))):
        _step(h, data)
        _check_books(h)
    _close_out(h)
    dumped = h.state.model_dump(mode="json")
    assert h.replay().model_dump(mode="json") == dumped
    assert StoreState.model_validate(json.loads(json.dumps(dumped))).model_dump(mode="json") == dumped
