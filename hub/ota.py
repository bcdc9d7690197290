"""The hub runs firmware rollouts: one `Rollout` at a time, stepped in the hub's loop, offered on the hub's bus.

Only the hub publishes device jobs (docs/contract.md), so `storehub-fw rollout` hands a release to
the running hub over its control socket and follows it; the hub serves the image from
`<data_dir>/firmware` on its own web server (`/firmware/{kind}/{version}/image`), offers it with
`ota.offer` on `device/{id}/do`, and learns how each device fares from its retained status and its
`device.result` commands. The decisions (staged percent of a kind, never during an open shift
unless forced, a stop for good at `max_failures`) are `firmware_tools.rollout.Rollout`'s.

Control requests (`storehub-fw rollout …`):

    ota.rollout  {kind, version, percent, force?, max_failures?, offer_timeout_s?}
                 start a rollout of a release already in the firmware directory, or widen the
                 running one (same release, higher percent: the devices already offered stay)
    ota.status   {} → the rollout's summary with each device's reported progress
    ota.stop     {reason?} → stop it for good

Starts, stops and finished waves are ledgered (`ota.rollout_started` / `_stopped` / `_finished`),
and the ledger is what a restarted hub resumes from: if the newest of those entries is a start, the
rollout goes on with the same id, release, percent, force and max_failures once the hub is back and
sees its devices again (`RESUME_WAIT_S`; devices already on the release count as done; offers that
were out are made again, and failures seen before the restart are forgotten). If the release is
no longer in the firmware directory, or its image no longer checks out, the hub ledgers the rollout
as stopped instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from firmware_tools.ota import VERSION_PATTERN, Manifest, OtaRefusedError, verify_image, verify_manifest
from firmware_tools.rollout import Rollout, RolloutPolicy
from firmware_tools.server import KIND_PATTERN, FirmwareStore
from hub import domain
from hub.contract.envelopes import Reply, encode
from hub.contract.errors import ErrorCode
from hub.web.app import FIRMWARE_DIR

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.config import LoadedConfig
    from hub.engine import Engine

log = logging.getLogger("storehub.ota")

_ACTIVE: Final = ("running", "waiting_shift")
RESUME_WAIT_S: Final = 300.0
"""After a restart, how long a resumed rollout waits to see as many devices of its kind as when it
was started (they reconnect on their own schedules, backing off up to two minutes) before it goes
on with those it has seen."""


class OtaService:
    """The hub's rollout of signed firmware to its devices."""

    requests: Final = frozenset({"ota.rollout", "ota.status", "ota.stop"})
    """Control-socket requests it answers."""

    def __init__(
        self,
        engine: Engine,
        loaded: LoadedConfig,
        connected: Callable[[], bool],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.connected = connected
        self.cfg = loaded.config.ota
        self.firmware = FirmwareStore(loaded.data_dir / FIRMWARE_DIR)
        self.base_url = (self.cfg.image_base_url or default_base_url(loaded)).rstrip("/")
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rollout: Rollout | None = None
        self.rollout_id: str | None = None
        self._ledgered_stop = False
        self._finished_percent: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stepping = asyncio.Lock()
        self._resumed = asyncio.Event()
        """Set once the rollout the ledger says was running (if any) is back: control waits for it."""
        self._fleet_wait: tuple[int, float] | None = None
        """A resumed rollout's (devices it was started with, monotonic time until which it waits to see them)."""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Step the rollout every `[ota] step_interval_s` in the hub's loop."""
        self._task = asyncio.create_task(self._loop(), name="ota")

    async def stop(self) -> None:
        """Stop stepping (a running rollout goes on when the hub starts again: `resume`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- inputs from the bus -------------------------------------------------------------------
    def tap_status(self, inner: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
        """`device/{id}/status` also goes to the rollout (fw version and `ota` progress)."""

        def note(device_id: str, status: dict[str, Any]) -> None:
            inner(device_id, status)
            if self.rollout is not None:
                self.rollout.note_status(device_id, status)

        return note

    def tap_command(self, inner: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
        """Commands go to the engine as before; a `device.result` is also shown to the rollout."""

        def submit(device_id: str, payload: bytes) -> None:
            if self.rollout is not None and b"device.result" in payload:
                self._note_result(device_id, payload)
            inner(device_id, payload)

        return submit

    def _note_result(self, device_id: str, payload: bytes) -> None:
        assert self.rollout is not None  # noqa: S101 - checked by the caller
        try:
            command = json.loads(payload)
        except ValueError:
            return  # the engine answers it with invalid_payload
        if not isinstance(command, dict) or command.get("type") != "device.result":
            return
        if isinstance(body := command.get("body"), dict):
            self.rollout.note_result(device_id, body)

    # -- control socket ----------------------------------------------------------------------
    async def control(self, type_: str, body: dict[str, Any]) -> Reply:
        """Answer `ota.rollout`, `ota.status` or `ota.stop`."""
        if self._task is not None:
            await self._resumed.wait()
        if type_ == "ota.status":
            return self._reply(self.describe())
        if type_ == "ota.stop":
            return await self._stop_by_operator(body)
        return await self._start(body)

    def describe(self) -> dict[str, Any]:
        """The rollout's summary and each concerned device's last reported `ota` progress."""
        if self.rollout is None:
            return {"state": "none"}
        summary = self.rollout.summary()
        if self._waiting_for_fleet():
            summary["state"] = "resuming"
        concerned = {*summary["pending"], *summary["succeeded"], *summary["failed"]}
        progress = {d: self.engine.presence.get(d, {}).get("ota") for d in sorted(concerned)}
        return {"rollout": self.rollout_id, **summary, "url": self.rollout.image_url, "progress": progress}

    def _waiting_for_fleet(self) -> bool:
        """A resumed rollout holds its offers and milestones until its devices are seen again (or time is up)."""
        if self._fleet_wait is None or self.rollout is None:
            return False
        expected, until = self._fleet_wait
        seen = self.rollout.summary()["fleet"]
        if self.rollout.stopped_reason is not None or seen >= expected or time.monotonic() >= until:
            self._fleet_wait = None
            return False
        return True

    async def _start(self, body: dict[str, Any]) -> Reply:
        try:
            kind, version = _matching(body["kind"], KIND_PATTERN), _matching(body["version"], VERSION_PATTERN)
            policy = RolloutPolicy(
                _int(body["percent"]),
                force=_bool(body.get("force", False)),
                max_failures=_int(body.get("max_failures", self.cfg.max_failures)),
                offer_timeout_s=_seconds(body.get("offer_timeout_s", self.cfg.offer_timeout_s)),
                job_ttl_s=self.cfg.job_ttl_s,
            )
        except (KeyError, TypeError, ValueError) as exc:
            return _failure(ErrorCode.INVALID_PAYLOAD, f"ota.rollout needs kind, version and percent 1-100: {exc}")
        unreachable = _unreachable_host(self.base_url)
        if unreachable is not None:
            return _failure(
                ErrorCode.CONFLICT,
                f"devices cannot download images from {self.base_url} ({unreachable} is where the hub listens, "
                "not an address devices can reach); set [ota] image_base_url to the hub's address on the staff network",
            )
        current = self.rollout
        if current is not None and (current.manifest.device_kind, current.manifest.version) == (kind, version):
            if current.state != "stopped":
                return await self._widen(current, policy)
        elif current is not None and (current.state in _ACTIVE or self._waiting_for_fleet()):
            running = f"{current.manifest.device_kind} {current.manifest.version}"
            return _failure(ErrorCode.CONFLICT, f"the rollout of {running} is running; stop it first")
        try:
            manifest = await asyncio.to_thread(self._checked_release, kind, version)
        except LookupError as exc:
            return _failure(ErrorCode.NOT_FOUND, str(exc))
        except (OtaRefusedError, ValueError, OSError) as exc:
            return _failure(ErrorCode.CONFLICT, f"the hub refuses to offer {kind} {version}: {exc}")
        rollout = Rollout(manifest, f"{self.base_url}/firmware/{kind}/{version}/image", policy)
        for device_id, status in list(self.engine.presence.items()):
            rollout.note_status(device_id, status)
        rollout.note_shift(domain.shift_summary(self.engine.state))
        rollout_id = f"ota-{kind}-{version.replace('.', '_')}-{secrets.token_hex(3)}"
        ledgered = await self._ledger_start(rollout, rollout_id)
        if not ledgered.ok:
            return ledgered  # not in the books: not started
        self.rollout, self.rollout_id = rollout, rollout_id
        self._ledgered_stop, self._finished_percent, self._fleet_wait = False, None, None
        await self.step()
        return self._reply(self.describe())

    async def _widen(self, rollout: Rollout, policy: RolloutPolicy) -> Reply:
        if self._waiting_for_fleet():
            return _failure(
                ErrorCode.CONFLICT,
                "the rollout is resuming after a hub restart and waits for its devices to be seen again; "
                "widen it once `storehub-fw rollout status` no longer says resuming",
            )
        if policy.percent < rollout.policy.percent:
            return _failure(
                ErrorCode.CONFLICT,
                f"the rollout is at {rollout.policy.percent} %; a rollout widens, it never narrows",
            )
        previous, rollout.policy = rollout.policy, policy
        ledgered = await self._ledger_start(rollout, self.rollout_id or "")
        if not ledgered.ok:
            rollout.policy = previous
            return ledgered
        await self.step()
        return self._reply(self.describe())

    def _checked_release(self, kind: str, version: str, sha256: str | None = None) -> Manifest:
        """The release's manifest, once its signature and image check out (blocking: run in a thread).

        `sha256`: the image the ledger says was started; another one under the same version is refused.
        """
        if not self.cfg.trusted_key:
            raise ValueError("set [ota] trusted_key (the public key `storehub-fw keygen` printed) first")
        found = self.firmware.get(kind, version)
        if found is None:
            raise LookupError(f"no firmware {version} for {kind} in {self.firmware.root} (storehub-fw rollout adds it)")
        manifest, image = found
        if sha256 is not None and manifest.sha256 != sha256:
            raise OtaRefusedError("sha256_mismatch", f"the firmware directory holds another {kind} {version} image")
        verify_manifest(manifest, self.cfg.trusted_key)
        verify_image(manifest, image.read_bytes())
        return manifest

    async def _stop_by_operator(self, body: dict[str, Any]) -> Reply:
        rollout = self.rollout
        if rollout is None or rollout.state not in (*_ACTIVE, "complete"):
            return _failure(ErrorCode.CONFLICT, "no rollout is running")
        reason = str(body.get("reason") or "stopped by the operator")[:200]
        rollout.stopped_reason = reason
        self._fleet_wait = None
        await self._ledger_milestones()
        return self._reply(self.describe())

    # -- stepping ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        try:
            await self.resume()
        except Exception:
            log.exception("could not resume the rollout the ledger says was running")
        finally:
            self._resumed.set()
        while True:
            await asyncio.sleep(self.cfg.step_interval_s)
            try:
                await self.step()
            except Exception:
                log.exception("OTA step failed")

    async def step(self) -> None:
        """Time out stale offers, publish the offers due now, ledger what changed."""
        rollout = self.rollout
        if rollout is None:
            return
        async with self._stepping:
            if self._waiting_for_fleet() and rollout.stopped_reason is None:
                return
            rollout.note_shift(domain.shift_summary(self.engine.state))
            publisher = self.engine.publisher
            if publisher is not None and self.connected():
                for device_id, job in rollout.step(self.clock()):
                    publisher.publish(self.engine.topics.device_do(device_id), encode(job), qos=1, retain=False)
                    log.info("offered %s %s", rollout.manifest.version, job.id, extra={"device": device_id})
            await self._ledger_milestones()

    async def resume(self) -> None:
        """Take up the rollout the ledger's newest `ota.rollout_*` entry says was running, if any."""
        async with (
            self.engine.db.reader() as conn,
            conn.execute(
                "SELECT type, data FROM ledger WHERE type IN (?, ?, ?) ORDER BY seq DESC LIMIT 1",
                ("ota.rollout_started", "ota.rollout_stopped", "ota.rollout_finished"),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None or row[0] != "ota.rollout_started" or self.rollout is not None:
            return
        started = json.loads(row[1])
        rollout_id, kind, version = str(started["rollout"]), str(started["kind"]), str(started["version"])
        policy = RolloutPolicy(
            int(started["percent"]),
            force=bool(started["force"]),
            max_failures=int(started["max_failures"]),
            offer_timeout_s=self.cfg.offer_timeout_s,
            job_ttl_s=self.cfg.job_ttl_s,
        )
        try:
            manifest = await asyncio.to_thread(self._checked_release, kind, version, str(started["sha256"]))
        except (LookupError, OtaRefusedError, ValueError, OSError) as exc:
            log.warning("rollout %s cannot go on after the restart: %s", rollout_id, exc)
            ended = {"rollout": rollout_id, "kind": kind, "version": version, "percent": policy.percent}
            reason = f"the hub restarted and cannot offer {kind} {version} any more: {exc}"[:500]
            await self._admin("ota.rollout_stopped", {**ended, "succeeded": [], "failed": {}, "reason": reason})
            return
        rollout = Rollout(manifest, f"{self.base_url}/firmware/{kind}/{version}/image", policy)
        for device_id, status in list(self.engine.presence.items()):
            rollout.note_status(device_id, status)
        self.rollout, self.rollout_id = rollout, rollout_id
        self._ledgered_stop, self._finished_percent = False, None
        self._fleet_wait = (int(started["fleet"]), time.monotonic() + RESUME_WAIT_S)
        log.info("resumed rollout %s of %s %s to %d %%", rollout_id, kind, version, policy.percent)
        await self.step()

    async def _ledger_start(self, rollout: Rollout, rollout_id: str) -> Reply:
        summary = rollout.summary()
        return await self._admin(
            "ota.rollout_started",
            {
                "rollout": rollout_id,
                "kind": rollout.manifest.device_kind,
                "version": rollout.manifest.version,
                "sha256": rollout.manifest.sha256,
                "percent": rollout.policy.percent,
                "force": rollout.policy.force,
                "max_failures": rollout.policy.max_failures,
                "fleet": summary["fleet"],
                "target": summary["target"],
            },
        )

    async def _ledger_milestones(self) -> None:
        rollout = self.rollout
        if rollout is None:
            return
        state = rollout.state
        if state == "stopped" and not self._ledgered_stop:
            self._ledgered_stop = True
            log.warning("rollout %s stopped: %s", self.rollout_id, rollout.stopped_reason)
            await self._admin("ota.rollout_stopped", self._ended(rollout, rollout.stopped_reason))
        elif state == "complete" and self._finished_percent != rollout.policy.percent:
            self._finished_percent = rollout.policy.percent
            await self._admin("ota.rollout_finished", self._ended(rollout, None))

    def _ended(self, rollout: Rollout, reason: str | None) -> dict[str, Any]:
        summary = rollout.summary()
        return {
            "rollout": self.rollout_id,
            "kind": rollout.manifest.device_kind,
            "version": rollout.manifest.version,
            "percent": rollout.policy.percent,
            "succeeded": summary["succeeded"],
            "failed": {d: r[:500] for d, r in summary["failed"].items()},
            "reason": reason[:500] if reason else None,
        }

    async def _admin(self, type_: str, body: dict[str, Any]) -> Reply:
        reply = await self.engine.admin(type_, body)
        if not reply.ok and reply.error is not None:
            log.error("could not ledger %s: %s: %s", type_, reply.error.code, reply.error.message)
        return reply

    def _reply(self, result: dict[str, Any]) -> Reply:
        return Reply.success(None, self.engine.committed_head.seq, result)


def default_base_url(loaded: LoadedConfig) -> str:
    """Where devices reach the hub's web server: HTTPS on the first `[tls] names` entry, else `[web] host`."""
    cfg = loaded.config
    if cfg.tls.enabled:
        return f"https://{cfg.tls.names[0]}:{cfg.hub.web_port}"
    return f"http://{cfg.web.host}:{cfg.hub.web_port}"


def _unreachable_host(url: str) -> str | None:
    """The host of `url` when no device could ever reach it (a wildcard listen address), else None."""
    host = (urlsplit(url).hostname or "").strip("[]")
    return host if host in ("0.0.0.0", "::", "") else None  # noqa: S104 - recognising it, not binding it


def _matching(value: Any, pattern: str) -> str:
    """A kind or version that can only name a folder inside the firmware directory."""
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise ValueError(f"{value!r} does not match {pattern}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _failure(code: ErrorCode, message: str) -> Reply:
    return Reply.failure(None, code, message)
