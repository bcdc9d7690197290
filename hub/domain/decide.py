"""decide: admit a command (device, session, role, approval, shift), then run its handler.

`decide(state, cmd, ctx)` never mutates `state` and never raises for a rule violation: the error
comes back in `Decision.error`. A refused command has no events, except a wrong PIN, which is
ledgered (`staff.login_failed`) so the rate limit survives restarts.

Who may do what (roles kitchen < server < cashier < manager; an `approve` from an employee with the
needed role substitutes, and is recorded as `approved_by`):

    staff.login, device.result             anyone, no token
    staff.logout                            the token's owner
    table.*, ticket.open/add_items/fire/    server+            (shift gated)
      split/void_item/print
    ticket.void_item of a fired line        manager or approval
    ticket.priority                         server+ or a KDS device
    ticket.discount                         manager or approval
    ticket.pay, drawer.pay_in/pay_out/drop  cashier+           (shift gated)
    ticket.refund/void/reopen, drawer.open  manager or approval (shift gated)
    shift.open/close/report                 manager
    kds.start/bump/recall                   a KDS device (acting as itself) or a manager
    menu.availability                       manager or a KDS device
    menu.publish                            manager or the relay device
    staff.add/..., device.add/revoke,       the operator only (device kind `admin`, manager rights);
      tables.configure, menu.load,          with an `actor` in the body (the manager page), that
      clock.tick, print/printer/drawer      active manager is the actor instead of `admin`
      outcomes, ota.rollout_*

A missing approval is `approval_required` where the contract says "approval" (the tablet should
ask a manager) and `forbidden` where a role is simply too low.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hub.contract.commands import COMMANDS
from hub.contract.errors import ErrorCode
from hub.domain import catalog, clock, firmware, kds, payments, printing, shifts, split, staff, tables, tickets
from hub.domain.admin import ADMIN_COMMANDS
from hub.domain.errors import DomainError, Forbidden, InvalidCommand, Unauthorized
from hub.domain.messages import CommandIn, Context, Decision
from hub.domain.work import ADMIN_KIND, Work

if TYPE_CHECKING:
    from pydantic import BaseModel

    from hub.domain.model import StoreState

Handler = Callable[[Work], dict[str, Any] | None]
Auth = Literal["staff", "none", "admin"]


@dataclass(frozen=True, slots=True)
class Rule:
    """How a command is admitted and which handler decides it."""

    handler: Handler
    what: str
    role: str | None = "server"
    auth: Auth = "staff"
    gated: bool = False
    approvable: bool = False
    devices: frozenset[str] = frozenset()


def _no_result(_: Work) -> None:
    return None


_KDS = frozenset({"kds"})

RULES: dict[str, Rule] = {
    "staff.login": Rule(staff.login, "Logging in", role=None, auth="none"),
    "staff.logout": Rule(staff.logout, "Logging out", role=None),
    "shift.open": Rule(shifts.open_shift, "Opening a shift", role="manager"),
    "shift.close": Rule(shifts.close_shift, "Closing the shift", role="manager"),
    "shift.report": Rule(shifts.report, "A shift report", role="manager"),
    "drawer.pay_in": Rule(shifts.cash_move, "A pay-in", role="cashier", gated=True),
    "drawer.pay_out": Rule(shifts.cash_move, "A pay-out", role="cashier", gated=True),
    "drawer.drop": Rule(shifts.cash_move, "A cash drop", role="cashier", gated=True),
    "drawer.open": Rule(shifts.open_drawer, "Opening the drawer", role="manager", gated=True, approvable=True),
    "table.seat": Rule(tables.seat, "Seating a table", gated=True),
    "table.transfer": Rule(tables.transfer, "Moving a table", gated=True),
    "table.merge": Rule(tables.merge, "Merging tables", gated=True),
    "table.clear": Rule(tables.clear, "Clearing a table", gated=True),
    "ticket.open": Rule(tickets.open_ticket, "Opening a ticket", gated=True),
    "ticket.add_items": Rule(tickets.add_items, "Adding items", gated=True),
    "ticket.fire": Rule(tickets.fire, "Firing", gated=True),
    "ticket.priority": Rule(tickets.priority, "Rushing a ticket", gated=True, devices=_KDS),
    "ticket.split": Rule(split.split, "Splitting a ticket", gated=True),
    "ticket.void_item": Rule(tickets.void_item, "Voiding an item", gated=True),
    "ticket.discount": Rule(tickets.discount, "A discount", gated=True),
    "ticket.pay": Rule(payments.pay, "Taking payment", role="cashier", gated=True),
    "ticket.refund": Rule(payments.refund, "A refund", role="manager", gated=True, approvable=True),
    "ticket.void": Rule(tickets.void, "Voiding a ticket", role="manager", gated=True, approvable=True),
    "ticket.reopen": Rule(tickets.reopen, "Reopening a ticket", role="manager", gated=True, approvable=True),
    "ticket.print": Rule(tickets.print_ticket, "Printing", gated=True),
    "kds.start": Rule(kds.start, "Starting lines", role="manager", devices=_KDS),
    "kds.bump": Rule(kds.bump, "Bumping lines", role="manager", devices=_KDS),
    "kds.recall": Rule(kds.recall, "Recalling lines", role="manager", devices=_KDS),
    "menu.availability": Rule(catalog.availability, "Changing availability", role="manager", devices=_KDS),
    "menu.publish": Rule(catalog.publish, "Publishing a menu", role="manager", devices=frozenset({"relay"})),
    "device.result": Rule(_no_result, "A device result", role=None, auth="none"),
    "staff.add": Rule(staff.add, "Adding staff", auth="admin"),
    "staff.deactivate": Rule(staff.deactivate, "Deactivating staff", auth="admin"),
    "staff.set_role": Rule(staff.set_role, "Changing a role", auth="admin"),
    "staff.reset_pin": Rule(staff.reset_pin, "Resetting a PIN", auth="admin"),
    "device.add": Rule(staff.device_add, "Adding a device", auth="admin"),
    "device.revoke": Rule(staff.device_revoke, "Revoking a device", auth="admin"),
    "tables.configure": Rule(tables.configure, "Configuring tables", auth="admin"),
    "menu.load": Rule(catalog.publish, "Loading a menu", auth="admin"),
    "clock.tick": Rule(clock.tick, "A clock tick", auth="admin"),
    "store.configure": Rule(clock.configure_store, "Configuring the store", auth="admin"),
    "printers.configure": Rule(printing.configure, "Configuring printers", auth="admin"),
    "printers.route": Rule(printing.route, "Routing printers", auth="admin"),
    "print.printed": Rule(printing.printed, "A printed job", auth="admin"),
    "print.reroute": Rule(printing.reroute, "Rerouting a job", auth="admin"),
    "print.test": Rule(printing.test_page, "A test page", auth="admin"),
    "print.failed": Rule(printing.failed, "A failed job", auth="admin"),
    "printer.status": Rule(printing.printer_status, "A printer status", auth="admin"),
    "drawer.kicked": Rule(printing.drawer_kicked, "A drawer kick", auth="admin"),
    "ota.rollout_started": Rule(firmware.rollout_started, "A firmware rollout", auth="admin"),
    "ota.rollout_stopped": Rule(firmware.rollout_stopped, "A stopped firmware rollout", auth="admin"),
    "ota.rollout_finished": Rule(firmware.rollout_finished, "A finished firmware rollout", auth="admin"),
}
"""Every command `decide` handles (`sync` is the engine's)."""

BODIES: dict[str, type[BaseModel]] = {t: m for t, m in (COMMANDS | ADMIN_COMMANDS).items() if t in RULES}
"""The body model of each command `decide` handles."""


def decide(state: StoreState, cmd: CommandIn, ctx: Context) -> Decision:
    """Decide a command against the state: events to write and the result, or the error."""
    rule = RULES.get(cmd.type)
    if rule is None:
        return Decision(error=DomainError(ErrorCode.UNKNOWN_COMMAND, f"Unknown command {cmd.type!r}"))
    model = BODIES[cmd.type]
    if not isinstance(cmd.body, model):
        return Decision(error=InvalidCommand(f"{cmd.type} needs a {model.__name__} body"))
    work = Work(state, cmd, ctx)
    try:
        _admit(work, rule)
        result = rule.handler(work)
        printing.follow_up(work, result)  # print jobs caused by the events, written with them (outbox)
    except DomainError as error:
        if not work.keep_events_on_error:
            return Decision(error=error)
        return Decision(events=work.events, error=error, state=work.state, touched=work.touched, kds=work.kds)
    return Decision(events=work.events, result=result, state=work.state, touched=work.touched, kds=work.kds)


def _admit(w: Work, rule: Rule) -> None:
    """Check the device, the session, the role and the shift before the handler runs."""
    kind = w.cmd.device_kind
    device = w.state.devices.get(w.cmd.device_id)
    if kind != ADMIN_KIND and device is not None and not device.active:
        raise Unauthorized("This device was revoked; pair it again")
    if rule.auth == "admin":
        if kind != ADMIN_KIND:
            raise Forbidden(f"{rule.what} is for the store operator only")
        w.act_as_device()
        return
    if rule.auth == "none":
        return
    if kind == ADMIN_KIND or kind in rule.devices:
        w.act_as_device()
    else:
        w.authenticate()
    if rule.role is not None and not (w.as_device and kind in rule.devices):
        w.require(rule.role, rule.what, approvable=rule.approvable)
    if rule.gated:
        w.open_shift()
