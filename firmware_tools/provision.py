"""Provision a microcontroller device over USB serial with the line protocol (firmware_tools/protocol.py).

`provision()` greets the device, stages every setting, reads each one back, and only then asks the
device to commit them in one step: a device that stops answering half way keeps its previous
configuration. Every failure is a `ProvisionError` whose message says what happened and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self

import serial  # type: ignore[import-untyped, unused-ignore]

from firmware_tools import protocol
from firmware_tools.protocol import DEVICE, HOST, SECRET_SETTINGS, Frame, FrameError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_BAUD: Final = 115200


class ProvisionError(Exception):
    """Provisioning failed; the message is meant for the technician."""


class NoAnswerError(ProvisionError):
    """The device did not answer a frame, even after the retries."""


@dataclass(frozen=True)
class LinkSettings:
    """Serial link timing: how long to wait for each answer and how often to resend."""

    baudrate: int = DEFAULT_BAUD
    answer_timeout_s: float = 1.0
    retries: int = 3


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself in its HELLO answer."""

    kind: str
    fw: str
    proto: int
    serial: str


@dataclass
class ProvisionReport:
    """What provisioning did."""

    port: str
    device: DeviceInfo
    written: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    committed: bool = False
    rebooted: bool = False
    ca_sha256: str | None = None
    """The SHA-256 of the store CA certificate (DER) handed to the device, if any."""
    requests_sent: int = 0
    resends: int = 0


class SerialLink:
    """One open serial port speaking the line protocol, with retries and sequence numbers."""

    def __init__(self, port: str, settings: LinkSettings | None = None) -> None:
        self.port = port
        self.settings = settings or LinkSettings()
        self.resends = 0
        self.requests = 0
        self._seq = 0
        self._serial = _open(port, self.settings)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the port."""
        self._serial.close()

    def request(self, verb: str, *args: str, retries: int | None = None) -> Frame:
        """Send one frame and return the device's matching answer (OK or ERR other than `crc`)."""
        retries = self.settings.retries if retries is None else retries
        self._seq = (self._seq + 1) % 256
        self.requests += 1
        frame = Frame(HOST, self._seq, verb, args)
        wire = frame.encode()
        self._serial.reset_input_buffer()
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
            try:
                self._serial.write(wire)
                self._serial.flush()
            except serial.SerialException as exc:
                raise ProvisionError(f"{self.port}: writing failed: {exc} (was the device unplugged?)") from exc
            answer = self._await_answer(self._seq)
            if answer is not None and not (answer.verb == "ERR" and answer.args[:1] == ("crc",)):
                return answer
        raise NoAnswerError(
            f"{self.port}: no answer to {verb} after {retries + 1} attempts "
            f"({self.settings.answer_timeout_s:g} s each)"
        )

    def _await_answer(self, seq: int) -> Frame | None:
        """The answer for `seq`, or None on a timeout or a garbled line (the caller resends)."""
        deadline = time.monotonic() + self.settings.answer_timeout_s
        buffer = b""
        while (remaining := deadline - time.monotonic()) > 0:
            self._serial.timeout = remaining
            try:
                chunk = self._serial.readline()
            except serial.SerialException as exc:
                raise ProvisionError(f"{self.port}: reading failed: {exc} (was the device unplugged?)") from exc
            if not chunk:
                continue
            buffer += chunk
            if not buffer.endswith(b"\n"):
                continue  # a partial line at the timeout; keep reading until the deadline
            line, buffer = buffer, b""
            try:
                frame = protocol.decode(line)
            except FrameError:
                return None  # garbled on the wire: resend
            if frame.direction == DEVICE and frame.seq in (seq, None):
                return frame
            # An answer to an earlier frame (a late duplicate): ignore it and keep waiting.
        return None


def hello(link: SerialLink) -> DeviceInfo:
    """Greet the device; ProvisionError if nothing that speaks the protocol answers."""
    try:
        answer = link.request("HELLO")
    except NoAnswerError as exc:
        raise ProvisionError(
            f"{link.port}: no StoreHub device answered (wrong port? is the device powered and out of its "
            "bootloader? baud rate 115200?)"
        ) from exc
    if answer.verb != "OK":
        raise ProvisionError(f"{link.port}: the device refused HELLO: {' '.join(answer.args)}")
    fields = protocol.parse_fields(answer.args)
    try:
        info = DeviceInfo(fields["kind"], fields["fw"], int(fields["proto"]), fields.get("serial", ""))
    except (KeyError, ValueError) as exc:
        raise ProvisionError(f"{link.port}: the device's HELLO answer lacks kind/fw/proto: {answer.args}") from exc
    if info.proto != protocol.PROTOCOL_VERSION:
        raise ProvisionError(f"{link.port}: the device speaks protocol {info.proto}, this tool speaks 1")
    return info


def provision(
    port: str, settings: Mapping[str, str], *, link_settings: LinkSettings | None = None, reboot: bool = True
) -> ProvisionReport:
    """Write `settings` to the device on `port`, verify them, commit, and (by default) reboot it."""
    problems = [p for key, value in settings.items() if (p := protocol.check_setting(key, value))]
    missing = [key for key in protocol.SETTINGS if key not in settings]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    try:
        protocol.join_ca(settings)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ProvisionError("; ".join(problems))
    ordered = _ordered(settings)
    with SerialLink(port, link_settings) as link:
        report = ProvisionReport(port, hello(link), ca_sha256=settings.get("ca_sha256"))
        try:
            for key in ordered:
                _expect_ok(link.request("SET", key, settings[key]), f"SET {key}")
                report.written.append(key)
            for key in ordered:
                answer = _expect_ok(link.request("GET", key), f"GET {key}")
                got = answer.args[0] if answer.args else ""
                _check_readback(key, settings[key], got)
                report.verified.append(key)
            _expect_ok(link.request("COMMIT"), "COMMIT")
            report.committed = True
        except ProvisionError as exc:
            _abort_quietly(link)
            done = f"{len(report.written)} of {len(ordered)} settings written, {len(report.verified)} verified"
            raise ProvisionError(
                f"{exc}. {done}; nothing was committed: the device keeps its previous configuration. "
                "Check the cable and run provision again."
            ) from exc
        if reboot:
            _expect_ok(link.request("REBOOT"), "REBOOT")
            report.rebooted = True
        report.requests_sent = link.requests
        report.resends = link.resends
    return report


def _ordered(settings: Mapping[str, str]) -> list[str]:
    """Required settings, `ota_key`, the CA chunks in order, and `ca_sha256` last (the device checks it at COMMIT)."""
    chunks = sorted((k for k in settings if protocol.is_ca_chunk(k)), key=lambda k: int(k.rsplit(".", 1)[1]))
    head = [k for k in (*protocol.SETTINGS, *protocol.OPTIONAL_SETTINGS) if k in settings and k != "ca_sha256"]
    return head + chunks + (["ca_sha256"] if "ca_sha256" in settings else [])


def _check_readback(key: str, written: str, got: str) -> None:
    expected = "sha256:" + hashlib.sha256(written.encode("utf-8")).hexdigest() if key in SECRET_SETTINGS else written
    if got != expected:
        shown = "(secret)" if key in SECRET_SETTINGS else repr(got)
        raise ProvisionError(f"read-back of {key} gave {shown}, not what was written")


def _expect_ok(answer: Frame, what: str) -> Frame:
    if answer.verb != "OK":
        code, *message = answer.args or ("error",)
        raise ProvisionError(f"the device refused {what}: {code}: {' '.join(message)}")
    return answer


def _abort_quietly(link: SerialLink) -> None:
    # The device may be gone; it never committed, so it keeps its previous settings anyway.
    with contextlib.suppress(ProvisionError):
        link.request("ABORT", retries=0)


def _open(port: str, settings: LinkSettings) -> serial.Serial:
    try:
        return serial.Serial(
            port, settings.baudrate, timeout=settings.answer_timeout_s, write_timeout=5, exclusive=True
        )
    except serial.SerialException as exc:
        cause = exc.__cause__ or exc.__context__
        code = getattr(cause, "errno", None) if cause is not None else getattr(exc, "errno", None)
        if code == errno.ENOENT or "No such file" in str(exc):
            raise ProvisionError(
                f"{port}: no such serial port (is the device plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)"
            ) from exc
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in str(exc):
            raise ProvisionError(f"{port}: permission denied (add yourself to the dialout group)") from exc
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "lock" in str(exc).lower():
            raise ProvisionError(
                f"{port}: the port is busy: another program has it open (a serial console, ModemManager, "
                "another storehub-fw?)"
            ) from exc
        if code == errno.ENOTTY or "Inappropriate ioctl" in str(exc):
            raise ProvisionError(f"{port}: not a serial port") from exc
        raise ProvisionError(f"{port}: cannot open: {exc}") from exc
