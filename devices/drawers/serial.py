"""A cash drawer on its own serial line (pyserial): most pop on any byte at the right baud rate.

The kick is one short write with a short timeout, done at once or not at all: a drawer never
pops late (`expires_at` is checked just before the write).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import serial  # type: ignore[import-untyped]

KICK_BYTES = b"\x07"
"""BEL: the byte serial drawer interfaces (and Star printers) open on."""


@dataclass(slots=True)
class SerialDrawer:
    """A drawer on a serial port."""

    port: str
    baudrate: int = 9600

    async def kick(self, expires_at: float) -> tuple[bool, str]:
        """Pop the drawer unless `time.monotonic()` is already past `expires_at`."""
        if time.monotonic() >= expires_at:
            return False, "expired before it could be sent"
        try:
            await asyncio.wait_for(asyncio.to_thread(self._write), max(0.1, expires_at - time.monotonic()))
        except TimeoutError:
            return False, f"{self.port}: the port did not take the kick in time"
        except (serial.SerialException, OSError) as exc:
            return False, f"{self.port}: {exc}"
        return True, "kicked"

    def _write(self) -> None:
        with serial.Serial(self.port, self.baudrate, timeout=1, write_timeout=1) as port:
            port.write(KICK_BYTES)
            port.flush()
