"""Acknowledged means durable: kill -9 of the hub, restart, and the books still add up."""

from __future__ import annotations

import json
import random
import sqlite3
from typing import TYPE_CHECKING, Any

from tests.hubproc import STAFF, HubProcess, pid_alive, storehub, write_config
from tests.mqtt_helpers import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from devices.sim.tablet import SimTablet


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply.get("result") or {}


def broker_pid(hub: HubProcess) -> int:
    return int((hub.data_dir / "broker" / "mosquitto.pid").read_text().strip())


def test_kill_9_between_reply_and_next_command_loses_nothing_and_applies_nothing_twice(
    fresh_hub: HubProcess,
) -> None:
    hub = fresh_hub.start()
    creds = hub.add_device("tab-k9")
    tab = hub.tablet("tab-k9", creds=creds)
    mgr = tab.login(*STAFF["mgr"])
    server = tab.login(*STAFF["server"])
    ok(tab.call("shift.open", {"opening_float": 10000}, auth=mgr))
    opened = ok(tab.call("ticket.open", {"ticket_id": "k9-ticket", "channel": "takeout"}, auth=server))
    items = {"ticket_id": "k9-ticket", "items": [{"line_id": "l1", "menu_item_id": "tarte-tatin", "qty": 2}]}
    added = tab.call("ticket.add_items", items, auth=server, cmd_id="k9-add")
    ok(added)
    old_broker = broker_pid(hub)
    tab.close()

    hub.kill9()
    wait_until(lambda: not pid_alive(old_broker), 5, "the managed broker to die with its hub")
    assert storehub("ledger", "verify", "--config", str(hub.config)).returncode == 0

    hub.start()
    tab = hub.tablet("tab-k9", creds=creds)
    try:
        server = tab.login(*STAFF["server"])
        snapshot = ok(tab.call("sync", {}, auth=server))["snapshot"]
        ticket = next(t for t in snapshot["tickets"] if t["ticket_id"] == "k9-ticket")
        assert ticket["number"] == opened["number"]
        assert [line["qty"] for line in ticket["lines"]] == [2]

        again = tab.call("ticket.add_items", items, auth=server, cmd_id="k9-add")
        assert again == added, "a re-sent command returns its original reply"
        snapshot = ok(tab.call("sync", {}, auth=server))["snapshot"]
        ticket = next(t for t in snapshot["tickets"] if t["ticket_id"] == "k9-ticket")
        assert len(ticket["lines"]) == 1, "and is not applied twice"
    finally:
        tab.close()
    verify = json.loads(storehub("ledger", "verify", "--config", str(hub.config)).stdout)
    assert verify["ok"]
    assert verify["head_seq"] >= added["seq"]


def test_kill_9_under_load_every_acknowledged_command_survives(fresh_hub: HubProcess) -> None:
    hub = fresh_hub.start()
    creds = hub.add_device("tab-load")
    tab = hub.tablet("tab-load", creds=creds)
    mgr = tab.login(*STAFF["mgr"])
    server = tab.login(*STAFF["server"])
    ok(tab.call("shift.open", {"opening_float": 0}, auth=mgr))
    acked: list[str] = []
    replies: dict[str, dict[str, Any]] = {}

    def on_reply(payload: dict[str, Any]) -> None:
        if payload.get("ok"):
            replies[str(payload["id"])] = payload

    tab._on_reply = on_reply
    for i in range(300):
        tab.send("ticket.open", {"ticket_id": f"load-{i}", "channel": "takeout"}, auth=server, cmd_id=f"load-{i}")
    wait_until(lambda: len(replies) >= 50, 10, "some acknowledgements")
    hub.kill9()
    acked = sorted(replies)
    tab.close()

    hub.start()
    tab = hub.tablet("tab-load", creds=creds)
    try:
        server = tab.login(*STAFF["server"])
        snapshot = ok(tab.call("sync", {}, auth=server))["snapshot"]
        present = {t["ticket_id"] for t in snapshot["tickets"]}
        missing = [cmd for cmd in acked if cmd not in present]
        assert not missing, f"acknowledged but lost after kill -9: {missing[:5]}"
    finally:
        tab.close()
    assert json.loads(storehub("ledger", "verify", "--config", str(hub.config)).stdout)["ok"]


def test_replay_equals_live_projections_after_a_random_session(fresh_hub: HubProcess) -> None:
    hub = fresh_hub.start()
    tab = hub.tablet("tab-rand")
    rng = random.Random(20261122)
    try:
        play_random_session(tab, rng, steps=150)
    finally:
        tab.close()
    hub.stop()
    result = storehub("replay", "--config", str(hub.config), check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["equal"]
    assert report["entries_replayed"] > 20


def test_ledger_verify_finds_the_first_tampered_entry(fresh_hub: HubProcess) -> None:
    hub = fresh_hub.start()
    tab = hub.tablet("tab-tamper")
    try:
        mgr = tab.login(*STAFF["mgr"])
        ok(tab.call("shift.open", {"opening_float": 5000}, auth=mgr))
        ok(tab.call("drawer.pay_in", {"amount": 700, "reason": "change from bank"}, auth=mgr))
    finally:
        tab.close()
    hub.stop()
    db = hub.data_dir / "hub.db"
    with sqlite3.connect(db) as conn:
        seq, data = conn.execute("SELECT seq, data FROM ledger WHERE type = 'shift.cash_moved'").fetchone()
        conn.execute("DROP TRIGGER ledger_never_updated")
        conn.execute("UPDATE ledger SET data = ? WHERE seq = ?", (data.replace("700", "70"), seq))
    result = storehub("ledger", "verify", "--config", str(hub.config), check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["first_bad_seq"] == seq


def play_random_session(tab: SimTablet, rng: random.Random, steps: int) -> None:
    """Random but plausible commands: some succeed, some are refused; all must replay identically."""
    mgr = tab.login(*STAFF["mgr"])
    server = tab.login(*STAFF["server"])
    cashier = tab.login(*STAFF["cashier"])
    approve = {"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]}
    ok(tab.call("shift.open", {"opening_float": 10000}, auth=mgr))
    menu = ["soupe-oignon", "steak-frites", "biere", "espresso", "creme-brulee", "croque-monsieur"]
    tickets: list[str] = []
    for step in range(steps):
        roll = rng.random()
        if roll < 0.15 or not tickets:
            table = rng.choice(["t1", "t2", "t3", "t4", None])
            body: dict[str, Any] = {"channel": "dine_in" if table else "takeout"}
            if table:
                tab.call("table.seat", {"table_id": table, "guests": rng.randint(1, 4)}, auth=server)
                body["table_id"] = table
            reply = tab.call("ticket.open", body, auth=server)
            if reply["ok"]:
                tickets.append(reply["result"]["ticket_id"])
            continue
        tid = rng.choice(tickets)
        if roll < 0.45:
            item = rng.choice(menu)
            modifiers = ["a-point", "frites"] if item == "steak-frites" else []
            line = {"line_id": f"r{step}", "menu_item_id": item, "qty": rng.randint(1, 3), "modifiers": modifiers}
            tab.call("ticket.add_items", {"ticket_id": tid, "items": [line]}, auth=server)
        elif roll < 0.6:
            tab.call("ticket.fire", {"ticket_id": tid}, auth=server)
        elif roll < 0.68:
            tab.call(
                "ticket.discount",
                {"ticket_id": tid, "kind": "amount", "value": 100, "reason": "x"},
                auth=server,
                approve=approve,
            )
        elif roll < 0.75:
            tab.call(
                "ticket.void_item",
                {"ticket_id": tid, "line_id": f"r{step - 1}", "reason": "oops"},
                auth=server,
                approve=approve,
            )
        elif roll < 0.9:
            snap = tab.call("sync", {}, auth=server)["result"]["snapshot"]
            view = next((t for t in snap["tickets"] if t["ticket_id"] == tid), None)
            if view and view["totals"]["balance"] > 0:
                amount = view["totals"]["balance"]
                kind = rng.choice(["cash", "external"])
                tender = {"kind": kind, "amount": amount} | ({"tendered": amount + 500} if kind == "cash" else {})
                tab.call("ticket.pay", {"ticket_id": tid, "tenders": [tender]}, auth=cashier)
        else:
            tab.call("drawer.pay_in", {"amount": rng.randint(1, 500), "reason": "float top-up"}, auth=cashier)


def test_hub_status_follows_the_ledger_head_once_a_tick(tmp_path: Path) -> None:
    hub = HubProcess(write_config(tmp_path / "store", tick=0.3)).start()
    try:
        tab = hub.tablet("tab-status")
        try:
            reply = tab.call("staff.login", {"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]})
            ok(reply)
            seq = reply["seq"]
            topic = tab.topics.hub_status()
            wait_until(lambda: (tab.retained.get(topic) or {}).get("seq", 0) >= seq, 10, "hub/status to reach the head")
            assert tab.retained[topic]["state"] == "online"
        finally:
            tab.close()
    finally:
        hub.stop()
