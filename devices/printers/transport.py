"""Byte pipes to a printer: TCP 9100 (connect per job, short timeouts) and serial (pyserial).

Every lower-library error is translated here into the `TransportError` family:

    TransportError
    ├── Unreachable     could not connect (refused, reset, timed out, no such device)
    └── ConnectionLost  the pipe broke after it was open (RST, EOF, write error)

USB printers appear as serial devices (`/dev/usb/lp0` is written like a file; USB-serial
adapters as `/dev/ttyUSB0`), so `SerialTransport` covers them; python-escpos' libusb class is not
used because it needs exclusive access the hub cannot take over from the kernel's usblp driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import serial  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from types import TracebackType


class TransportError(Exception):
    """The printer's pipe failed."""


class Unreachable(TransportError):  # noqa: N818 - the tree reads better without "Error" on every leaf
    """Could not connect to the printer."""


class ConnectionLost(TransportError):  # noqa: N818
    """The connection broke after it was open."""


class Transport(Protocol):
    """A byte pipe to one printer."""

    async def open(self) -> None:
        """Connect (raises Unreachable)."""
        ...

    async def write(self, data: bytes) -> None:
        """Write everything (raises ConnectionLost)."""
        ...

    async def read(self, timeout: float) -> bytes:  # noqa: ASYNC109 - a read window, not a deadline
        """Bytes the printer sent, b"" when none came within `timeout` (raises ConnectionLost on EOF)."""
        ...

    async def close(self) -> None:
        """Close; never raises."""
        ...


@dataclass(slots=True)
class TcpTransport:
    """A raw TCP connection to port 9100, opened per job."""

    host: str
    port: int = 9100
    connect_timeout: float = 3.0
    write_timeout: float = 10.0
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect with a short timeout, TCP_NODELAY on."""
        try:
            async with asyncio.timeout(self.connect_timeout):  # not wait_for: it can lose a cancel on 3.11
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"{self.host}:{self.port}: {exc or 'connect timed out'}") from exc
        sock = self._writer.get_extra_info("socket") if self._writer is not None else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def write(self, data: bytes) -> None:
        """Write and drain (the printer's buffer may push back)."""
        if self._writer is None:
            raise ConnectionLost("not connected")
        try:
            self._writer.write(data)
            async with asyncio.timeout(self.write_timeout):
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            raise ConnectionLost(f"{self.host}:{self.port}: write failed: {exc or 'timed out'}") from exc

    async def read(self, timeout: float) -> bytes:  # noqa: ASYNC109 - a read window, not a deadline
        """Whatever arrives within `timeout`."""
        if self._reader is None:
            raise ConnectionLost("not connected")
        try:
            async with asyncio.timeout(timeout):
                data = await self._reader.read(256)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise ConnectionLost(f"{self.host}:{self.port}: {exc}") from exc
        if not data:
            raise ConnectionLost(f"{self.host}:{self.port}: the printer closed the connection")
        return data

    async def close(self) -> None:
        """Close the socket."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def __aenter__(self) -> TcpTransport:  # noqa: PYI034 - slots dataclass, Self reads no better
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@dataclass(slots=True)
class SerialTransport:
    """A serial (or USB-serial) printer through pyserial, driven from a worker thread."""

    device: str
    baudrate: int = 9600
    _port: serial.Serial | None = None

    async def open(self) -> None:
        """Open the port."""
        try:
            self._port = await asyncio.to_thread(
                serial.Serial, self.device, self.baudrate, timeout=0, write_timeout=10, rtscts=False
            )
        except (serial.SerialException, OSError) as exc:
            raise Unreachable(f"{self.device}: {exc}") from exc

    async def write(self, data: bytes) -> None:
        """Write everything."""
        port = self._port
        if port is None:
            raise ConnectionLost("not open")
        try:
            await asyncio.to_thread(port.write, data)
            await asyncio.to_thread(port.flush)
        except (serial.SerialException, OSError) as exc:
            raise ConnectionLost(f"{self.device}: {exc}") from exc

    async def read(self, timeout: float) -> bytes:  # noqa: ASYNC109 - a read window, not a deadline
        """Poll for bytes for up to `timeout` seconds."""
        port = self._port
        if port is None:
            raise ConnectionLost("not open")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                data: bytes = await asyncio.to_thread(port.read, 256)
            except (serial.SerialException, OSError) as exc:
                raise ConnectionLost(f"{self.device}: {exc}") from exc
            if data or loop.time() >= deadline:
                return data
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close the port."""
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                await asyncio.to_thread(port.close)
