"""A simulated microcontroller: the serial line protocol on a pty, and an MQTT device after reboot.

The test peer and demo device for provisioning and OTA. Its serial side answers on a real
pseudo-terminal (so pyserial, timeouts and locking behave as with a USB adapter), keeps committed
settings in a "flash" JSON file, and can play faults: drop frames, corrupt answers, or stop
answering after N frames. After `REBOOT` with committed settings it connects to the broker as its
device id (`SimMqttDevice`), publishes its birth with `fw` and `caps: ["ota"]`, and takes
`ota.offer` jobs on `device/{id}/do`: it downloads the image, checks the signed manifest with its
trusted key, reports progress in its retained status, answers `device.result`, and "reboots" into
the new version. It refuses tampered images and downgrades like a real bootloader must.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import socket
import ssl
import threading
import tty
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Self

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_tools import protocol
from firmware_tools.ota import Manifest, OtaRefusedError, check_offer
from firmware_tools.protocol import DEVICE, HOST, SECRET_SETTINGS, Frame, FrameError
from hub.contract.envelopes import DeviceJob, decode, encode_command
from hub.contract.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger("storehub.fw.sim")

_READ_CHUNK: Final = 4096
_POLL_S: Final = 0.05


@dataclass
class Faults:
    """Faults the simulated device plays on its serial side."""

    drop_frames: int = 0
    """Ignore the next N frames completely (as if lost on the wire)."""
    corrupt_answers: int = 0
    """Send the next N answers with a wrong checksum."""
    stop_after_requests: int | None = None
    """After this many requests (frames with a new sequence number), never answer again (a hung device)."""
    fail_install: bool = False
    """OTA: fail the install step after a good download (a flash write error)."""


class SimMicrocontroller:
    """A drawer controller (or any kind) on a pty; `port` is the path to hand to pyserial."""

    def __init__(self, flash: Path, *, kind: str = "drawer", fw: str = "1.0.0", serial_no: str = "SIM-0001") -> None:
        self.flash = flash
        self.kind = kind
        self.fw = fw
        self.serial_no = serial_no
        self.faults = Faults()
        self.frames_received = 0
        self.requests_received = 0
        self._hung = False
        self._last_seen_seq: bytes | None = None
        self.reboots = 0
        self.staged: dict[str, str] = {}
        self.on_reboot: Callable[[SimMicrocontroller], None] | None = None
        self._last: tuple[int, bytes] | None = None
        self._stop = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._serve, name=f"sim-serial-{serial_no}", daemon=True)
        self._thread.start()

    # -- flash -------------------------------------------------------------------------------
    @property
    def committed(self) -> dict[str, str]:
        """The settings in flash (what survives a reboot)."""
        if not self.flash.exists():
            return {}
        data: dict[str, str] = json.loads(self.flash.read_text(encoding="utf-8"))["settings"]
        return data

    @property
    def ca_pem(self) -> str | None:
        """The store CA certificate in flash (PEM), if the device was handed one."""
        return ca_pem(self.committed)

    def _write_flash(self, settings: dict[str, str]) -> None:
        tmp = self.flash.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": settings, "fw": self.fw}), encoding="utf-8")
        tmp.replace(self.flash)

    def close(self) -> None:
        """Stop answering and release the pty."""
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serial side -------------------------------------------------------------------------
    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], _POLL_S)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, _READ_CHUNK)
            except OSError:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._on_line(line + b"\n")
            if len(buffer) > protocol.MAX_FRAME:
                buffer = b""  # noise without a line end: drop it

    def _on_line(self, line: bytes) -> None:
        self.frames_received += 1
        self._count_request(line)
        if self._hung:
            return
        if self.faults.drop_frames > 0:
            self.faults.drop_frames -= 1
            return
        try:
            frame = protocol.decode(line)
        except FrameError:
            self._send(Frame(DEVICE, None, "ERR", ("crc", "bad frame or checksum")).encode())
            return
        if frame.direction != HOST or frame.seq is None:
            self._send(Frame(DEVICE, frame.seq, "ERR", ("bad_frame", "not a host frame")).encode())
            return
        if self._last is not None and self._last[0] == frame.seq:
            self._send(self._last[1])  # a resend: repeat the answer, do not act twice
            return
        verb, *args = self._handle(frame)
        answer = Frame(DEVICE, frame.seq, verb, tuple(args)).encode()
        self._last = (frame.seq, answer)
        rebooting = frame.verb == "REBOOT" and verb == "OK"
        if rebooting:
            self.reboots += 1  # counted before answering: whoever reads the answer sees it
        self._send(answer)
        if rebooting and self.on_reboot is not None:
            self.on_reboot(self)

    def _count_request(self, line: bytes) -> None:
        """Count requests by sequence number (a resend is not a new request) and hang when told to."""
        seq = line[1:3]
        if seq != self._last_seen_seq:
            self._last_seen_seq = seq
            self.requests_received += 1
        limit = self.faults.stop_after_requests
        if limit is not None and self.requests_received > limit:
            self._hung = True

    def _send(self, answer: bytes) -> None:
        if self.faults.corrupt_answers > 0:
            self.faults.corrupt_answers -= 1
            answer = answer[:-4] + (b"0000" if answer[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
            answer = answer[: answer.rindex(b"*") + 5] + b"\r\n"
        with contextlib.suppress(OSError):
            os.write(self._master, answer)

    def _handle(self, frame: Frame) -> list[str]:
        args = frame.args
        if frame.verb == "HELLO":
            return [
                "OK",
                f"kind={self.kind}",
                f"fw={self.fw}",
                f"proto={protocol.PROTOCOL_VERSION}",
                f"serial={self.serial_no}",
            ]
        if frame.verb == "SET":
            if len(args) != 2:  # noqa: PLR2004 - key and value
                return ["ERR", "bad_frame", "SET needs a key and a value"]
            problem = protocol.check_setting(args[0], args[1])
            if problem is not None:
                return ["ERR", "bad_key" if problem.startswith("unknown") else "bad_value", problem]
            self.staged[args[0]] = args[1]
            return ["OK"]
        if frame.verb == "GET":
            if len(args) != 1:
                return ["ERR", "bad_frame", "GET needs a key"]
            value = self.staged.get(args[0], self.committed.get(args[0]))
            if value is None:
                return ["ERR", "bad_key", f"{args[0]} is not set"]
            if args[0] in SECRET_SETTINGS:
                value = "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
            return ["OK", value]
        if frame.verb == "COMMIT":
            if not self.staged:
                return ["ERR", "nothing_staged", "nothing to commit"]
            settings = self.committed | self.staged
            if any(protocol.is_ca_chunk(k) or k == "ca_sha256" for k in self.staged):
                # A new CA replaces the old one whole: no chunk of an older, longer certificate survives.
                settings = {k: v for k, v in self.committed.items() if not protocol.is_ca_chunk(k)} | self.staged
                try:
                    protocol.join_ca(settings)
                except ValueError as exc:
                    return ["ERR", "bad_value", str(exc)]
            self._write_flash(settings)
            self.staged = {}
            return ["OK"]
        if frame.verb == "ABORT":
            self.staged = {}
            return ["OK"]
        if frame.verb == "REBOOT":
            self.staged = {}
            return ["OK"]
        return ["ERR", "unknown_verb", frame.verb]


def ca_pem(settings: dict[str, str]) -> str | None:
    """The CA certificate carried by committed settings, as PEM (what a TLS client loads)."""
    der = protocol.join_ca(settings)
    return None if der is None else ssl.DER_cert_to_PEM_cert(der)


class SimMqttDevice:
    """The network side of a provisioned simulated microcontroller: presence, jobs and OTA."""

    def __init__(
        self, settings: dict[str, str], *, kind: str, fw: str, trusted_key: str, faults: Faults | None = None
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.fw = fw
        self.trusted_key = trusted_key
        self.faults = faults or Faults()
        self.device_id = settings["device_id"]
        self.topics = Topics(settings["store"])
        self.sess = 0
        self.ota: dict[str, Any] | None = None
        self.results: list[dict[str, Any]] = []
        self.installed = threading.Event()
        self._lock = threading.Lock()
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5, reconnect_on_failure=True
        )
        client.username_pw_set(self.settings["mqtt_user"], self.settings["mqtt_pass"])
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    def connect(self, timeout: float = 10.0) -> SimMqttDevice:
        """Connect (with a Will) and wait for the session."""
        self.sess += 1
        will = json.dumps({"state": "offline", "sess": self.sess}).encode()
        self._client.will_set(self.topics.device_status(self.device_id), will, qos=1, retain=True)
        connected = threading.Event()
        self._connected = connected
        self._client.connect(self.settings["hub_host"], int(self.settings["hub_port"]), keepalive=30)
        self._client.loop_start()
        if not connected.wait(timeout):
            self._client.loop_stop()
            raise TimeoutError(f"{self.device_id}: no connection to the broker")
        return self

    def close(self) -> None:
        """Publish `offline` and disconnect cleanly."""
        info = self._client.publish(
            self.topics.device_status(self.device_id),
            json.dumps({"state": "offline", "sess": self.sess}),
            qos=1,
            retain=True,
        )
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        with contextlib.suppress(OSError, AttributeError):
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        client.subscribe(self.topics.device_do(self.device_id), qos=1)
        self._publish_status()
        self._connected.set()

    def _publish_status(self) -> None:
        status: dict[str, Any] = {
            "state": "online",
            "sess": self.sess,
            "kind": self.kind,
            "fw": self.fw,
            "caps": ["ota"],
        }
        if self.ota is not None:
            status["ota"] = self.ota
        self._client.publish(self.topics.device_status(self.device_id), json.dumps(status), qos=1, retain=True)

    def _progress(self, state: str, **extra: Any) -> None:
        self.ota = {"state": state, **extra}
        self._publish_status()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            job = decode(bytes(message.payload), DeviceJob)
        except Exception:  # noqa: BLE001 - a device never crashes on a bad job
            log.warning("%s: unreadable job dropped", self.device_id)
            return
        if job.expired(datetime.now(UTC)):
            self._result(job.id, ok=False, detail="expired")
            return
        if job.type == "ota.offer":
            # Downloads take time: never on paho's network thread.
            threading.Thread(target=self._install, args=(job,), name=f"ota-{self.device_id}", daemon=True).start()
        else:
            self._result(job.id, ok=True)

    def _install(self, job: DeviceJob) -> None:
        with self._lock:
            try:
                manifest = Manifest.model_validate(job.body["manifest"])
                url = str(job.body["url"])
                self._progress("downloading", version=manifest.version, progress=0)
                response = httpx.get(url, timeout=30, verify=self._tls_context())
                response.raise_for_status()
                image = response.content
                self._progress("verifying", version=manifest.version, progress=100)
                check_offer(manifest, image, trusted_key=self.trusted_key, kind=self.kind, current=self.fw)
                self._progress("installing", version=manifest.version)
                self._flash_image()
            except OtaRefusedError as exc:
                self._progress("failed", version=job.body.get("manifest", {}).get("version"), error=exc.code)
                self._result(job.id, ok=False, detail=f"{exc.code}: {exc}")
                return
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self._progress("failed", error="download_failed")
                self._result(job.id, ok=False, detail=f"download_failed: {exc}")
                return
            self._result(job.id, ok=True, detail=f"installed {manifest.version}")
            self._reboot_into(manifest.version)

    def _tls_context(self) -> ssl.SSLContext | bool:
        """HTTPS downloads trust the store CA the device was provisioned with (and nothing else)."""
        pem = ca_pem(self.settings)
        return ssl.create_default_context(cadata=pem) if pem is not None else True

    def _flash_image(self) -> None:
        if self.faults.fail_install:
            raise OtaRefusedError("install_failed", "flash write failed at block 17")

    def _reboot_into(self, version: str) -> None:
        self.close()
        self.fw = version
        self.ota = {"state": "done", "version": version}
        self._client = self._new_client()
        self.connect()
        self.installed.set()

    def _result(self, of: str, *, ok: bool, detail: str | None = None) -> None:
        body: dict[str, Any] = {"of": of, "ok": ok} | ({"detail": detail} if detail else {})
        self.results.append(body)
        payload = encode_command(f"r-{of}", "device.result", body)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = 30
        self._client.publish(self.topics.cmd(self.device_id), payload, qos=1, properties=props)
