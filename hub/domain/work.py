"""A command being decided: who acts, with what role and approval, and the would-be state.

Handlers read `w.state` (the state after the events emitted so far: a copy-on-write overlay of the
real state) and call `w.emit(...)`, which records the event and applies it to the overlay with
`evolve`. The real state is never touched; results are built from the overlay, so a reply shows
exactly what the state will be once the engine has applied the same events.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from hub.contract.types import format_time
from hub.domain.auth import locked_until, prune_before
from hub.domain.errors import ApprovalRequired, Forbidden, NotFound, RateLimited, ShiftClosed, Unauthorized
from hub.domain.evolve import evolve
from hub.domain.kds import kds_messages
from hub.domain.messages import ApproverIn, CommandIn, Context, EntityRef, KdsOut, LedgerEvent, NewEvent
from hub.domain.model import ROLE_RANK, Employee, Shift, StoreState, Ticket
from hub.domain.overlay import overlay_of

ADMIN_KIND = "admin"

B = TypeVar("B", bound=BaseModel)


class Work:
    """One command in progress (see the module docstring)."""

    def __init__(self, base: StoreState, cmd: CommandIn, ctx: Context) -> None:
        self.base = base
        self.cmd = cmd
        self.ctx = ctx
        self.state = overlay_of(base)
        self.events: list[NewEvent] = []
        self.touched: list[set[EntityRef]] = []
        self.kds: list[list[KdsOut]] = []
        self.keep_events_on_error = False
        self.actor: str | None = None
        self.employee: Employee | None = None
        self.role: str | None = None
        self.as_device = False
        self.approved_by: str | None = None

    def body(self, model: type[B]) -> B:
        """The command's body as `model` (decide has checked its type before any handler runs)."""
        body = self.cmd.body
        if not isinstance(body, model):
            raise TypeError(f"{self.cmd.type} needs a {model.__name__} body")
        return body

    # -- emitting -----------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The command's clock reading."""
        return self.ctx.now

    @property
    def stamp(self) -> str:
        """`now` as the contract spells times."""
        return format_time(self.ctx.now)

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Record an event and apply it to the would-be state; under an approval it names the approver."""
        if self.approved_by is not None and "approved_by" not in data:
            data["approved_by"] = self.approved_by
        self.events.append(NewEvent(event_type, data, self.actor))
        # evolve and the KDS view never read `seq` (the engine numbers events only when it writes them)
        event = LedgerEvent(
            seq=0,
            at=self.ctx.now,
            type=event_type,
            actor=self.actor,
            device=self.cmd.device_id,
            cmd=self.cmd.cmd_id,
            data=data,
        )
        self.touched.append(evolve(self.state, event))
        self.kds.append(kds_messages(self.state, event))

    # -- who acts -----------------------------------------------------------------------------
    def act_as_device(self) -> None:
        """The device acts as itself (a KDS bumping, the relay publishing a menu, the admin socket).

        An operator command run on behalf of a manager (`actor` in its body: the manager page) is
        ledgered with that manager as the actor; they must be an active manager right now.
        """
        self.actor = self.cmd.device_id
        self.as_device = True
        self.role = "manager" if self.cmd.device_kind == ADMIN_KIND else None
        on_behalf = getattr(self.cmd.body, "actor", None)
        if self.cmd.device_kind != ADMIN_KIND or on_behalf is None:
            return
        employee = self.state.staff.get(on_behalf)
        if employee is None or not employee.active:
            raise Unauthorized(f"Employee {on_behalf} is not an active employee")
        if employee.role != "manager":
            raise Forbidden(f"{employee.name} is a {employee.role}: only a manager may do this", needs="manager")
        self.actor = employee.employee_id
        self.employee = employee

    def authenticate(self) -> None:
        """Resolve the staff session of the command's token, or raise Unauthorized."""
        key = self.cmd.token_hash
        if key is None:
            raise Unauthorized("Log in first: this needs a staff session")
        employee = self.session_employee(key)
        if employee is None:
            raise Unauthorized("Your session has ended or expired; log in again")
        self.actor = employee.employee_id
        self.employee = employee
        self.role = employee.role

    @property
    def employee_id(self) -> str | None:
        """The acting employee's id (None when a device acts as itself)."""
        return self.employee.employee_id if self.employee is not None else None

    def session_employee(self, key: str) -> Employee | None:
        """The active employee of a live session, or None."""
        session = self.state.sessions.get(key)
        if session is None or self.ctx.now >= session.expires_at:
            return None
        employee = self.state.staff.get(session.employee_id)
        if employee is None or not employee.active:
            return None
        return employee

    def require(self, role: str, action: str, approvable: bool = True) -> str | None:
        """Check that the actor has `role`, or that a valid approval from someone who has it came along.

        Returns the approver's employee id when an approval was used. A missing approval is
        `approval_required` when `approvable` (the tablet should ask for one), else `forbidden`.
        """
        if self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]:
            return None
        if self.as_device:
            raise Forbidden(f"{action} needs a {role}; this device cannot do it by itself", needs=role)
        approve = self.cmd.approve
        if approve is None:
            if approvable:
                raise ApprovalRequired(f"{action} needs a {role}'s approval", needs=role)
            raise Forbidden(f"{action} needs a {role}; you are signed in as a {self.role}", needs=role, role=self.role)
        approver = self._approver(approve, role, action)
        self.approved_by = approver.employee_id
        return approver.employee_id

    def _approver(self, approve: ApproverIn, role: str, action: str) -> Employee:
        if approve.token_hash is not None:
            approver = self.session_employee(approve.token_hash)
            if approver is None:
                raise Unauthorized("The approving session has ended or expired")
        elif approve.employee_id is not None and approve.pin is not None:
            approver = self.check_pin(approve.employee_id, approve.pin, reason="approval")
        else:
            raise Unauthorized("An approval needs an employee id and PIN, or a session token")
        if ROLE_RANK[approver.role] < ROLE_RANK[role]:
            raise ApprovalRequired(
                f"{approver.name} is a {approver.role}; {action} needs a {role}'s approval",
                needs=role,
                approver=approver.employee_id,
            )
        return approver

    def check_pin(self, employee_id: str, pin: str, reason: str) -> Employee:
        """Verify a PIN under the rate limit; a wrong one is ledgered as `staff.login_failed`."""
        self.refuse_if_locked(employee_id)
        employee = self.state.staff.get(employee_id)
        if employee is not None and employee.active and self.ctx.verify_pin(employee_id, pin):
            return employee
        self.emit(
            "staff.login_failed",
            {
                "employee_id": employee_id,
                "device": self.cmd.device_id,
                "reason": reason,
                "prune_before": format_time(prune_before(self.ctx.now, self.ctx.settings)),
            },
        )
        self.keep_events_on_error = True
        if self.lockout_ends(employee_id) is not None:
            minutes = math.ceil(self.ctx.settings.login_lockout_s / 60)
            raise Unauthorized(f"Wrong employee or PIN; PIN entry is now locked for {minutes} min")
        what = "approval PIN" if reason == "approval" else "employee or PIN"
        raise Unauthorized(f"Wrong {what}")

    def lockout_ends(self, employee_id: str) -> datetime | None:
        """When the wrong-PIN lockout of this employee or this device ends, if one is running.

        A shared device (`StoreSettings.shared_devices`) is not locked as a whole: its adapter
        limits each of its clients, so one person's typos never lock everyone else out.
        """
        keys = [f"emp:{employee_id}"]
        if self.cmd.device_id not in self.ctx.settings.shared_devices:
            keys.append(f"dev:{self.cmd.device_id}")
        ends = [
            until
            for key in keys
            if (until := locked_until(self.state.login_failures.get(key, []), self.ctx.settings)) is not None
            and until > self.ctx.now
        ]
        return max(ends) if ends else None

    def refuse_if_locked(self, employee_id: str) -> None:
        """Raise RateLimited while a lockout runs (the PIN is not even checked, nothing is ledgered)."""
        until = self.lockout_ends(employee_id)
        if until is not None:
            wait = max(1, math.ceil((until - self.ctx.now) / timedelta(seconds=1)))
            raise RateLimited(
                f"Too many wrong PINs; try again in {math.ceil(wait / 60)} min",
                retry_after_s=wait,
            )

    # -- lookups ------------------------------------------------------------------------------
    def open_shift(self) -> Shift:
        """The open shift, or ShiftClosed."""
        shift = self.state.current_shift
        if shift is None:
            raise ShiftClosed("No shift is open; a manager must open one first")
        return shift

    def ticket(self, ticket_id: str) -> Ticket:
        """The ticket, or NotFound."""
        ticket = self.state.tickets.get(ticket_id)
        if ticket is None:
            raise NotFound(f"Ticket {ticket_id} does not exist", ticket_id=ticket_id)
        return ticket

    def approval(self) -> dict[str, Any]:
        """`{"approved_by": id}` when an approval was used, for event data."""
        return {"approved_by": self.approved_by} if self.approved_by else {}

    def employee_name(self, employee_id: str | None) -> str | None:
        """An employee's name for people to read (the id when unknown)."""
        if employee_id is None:
            return None
        employee = self.state.staff.get(employee_id)
        return employee.name if employee else employee_id
