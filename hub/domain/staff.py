"""Staff and devices: login and logout, the operator's staff and device admin."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hub.contract.commands import StaffLogin
from hub.contract.types import format_time
from hub.domain.admin import DeviceAdd, DeviceRevoke, StaffAdd, StaffDeactivate, StaffResetPin, StaffSetRole
from hub.domain.auth import token_hash
from hub.domain.errors import Conflict, NotFound, Unauthorized

if TYPE_CHECKING:
    from hub.domain.model import Employee
    from hub.domain.work import Work


def login(w: Work) -> dict[str, Any]:
    """`staff.login` → `{"token","role","name","expires_at","employee_id"}`.

    A wrong PIN (or unknown/inactive employee) is `unauthorized` AND a `staff.login_failed` event.
    While `login_max_failures` failures for the employee or the device lie within `login_window_s`,
    logins are refused with `rate_limited` for `login_lockout_s`, without checking the PIN and without
    an event (so a hammering device cannot flood the ledger). A login ends the employee's previous
    session on the same device (except on a shared device: `StoreSettings.shared_devices`) and drops
    expired sessions.
    """
    body = w.body(StaffLogin)
    employee = w.check_pin(body.employee_id, body.pin, reason="login")
    w.actor = employee.employee_id
    token = w.ctx.new_token()
    key = token_hash(token)
    expires = w.now + timedelta(seconds=w.ctx.settings.token_ttl_s)
    shared = w.cmd.device_id in w.ctx.settings.shared_devices  # each browser on the page keeps its own session
    ended = sorted(
        k
        for k, s in w.state.sessions.items()
        if w.now >= s.expires_at
        or (not shared and s.employee_id == employee.employee_id and s.device == w.cmd.device_id)
    )
    w.emit(
        "staff.logged_in",
        {
            "employee_id": employee.employee_id,
            "role": employee.role,
            "session": key,
            "device": w.cmd.device_id,
            "expires_at": format_time(expires),
            "ended_sessions": ended,
        },
    )
    return {
        "token": token,
        "employee_id": employee.employee_id,
        "role": employee.role,
        "name": employee.name,
        "expires_at": format_time(expires),
    }


def logout(w: Work) -> None:
    """`staff.logout`: ends the `auth` token's session → no result."""
    key = w.cmd.token_hash
    session = w.state.sessions.get(key) if key else None
    if key is None or session is None:
        raise Unauthorized("There is no session to end; you are already logged out")
    w.emit("staff.logged_out", {"employee_id": session.employee_id, "session": key})


def add(w: Work) -> dict[str, Any]:
    """`staff.add` (admin) → `{"employee_id","name","role","active"}`; an inactive employee comes back."""
    body = w.body(StaffAdd)
    current = w.state.staff.get(body.employee_id)
    if current is not None and current.active:
        raise Conflict(f"Employee {body.employee_id} already exists", employee_id=body.employee_id)
    w.emit("staff.added", {"employee_id": body.employee_id, "name": body.name, "role": body.role})
    return _employee(w, body.employee_id)


def deactivate(w: Work) -> dict[str, Any]:
    """`staff.deactivate` (admin) → the employee; every session of theirs ends at once."""
    body = w.body(StaffDeactivate)
    employee = _existing(w, body.employee_id)
    if not employee.active:
        raise Conflict(f"{employee.name} is already deactivated", employee_id=body.employee_id)
    sessions = sorted(k for k, s in w.state.sessions.items() if s.employee_id == body.employee_id)
    w.emit("staff.deactivated", {"employee_id": body.employee_id, "ended_sessions": sessions})
    return _employee(w, body.employee_id)


def set_role(w: Work) -> dict[str, Any]:
    """`staff.set_role` (admin) → the employee; live sessions take the new role at once."""
    body = w.body(StaffSetRole)
    employee = _existing(w, body.employee_id)
    if employee.role == body.role:
        return _employee(w, body.employee_id)
    sessions = sorted(k for k, s in w.state.sessions.items() if s.employee_id == body.employee_id)
    w.emit(
        "staff.role_changed",
        {"employee_id": body.employee_id, "role": body.role, "previous_role": employee.role, "sessions": sessions},
    )
    return _employee(w, body.employee_id)


def reset_pin(w: Work) -> dict[str, Any]:
    """`staff.reset_pin` (admin) → the employee; the engine stores the hash, the event only records it.

    It also lifts the employee's wrong-PIN lockout.
    """
    body = w.body(StaffResetPin)
    _existing(w, body.employee_id)
    w.emit("staff.pin_reset", {"employee_id": body.employee_id})
    return _employee(w, body.employee_id)


def device_add(w: Work) -> dict[str, Any]:
    """`device.add` (admin) → `{"device_id","kind","stations","active"}` and a `device.paired` event."""
    body = w.body(DeviceAdd)
    current = w.state.devices.get(body.device_id)
    if current is not None and current.active:
        raise Conflict(f"Device {body.device_id} is already registered", device_id=body.device_id)
    w.emit("device.paired", {"device_id": body.device_id, "kind": body.kind, "stations": list(body.stations)})
    return _device(w, body.device_id)


def device_revoke(w: Work) -> dict[str, Any]:
    """`device.revoke` (admin) → the device; staff sessions opened on it end."""
    body = w.body(DeviceRevoke)
    device = w.state.devices.get(body.device_id)
    if device is None:
        raise NotFound(f"Device {body.device_id} is not registered", device_id=body.device_id)
    if not device.active:
        raise Conflict(f"Device {body.device_id} is already revoked", device_id=body.device_id)
    sessions = sorted(k for k, s in w.state.sessions.items() if s.device == body.device_id)
    w.emit("device.revoked", {"device_id": body.device_id, "ended_sessions": sessions})
    return _device(w, body.device_id)


def _existing(w: Work, employee_id: str) -> Employee:
    employee = w.state.staff.get(employee_id)
    if employee is None:
        raise NotFound(f"Employee {employee_id} does not exist", employee_id=employee_id)
    return employee


def _employee(w: Work, employee_id: str) -> dict[str, Any]:
    e = w.state.staff[employee_id]
    return {"employee_id": e.employee_id, "name": e.name, "role": e.role, "active": e.active}


def _device(w: Work, device_id: str) -> dict[str, Any]:
    d = w.state.devices[device_id]
    return {"device_id": d.device_id, "kind": d.kind, "stations": list(d.stations), "active": d.active}
