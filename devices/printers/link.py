"""A conversation with one printer over a transport: status, and a job sent with proof it printed.

`PrinterLink.status()` asks DLE EOT 1, 2 and 4. `PrinterLink.print_job()` writes the job followed by
`GS ( H` with the job's process id and waits for the answer, which the printer sends only after
everything before it has printed. While it waits it polls DLE EOT (answered even when the printer is
offline) so the caller sees "cover open" or "paper end" at once; the job stays in the printer's
buffer and prints when the fault is cleared, so it is never sent a second time.

Printers that never answer GS ( H ("status" confirmation) fall back to DLE EOT before and after:
the job counts as printed once the printer reports online with paper after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from devices.printers.status import (
    ASB_ALL,
    HEALTHY,
    AsbFrame,
    EotReply,
    PrinterStatus,
    ProcessIdAnswer,
    ResponseReader,
    apply_eot,
    process_id_request,
    status_request,
)
from devices.printers.transport import ConnectionLost, Transport, TransportError

if TYPE_CHECKING:
    from collections.abc import Callable

Confirmation = Literal["process_id", "status"]


class NoAnswer(TransportError):  # noqa: N818 - a leaf of the transport error tree
    """The printer accepted the connection but did not answer a status request."""


class Unconfirmed(TransportError):  # noqa: N818
    """The printer looks healthy but never confirmed the job: whether it printed is unknown."""


@dataclass(slots=True)
class LinkTimings:
    """How long to wait for what (shrunk in tests)."""

    status_timeout: float = 1.0
    poll_interval: float = 0.5
    confirm_timeout: float = 15.0
    """With the printer healthy, how long a job may take to print before it is in doubt."""


@dataclass(slots=True)
class PrinterLink:
    """One open connection to a printer."""

    transport: Transport
    timings: LinkTimings = field(default_factory=LinkTimings)
    on_status: Callable[[PrinterStatus], None] | None = None
    last: PrinterStatus = HEALTHY
    _reader: ResponseReader = field(default_factory=ResponseReader)
    _answers: list[bytes] = field(default_factory=list)
    _replies: list[int] = field(default_factory=list)

    async def status(self) -> PrinterStatus:
        """DLE EOT 1, 2 and 4, folded into one status."""
        status = self.last
        for n in (1, 2, 4):
            await self.transport.write(status_request(n))
            byte = await self._reply()
            status = apply_eot(status, n, byte)
        self.last = status
        if self.on_status is not None:
            self.on_status(status)  # always: the caller compares with what it knew before this link
        return status

    async def enable_asb(self) -> None:
        """Ask the printer to push status changes (ASB) on this connection."""
        await self.transport.write(ASB_ALL)

    async def print_job(self, data: bytes, pid: bytes, confirmation: Confirmation = "process_id") -> None:
        """Send a job and return only once the printer confirmed it printed.

        Raises ConnectionLost (the job may be partly printed: reprint it with a banner), Unconfirmed,
        or NoAnswer.
        """
        self._answers.clear()
        if confirmation == "status":
            await self.transport.write(data)
            await self._wait_status_after_job()
            return
        await self.transport.write(data + process_id_request(pid))
        await self._wait_answer(pid)

    async def _wait_answer(self, pid: bytes) -> None:
        loop = asyncio.get_running_loop()
        healthy_since = loop.time()
        while True:
            await self._pump(self.timings.poll_interval)
            if pid in self._answers:
                return
            status = await self.status()
            now = loop.time()
            if not status.can_print:
                healthy_since = now  # held by a fault: the job waits in the printer's buffer
            elif now - healthy_since > self.timings.confirm_timeout:
                raise Unconfirmed("the printer never confirmed the job")

    async def _wait_status_after_job(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timings.confirm_timeout
        while True:
            status = await self.status()
            if status.can_print:
                return
            if loop.time() > deadline:
                raise Unconfirmed(f"the printer reports {status.fault} after the job")
            await asyncio.sleep(self.timings.poll_interval)

    async def _reply(self) -> int:
        """The next DLE EOT reply byte (ASB frames and answers seen on the way are kept)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timings.status_timeout
        while not self._replies:
            left = deadline - loop.time()
            if left <= 0:
                raise NoAnswer("the printer did not answer DLE EOT")
            await self._pump(left, stop_on_data=True)
        return self._replies.pop(0)

    async def _pump(self, timeout: float, *, stop_on_data: bool = False) -> None:  # noqa: ASYNC109 - a read window
        """Read for up to `timeout`, sorting what arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return
            data = await self.transport.read(left)
            if not data:
                return
            for response in self._reader.feed(data):
                if isinstance(response, EotReply):
                    self._replies.append(response.byte)
                elif isinstance(response, ProcessIdAnswer):
                    self._answers.append(response.pid)
                elif isinstance(response, AsbFrame):
                    self._note(response.status)
            if stop_on_data and self._replies:
                return
            if self._answers:
                return

    def _note(self, status: PrinterStatus) -> None:
        if status != self.last:
            self.last = status
            if self.on_status is not None:
                self.on_status(status)


__all__ = ["ConnectionLost", "LinkTimings", "NoAnswer", "PrinterLink", "Unconfirmed"]
