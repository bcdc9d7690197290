"""Decoding commands and encoding replies, statuses and streams exactly as CONTRACT.md shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.contract import COMMANDS, ContractViolation, ErrorCode, Reply, decode_command, encode
from hub.contract.commands import MenuPublish, StaffLogout, Sync, TableTransfer, TicketAddItems, TicketPay
from hub.contract.envelopes import (
    MAX_PAYLOAD_BYTES,
    ApprovePin,
    ApproveToken,
    DeviceJob,
    DeviceStatus,
    EventEnvelope,
    HubStatus,
    decode,
)
from hub.contract.kds import KdsMessage
from hub.contract.state import AvailabilityEntry, AvailabilityState, ShiftState, StaffEntry, StaffList


def command(cmd_type: Any = "sync", body: Any = None, **envelope: Any) -> bytes:
    raw = {"v": 1, "id": "c-01JD", "type": cmd_type} | envelope
    if body is not None:
        raw["body"] = body
    return json.dumps(raw).encode()


def refused(payload: bytes, **kwargs: Any) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        decode_command(payload, **kwargs)
    return caught.value


MENU = {
    "version": "2026-11-22.1",
    "currency": "USD",
    "items": [{"id": "burger", "name": "Burger", "price": 1250, "tax_class": "food", "stations": ["grill"]}],
    "tax_classes": [{"id": "food", "rate_bp": 875}],
}


# -- good commands -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cmd_type", "body", "model"),
    [
        ("sync", {"since_seq": 10}, Sync),
        ("staff.logout", None, StaffLogout),
        ("table.transfer", {"from": "t1", "to": "t2"}, TableTransfer),
        (
            "ticket.add_items",
            {
                "ticket_id": "tk-1",
                "items": [
                    {"line_id": "l-1", "menu_item_id": "burger", "qty": 2, "modifiers": ["no-onion"]},
                    {"line_id": "l-2", "menu_item_id": "fries", "course": 2, "allergy": "nuts"},
                ],
            },
            TicketAddItems,
        ),
        (
            "ticket.pay",
            {
                "ticket_id": "tk-1",
                "tenders": [
                    {"kind": "cash", "amount": 1000, "tendered": 2000},
                    {"kind": "external", "amount": 360, "tip": 100, "reference": "T-42"},
                ],
            },
            TicketPay,
        ),
        ("menu.publish", MENU, MenuPublish),
    ],
)
def test_good_commands_decode_into_their_body_model(cmd_type, body, model):
    envelope, decoded = decode_command(command(cmd_type, body))

    assert envelope.id == "c-01JD"
    assert envelope.type == cmd_type
    assert type(decoded) is model
    assert decoded == model.model_validate(body or {})


def test_envelope_keeps_auth_at_and_approval_and_ignores_unknown_keys():
    payload = command(
        "drawer.open",
        {"reason": "change for the till"},
        at="2026-11-22T12:00:00.123Z",
        auth="tok-abc",
        approve={"employee_id": "emp-1", "pin": "4321"},
        trace="ignored",
    )

    envelope, body = decode_command(payload)

    assert envelope.at == "2026-11-22T12:00:00.123Z"
    assert envelope.auth == "tok-abc"
    assert envelope.approve == ApprovePin(employee_id="emp-1", pin="4321")
    assert body.model_dump() == {"reason": "change for the till"}
    assert decode_command(command(approve={"token": "tok-mgr"}))[0].approve == ApproveToken(token="tok-mgr")


def test_table_transfer_reads_from_by_its_wire_name():
    _, body = decode_command(command("table.transfer", {"from": "t1", "to": "t2"}))

    assert isinstance(body, TableTransfer)
    assert body.from_ == "t1"


# -- refused commands --------------------------------------------------------------------------
def test_too_large_recovers_a_leading_id():
    payload = command("sync", {"pad": "x" * MAX_PAYLOAD_BYTES})

    violation = refused(payload)

    assert violation.code is ErrorCode.TOO_LARGE
    assert violation.cmd_id == "c-01JD"
    assert str(MAX_PAYLOAD_BYTES) in violation.message


def test_too_large_without_a_leading_id_has_no_id():
    payload = json.dumps({"body": {"id": "inner"}, "id": "c-1", "v": 1}).encode()

    violation = refused(payload, max_bytes=16)

    assert violation.code is ErrorCode.TOO_LARGE
    assert violation.cmd_id is None


def test_payload_at_the_limit_is_decoded():
    payload = command()

    envelope, _ = decode_command(payload, max_bytes=len(payload))

    assert envelope.type == "sync"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"v":1,"id":"c-1",', "not JSON"),
        (b'{"v":1,"id":"c-1","type":"sync","body":{"since_seq":NaN}}', "NaN is not JSON"),
        (b"[" * 50_000, "not JSON"),
        (b'[{"v":1,"id":"c-1","type":"sync"}]', "JSON object"),
        (b'"sync"', "JSON object"),
        (b'{"v":1,"type":"sync"}', "id: Field required"),
        (b'{"v":1,"id":"has space","type":"sync"}', "id: String should match pattern"),
        (b'{"v":1,"id":7,"type":"sync"}', "id: Input should be a valid string"),
    ],
)
def test_unreadable_payloads_are_refused_without_an_id(payload, fragment):
    violation = refused(payload)

    assert violation.code is ErrorCode.INVALID_PAYLOAD
    assert violation.cmd_id is None
    assert fragment in violation.message


@pytest.mark.parametrize(
    ("envelope", "fragment"),
    [
        ({"type": 5}, "type: Input should be a valid string"),
        ({"type": ""}, "type: String should have at least 1 character"),
        ({"v": 2}, "v: Input should be 1"),
        ({"v": True}, "v must be the integer 1"),
        ({"body": []}, "body: Input should be a valid dictionary"),
        ({"approve": {"pin": "12"}}, "approve.ApprovePin.employee_id: Field required"),
    ],
)
def test_a_bad_envelope_with_a_valid_id_keeps_the_id(envelope, fragment):
    raw = {"v": 1, "id": "c-7", "type": "sync"} | envelope

    violation = refused(json.dumps(raw).encode())

    assert violation.code is ErrorCode.INVALID_PAYLOAD
    assert violation.cmd_id == "c-7"
    assert fragment in violation.message


def test_unknown_command_names_the_type():
    violation = refused(command("ticket.teleport", {}))

    assert violation.code is ErrorCode.UNKNOWN_COMMAND
    assert violation.cmd_id == "c-01JD"
    assert "'ticket.teleport'" in violation.message


def test_strict_body_types_are_refused_with_a_readable_message():
    body = {
        "ticket_id": "tk-1",
        "items": [
            {"line_id": "l-1", "menu_item_id": "burger", "qty": 0},
            {"line_id": "l-2", "menu_item_id": "burger", "qty": "2"},
        ],
    }

    violation = refused(command("ticket.add_items", body))

    assert violation.code is ErrorCode.INVALID_PAYLOAD
    assert violation.cmd_id == "c-01JD"
    assert violation.message == (
        "body.items.0.qty: Input should be greater than or equal to 1; "
        "body.items.1.qty: Input should be a valid integer"
    )
    assert violation.details == {
        "errors": [
            {"loc": "body.items.0.qty", "msg": "Input should be greater than or equal to 1"},
            {"loc": "body.items.1.qty", "msg": "Input should be a valid integer"},
        ]
    }


@pytest.mark.parametrize(
    ("cmd_type", "body", "message"),
    [
        ("drawer.pay_in", {"amount": 1.5, "reason": "float"}, "body.amount: Input should be a valid integer"),
        (
            "drawer.pay_in",
            {"amount": True, "reason": "float"},
            "body.amount: Input should be a valid integer",
        ),
        (
            "table.seat",
            {"table_id": "t1", "guests": 2, "price": 100},
            "body.price: Extra inputs are not permitted",
        ),
        ("ticket.split", {"ticket_id": "tk-1"}, "body: Value error, give exactly one of 'parts' or 'even'"),
        ("staff.login", {"employee_id": "emp-1"}, "body.pin: Field required"),
    ],
)
def test_invalid_bodies_name_the_field(cmd_type, body, message):
    violation = refused(command(cmd_type, body))

    assert violation.code is ErrorCode.INVALID_PAYLOAD
    assert violation.message == message


def test_the_message_is_capped_and_never_echoes_input():
    items = [{"line_id": f"l-{i}", "menu_item_id": "burger", "qty": "9999"} for i in range(100)]

    violation = refused(command("ticket.add_items", {"ticket_id": "tk-1", "items": items}))

    assert len(violation.message) <= 500
    assert violation.message.endswith("…")
    assert "9999" not in violation.message
    assert 0 < len(violation.details["errors"]) <= 20


def test_a_violation_becomes_its_error_reply():
    violation = refused(command("ticket.teleport"))

    reply = json.loads(encode(violation.reply(seq=41)))

    assert reply == {
        "v": 1,
        "id": "c-01JD",
        "ok": False,
        "seq": 41,
        "error": {"code": "unknown_command", "message": violation.message, "details": {}},
    }


# -- property: the decoder refuses, it never crashes -------------------------------------------
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ENVELOPE_KEYS = st.sampled_from(["v", "id", "type", "at", "auth", "approve", "body"]) | st.text(max_size=8)


def outcome(payload: bytes) -> ContractViolation | None:
    try:
        decode_command(payload)
    except ContractViolation as violation:
        return violation
    return None


@given(st.binary(max_size=300))
def test_random_bytes_are_decoded_or_refused(payload):
    violation = outcome(payload)

    assert violation is None or violation.message


@given(st.dictionaries(ENVELOPE_KEYS, JSON_VALUES, max_size=8))
def test_random_json_objects_are_decoded_or_refused(raw):
    violation = outcome(json.dumps(raw).encode())

    assert violation is None or violation.code in {ErrorCode.INVALID_PAYLOAD, ErrorCode.UNKNOWN_COMMAND}


@given(st.sampled_from(sorted(COMMANDS)), st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_random_bodies_of_real_commands_are_decoded_or_refused_with_their_id(cmd_type, body):
    violation = outcome(command(cmd_type, body))

    assert violation is None or (violation.code, violation.cmd_id) == (ErrorCode.INVALID_PAYLOAD, "c-01JD")


# -- replies -----------------------------------------------------------------------------------
def test_success_reply_is_shaped_as_the_contract_example():
    reply = Reply.success("c-01JD", 1234, {"ticket_id": "tk-1", "number": 17})

    assert encode(reply) == (b'{"v":1,"id":"c-01JD","ok":true,"seq":1234,"result":{"ticket_id":"tk-1","number":17}}')


def test_failure_reply_is_shaped_as_the_contract_example():
    reply = Reply.failure("c-01JD", ErrorCode.SHIFT_CLOSED, "No shift is open")

    assert encode(reply) == (
        b'{"v":1,"id":"c-01JD","ok":false,"error":{"code":"shift_closed","message":"No shift is open","details":{}}}'
    )


def test_a_reply_without_a_readable_id_carries_null():
    reply = Reply.failure(None, ErrorCode.INVALID_PAYLOAD, "payload is not JSON")

    assert json.loads(encode(reply))["id"] is None


def test_a_success_without_result_still_carries_result():
    assert encode(Reply.success("c-1", 7, None)) == b'{"v":1,"id":"c-1","ok":true,"seq":7,"result":null}'


def test_replies_decode_back_and_refuse_a_mixed_shape():
    reply = Reply.failure("c-1", ErrorCode.CONFLICT, "ticket is closed", {"ticket_id": "tk-1"})

    assert decode(encode(reply), Reply) == reply
    with pytest.raises(ContractViolation) as caught:
        decode(b'{"v":1,"id":"c-1","ok":true,"error":{"code":"conflict","message":"m"}}', Reply)
    assert caught.value.code is ErrorCode.INVALID_PAYLOAD


# -- statuses, events, jobs, streams, state ----------------------------------------------------
def test_hub_offline_lwt_is_just_the_state():
    assert json.loads(encode(HubStatus(state="offline"))) == {"state": "offline"}


def test_hub_birth_carries_version_start_epoch_and_seq():
    birth = HubStatus(state="online", version="0.1.0", started_at="2026-11-22T12:00:00.000Z", epoch=1, seq=0)

    assert json.loads(encode(birth)) == {
        "state": "online",
        "version": "0.1.0",
        "started_at": "2026-11-22T12:00:00.000Z",
        "epoch": 1,
        "seq": 0,
    }


def test_device_lwt_and_birth_shapes():
    assert encode(DeviceStatus(state="offline", sess=4)) == b'{"state":"offline","sess":4}'
    birth = DeviceStatus(state="online", sess=5, kind="kds", fw="1.2.0", caps=["bump"])
    assert json.loads(encode(birth)) == {
        "state": "online",
        "sess": 5,
        "kind": "kds",
        "fw": "1.2.0",
        "caps": ["bump"],
    }


def test_device_status_keeps_fields_a_device_adds():
    payload = b'{"state":"online","sess":1,"kind":"relay","cursor":812,"backlog":3,"lag":1.5,"last_error":null}'

    status = decode(payload, DeviceStatus)

    assert status.kind == "relay"
    assert status.model_extra == {"cursor": 812, "backlog": 3, "lag": 1.5, "last_error": None}
    assert json.loads(encode(status))["cursor"] == 812


def test_device_status_refuses_a_negative_or_textual_sess():
    for payload in (b'{"state":"online","sess":-1}', b'{"state":"online","sess":"1"}'):
        with pytest.raises(ContractViolation):
            decode(payload, DeviceStatus)


def test_event_example_round_trips():
    wire = (
        b'{"v":1,"seq":1234,"type":"ticket.items_added","at":"2026-11-22T12:00:00.123Z",'
        b'"by":{"device":"tab-03","actor":"emp-17"},"cmd":"c-01JD","data":{"ticket_id":"tk-1"}}'
    )

    event = decode(wire, EventEnvelope)

    assert event.by.actor == "emp-17"
    assert encode(event) == wire


def test_device_job_expires():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    job = DeviceJob(id="do-1", type="drawer.kick", expires_at="2026-11-22T12:00:10.000Z")

    assert json.loads(encode(job)) == {
        "v": 1,
        "id": "do-1",
        "type": "drawer.kick",
        "expires_at": "2026-11-22T12:00:10.000Z",
        "body": {},
    }
    assert not job.expired(now)
    assert job.expired(now + timedelta(seconds=10))


def test_kds_message_round_trips():
    message = {
        "v": 1,
        "seq": 88,
        "prev": 80,
        "type": "kds.ticket",
        "data": {
            "ticket_id": "tk-1",
            "number": 17,
            "table": "12",
            "name": None,
            "channel": "dine_in",
            "server": "Ana",
            "fired_at": "2026-11-22T12:00:00.123Z",
            "priority": False,
            "items": [
                {
                    "line_id": "l-1",
                    "name": "Burger",
                    "qty": 2,
                    "modifiers": ["No onion"],
                    "note": None,
                    "allergy": "nuts",
                    "seat": 1,
                    "course": 1,
                    "stations": ["grill"],
                    "state": "new",
                }
            ],
        },
    }

    decoded = decode(json.dumps(message).encode(), KdsMessage)

    assert json.loads(encode(decoded)) == message


def test_retained_state_shapes():
    assert encode(ShiftState(open=False)) == b'{"open":false}'
    availability = AvailabilityState(items={"burger": AvailabilityEntry(available=False)})
    assert encode(availability) == b'{"items":{"burger":{"available":false,"remaining":null}}}'
    staff = StaffList([StaffEntry(employee_id="emp-1", name="Ana", role="manager")])
    assert encode(staff) == b'[{"employee_id":"emp-1","name":"Ana","role":"manager"}]'
