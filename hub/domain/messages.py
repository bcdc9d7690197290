"""What goes into the domain and what comes out: commands, context, decisions, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from pydantic import BaseModel

    from hub.domain.errors import DomainError
    from hub.domain.model import StoreState
    from hub.domain.settings import StoreSettings

EntityRef = tuple[str, str]
"""(kind, id) of a projection row; kinds: ticket, table, shift, staff, session, device, availability,
menu, store. A ref whose entity is no longer in the state means the row is gone."""


@dataclass(frozen=True, slots=True)
class ApproverIn:
    """An `approve` of a command: an employee id and PIN, or the hash of a session token."""

    employee_id: str | None = None
    pin: str | None = None
    token_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CommandIn:
    """A command as the engine hands it to `decide`, its body already validated."""

    cmd_id: str
    type: str
    body: BaseModel
    device_id: str
    device_kind: str
    device_stations: tuple[str, ...] = ()
    token_hash: str | None = None
    approve: ApproverIn | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What `decide` may use besides the state: the clock, settings, id and token factories, PIN check."""

    now: datetime
    settings: StoreSettings
    new_id: Callable[[str], str]
    new_token: Callable[[], str]
    verify_pin: Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event `decide` wants written: its type, JSON data, and who acted."""

    type: str
    data: dict[str, Any]
    actor: str | None = None


KdsOut = tuple[str, str, dict[str, Any]]
"""(station, kds type, data) of one KDS message an event causes."""


@dataclass(slots=True)
class Decision:
    """The outcome of a command: events to write, the reply's result, or the error.

    With events, `state` is the would-be state (an overlay of the state decided on) after them, and
    `touched[i]` / `kds[i]` are what event i changed and the KDS messages it causes — so the engine
    applies the overlay (`commit_overlay`) instead of evolving the same events a second time.
    """

    events: list[NewEvent] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: DomainError | None = None
    state: StoreState | None = None
    touched: list[set[EntityRef]] = field(default_factory=list)
    kds: list[list[KdsOut]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """A ledger entry as `evolve` applies it."""

    seq: int
    at: datetime
    type: str
    actor: str | None
    device: str | None
    cmd: str | None
    data: dict[str, Any]
