"""The screen's MQTT device against a real hub and broker: gaps, resync, the persisted bump queue."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from kds_display.bench import add_device
from kds_display.device import CONFIRM_HOLD_S, KdsDevice
from kds_display.settings import KdsSettings

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.kds_display.conftest import Store

pytestmark = pytest.mark.e2e

SNAILS = {"menu_item_id": "escargots"}


def _settings(store: Store, device: str, state_dir: Path) -> KdsSettings:
    return KdsSettings(
        device_id=device,
        password=add_device(store.hub.config, device, "kds", "grill"),
        stations=("grill",),
        store_id=store.hub.store_id,
        broker_host="127.0.0.1",
        broker_port=store.hub.port,
        state_dir=state_dir,
    )


class GrillLine:
    """The network between the broker and a screen, for `kds/grill`: it can lose one message or hold them back."""

    def __init__(self) -> None:
        self.drop_next = False
        self.hold = False
        self.lost: list[bytes] = []
        self.held: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> bool:
        if not topic.endswith("/kds/grill"):
            return True
        if self.drop_next:
            self.drop_next = False
            self.lost.append(payload)
            return False
        if self.hold:
            self.held.append((topic, payload))
            return False
        return True


async def _until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_a_gap_in_the_station_stream_triggers_a_resync(store: Store, tmp_path: Path) -> None:
    settings = _settings(store, "kds-gap", tmp_path)
    network = GrillLine()

    async def scenario() -> None:
        device = KdsDevice(settings, inbound=network)
        await device.start()
        try:
            await _until(lambda: device.view.synced, "the first sync")
            assert device.resyncs == 1
            first, _ = await asyncio.to_thread(store.ticket, [SNAILS])
            await _until(lambda: first in device.view.ticket_ids(), "the first ticket")
            network.drop_next = True
            second, _ = await asyncio.to_thread(store.ticket, [SNAILS])
            await _until(lambda: network.lost, "the lost message")
            assert json.loads(network.lost[0])["data"]["ticket_id"] == second
            assert second not in device.view.ticket_ids()
            third, _ = await asyncio.to_thread(store.ticket, [SNAILS])
            await _until(lambda: {second, third} <= device.view.ticket_ids(), "the resync")
            assert device.gaps == 1
            assert device.resyncs == 2
        finally:
            await device.close()

    asyncio.run(scenario())


def test_queued_bumps_survive_a_restart_of_the_screen_and_act_once(store: Store, tmp_path: Path) -> None:
    settings = _settings(store, "kds-queue", tmp_path)

    async def queue_while_the_hub_is_down(tid: str) -> str:
        device = KdsDevice(settings)
        await device.start()
        try:
            await _until(lambda: tid in device.view.ticket_ids(), "the ticket on the screen")
            await asyncio.to_thread(store.hub.stop)
            await _until(lambda: not device.online, "the offline state")
            cmd_id = device.command("kds.bump", {"ticket_id": tid, "station": "grill"})
            assert device.command("kds.bump", {"ticket_id": tid, "station": "grill"}, cmd_id) == cmd_id
            assert [c.cmd_id for c in device.pending.values()] == [cmd_id]
            assert tid not in {c.ticket_id for c in device.view.cards(device.overlays())}  # shown bumped at once
            return cmd_id
        finally:
            await device.close()  # the screen goes away with the bump still queued

    async def deliver_after_restart() -> KdsDevice:
        device = KdsDevice(settings)
        await device.start()
        try:
            assert len(device.pending) == 1  # read back from the state directory
            await _until(lambda: not device.pending, "the queue to drain")
            return device
        finally:
            await device.close()

    tid, _ = store.ticket([SNAILS])
    seq_before = store.tablet.call("sync", {})["seq"]
    creds = store.tablet.creds
    store.tablet.close()
    cmd_id = asyncio.run(queue_while_the_hub_is_down(tid))
    assert json.loads((tmp_path / "pending.json").read_text())[0]["id"] == cmd_id
    store.hub.start()
    asyncio.run(deliver_after_restart())
    assert json.loads((tmp_path / "pending.json").read_text()) == []
    store.tablet = store.hub.tablet("tab-kds", events=True, creds=creds)
    events = store.tablet.call("sync", {"since_seq": seq_before})["result"]["events"]
    ready = [e for e in events if e["type"] == "ticket.item_ready" and e["data"]["ticket_id"] == tid]
    assert len(ready) == 1
    assert ready[0]["cmd"] == cmd_id


def test_a_bumped_card_stays_off_the_screen_between_the_reply_and_the_station_stream(
    store: Store, tmp_path: Path
) -> None:
    settings = _settings(store, "kds-order", tmp_path)
    network = GrillLine()

    async def scenario() -> None:
        device = KdsDevice(settings, inbound=network)
        await device.start()

        def on_screen() -> set[str]:
            return {c.ticket_id for c in device.view.cards(device.overlays())}

        try:
            tid, _ = await asyncio.to_thread(store.ticket, [SNAILS])
            await _until(lambda: tid in on_screen(), "the ticket on the screen")
            network.hold = True  # the stream is late: the reply gets in first
            device.command("kds.bump", {"ticket_id": tid, "station": "grill"})
            await _until(lambda: not device.pending and network.held, "the reply and the held stream message")
            assert tid not in on_screen()  # answered, its kds/grill message not in yet: still bumped
            assert len(device.answered) == 1
            network.hold = False
            for topic, payload in network.held:
                device._on_message(topic, payload)  # the late message arrives
            assert not device.answered
            assert tid not in on_screen()
            card = device.view.card(tid)  # the stream's own state, no overlay
            assert card is not None
            assert not card.active

            device.command("kds.bump", {"ticket_id": tid, "station": "grill"})  # nothing left to bump: no message
            await _until(lambda: not device.pending, "the second reply")
            await _until(lambda: not device.answered, "the overlay's hold to run out", timeout=CONFIRM_HOLD_S + 5)
            assert tid not in on_screen()
        finally:
            await device.close()

    asyncio.run(scenario())


def test_a_screen_the_broker_refuses_says_why_and_keeps_trying(store: Store, tmp_path: Path) -> None:
    settings = _settings(store, "kds-wrong", tmp_path)
    settings = KdsSettings(**{**settings.__dict__, "password": "not-the-password"})

    async def scenario() -> None:
        device = KdsDevice(settings)
        await device.start()
        try:
            await _until(lambda: device.mqtt.refused, "the broker's refusal")
            assert not device.broker_connected
            assert not device.view.synced
            cmd_id = device.command("kds.bump", {"ticket_id": "T1", "station": "grill"})
            assert list(device.pending) == [cmd_id]  # kept for when the screen is let in
        finally:
            await device.close()

    asyncio.run(scenario())
    assert "refused" not in (tmp_path / "pending.json").read_text()


def test_a_queue_that_cannot_be_saved_still_keeps_the_bump_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    settings = KdsSettings(
        device_id="kds-disk",
        password="unused",
        stations=("grill",),
        store_id="test-store",
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=blocker / "state",
    )

    async def scenario() -> None:
        device = KdsDevice(settings)
        cmd_id = device.command("kds.bump", {"ticket_id": "T1", "station": "grill"})
        assert list(device.pending) == [cmd_id]
        assert [n.text for n in device.notices] == ["bump queue not saved to disk: Not a directory"]

    asyncio.run(scenario())
