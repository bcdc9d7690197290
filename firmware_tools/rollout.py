"""Staged OTA rollout: offer a signed release to a percentage of one device kind, safely.

`Rollout` is the decision core (no I/O, the clock handed in): it learns the fleet from retained
`device/{id}/status` births (`kind`, `fw`, and the `ota` progress devices report), the shift from
`state/shift`, and results from `device.result`; `step(now)` returns the `ota.offer` jobs to publish
on `device/{id}/do`. Rules:

- a wave covers `percent` % of the devices of the kind (rounded up); devices already on the
  release count as covered; the order is a stable hash of the device id, so widening from 10 % to
  50 % keeps the first devices and adds others;
- nothing is offered while a shift is open unless `force` (a drawer must not reboot mid-service);
- a device that reports `failed`, answers `ok: false`, or does not come back on the new version
  within `offer_timeout_s` is a failure; its place in the wave goes to another device; at
  `max_failures` the rollout stops for good and offers nothing more (an operator investigates and
  starts a new one); below it, a wave with no device left to offer is complete, failures listed;
- devices below the release's `min_version` are skipped (they need an intermediate release).

Only the hub publishes device jobs: `hub.ota.OtaService` drives a `Rollout` in the hub's loop, and
`storehub-fw rollout` (below) hands it the release over the hub's control socket and follows it.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from firmware_tools.ota import Manifest, parse_version
from hub.contract.envelopes import DeviceJob
from hub.contract.types import format_time

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from hub.config import LoadedConfig

State = Literal["running", "waiting_shift", "complete", "stopped"]
DEFAULT_JOB_TTL_S: Final = 60.0
DEFAULT_OFFER_TIMEOUT_S: Final = 900.0
MAX_PERCENT: Final = 100


@dataclass(frozen=True)
class RolloutPolicy:
    """How far and how carefully to roll a release out."""

    percent: int
    force: bool = False
    max_failures: int = 1
    offer_timeout_s: float = DEFAULT_OFFER_TIMEOUT_S
    job_ttl_s: float = DEFAULT_JOB_TTL_S

    def __post_init__(self) -> None:
        if not 0 < self.percent <= MAX_PERCENT:
            raise ValueError(f"percent must be 1-100, got {self.percent}")
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")


@dataclass
class DeviceView:
    """What the rollout knows of one device."""

    device_id: str
    kind: str | None = None
    fw: str | None = None
    online: bool = False


@dataclass
class Offer:
    """An outstanding offer."""

    job_id: str
    at: datetime


@dataclass
class Rollout:
    """The rollout of one release (`manifest`, downloadable at `image_url`) to its device kind."""

    manifest: Manifest
    image_url: str
    policy: RolloutPolicy
    devices: dict[str, DeviceView] = field(default_factory=dict)
    shift_open: bool | None = None
    pending: dict[str, Offer] = field(default_factory=dict)
    succeeded: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    stopped_reason: str | None = None
    _offers_made: int = 0

    # -- inputs --------------------------------------------------------------------------------
    def note_status(self, device_id: str, status: dict[str, Any]) -> None:
        """A retained `device/{id}/status` payload."""
        view = self.devices.setdefault(device_id, DeviceView(device_id))
        view.online = status.get("state") == "online"
        if isinstance(status.get("kind"), str):
            view.kind = status["kind"]
        if isinstance(status.get("fw"), str):
            view.fw = status["fw"]
        if device_id not in self.pending:
            return
        ota = status.get("ota")
        if view.online and view.fw == self.manifest.version:
            del self.pending[device_id]
            self.succeeded.add(device_id)
        elif isinstance(ota, dict) and ota.get("state") == "failed":
            self._fail(device_id, f"device reported failed: {ota.get('error', 'no reason')}")

    def note_result(self, device_id: str, body: dict[str, Any]) -> None:
        """A `device.result` body from the device."""
        offer = self.pending.get(device_id)
        if offer is not None and body.get("of") == offer.job_id and body.get("ok") is False:
            self._fail(device_id, str(body.get("detail") or "refused"))

    def note_shift(self, payload: dict[str, Any]) -> None:
        """The retained `state/shift` (`{"open": false}` or an open shift's summary)."""
        self.shift_open = payload.get("open") is not False

    # -- decisions -----------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """Where the rollout stands."""
        if self.stopped_reason is not None:
            return "stopped"
        if not self.pending and (self._covered() >= self._target() or self._exhausted()):
            return "complete"
        if self.shift_open is not False and not self.policy.force:
            return "waiting_shift"
        return "running"

    def step(self, now: datetime) -> list[tuple[str, DeviceJob]]:
        """Time out stale offers, then the offers to make now (device id, job)."""
        for device_id, offer in list(self.pending.items()):
            if (now - offer.at).total_seconds() > self.policy.offer_timeout_s:
                self._fail(device_id, f"no new version within {self.policy.offer_timeout_s:g} s")
        if self.state != "running":
            return []
        wanted = self._target() - self._covered()
        jobs = []
        for view in self._candidates()[: max(0, wanted)]:
            self._offers_made += 1
            job = DeviceJob(
                id=f"ota-{self._offers_made}-{view.device_id}"[:64],
                type="ota.offer",
                expires_at=format_time(now + timedelta(seconds=self.policy.job_ttl_s)),
                body={"manifest": self.manifest.model_dump(), "url": self.image_url},
            )
            self.pending[view.device_id] = Offer(job.id, now)
            jobs.append((view.device_id, job))
        return jobs

    def summary(self) -> dict[str, Any]:
        """For the CLI and the manager page."""
        fleet = self._fleet()
        return {
            "kind": self.manifest.device_kind,
            "version": self.manifest.version,
            "state": self.state,
            "percent": self.policy.percent,
            "fleet": len(fleet),
            "target": self._target(),
            "pending": sorted(self.pending),
            "succeeded": sorted(self.succeeded),
            "failed": dict(sorted(self.failed.items())),
            "skipped_below_min_version": sorted(v.device_id for v in fleet if self._below_min(v)),
            "stopped_reason": self.stopped_reason,
        }

    # -- helpers -------------------------------------------------------------------------------
    def _fail(self, device_id: str, reason: str) -> None:
        self.pending.pop(device_id, None)
        self.failed[device_id] = reason
        if len(self.failed) >= self.policy.max_failures and self.stopped_reason is None:
            self.stopped_reason = f"{len(self.failed)} device(s) failed; last: {device_id}: {reason}"

    def _fleet(self) -> list[DeviceView]:
        return [v for v in self.devices.values() if v.kind == self.manifest.device_kind]

    def _target(self) -> int:
        return math.ceil(len(self._fleet()) * self.policy.percent / MAX_PERCENT)

    def _current(self, view: DeviceView) -> bool:
        version = _version_or_none(view.fw or "")
        return version is not None and version >= parse_version(self.manifest.version)

    def _below_min(self, view: DeviceView) -> bool:
        version = _version_or_none(view.fw or "")
        return version is not None and version < parse_version(self.manifest.min_version)

    def _covered(self) -> int:
        fleet = self._fleet()
        return sum(1 for v in fleet if self._current(v) or v.device_id in self.pending or v.device_id in self.succeeded)

    def _exhausted(self) -> bool:
        """No device of the kind is left to offer, now or when it comes back online (the rest failed)."""
        return not any(
            not self._current(v) and not self._below_min(v) and v.device_id not in self.failed.keys() | self.succeeded
            for v in self._fleet()
        )

    def _candidates(self) -> list[DeviceView]:
        eligible = [
            v
            for v in self._fleet()
            if v.online
            and v.fw is not None
            and not self._current(v)
            and not self._below_min(v)
            and v.device_id not in self.pending
            and v.device_id not in self.failed
            and v.device_id not in self.succeeded
        ]
        return sorted(eligible, key=lambda v: _order(v.device_id, self.manifest.device_kind))


def _order(device_id: str, kind: str) -> str:
    return hashlib.sha256(f"{kind}/{device_id}".encode()).hexdigest()


def _version_or_none(text: str) -> tuple[int, int, int] | None:
    try:
        return parse_version(text)
    except ValueError:
        return None


# -- the CLI: hand the release to the running hub, then follow it ---------------------------------
EXIT_STOPPED: Final = 1
EXIT_STILL_RUNNING: Final = 3


def rollout_cli(args: argparse.Namespace) -> int:
    """`storehub-fw rollout [status|stop] --config …` (options in firmware_tools/cli.py)."""
    from firmware_tools.cli import FwCliError, HubAwayError, _load_config  # noqa: PLC0415

    loaded = _load_config(args.config)
    if args.action == "status":
        _emit(_ask(loaded.data_dir, "ota.status", {}))
        return 0
    if args.action == "stop":
        _emit(_ask(loaded.data_dir, "ota.stop", {"reason": args.reason} if args.reason else {}))
        return 0
    if args.manifest is None or args.image is None or args.percent is None:
        raise FwCliError("rollout needs --manifest, --image and --percent")
    if not 0 < args.percent <= MAX_PERCENT:
        raise FwCliError(f"--percent must be 1-100, got {args.percent}")
    manifest = _stage_release(loaded, args.manifest, args.image)
    body: dict[str, Any] = {
        "kind": manifest.device_kind,
        "version": manifest.version,
        "percent": args.percent,
        "force": args.force,
    }
    if args.max_failures is not None:
        body["max_failures"] = args.max_failures
    if args.offer_timeout is not None:
        body["offer_timeout_s"] = args.offer_timeout
    summary = _ask(loaded.data_dir, "ota.rollout", body)
    _emit(summary)
    if args.no_follow:
        return 0
    deadline = time.monotonic() + args.follow_timeout
    away = False
    while summary.get("state") in ("running", "waiting_shift", "resuming") and time.monotonic() < deadline:
        time.sleep(args.interval)
        try:
            latest = _ask(loaded.data_dir, "ota.status", {})
        except HubAwayError:  # the hub is restarting (an upgrade, a power cut): it takes the rollout up again
            if not away:
                sys.stderr.write("storehub-fw: the hub is not answering; still following while it restarts\n")
            away = True
            continue
        away = False
        if latest != summary:
            _emit(latest)
        summary = latest
    if summary.get("state") == "complete":
        if failed := summary.get("failed"):
            sys.stderr.write(f"storehub-fw: the wave is complete, but {len(failed)} device(s) failed: {failed}\n")
        return 0
    if summary.get("state") == "stopped":
        sys.stderr.write(f"storehub-fw: the rollout stopped: {summary.get('stopped_reason')}\n")
        return EXIT_STOPPED
    sys.stderr.write(
        f"storehub-fw: still {summary.get('state')} after {args.follow_timeout:g} s; the hub carries on "
        "(`storehub-fw rollout status --config …`)\n"
    )
    return EXIT_STILL_RUNNING


def _stage_release(loaded: LoadedConfig, manifest_file: Path, image: Path) -> Manifest:
    """Put the release in the hub's firmware directory (checked with `[ota] trusted_key`) unless it is there."""
    from firmware_tools.cli import FwCliError  # noqa: PLC0415
    from firmware_tools.ota import OtaRefusedError, verify_image  # noqa: PLC0415
    from firmware_tools.server import FirmwareStore, read_manifest  # noqa: PLC0415
    from hub.web.app import FIRMWARE_DIR  # noqa: PLC0415

    key = loaded.config.ota.trusted_key
    if not key:
        raise FwCliError(f"{loaded.path}: set [ota] trusted_key (the public key `storehub-fw keygen` printed)")
    store = FirmwareStore(loaded.data_dir / FIRMWARE_DIR)
    try:
        manifest = read_manifest(manifest_file)
        found = store.get(manifest.device_kind, manifest.version)
        if found is None:
            return store.add(image, manifest_file, key)
        if found[0] != manifest:
            raise FwCliError(
                f"{manifest.device_kind} {manifest.version} is already in {store.root} with another manifest; "
                "a version is never replaced: sign a new version"
            )
        verify_image(manifest, image.read_bytes())
    except OtaRefusedError as exc:
        raise FwCliError(f"refused: {exc.code}: {exc}") from exc
    except OSError as exc:
        raise FwCliError(f"{exc.filename or image}: {exc.strerror}") from exc
    except ValueError as exc:
        raise FwCliError(str(exc).splitlines()[0]) from exc
    return manifest


def _ask(data_dir: Path, type_: str, body: dict[str, Any]) -> dict[str, Any]:
    """One control request to the running hub: its result, or FwCliError with the hub's refusal.

    HubAwayError (a FwCliError) when no hub answers, so a follower can wait for a restarting hub.
    """
    import asyncio  # noqa: PLC0415

    from firmware_tools.cli import FwCliError, HubAwayError  # noqa: PLC0415
    from hub.app import HubError, control_request  # noqa: PLC0415

    try:
        answer = asyncio.run(control_request(data_dir, type_, body))
    except (HubError, OSError) as exc:
        raise HubAwayError(f"the hub did not answer: {exc}") from exc
    if answer is None:
        raise HubAwayError(f"no hub is running on {data_dir}: rollouts run in the hub (start it first)")
    if not answer.get("ok"):
        error = answer.get("error") or {}
        raise FwCliError(f"{error.get('code', 'error')}: {error.get('message', 'refused')}")
    result: dict[str, Any] = answer.get("result") or {}
    return result


def _emit(summary: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
