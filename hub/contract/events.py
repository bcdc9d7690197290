"""Event types of contract v1 and their compatible extensions (CONTRACT.md, "Event types").

An event is published on `event/{kind}`, where `kind` is the type's prefix. Every event that
changes money carries the amounts it changed; every event done under an approval names the approver.
"""

from __future__ import annotations

from typing import Final

from hub.contract.topics import event_kind

_V1: Final = {  # listed in CONTRACT.md
    "shift.opened": "A shift was opened with its counted opening float.",
    "shift.cash_moved": "Cash moved in or out of the drawer (pay_in, pay_out, drop), with amount and reason.",
    "shift.closed": "A shift was closed; carries its Z totals by tender and tax rate and the grand totals.",
    "day.closed": "The business day was closed; carries the day's totals and the perpetual grand totals.",
    "drawer.opened": "The drawer was opened without a sale, with reason, actor and approver.",
    "staff.logged_in": "An employee logged in on a device and got a session token.",
    "staff.login_failed": "A login was refused (wrong PIN or unknown employee).",
    "table.seated": "A party was seated at a table.",
    "table.transferred": "A party and its open tickets moved from one table to another.",
    "table.merged": "Tables were merged into one; their open tickets followed.",
    "table.cleared": "The party left and the table is free.",
    "table.attention": "A table asked for attention.",
    "ticket.opened": "A ticket was opened with its number and channel.",
    "ticket.items_added": "Lines were added to a ticket, with the prices and totals computed by the hub.",
    "ticket.fired": "Held lines were sent to the kitchen, all of them or one course.",
    "ticket.item_voided": "A line was voided, with reason and, once fired, the approver.",
    "ticket.discounted": "A discount was applied to a ticket or one line, with the amount it took off.",
    "ticket.item_started": "A station started a line.",
    "ticket.item_ready": "A station bumped a line as ready.",
    "ticket.recalled": "A station recalled bumped lines.",
    "ticket.paid": "Tenders were recorded against a ticket, with amounts, tips and change.",
    "ticket.closed": "A ticket's balance reached zero and it was closed.",
    "ticket.reopened": "A closed ticket was reopened by a manager.",
    "ticket.voided": "A whole ticket was voided by a manager.",
    "ticket.refunded": "Lines of a paid ticket were refunded, with the amount computed by the hub.",
    "menu.availability_changed": "An item was 86'd, brought back, or its remaining count changed.",
    "menu.published": "A new menu version was applied.",
    "device.paired": "A device was registered or paired and may now connect.",
    "device.revoked": "A device's credentials were revoked.",
    "device.status": "A device came online or went offline.",
    "printer.status": "A printer's paper, cover or connection changed.",
    "print.queued": "A print job was queued for a printer.",
    "print.printed": "A print job was printed.",
    "print.failed": "A print job failed on its printer.",
    "print.rerouted": "A print job was sent to another printer.",
}

_EXTENSIONS: Final = {  # compatible extensions, listed in docs/contract.md
    "staff.added": "An employee was added.",
    "staff.deactivated": "An employee was deactivated and can no longer log in.",
    "staff.pin_reset": "An employee's PIN was reset (the PIN itself is never in the event).",
    "staff.role_changed": "An employee's role changed.",
    "staff.logged_out": "An employee's session token was ended.",
    "table.added": "A table was added to the floor plan.",
    "table.updated": "A table's details changed.",
    "table.removed": "A table was removed from the floor plan.",
    "ticket.priority_changed": "A ticket was marked or unmarked as a rush.",
    "ticket.split": "A ticket was split into new tickets, by lines or evenly.",
    "store.configured": "The store's configuration changed.",
    "printers.configured": "The printer table changed: printers, backups, station routes, receipt and expo printers.",
    "drawer.kicked": "A cash drawer was popped (or the kick expired unsent), with reason, employee and drawer.",
    "ota.rollout_started": "A signed firmware release is offered to a percent of a device kind (or the wave widened).",
    "ota.rollout_stopped": "A firmware rollout stopped for good (device failures or the operator), with each failure.",
    "ota.rollout_finished": "A firmware rollout's wave reached its percentage, with the devices updated.",
}

EVENT_DESCRIPTIONS: Final[dict[str, str]] = _V1 | _EXTENSIONS
"""Every event type, in contract order then extensions, with a one-line description."""

EVENT_TYPES: Final[tuple[str, ...]] = tuple(EVENT_DESCRIPTIONS)
"""Every event type the hub publishes."""

EXTENSION_EVENT_TYPES: Final[frozenset[str]] = frozenset(_EXTENSIONS)
"""Event types this implementation adds to the contract's list, compatibly."""

EVENT_KINDS: Final[tuple[str, ...]] = tuple(sorted({event_kind(t) for t in EVENT_TYPES}))
"""Every `{kind}` of `event/{kind}`."""
