"""A virtual ESC/POS network printer: a real TCP server on 127.0.0.1 that prints onto a `Paper`.

It decodes what it receives (devices.escpos), answers real-time status (DLE EOT 1-4) at once,
pushes ASB frames when asked to, answers `GS ( H` only after everything before it has printed, and
plays the faults of a real shop printer (docs/printers.md):

    power_off()/power_on()     offline: connections refused (or reset, `refuse="reset"`)
    power_loss_after(k)        the power dies after k more bytes: what was decoded is on paper,
                               the rest of the job is gone, connections drop; off until power_on()
    paper_end_after(n)         the paper runs out after n more printed lines; load_paper() refills
    open_cover()/close_cover() printing holds while the cover is open
    near_end(), cutter_error() status bits
    single_session             a second connection while one is open is reset (RST)
    idle_timeout               a connection idle that long is closed by the printer
    bytes_per_second           slow printing (9600 baud ≈ 960 bytes/s)
    process_id = False         a clone that never answers GS ( H

Optionally advertised over zeroconf (`_pdl-datastream._tcp` on 127.0.0.1) for discovery tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from devices.escpos.decoder import (
    AsbEnable,
    Decoder,
    DrawerKick,
    Newline,
    Op,
    ProcessIdRequest,
    Recover,
    StatusRequest,
)
from devices.escpos.paper import Paper
from devices.printers.status import PrinterStatus, encode_asb, encode_eot

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

log = logging.getLogger("storehub.sim.printer")


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    asb: int = 0
    last_asb: bytes = b""


@dataclass(slots=True)
class VirtualPrinter:
    """One virtual printer; `await start()` then connect to `port`."""

    name: str = "virtual"
    host: str = "127.0.0.1"
    port: int = 0
    paper_mm: int = 80
    single_session: bool = False
    idle_timeout: float | None = None
    bytes_per_second: float | None = None
    process_id: bool = True
    refuse: Literal["refuse", "reset"] = "refuse"
    advertise: bool = False
    paper: Paper = field(default_factory=Paper)
    status: PrinterStatus = field(default_factory=PrinterStatus)
    received: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None
    _conns: list[_Conn] = field(default_factory=list)
    _decoder: Decoder = field(default_factory=Decoder)
    _pending: deque[tuple[Op, _Conn]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _printer_task: asyncio.Task[None] | None = None
    _powered: bool = True
    _power_loss_after: int | None = None
    _paper_end_after: int | None = None
    _zeroconf: AsyncZeroconf | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _advertiser: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on host:port (a free port when 0) and start printing."""
        self.paper.width_dots = 384 if self.paper_mm == 58 else 576  # noqa: PLR2004
        await self._listen()
        self._printer_task = asyncio.create_task(self._print_loop(), name=f"sim-printer-{self.name}")
        if self.advertise:  # in the background: probing for a unique name must not hold up a start
            self._advertiser = asyncio.create_task(self._advertise(), name=f"sim-printer-{self.name}-mdns")

    async def stop(self) -> None:
        """Stop everything (the paper stays readable)."""
        self._powered = False
        if self._advertiser is not None:
            self._advertiser.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._advertiser
            self._advertiser = None
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
            self._zeroconf = None
        await self._unlisten()
        await asyncio.sleep(0.05)  # connections accepted but not yet handled see the power is off
        self._drop_connections()
        for task in [self._printer_task, *self._handlers]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._printer_task = None

    @property
    def address(self) -> tuple[str, int]:
        """Where to connect."""
        return self.host, self.port

    # -- faults -------------------------------------------------------------------------------
    async def power_off(self) -> None:
        """Switch off: the buffer is lost, connections drop, new ones are refused."""
        self._powered = False
        self._pending.clear()
        self._decoder = Decoder()
        self._drop_connections()
        if self.refuse == "refuse":
            await self._unlisten()
        self.status = replace(self.status, online=False)

    async def power_on(self) -> None:
        """Switch on again (same port)."""
        self._powered = True
        self._power_loss_after = None
        self.status = replace(self.status, online=True)
        if self._server is None:
            await self._listen()
        self._changed()

    def power_loss_after(self, count: int) -> None:
        """Lose power once `count` more bytes have been received."""
        self._power_loss_after = self.received + count

    def paper_end_after(self, lines: int) -> None:
        """Run out of paper after `lines` more printed lines."""
        self._paper_end_after = self._printed_lines() + lines

    def load_paper(self) -> None:
        """New roll: printing resumes with what is still buffered."""
        self._paper_end_after = None
        self.status = replace(self.status, paper="ok")
        self._changed()

    def near_end(self) -> None:
        """The near-end sensor trips (printing continues)."""
        self.status = replace(self.status, paper="near_end")
        self._changed()

    def open_cover(self) -> None:
        """Open the cover: printing holds."""
        self.status = replace(self.status, cover_open=True)
        self._changed()

    def close_cover(self) -> None:
        """Close the cover: printing resumes."""
        self.status = replace(self.status, cover_open=False)
        self._changed()

    def cutter_error(self, on: bool = True) -> None:
        """Jam the cutter (an unrecoverable error until cleared)."""
        self.status = replace(self.status, cutter_error=on)
        self._changed()

    def close_drawer(self) -> None:
        """Someone pushed the drawer shut (the sensor in DLE EOT 1 drops)."""
        self.status = replace(self.status, drawer_open=False)
        self._changed()

    # -- reading the paper --------------------------------------------------------------------
    def text(self) -> str:
        """Everything printed so far."""
        return self.paper.text()

    def job_count(self, job_id: str) -> int:
        """How many times a job's id line came out of the printer."""
        return sum(1 for line in self.paper.lines if line.text.strip() == f"JOB {job_id}")

    def jobs(self) -> list[tuple[str, list[str]]]:
        """Every printed job id, each with the banner lines printed above it (REPRINT, ROUTED FROM …)."""
        out: list[tuple[str, list[str]]] = []
        banners: list[str] = []
        for line in self.paper.lines:
            text = line.text.strip()
            if line.cut:
                banners = []
            elif text.startswith("JOB "):
                out.append((text[4:], banners))
                banners = []
            elif line.runs and line.runs[0].style.invert and line.runs[0].style.width == 2:  # noqa: PLR2004
                banners.append(text)
        return out

    # -- networking ---------------------------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._powered or (self.single_session and self._conns):
            _reset(writer)
            return
        self.connections += 1
        conn = _Conn(reader, writer)
        self._conns.append(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve(conn)
        except (ConnectionError, OSError):
            pass
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, conn: _Conn) -> None:
        while self._powered:
            try:
                data = await asyncio.wait_for(conn.reader.read(4096), self.idle_timeout)
            except TimeoutError:
                return  # idle: the printer closes the socket
            if not data:
                return
            if self.bytes_per_second:
                await asyncio.sleep(len(data) / self.bytes_per_second)
            if self._power_loss_after is not None and self.received + len(data) >= self._power_loss_after:
                keep = self._power_loss_after - self.received
                self.received += keep
                self._receive(data[:keep], conn)
                self._print_now()
                await self.power_off()
                return
            self.received += len(data)
            self._receive(data, conn)

    def _receive(self, data: bytes, conn: _Conn) -> None:
        for op in self._decoder.feed(data):
            if isinstance(op, StatusRequest):
                self._write(conn, bytes([encode_eot(self.status, op.n)]))
            elif isinstance(op, AsbEnable):
                conn.asb = op.mask
                if op.mask:
                    conn.last_asb = encode_asb(self.status)
                    self._write(conn, conn.last_asb)
            elif isinstance(op, Recover):
                if op.n == 2:  # noqa: PLR2004 - clear buffers and recover
                    self._pending.clear()
            else:
                self._pending.append((op, conn))
        self._wake.set()

    def _write(self, conn: _Conn, data: bytes) -> None:
        if conn in self._conns and not conn.writer.is_closing():
            conn.writer.write(data)

    def _drop_connections(self) -> None:
        for conn in list(self._conns):
            _reset(conn.writer)
        self._conns.clear()

    # -- printing -----------------------------------------------------------------------------
    async def _print_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._print_now()

    def _print_now(self) -> None:
        """Print buffered operations while the printer can."""
        while self._pending and self._powered and self.status.can_print:
            op, conn = self._pending.popleft()
            if isinstance(op, ProcessIdRequest):
                if self.process_id:
                    self._write(conn, b"\x37\x22" + op.pid + b"\x00")
                continue
            if isinstance(op, DrawerKick):
                self.paper.apply(op)
                self.status = replace(self.status, drawer_open=True)
                self._changed()
                continue
            self.paper.apply(op)
            end_at = self._paper_end_after
            if isinstance(op, Newline) and end_at is not None and self._printed_lines() >= end_at:
                self.status = replace(self.status, paper="end")
                self._changed()

    def _printed_lines(self) -> int:
        return len(self.paper.lines)

    def _changed(self) -> None:
        """Push ASB to connections that asked for it, and resume printing."""
        frame = encode_asb(self.status)
        for conn in self._conns:
            if conn.asb and frame != conn.last_asb:
                conn.last_asb = frame
                self._write(conn, frame)
        self._wake.set()

    # -- zeroconf -----------------------------------------------------------------------------
    async def _advertise(self) -> None:
        from zeroconf import IPVersion, ServiceInfo  # noqa: PLC0415 - only when advertising
        from zeroconf.asyncio import AsyncZeroconf  # noqa: PLC0415

        zeroconf = self._zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        info = ServiceInfo(
            "_pdl-datastream._tcp.local.",
            f"{self.name}._pdl-datastream._tcp.local.",
            addresses=[socket.inet_aton(self.host)],
            port=self.port,
            properties={"ty": f"StoreHub Virtual {self.name}", "product": "(Virtual TM)", "note": "sim"},
            server=f"{self.name}.local.",
        )
        try:
            registered = await zeroconf.async_register_service(info, allow_name_change=True)
            await registered
        except Exception:
            log.exception("virtual printer %s could not advertise itself", self.name)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a printer that drops or refuses a session does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def serve_forever(name: str, port: int, paper_mm: int = 80, *, advertise: bool = True) -> None:
    """Run one virtual printer until cancelled (the demo)."""
    printer = VirtualPrinter(name=name, port=port, paper_mm=paper_mm, advertise=advertise)
    await printer.start()
    log.info("virtual printer %s on %s:%d", name, printer.host, printer.port)
    try:
        await asyncio.Event().wait()
    finally:
        await printer.stop()
