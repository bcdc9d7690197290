"""Scalar types shared by every contract model."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""Ids of tickets, lines, tables, employees, commands: `[A-Za-z0-9_-]{1,64}`."""

DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
"""A device id is also its MQTT client id and username: `[a-z0-9-]{1,32}`."""

Cents = Annotated[int, Field(ge=0, le=100_000_000_00, strict=True)]
"""Money in integer minor units of the store's currency. Never a float."""

PositiveCents = Annotated[int, Field(gt=0, le=100_000_000_00, strict=True)]

Reason = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
"""Why a manager-level action was taken; recorded in the ledger."""

Text = Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)]


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as the ledger and every envelope spell time: `…T12:00:00.123Z`."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the contract only carries UTC times")
    if moment.tzinfo is not UTC:
        # Converted before the cache: local times in one zone that differ only by `fold` (the
        # repeated hour when clocks go back) compare equal, and must not share a spelling.
        moment = moment.astimezone(UTC)
    return _format_utc(moment)


@functools.lru_cache(maxsize=4096)
def _format_utc(moment: datetime) -> str:
    # A batch spells the same few moments over and over (its entries' `at`, the tickets it touched).
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (any offset) into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return moment.astimezone(UTC)
