"""A drawer controller that is its own MQTT device: the hub sends `drawer.kick` on `device/{id}/do`.

The job carries `expires_at` 10 s ahead (and MQTT 5 Message Expiry 10 s where the publisher can
set it), so a controller that was offline never pops the drawer late; it answers `device.result`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from hub.contract.envelopes import DeviceJob, encode
from hub.contract.types import format_time

KICK_TTL: Final = timedelta(seconds=10)


def kick_job(body: dict[str, Any], now: datetime | None = None, ttl: timedelta = KICK_TTL) -> DeviceJob:
    """A `drawer.kick` device job expiring `ttl` from `now`."""
    moment = now or datetime.now(UTC)
    return DeviceJob(
        id=f"kick-{secrets.token_hex(6)}",
        type="drawer.kick",
        expires_at=format_time(moment + ttl),
        body=body,
    )


def kick_payload(job: DeviceJob) -> bytes:
    """The job's JSON payload."""
    return encode(job)
