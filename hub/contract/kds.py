"""The KDS stream on `kds/{station}` (CONTRACT.md, "KDS stream"): one envelope per ticket change."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.contract.envelopes import Seq
from hub.contract.types import Id

Channel = Literal["dine_in", "takeout", "delivery"]
"""How a ticket is served, as `ticket.open` sets it."""

KdsItemState = Literal["new", "started", "ready", "voided"]
"""Where a line is in the kitchen."""


class KdsItem(BaseModel):
    """One line as a station shows it: names, not ids, for modifiers."""

    model_config = ConfigDict(frozen=True)

    line_id: Id
    name: str
    qty: Annotated[int, Field(ge=1)]
    modifiers: list[str] = Field(default_factory=list)
    note: str | None = None
    allergy: str | None = None
    seat: int | None = None
    course: int | None = None
    stations: list[str] = Field(default_factory=list)
    state: KdsItemState = "new"


class KdsTicket(BaseModel):
    """A fired ticket as a station shows it; `priority` tickets are pinned first."""

    model_config = ConfigDict(frozen=True)

    ticket_id: Id
    number: Annotated[int, Field(ge=0)]
    table: str | None = None
    name: str | None = None
    channel: Channel
    server: str | None = None
    fired_at: str
    priority: bool = False
    items: list[KdsItem]


class KdsMessage(BaseModel):
    """An envelope on `kds/{station}`; `prev` is the `seq` of the previous message on that topic."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    seq: Seq
    prev: Seq | None
    type: Literal["kds.ticket", "kds.update", "kds.recall", "kds.remove"]
    data: KdsTicket
