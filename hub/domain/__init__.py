"""The store's rules, pure: no I/O, no asyncio, no clock or randomness of its own.

    decide(state, cmd, ctx) -> Decision     events to write and the reply's result, or the error
    evolve(state, event) -> set[EntityRef]  apply one ledger event; the entities it touched
    views                                   retained `state/…` payloads, the sync snapshot, KDS routing

The engine calls `decide`, assigns seq to the events, writes them, then `evolve`s its state with them.
"""

from hub.domain.admin import ADMIN_COMMANDS
from hub.domain.auth import hash_pin, token_hash, verify_pin_hash
from hub.domain.decide import decide
from hub.domain.errors import (
    ApprovalRequired,
    Conflict,
    DomainError,
    Forbidden,
    InvalidCommand,
    ItemUnavailable,
    NotFound,
    PaymentDeclined,
    RateLimited,
    ShiftClosed,
    Unauthorized,
)
from hub.domain.evolve import evolve
from hub.domain.kds import kds_messages
from hub.domain.messages import ApproverIn, CommandIn, Context, Decision, EntityRef, LedgerEvent, NewEvent
from hub.domain.model import StoreState
from hub.domain.overlay import commit_overlay
from hub.domain.settings import StoreSettings
from hub.domain.views import availability_board, menu_payload, shift_summary, snapshot, staff_list

__all__ = [
    "ADMIN_COMMANDS",
    "ApprovalRequired",
    "ApproverIn",
    "CommandIn",
    "Conflict",
    "Context",
    "Decision",
    "DomainError",
    "EntityRef",
    "Forbidden",
    "InvalidCommand",
    "ItemUnavailable",
    "LedgerEvent",
    "NewEvent",
    "NotFound",
    "PaymentDeclined",
    "RateLimited",
    "ShiftClosed",
    "StoreSettings",
    "StoreState",
    "Unauthorized",
    "availability_board",
    "commit_overlay",
    "decide",
    "evolve",
    "hash_pin",
    "kds_messages",
    "menu_payload",
    "shift_summary",
    "snapshot",
    "staff_list",
    "token_hash",
    "verify_pin_hash",
]
