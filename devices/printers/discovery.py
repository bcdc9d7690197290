"""Printers found by zeroconf: `_pdl-datastream._tcp` (raw 9100), `_printer._tcp` (LPD), `_ipp._tcp`.

`PrinterBrowser` runs python-zeroconf's `AsyncServiceBrowser` on the configured interfaces (IPv4).
Its handler only schedules `AsyncServiceInfo.async_request` (a blocking request would raise on
the loop). A printer that stops answering is dropped only after `misses` failed re-checks in a
row, so a printer that skips one announcement does not flicker out of the manager's list.
Many receipt printers never advertise: the manager adds those by address (`[[printers]]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("storehub.discovery")

PRINTER_TYPES: Final = ("_pdl-datastream._tcp.local.", "_printer._tcp.local.", "_ipp._tcp.local.")
TXT_KEYS: Final = ("ty", "product", "usb_MFG", "usb_MDL", "note")


@dataclass(slots=True)
class Found:
    """A printer seen on the network."""

    name: str
    service_type: str
    host: str
    port: int
    txt: dict[str, str] = field(default_factory=dict)
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    misses: int = 0

    @property
    def address(self) -> str:
        """`tcp://host:port` for raw printers (what `[[printers]].address` takes)."""
        return f"tcp://{self.host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "name": self.name.removesuffix("." + self.service_type),
            "service": self.service_type.removesuffix(".local."),
            "host": self.host,
            "port": self.port,
            "address": self.address if self.service_type.startswith("_pdl-datastream") else None,
            "txt": self.txt,
        }


class PrinterBrowser:
    """Continuous discovery; `found` holds what is on the network now."""

    def __init__(
        self,
        interfaces: list[str],
        *,
        misses: int = 3,
        recheck_s: float = 30.0,
        request_ms: int = 3000,
        on_change: Callable[[PrinterBrowser], None] | None = None,
    ) -> None:
        self.request_ms = request_ms
        self.interfaces = interfaces
        self.max_misses = misses
        self.recheck_s = recheck_s
        self.on_change = on_change
        self.found: dict[str, Found] = {}
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recheck: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start browsing."""
        self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, list(PRINTER_TYPES), handlers=[self._on_service])
        self._recheck = asyncio.create_task(self._recheck_loop(), name="printer-discovery")

    async def stop(self) -> None:
        """Stop browsing and close zeroconf."""
        for task in [self._recheck, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()

    def _on_service(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """Runs on the loop: schedule, never block."""
        del zeroconf
        if state_change is ServiceStateChange.Removed:
            self._spawn(self._check(service_type, name))
        else:
            self._spawn(self._resolve(service_type, name))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> bool:
        if self._zc is None:
            return False
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, self.request_ms):
            return False
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses or info.port is None:
            return False
        txt = {}
        for key, value in (info.properties or {}).items():
            k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            if k in TXT_KEYS and value is not None:
                txt[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        known = self.found.get(name)
        if known is None:
            self.found[name] = Found(name, service_type, addresses[0], info.port, txt)
            log.info("printer discovered: %s at %s:%d", name, addresses[0], info.port)
            self._changed()
        else:
            changed = (known.host, known.port, known.txt) != (addresses[0], info.port, txt)
            known.host, known.port, known.txt = addresses[0], info.port, txt
            known.last_seen = time.time()
            known.misses = 0
            if changed:
                self._changed()
        return True

    async def _check(self, service_type: str, name: str) -> None:
        """A goodbye or a missed re-check: one miss; gone only after `max_misses` in a row."""
        if await self._resolve(service_type, name):
            return
        known = self.found.get(name)
        if known is None:
            return
        known.misses += 1
        if known.misses >= self.max_misses:
            del self.found[name]
            log.info("printer gone: %s", name)
            self._changed()

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_s)
            for found in list(self.found.values()):
                await self._check(found.service_type, found.name)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


async def browse_once(interfaces: list[str], timeout: float) -> list[Found]:  # noqa: ASYNC109 - a listening window
    """Browse for `timeout` seconds and return what was found."""
    browser = PrinterBrowser(interfaces)
    await browser.start()
    try:
        await asyncio.sleep(timeout)
    finally:
        await browser.stop()
    return sorted(browser.found.values(), key=lambda f: f.name)

