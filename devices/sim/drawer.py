"""Virtual cash drawers: one on a pty (serial), one as an MQTT drawer controller device.

`VirtualSerialDrawer` opens a pseudo-terminal; the hub writes to its `path` like to
`/dev/ttyUSB0` and every byte that arrives pops the drawer (as real serial drawer interfaces do).
`SimDrawerController` is a device of kind `drawer`: it takes `drawer.kick` jobs on
`device/{id}/do`, refuses any past `expires_at` (a drawer never pops late) and answers `device.result`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import tty
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from devices.sim.tablet import SimTablet
from hub.contract.envelopes import DeviceJob, encode_command

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from devices.sim.tablet import Credentials


@dataclass(slots=True)
class VirtualSerialDrawer:
    """A drawer on a pty; `path` is the serial device to configure."""

    opens: list[float] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    path: str = ""
    _master: int = -1
    _slave: int = -1

    def start(self) -> None:
        """Open the pty and start reading (call on the loop that will run it)."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        asyncio.get_running_loop().add_reader(self._master, self._read)

    def stop(self) -> None:
        """Close the pty."""
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1

    def _read(self) -> None:
        try:
            data = os.read(self._master, 1024)
        except OSError:
            return
        if data:
            self.received.extend(data)
            self.opens.append(time.time())


@dataclass
class SimDrawerController:
    """An MQTT drawer controller (device kind `drawer`)."""

    store_id: str
    creds: Credentials
    port: int = 1883
    opened: list[DeviceJob] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    device: SimTablet = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.device = SimTablet(self.store_id, self.creds, port=self.port, kind="drawer")

    def connect(self) -> SimDrawerController:
        """Connect and subscribe to this device's jobs."""
        self.device.connect()
        topic = self.device.topics.device_do(self.creds.device_id)
        self.device.client.message_callback_add(topic, self._on_job)
        self.device.client.subscribe(topic, qos=1)
        return self

    def close(self) -> None:
        """Disconnect."""
        self.device.close()

    def _on_job(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        del userdata
        try:
            job = DeviceJob.model_validate_json(message.payload)
        except ValidationError:
            with self._lock:
                self.refused.append({"reason": "invalid job"})
            return
        ok = job.type == "drawer.kick" and not job.expired(datetime.now(UTC))
        with self._lock:
            if ok:
                self.opened.append(job)
            else:
                self.refused.append({"id": job.id, "reason": "expired" if job.type == "drawer.kick" else job.type})
        result = {"of": job.id, "ok": ok, "detail": "opened" if ok else "refused: expired"}
        topic = self.device.topics.cmd(self.creds.device_id)
        with contextlib.suppress(ValueError, RuntimeError):
            client.publish(topic, encode_command(f"res-{job.id}", "device.result", result), qos=1)
