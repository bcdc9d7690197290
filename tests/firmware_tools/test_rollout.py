"""The staged rollout's decisions: waves by percent, shift gating, stop on failures, min version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_tools.ota import sign
from firmware_tools.rollout import Rollout, RolloutPolicy

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
MANIFEST = sign(b"image", kind="drawer", version="1.1.0", min_version="1.0.0", key=KEY)


def _rollout(percent: int, *, devices: int = 10, fw: str = "1.0.0", **policy) -> Rollout:
    rollout = Rollout(MANIFEST, "http://hub/firmware/drawer/1.1.0/image", RolloutPolicy(percent, **policy))
    for i in range(devices):
        rollout.note_status(f"drawer-{i}", {"state": "online", "sess": 1, "kind": "drawer", "fw": fw})
    rollout.note_status("tab-1", {"state": "online", "sess": 1, "kind": "tablet", "fw": "1.0.0"})
    rollout.note_shift({"open": False})
    return rollout


def _finish(rollout: Rollout, device_id: str) -> None:
    rollout.note_status(device_id, {"state": "online", "sess": 2, "kind": "drawer", "fw": "1.1.0"})


def test_a_wave_covers_the_percent_of_the_kind_rounded_up():
    rollout = _rollout(25)
    jobs = rollout.step(NOW)
    assert len(jobs) == 3  # ceil(10 * 25 %)
    assert all(device.startswith("drawer-") for device, _ in jobs)
    device, job = jobs[0]
    assert job.type == "ota.offer"
    assert job.body["manifest"] == MANIFEST.model_dump()
    assert job.body["url"].endswith("/image")
    assert rollout.step(NOW) == [], "no second offer while the first ones are pending"
    for device, _ in jobs:
        _finish(rollout, device)
    assert rollout.state == "complete"
    assert rollout.summary()["succeeded"] == sorted(d for d, _ in jobs)


def test_widening_keeps_the_first_devices_and_adds_others():
    first = [d for d, _ in _rollout(20).step(NOW)]
    wider = _rollout(50)
    second = [d for d, _ in wider.step(NOW)]
    assert set(first) < set(second)
    again = _rollout(20)
    assert [d for d, _ in again.step(NOW)] == first, "the order is stable"


def test_nothing_is_offered_during_an_open_shift_unless_forced():
    rollout = _rollout(100)
    rollout.note_shift({"open": True, "shift_id": "s-1"})
    assert rollout.step(NOW) == []
    assert rollout.state == "waiting_shift"
    unknown = Rollout(MANIFEST, "u", RolloutPolicy(100))
    unknown.note_status("drawer-0", {"state": "online", "sess": 1, "kind": "drawer", "fw": "1.0.0"})
    assert unknown.step(NOW) == [], "an unknown shift state counts as open"
    forced = _rollout(100, force=True)
    forced.note_shift({"open": True})
    assert len(forced.step(NOW)) == 10


def test_a_failure_stops_the_rollout_for_good():
    rollout = _rollout(50, max_failures=1)
    jobs = rollout.step(NOW)
    device, job = jobs[0]
    rollout.note_result(device, {"of": job.id, "ok": False, "detail": "sha256_mismatch: tampered"})
    assert rollout.state == "stopped"
    assert "sha256_mismatch" in (rollout.stopped_reason or "")
    _finish(rollout, jobs[1][0])
    assert rollout.step(NOW + timedelta(minutes=1)) == []
    assert rollout.summary()["failed"] == {device: "sha256_mismatch: tampered"}
    assert rollout.summary()["succeeded"] == [jobs[1][0]], "offers already made still finish"


def test_reported_failures_and_timeouts_count_and_the_limit_is_honoured():
    rollout = _rollout(30, max_failures=2, offer_timeout_s=600)
    jobs = rollout.step(NOW)
    rollout.note_status(
        jobs[0][0],
        {
            "state": "online",
            "sess": 1,
            "kind": "drawer",
            "fw": "1.0.0",
            "ota": {"state": "failed", "error": "download_failed"},
        },
    )
    assert rollout.state == "running"
    replacement = rollout.step(NOW)
    assert len(replacement) == 1, "a failed device's place in the wave goes to another device"
    assert rollout.step(NOW + timedelta(seconds=601)) == []
    state: str = rollout.state
    assert state == "stopped"
    assert "no new version within 600 s" in (rollout.stopped_reason or "")


def test_offline_current_and_too_old_devices_are_not_offered():
    rollout = _rollout(100, devices=0)
    rollout.note_status("drawer-on", {"state": "online", "sess": 1, "kind": "drawer", "fw": "1.0.5"})
    rollout.note_status("drawer-off", {"state": "offline", "sess": 1, "kind": "drawer", "fw": "1.0.0"})
    rollout.note_status("drawer-new", {"state": "online", "sess": 1, "kind": "drawer", "fw": "1.2.0"})
    rollout.note_status("drawer-old", {"state": "online", "sess": 1, "kind": "drawer", "fw": "0.9.0"})
    assert [d for d, _ in rollout.step(NOW)] == ["drawer-on"]
    assert rollout.summary()["skipped_below_min_version"] == ["drawer-old"]


def test_a_result_for_another_job_is_ignored():
    rollout = _rollout(10)
    ((device, _job),) = rollout.step(NOW)
    rollout.note_result(device, {"of": "some-other-job", "ok": False})
    assert rollout.state == "running"


@pytest.mark.parametrize(("percent", "failures"), [(0, 1), (101, 1), (50, 0)])
def test_policy_refuses_nonsense(percent, failures):
    with pytest.raises(ValueError):
        RolloutPolicy(percent, max_failures=failures)


def test_a_wave_with_failures_below_the_limit_completes_when_no_device_is_left_to_offer():
    rollout = _rollout(100, devices=2, max_failures=2)
    rollout.note_status("drawer-away", {"state": "offline", "sess": 1, "kind": "drawer", "fw": "1.0.0"})
    first, second = (device for device, _ in rollout.step(NOW))
    _finish(rollout, first)
    rollout.note_result(second, {"of": rollout.pending[second].job_id, "ok": False, "detail": "download_failed"})
    assert rollout.state == "running", "an offline device of the kind may still come back and be offered"
    rollout.note_status("drawer-away", {"state": "online", "sess": 2, "kind": "drawer", "fw": "1.0.0"})
    ((away, _job),) = rollout.step(NOW)
    _finish(rollout, away)
    state: str = rollout.state  # mypy narrowed the property to "running" above
    assert state == "complete"
    assert rollout.summary()["failed"] == {second: "download_failed"}
    assert sorted(rollout.summary()["succeeded"]) == sorted([first, away])
