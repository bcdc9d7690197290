"""A whole service driven only through MQTT with device credentials, as a tablet would."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

from tests.hubproc import STAFF, storehub
from tests.mqtt_helpers import MqttClient, wait_until

if TYPE_CHECKING:
    from devices.sim.tablet import SimTablet
    from tests.hubproc import HubProcess


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply.get("result") or {}


def code(reply: dict[str, Any]) -> str:
    assert not reply["ok"], reply
    return str(reply["error"]["code"])


def login(tab: SimTablet, who: str) -> str:
    return tab.login(*STAFF[who])


def ticket_view(tab: SimTablet, token: str, ticket_id: str) -> dict[str, Any]:
    snapshot = ok(tab.call("sync", {}, auth=token))["snapshot"]
    return next(t for t in snapshot["tickets"] if t["ticket_id"] == ticket_id)


def test_a_dinner_service_from_login_to_z_report(hub: HubProcess) -> None:
    tab = hub.tablet("tab-service", events=True)
    try:
        mgr, server, cashier = login(tab, "mgr"), login(tab, "server"), login(tab, "cashier")
        approve = {"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]}

        assert code(tab.call("ticket.open", {"channel": "takeout"}, auth=server)) == "shift_closed"
        ok(tab.call("shift.open", {"opening_float": 20000}, auth=mgr))
        wait_until(lambda: (tab.retained.get(tab.topics.state_shift()) or {}).get("open") is True, 5, "state/shift")

        ok(tab.call("table.seat", {"table_id": "t2", "guests": 3}, auth=server))
        ticket = ok(tab.call("ticket.open", {"table_id": "t2", "guests": 3, "channel": "dine_in"}, auth=server))
        tid = ticket["ticket_id"]
        assert ticket["number"] >= 1
        items = [
            {"line_id": "a1", "menu_item_id": "soupe-oignon", "qty": 2, "course": 1, "modifiers": ["extra-cheese"]},
            {
                "line_id": "a2",
                "menu_item_id": "steak-frites",
                "qty": 1,
                "course": 2,
                "modifiers": ["saignant", "gratin"],
            },
            {"line_id": "a3", "menu_item_id": "biere", "qty": 3},
        ]
        ok(tab.call("ticket.add_items", {"ticket_id": tid, "items": items}, auth=server))
        # (950 + 150) x 2 + (2450 + 250) + 500 x 3 = 6400, VAT included in the prices
        assert ticket_view(tab, server, tid)["totals"]["total"] == 6400

        bad_mod = [{"line_id": "x1", "menu_item_id": "steak-frites", "qty": 1, "modifiers": []}]
        assert code(tab.call("ticket.add_items", {"ticket_id": tid, "items": bad_mod}, auth=server)) == "conflict"

        ok(tab.call("ticket.fire", {"ticket_id": tid, "course": 1}, auth=server))
        fired = tab.wait_event(lambda e: e["type"] == "ticket.fired" and e["data"].get("ticket_id") == tid)
        assert fired["by"] == {"device": "tab-service", "actor": STAFF["server"][0]}

        void = {"ticket_id": tid, "line_id": "a1", "reason": "guest changed mind"}
        assert code(tab.call("ticket.void_item", void, auth=server)) == "approval_required"
        ok(tab.call("ticket.void_item", void, auth=server, approve=approve))
        voided = tab.wait_event(lambda e: e["type"] == "ticket.item_voided")
        assert voided["data"].get("approved_by") == STAFF["mgr"][0]

        discount = {"ticket_id": tid, "kind": "percent", "value": 10, "reason": "regulars"}
        assert code(tab.call("ticket.discount", discount, auth=server)) == "approval_required"
        ok(tab.call("ticket.discount", discount, auth=server, approve=approve))
        view = ticket_view(tab, server, tid)
        total = view["totals"]["total"]
        assert total == 4200 - 420  # steak 2700 + beers 1500, less 10 %

        ok(tab.call("ticket.fire", {"ticket_id": tid}, auth=server))
        half = total // 2
        tenders = [
            {"kind": "cash", "amount": half, "tendered": half + 1000},
            {"kind": "external", "amount": total - half, "reference": "term-7"},
        ]
        assert code(tab.call("ticket.pay", {"ticket_id": tid, "tenders": tenders}, auth=server)) == "forbidden"
        paid = ok(tab.call("ticket.pay", {"ticket_id": tid, "tenders": tenders}, auth=cashier))
        assert paid["closed"] is True
        assert paid["change_due"] == 1000
        card = [{"kind": "card", "amount": 100}]
        assert code(tab.call("ticket.pay", {"ticket_id": tid, "tenders": card}, auth=cashier)) in {
            "conflict",
            "payment_declined",
        }

        # a second party: split evenly in two and each pays cash
        t2 = ok(tab.call("ticket.open", {"channel": "takeout", "name": "Dupont"}, auth=server))["ticket_id"]
        ok(
            tab.call(
                "ticket.add_items",
                {"ticket_id": t2, "items": [{"line_id": "b1", "menu_item_id": "croque-monsieur", "qty": 3}]},
                auth=server,
            )
        )
        parts = ok(tab.call("ticket.split", {"ticket_id": t2, "even": 2}, auth=server))
        new_ids = parts["ticket_ids"]
        assert len(new_ids) == 2
        amounts = [ticket_view(tab, server, t)["totals"]["balance"] for t in new_ids]
        assert sum(amounts) == 4350
        for part, amount in zip(new_ids, amounts, strict=True):
            ok(
                tab.call(
                    "ticket.pay",
                    {"ticket_id": part, "tenders": [{"kind": "cash", "amount": amount, "tendered": amount}]},
                    auth=cashier,
                )
            )

        # refund one beer of the first ticket: the hub computes the amount (discount included)
        refund = {"ticket_id": tid, "lines": [{"line_id": "a3", "qty": 1}], "tender": "cash", "reason": "flat"}
        assert code(tab.call("ticket.refund", refund, auth=server)) in {"forbidden", "approval_required"}
        refunded = ok(tab.call("ticket.refund", refund, auth=mgr))
        assert refunded["amount"] == 450  # 500 less the 10 % ticket discount
        assert code(tab.call("ticket.refund", refund | {"lines": [{"line_id": "a3", "qty": 3}]}, auth=mgr)) == (
            "conflict"
        )

        ok(tab.call("drawer.pay_out", {"amount": 1500, "reason": "flowers"}, auth=cashier))
        ok(tab.call("table.clear", {"table_id": "t2"}, auth=server))

        x = ok(tab.call("shift.report", {"kind": "x"}, auth=mgr))
        assert "expected" not in x["cash"], "blind close: the expected cash is not shown before the count"
        expected_cash = 20000 + half + 4350 - 450 - 1500
        z = ok(tab.call("shift.close", {"counted_cash": expected_cash - 200}, auth=mgr))
        assert z["cash"]["expected"] == expected_cash
        assert z["cash"]["counted"] == expected_cash - 200
        assert z["cash"]["over_short"] == -200
        wait_until(lambda: (tab.retained.get(tab.topics.state_shift()) or {}).get("open") is False, 5, "shift closed")
        again = ok(tab.call("shift.report", {"kind": "z"}, auth=mgr))
        assert again == z
    finally:
        tab.close()


def test_commands_are_exactly_once_by_id(hub: HubProcess) -> None:
    tab = hub.tablet("tab-idem")
    try:
        server = login(tab, "server")
        body = {"employee_id": STAFF["server"][0], "pin": STAFF["server"][1]}
        first = tab.call("staff.login", body, cmd_id="same-login")
        second = tab.call("staff.login", body, cmd_id="same-login")
        assert first == second
        mismatch = tab.call("staff.login", {**body, "pin": "9999"}, cmd_id="same-login")
        assert code(mismatch) == "idempotency_mismatch"
        del server
    finally:
        tab.close()


def test_bad_payloads_get_error_replies_and_the_hub_keeps_serving(hub: HubProcess) -> None:
    tab = hub.tablet("tab-bad")
    try:
        # A malformed (and retained) status of its own must not stall the hub's intake.
        status = tab.topics.device_status("tab-bad")
        tab.client.publish(status, b'{"state":"online","sess":"x"}', qos=1, retain=True).wait_for_publish(5)
        tab.client.publish(status, b"[1,2]", qos=1, retain=True).wait_for_publish(5)
        replies = []
        for payload in (b"not json", b"\x00\xff", b'{"v":1,"id":"u1","type":"nope.nope","body":{}}'):
            key = "u1" if payload.startswith(b'{"v"') else "null"
            waiter = tab.expect(key)
            tab.publish_raw(payload)
            replies.append(tab.wait_reply(key, waiter))
        assert [r["error"]["code"] for r in replies] == ["invalid_payload", "invalid_payload", "unknown_command"]
        big_waiter = tab.expect("big-1")
        tab.publish_raw(b'{"v":1,"id":"big-1","type":"sync","body":{"pad":"' + b"x" * 70_000 + b'"}}')
        assert tab.wait_reply("big-1", big_waiter)["error"]["code"] == "too_large"
        assert ok(tab.call("sync", {}))["seq"] >= 1
    finally:
        tab.close()


def test_the_broker_refuses_what_a_device_may_not_do(hub: HubProcess) -> None:
    victim = hub.tablet("tab-victim", events=True)
    creds = hub.add_device("tab-acl")
    intruder = MqttClient(hub.port, creds.username, creds.password)
    anonymous = MqttClient(hub.port, None, None)
    try:
        assert not intruder.connect().is_failure
        root = f"storehub/v1/{hub.store_id}/"
        employee, pin = STAFF["server"]
        forged = {"v": 1, "id": "forged-1", "type": "staff.login", "body": {"employee_id": employee, "pin": pin}}
        assert intruder.publish(root + "cmd/tab-victim", json.dumps(forged).encode()).is_failure
        fake_event = {"v": 1, "seq": 999999, "type": "ticket.paid", "at": "2026-11-22T12:00:00.000Z", "data": {}}
        assert intruder.publish(root + "event/ticket", json.dumps(fake_event).encode()).is_failure
        assert intruder.publish(root + "state/shift", b'{"open":false}').is_failure
        assert intruder.publish(root + "reply/tab-victim", b'{"v":1,"id":"x","ok":true}').is_failure
        # A marker through the same connection: the broker handles one client's publishes in order.
        marker = {"v": 1, "id": "marker-1", "type": "staff.login", "body": {"employee_id": employee, "pin": pin}}
        assert not intruder.publish(root + "cmd/tab-acl", json.dumps(marker).encode()).is_failure
        logged_in = victim.wait_event(lambda e: e["type"] == "staff.logged_in" and e["cmd"] == "marker-1", 5)
        assert logged_in["by"]["device"] == "tab-acl"
        assert all(e.get("seq") != 999999 for e in victim.seen), "a device cannot publish events"
        assert not any(e.get("cmd") == "forged-1" for e in victim.seen), "nor commands as another device"
        assert anonymous.connect().is_failure
    finally:
        victim.close()
        for client in (intruder, anonymous):
            client.close()


def test_a_revoked_device_is_cut_off(hub: HubProcess) -> None:
    creds = hub.add_device("tab-lost")
    client = MqttClient(hub.port, creds.username, creds.password)
    try:
        assert not client.connect().is_failure
        storehub("device", "revoke", "tab-lost", "--config", str(hub.config))
        wait_until(lambda: not client.connected, 5, "the broker to drop the revoked device")
    finally:
        client.close()
    again = MqttClient(hub.port, creds.username, creds.password)
    try:
        assert again.connect().is_failure
    finally:
        again.close()
    listing = [json.loads(line) for line in storehub("device", "list", "--config", str(hub.config)).stdout.splitlines()]
    assert {d["device_id"]: d["active"] for d in listing}["tab-lost"] is False


def test_mosquitto_command_line_clients_can_drive_the_hub(hub: HubProcess) -> None:
    tablet = hub.add_device("tab-cli")
    display = hub.add_device("wall-cli", kind="display")
    root = f"storehub/v1/{hub.store_id}/"
    watcher = subprocess.Popen(
        [  # stdbuf: mosquitto_sub's debug lines are block-buffered on a pipe, and we wait for its SUBACK line
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(hub.port),
            "-u",
            display.username,
            "-P",
            display.password,
            "-V",
            "mqttv5",
            "-t",
            root + "event/staff",
            "-C",
            "1",
            "-W",
            "20",
            "-d",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            if "SUBACK" in line:
                break
        employee, pin = STAFF["server"]
        command = {"v": 1, "id": "cli-1", "type": "staff.login", "body": {"employee_id": employee, "pin": pin}}
        answer = subprocess.run(
            [
                "mosquitto_rr",
                "-h",
                "127.0.0.1",
                "-p",
                str(hub.port),
                "-u",
                tablet.username,
                "-P",
                tablet.password,
                "-q",
                "1",
                "-t",
                root + "cmd/tab-cli",
                "-e",
                root + "reply/tab-cli",
                "-m",
                json.dumps(command),
                "-W",
                "10",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=15,
        )
        reply = json.loads(answer.stdout.strip().splitlines()[-1])
        assert reply["id"] == "cli-1"
        assert ok(reply)["role"] == "server"
        lines = [line for line in watcher.stdout if line.startswith("{")]
        watcher.wait(10)
        event = json.loads(lines[0])
        assert event["type"] == "staff.logged_in"
        assert event["by"]["device"] == "tab-cli"
        assert "token" not in json.dumps(event["data"]).replace("token_hash", "")
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait()
        if watcher.stdout is not None:
            watcher.stdout.close()


def test_staff_are_managed_from_the_command_line_on_a_running_hub(hub: HubProcess) -> None:
    config = str(hub.config)
    added = storehub(
        "staff", "add", "emp-nina", "--name", "Nina", "--role", "server", "--config", config, stdin="4711\n"
    )
    assert json.loads(added.stdout)["role"] == "server"
    listed = [json.loads(line) for line in storehub("staff", "list", "--config", config).stdout.splitlines()]
    nina = next(e for e in listed if e["employee_id"] == "emp-nina")
    assert nina["name"] == "Nina"
    assert "pin" not in json.dumps(nina).lower()

    bad = storehub("staff", "reset-pin", "emp-nina", "--config", config, stdin="12\n", check=False)
    assert bad.returncode == 2
    assert "4 to 8 digits" in bad.stderr
    unknown = storehub("staff", "set-role", "emp-nobody", "manager", "--config", config, check=False)
    assert unknown.returncode == 2
    assert "not_found" in unknown.stderr

    tab = hub.tablet("tab-staff")
    try:
        token = tab.login("emp-nina", "4711")
        storehub("staff", "set-role", "emp-nina", "cashier", "--config", config)
        storehub("staff", "reset-pin", "emp-nina", "--config", config, stdin="8642\n")
        assert code(tab.call("staff.login", {"employee_id": "emp-nina", "pin": "4711"})) == "unauthorized"
        token = tab.login("emp-nina", "8642")
        storehub("staff", "deactivate", "emp-nina", "--config", config)
        assert code(tab.call("ticket.open", {"channel": "takeout"}, auth=token)) == "unauthorized"
        assert code(tab.call("staff.login", {"employee_id": "emp-nina", "pin": "8642"})) == "unauthorized"
    finally:
        tab.close()
