"""Firmware rollouts in the ledger, pure: what the hub's OTA service records when a rollout starts, stops or finishes.

The rollout itself (which device gets an `ota.offer` when) is `firmware_tools.rollout.Rollout`,
driven by the hub's adapter `hub.ota`; these commands only put its milestones in the books, so an
auditor sees which firmware went to which devices, when, and why a rollout stopped.

    ota.rollout_started    a release was handed to the hub for a percentage of a device kind
                           (again with the same `rollout` id when the wave is widened)
    ota.rollout_stopped    failures (or the operator) stopped it for good
    ota.rollout_finished   the wave reached its percentage
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.contract.types import DeviceId, Id

if TYPE_CHECKING:
    from hub.domain.work import Work

Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
Version = Annotated[str, StringConstraints(pattern=r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutStarted(_Body):
    """`ota.rollout_started`: the release, its wave and how carefully it is offered."""

    rollout: Id
    kind: Kind
    version: Version
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    percent: Annotated[int, Field(ge=1, le=100)]
    force: bool
    max_failures: Annotated[int, Field(ge=1)]
    fleet: Annotated[int, Field(ge=0)]
    target: Annotated[int, Field(ge=0)]


class RolloutEnded(_Body):
    """`ota.rollout_stopped` / `ota.rollout_finished`: where the devices stand."""

    rollout: Id
    kind: Kind
    version: Version
    percent: Annotated[int, Field(ge=1, le=100)]
    succeeded: list[DeviceId]
    failed: dict[DeviceId, Reason]
    reason: Reason | None = None


FIRMWARE_COMMANDS: dict[str, type[BaseModel]] = {
    "ota.rollout_started": RolloutStarted,
    "ota.rollout_stopped": RolloutEnded,
    "ota.rollout_finished": RolloutEnded,
}
"""The hub's OTA service's commands (device kind `admin`)."""


def rollout_started(w: Work) -> None:
    """`ota.rollout_started` → event."""
    w.emit("ota.rollout_started", w.body(RolloutStarted).model_dump())


def rollout_stopped(w: Work) -> None:
    """`ota.rollout_stopped` → event."""
    w.emit("ota.rollout_stopped", w.body(RolloutEnded).model_dump())


def rollout_finished(w: Work) -> None:
    """`ota.rollout_finished` → event."""
    w.emit("ota.rollout_finished", w.body(RolloutEnded).model_dump())
