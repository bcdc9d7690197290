"""Staff: PINs, sessions, rate limits, roles, the operator's admin commands, devices."""

from __future__ import annotations

import hashlib

from hub.domain import hash_pin, staff_list, token_hash, verify_pin_hash

from .harness import Harness, store


def test_pin_hashing():
    stored = hash_pin("1234", b"0123456789abcdef")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "4096", "8", "1")
    assert salt
    assert digest
    assert verify_pin_hash("1234", stored)
    assert not verify_pin_hash("1235", stored)
    assert not verify_pin_hash("1234", "garbage")
    assert not verify_pin_hash("1234", "scrypt$4096$8$1$%%%$%%%")
    assert hash_pin("1234", b"another-salt-xyz") != stored


def test_token_hash_is_sha256():
    assert token_hash("abc") == hashlib.sha256(b"abc").hexdigest()


def test_login_gives_a_token_and_ledgers_only_its_hash():
    h = store(shift=False, logins=())
    result = h.ok("staff.login", {"employee_id": "srv", "pin": "2222"})
    assert result["role"] == "server"
    assert result["name"] == "Sam"
    assert result["expires_at"] == "2026-11-23T04:00:00.000Z"
    event = h.last("staff.logged_in")
    assert event.actor == "srv"
    assert event.data["session"] == token_hash(result["token"])
    assert result["token"] not in str(event.data)
    assert token_hash(result["token"]) in h.state.sessions


def test_wrong_pin_is_unauthorized_and_ledgered_without_saying_which():
    h = store(shift=False, logins=())
    wrong_pin = h.run("staff.login", {"employee_id": "srv", "pin": "0000"})
    unknown = h.run("staff.login", {"employee_id": "nobody", "pin": "0000"})
    assert wrong_pin.error is not None
    assert unknown.error is not None
    assert wrong_pin.error.message == unknown.error.message == "Wrong employee or PIN"
    assert [e.type for e in wrong_pin.events + unknown.events] == ["staff.login_failed"] * 2
    assert "pin" not in str(h.last("staff.login_failed").data)


def test_too_many_wrong_pins_lock_the_employee_out_for_a_while():
    h = store(shift=False, logins=())
    for _ in range(4):
        h.fail("staff.login", {"employee_id": "srv", "pin": "0000"}, code="unauthorized", device="tab-9")
        h.advance(10)
    fifth = h.fail("staff.login", {"employee_id": "srv", "pin": "0000"}, code="unauthorized", device="tab-8")
    assert "locked" in fifth.message
    count = len(h.ledger)
    locked = h.fail("staff.login", {"employee_id": "srv", "pin": "2222"}, code="rate_limited", device="tab-7")
    assert locked.details["retry_after_s"] == 300
    assert len(h.ledger) == count  # refused without checking the PIN and without an event
    # another employee on another device is not affected
    h.ok("staff.login", {"employee_id": "csh", "pin": "3333"}, device="tab-6")
    h.advance(299)
    h.fail("staff.login", {"employee_id": "srv", "pin": "2222"}, code="rate_limited")
    h.advance(1)
    h.ok("staff.login", {"employee_id": "srv", "pin": "2222"})
    assert "emp:srv" not in h.state.login_failures  # a good login forgets the employee's failures


def test_a_device_guessing_many_employees_is_locked_too():
    h = store(shift=False, logins=())
    for employee_id in ["mgr", "csh", "srv", "srv2", "kit"]:
        h.fail("staff.login", {"employee_id": employee_id, "pin": "9999"}, code="unauthorized", device="tab-x")
    h.fail("staff.login", {"employee_id": "mgr", "pin": "1111"}, code="rate_limited", device="tab-x")
    h.ok("staff.login", {"employee_id": "mgr", "pin": "1111"}, device="tab-y")


def test_failures_outside_the_window_do_not_add_up():
    h = store(shift=False, logins=())
    for _ in range(8):
        h.fail("staff.login", {"employee_id": "srv", "pin": "0000"}, code="unauthorized", device=f"tab-{_}")
        h.advance(100)  # 4 failures within any 300 s window at most
    h.ok("staff.login", {"employee_id": "srv", "pin": "2222"})
    assert len(h.state.login_failures.get("dev:tab-0", [])) <= 1


def test_lockout_survives_a_replay_of_the_ledger():
    h = store(shift=False, logins=())
    for _ in range(5):
        h.fail("staff.login", {"employee_id": "srv", "pin": "0000"}, code="unauthorized")
    h.state = h.replay()
    h.fail("staff.login", {"employee_id": "srv", "pin": "2222"}, code="rate_limited")


def test_reset_pin_lifts_the_lockout():
    h = store(shift=False, logins=())
    for _ in range(5):
        h.fail("staff.login", {"employee_id": "srv", "pin": "0000"}, code="unauthorized", device=f"tab-{_}")
    h.admin("staff.reset_pin", {"employee_id": "srv", "pin": "5555"})
    assert h.last("staff.pin_reset").data == {"employee_id": "srv"}
    h.ok("staff.login", {"employee_id": "srv", "pin": "5555"}, device="tab-new")


def test_logout_and_expiry():
    h = store(shift=False)
    h.ok("staff.logout", as_="srv")
    h.fail("table.seat", {"table_id": "t1", "guests": 1}, code="unauthorized", as_="srv")
    h.fail("staff.logout", code="unauthorized", as_="srv")
    h.fail("ticket.open", {}, code="unauthorized")  # no token at all
    h.advance(12 * 3600)
    error = h.fail("shift.open", {"opening_float": 0}, code="unauthorized", as_="mgr")
    assert error.message == "Your session has ended or expired; log in again"


def test_a_new_login_on_the_same_device_replaces_the_old_session_and_drops_expired_ones():
    h = store(shift=False, logins=())
    first = h.login("srv", device="tab-1")
    h.login("csh", device="tab-2")
    h.advance(13 * 3600)
    h.login("mgr", device="tab-3")  # the csh session expired: dropped
    assert {s.employee_id for s in h.state.sessions.values()} == {"mgr"}
    second = h.login("srv", device="tab-3")
    h.login("srv", device="tab-3")
    assert token_hash(first) not in h.state.sessions
    assert token_hash(second) not in h.state.sessions
    assert sorted(s.employee_id for s in h.state.sessions.values()) == ["mgr", "srv"]


def test_deactivation_kills_sessions_at_once_and_refuses_login():
    h = store(shift=False)
    h.admin("staff.deactivate", {"employee_id": "srv"})
    assert all(s.employee_id != "srv" for s in h.state.sessions.values())
    h.fail("ticket.open", {}, code="unauthorized", as_="srv")
    h.fail("staff.login", {"employee_id": "srv", "pin": "2222"}, code="unauthorized")
    assert "srv" not in [s["employee_id"] for s in staff_list(h.state)]
    h.admin("staff.add", {"employee_id": "srv", "name": "Sam", "role": "server"})  # back again
    h.ok("staff.login", {"employee_id": "srv", "pin": "2222"})


def test_role_change_applies_to_live_sessions():
    h = store()
    t = h.open_ticket()
    h.add(t, {"line_id": "a", "menu_item_id": "fries"})
    body = {"ticket_id": t, "tenders": [{"kind": "external", "amount": 489}]}
    h.fail("ticket.pay", body, code="forbidden", as_="srv")
    h.admin("staff.set_role", {"employee_id": "srv", "role": "cashier"})
    assert h.last("staff.role_changed").data["previous_role"] == "server"
    h.ok("ticket.pay", body, as_="srv")


def test_kitchen_staff_cannot_take_orders():
    h = store()
    error = h.fail("ticket.open", {}, code="forbidden", as_="kit")
    assert error.details == {"needs": "server", "role": "kitchen"}


def test_admin_commands_are_for_the_operator_only():
    h = store()
    error = h.fail("staff.add", {"employee_id": "x", "name": "X", "role": "manager"}, code="forbidden", as_="mgr")
    assert error.message == "Adding staff is for the store operator only"
    h.fail("clock.tick", code="forbidden", as_="mgr")
    h.fail(
        "staff.add",
        {"employee_id": "mgr", "name": "Maria", "role": "manager"},
        code="conflict",
        device="admin",
        kind="admin",
    )
    h.fail("staff.deactivate", {"employee_id": "ghost"}, code="not_found", device="admin", kind="admin")


def test_staff_list_is_sorted_active_staff_without_pins():
    h = Harness()
    h.admin("staff.add", {"employee_id": "b", "name": "bea", "role": "server", "pin": "1234"})
    h.admin("staff.add", {"employee_id": "a", "name": "Al", "role": "manager", "pin": "4321"})
    assert staff_list(h.state) == [
        {"employee_id": "a", "name": "Al", "role": "manager"},
        {"employee_id": "b", "name": "bea", "role": "server"},
    ]
    assert "1234" not in str(h.ledger)


def test_devices_pair_and_revoke():
    h = store()
    result = h.admin("device.add", {"device_id": "kds-fry", "kind": "kds", "stations": ["fry"]})
    assert result == {"device_id": "kds-fry", "kind": "kds", "stations": ["fry"], "active": True}
    h.fail("device.add", {"device_id": "kds-fry", "kind": "kds"}, code="conflict", device="admin", kind="admin")
    h.login("srv", device="tab-lost")
    h.admin("device.revoke", {"device_id": "kds-fry"})
    h.admin("device.add", {"device_id": "tab-lost", "kind": "tablet"})
    h.admin("device.revoke", {"device_id": "tab-lost"})
    assert all(s.device != "tab-lost" for s in h.state.sessions.values())
    error = h.fail("staff.login", {"employee_id": "srv", "pin": "2222"}, code="unauthorized", device="tab-lost")
    assert "revoked" in error.message
    h.fail("device.revoke", {"device_id": "nope"}, code="not_found", device="admin", kind="admin")


def test_the_operator_acts_on_behalf_of_a_manager_who_is_then_the_actor():
    h = store()
    h.admin("staff.add", {"employee_id": "new", "name": "Nia", "role": "server", "pin": "4444", "actor": "mgr"})
    h.admin("staff.set_role", {"employee_id": "new", "role": "cashier", "actor": "mgr"})
    h.admin("device.add", {"device_id": "tab-new", "kind": "tablet", "actor": "mgr"})
    assert [(e.type, e.actor) for e in h.ledger[-3:]] == [
        ("staff.added", "mgr"),
        ("staff.role_changed", "mgr"),
        ("device.paired", "mgr"),
    ]
    assert "actor" not in h.last("staff.added").data
    h.admin("staff.deactivate", {"employee_id": "new"})
    assert h.last("staff.deactivated").actor == "admin"  # without one, the operator acts
    refused = h.fail(
        "staff.reset_pin",
        {"employee_id": "srv", "pin": "1234", "actor": "csh"},
        code="forbidden",
        device="admin",
        kind="admin",
    )
    assert "only a manager" in refused.message
    h.fail("device.revoke", {"device_id": "tab-new", "actor": "new"}, code="unauthorized", device="admin", kind="admin")
    h.fail(
        "staff.add", {"employee_id": "x", "name": "X", "role": "server", "actor": "mgr"}, code="forbidden", as_="mgr"
    )


def test_a_shared_device_locks_one_employee_never_the_whole_device():
    h = store(shift=False, logins=())
    h.settings = h.settings.model_copy(update={"shared_devices": ("web",)})
    for employee_id in ["csh", "srv", "srv2", "kit", "csh"]:
        h.fail("staff.login", {"employee_id": employee_id, "pin": "9999"}, code="unauthorized", device="web")
    h.ok("staff.login", {"employee_id": "mgr", "pin": "1111"}, device="web")  # the page is not locked as a whole
    for _ in range(3):
        h.fail("staff.login", {"employee_id": "csh", "pin": "9999"}, code="unauthorized", device="web")
    h.fail("staff.login", {"employee_id": "csh", "pin": "3333"}, code="rate_limited", device="web")  # the employee is
    first = h.login("mgr", device="web")
    second = h.login("mgr", device="web")  # a second browser: both sessions live on
    assert {token_hash(first), token_hash(second)} <= set(h.state.sessions)
