"""One asyncio owner per printer: its own queue, so a dead printer holds only its own jobs.

    PrinterWorker.run()   takes the oldest job, connects (per job, short timeouts), reads DLE EOT,
                          marks the job "printing" durably, sends it with GS ( H and waits for the
                          printer's confirmation; only then reports it printed. Faults (offline,
                          cover open, paper end, no answer) hold the queue and retry with tenacity's
                          exponential backoff with jitter.
    failover monitor      once the printer has been faulted for `failover_after` seconds, every job
                          not already inside the printer moves to the backup printer (it prints
                          there with "ROUTED FROM <printer>").
    in doubt              a job whose connection broke after bytes were sent (power loss), or that
                          the printer never confirmed, prints again with a REPRINT banner:
                          at-least-once with proof, never a silent double.

The worker knows nothing of the hub: it reports through a `JobSink` (hub.printing implements it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from devices.printers.link import Confirmation, LinkTimings, PrinterLink
from devices.printers.render import Capabilities, RenderError, kick_bytes, render
from devices.printers.transport import Transport, TransportError, Unreachable

if TYPE_CHECKING:
    from collections.abc import Callable

    from devices.printers.status import PrinterStatus

log = logging.getLogger("storehub.printers")
STOP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Job:
    """A print job as the worker holds it."""

    job_id: str
    doc: dict[str, Any]
    seq: int = 0
    reprint: bool = False
    routed_from: str | None = None
    in_printer: bool = False

    def banners(self) -> tuple[str, ...]:
        """Banners printed above the document."""
        out = []
        if self.reprint:
            out.append("REPRINT")
        if self.routed_from:
            out.append(f"ROUTED FROM {self.routed_from}")
        return tuple(out)


class PrinterFault(TransportError):  # noqa: N818 - part of the transport error tree
    """The printer answered but cannot print (cover open, paper end, error, offline)."""


class JobSink(Protocol):
    """Where a worker reports (the hub's print service)."""

    async def mark_printing(self, printer_id: str, job: Job) -> None:
        """Durably note that the job's bytes are about to be sent (a crash after this reprints it)."""
        ...

    async def printed(self, printer_id: str, job: Job, confirmation: Confirmation) -> None:
        """The printer confirmed the job."""
        ...

    async def reroute(self, printer_id: str, job: Job, to: str, reason: str) -> bool:
        """Move the job to `to`; False when that could not be recorded (the job stays here)."""
        ...

    async def failed(self, printer_id: str, job: Job, error: str) -> None:
        """The job can never print."""
        ...

    def status_changed(self, worker: PrinterWorker) -> None:
        """The printer's status, reachability, queue or error changed."""
        ...


@dataclass(slots=True)
class WorkerTimings:
    """Failover, backoff and link timings (the config shrinks them in tests)."""

    failover_after: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 5.0
    probe_interval: float = 30.0
    kick_expiry: float = 10.0
    link: LinkTimings = field(default_factory=LinkTimings)


@dataclass(slots=True)
class Kick:
    """A drawer kick request: it goes out at once or is dropped once older than the expiry."""

    pins: tuple[int, ...]
    made: float
    done: asyncio.Future[tuple[bool, str]]


class PrinterWorker:
    """The single owner of one printer's queue and connection."""

    def __init__(
        self,
        printer_id: str,
        transport: Callable[[], Transport],
        sink: JobSink,
        *,
        name: str = "",
        caps: Capabilities | None = None,
        confirmation: Confirmation = "process_id",
        backup: str | None = None,
        timings: WorkerTimings | None = None,
    ) -> None:
        self.printer_id = printer_id
        self.name = name or printer_id
        self.transport = transport
        self.sink = sink
        self.caps = caps or Capabilities()
        self.confirmation: Confirmation = confirmation
        self.backup = backup
        self.timings = timings or WorkerTimings()
        self.jobs: deque[Job] = deque()
        self.status: PrinterStatus | None = None
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self.fault_since: float | None = None
        self.printed_count = 0
        self._wake = asyncio.Event()
        self._line = asyncio.Lock()
        """One conversation with the printer at a time (many printers take a single TCP session)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._pid = 0
        self._stopping = False

    def stopping(self) -> bool:
        """Whether `stop()` was called (loops check it: a lost cancel still ends them)."""
        return self._stopping

    # -- queue --------------------------------------------------------------------------------
    def add(self, job: Job) -> None:
        """Queue a job (kept in ledger order)."""
        if any(j.job_id == job.job_id for j in self.jobs):
            return
        self.jobs.append(job)
        if len(self.jobs) > 1 and self.jobs[-2].seq > job.seq:
            self.jobs = deque(sorted(self.jobs, key=lambda j: j.seq))
        self._wake.set()
        self.sink.status_changed(self)

    @property
    def depth(self) -> int:
        """Jobs waiting (including the one being printed)."""
        return len(self.jobs)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the queue loop and the failover monitor."""
        self._tasks = [
            asyncio.create_task(self._run(), name=f"printer-{self.printer_id}"),
            asyncio.create_task(self._monitor(), name=f"printer-{self.printer_id}-monitor"),
        ]

    async def stop(self) -> None:
        """Stop (a job in flight stays 'printing' in the database and reprints with a banner)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # bounded: a cancel lost in a library's wait_for must not hold the hub's shutdown
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        self._tasks = []

    # -- the loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        if not self.jobs:
            await self._probe()  # know paper and cover before the first chit
        while not self._stopping:
            if not self.jobs:
                self._wake.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that races the wake-up
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timings.probe_interval):
                        await self._wake.wait()
                if self.stopping():
                    return
                if not self.jobs:
                    await self._probe()
                    continue
            job = self.jobs[0]
            try:
                await self._print_with_retry(job)
            except RenderError as exc:
                self._drop(job)
                await self.sink.failed(self.printer_id, job, f"cannot render: {exc}")

    async def _print_with_retry(self, job: Job) -> None:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(initial=self.timings.backoff_initial, max=self.timings.backoff_max),
            retry=retry_if_exception_type(TransportError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if not self._holds(job):
                    return  # rerouted while we waited
                try:
                    await self._print(job)
                except TransportError as exc:
                    self._fault(str(exc) or type(exc).__name__, unreachable=isinstance(exc, Unreachable))
                    raise
        if self._holds(job):
            self._drop(job)
            self.printed_count += 1
            self._healthy()
            await self.sink.printed(self.printer_id, job, self.confirmation)

    async def _print(self, job: Job) -> None:
        data = render(job.doc, self.caps, banners=job.banners())
        async with self._line:
            transport = self.transport()
            await transport.open()
            try:
                link = PrinterLink(transport, self.timings.link, on_status=self._on_status)
                status = await link.status()
                if not status.can_print:
                    raise PrinterFault(status.fault or "cannot print")
                if not self._holds(job):
                    return
                job.in_printer = True  # from here on the job is the printer's: never rerouted
                await self.sink.mark_printing(self.printer_id, job)
                try:
                    await link.print_job(data, self._next_pid(), self.confirmation)
                except TransportError:
                    job.reprint = True  # some of it may be on paper: the next copy says REPRINT
                    raise
                finally:
                    job.in_printer = False
                self.reachable = True
            finally:
                await transport.close()

    async def _probe(self) -> None:
        """Read the printer's status while idle, so the manager sees paper and cover before a rush."""
        try:
            async with self._line:
                transport = self.transport()
                await transport.open()
                try:
                    status = await PrinterLink(transport, self.timings.link, on_status=self._on_status).status()
                finally:
                    await transport.close()
        except TransportError as exc:
            self._fault(str(exc) or type(exc).__name__, unreachable=isinstance(exc, Unreachable))
            return
        if status.can_print:
            self._healthy()
        else:
            self._fault(status.fault or "cannot print")

    # -- failover -----------------------------------------------------------------------------
    async def _monitor(self) -> None:
        interval = max(0.02, min(0.25, self.timings.failover_after / 10))
        while not self._stopping:
            await asyncio.sleep(interval)
            if self.fault_since is None or self.backup is None or not self.jobs:
                continue
            if time.monotonic() - self.fault_since < self.timings.failover_after:
                continue
            await self._failover(self.backup)

    async def _failover(self, backup: str) -> None:
        movable = [job for job in self.jobs if not job.in_printer]
        for job in movable:
            self._drop(job)  # synchronously, so the loop cannot start sending it meanwhile
        reason = f"{self.name}: {self.last_error or 'fault'}"
        for job in movable:
            if not await self.sink.reroute(self.printer_id, job, backup, reason):
                self.add(job)

    # -- drawer -------------------------------------------------------------------------------
    async def kick(self, pins: tuple[int, ...]) -> tuple[bool, str]:
        """Pop the drawer on this printer now (never queued behind jobs, never failed over)."""
        made = time.monotonic()
        left = self.timings.kick_expiry
        try:
            async with asyncio.timeout(left):
                async with self._line:
                    transport = self.transport()
                    await transport.open()
                    try:
                        await transport.write(b"".join(kick_bytes(pin) for pin in pins))
                        link = PrinterLink(transport, self.timings.link, on_status=self._on_status)
                        await link.status()
                    finally:
                        await transport.close()
        except TimeoutError:
            return False, f"expired after {time.monotonic() - made:.1f} s: not sent"
        except TransportError as exc:
            return False, str(exc) or type(exc).__name__
        return True, "kicked"

    # -- status -------------------------------------------------------------------------------
    def _holds(self, job: Job) -> bool:
        return any(j is job for j in self.jobs)

    def _drop(self, job: Job) -> None:
        with contextlib.suppress(ValueError):
            self.jobs.remove(job)
        self.sink.status_changed(self)

    def _next_pid(self) -> bytes:
        self._pid = (self._pid + 1) % 10000
        return f"{self._pid:04d}".encode()

    def _on_status(self, status: PrinterStatus) -> None:
        changed = status != self.status or self.reachable is not True
        self.status = status
        self.reachable = True
        if status.can_print:
            changed = changed or self.fault_since is not None
            self.fault_since = None
            self.last_error = None
        else:
            if self.fault_since is None:
                self.fault_since = time.monotonic()
            self.last_error = status.fault
        if changed:
            self.sink.status_changed(self)

    def _fault(self, error: str, *, unreachable: bool = False) -> None:
        changed = error != self.last_error or (unreachable and self.reachable is not False)
        if self.fault_since is None:
            self.fault_since = time.monotonic()
            changed = True
            log.warning("printer %s: %s", self.printer_id, error, extra={"printer": self.printer_id})
        self.last_error = error
        if unreachable:
            self.reachable = False
        if changed:
            self.sink.status_changed(self)

    def _healthy(self) -> None:
        changed = self.fault_since is not None or self.last_error is not None or self.reachable is not True
        self.fault_since = None
        self.last_error = None
        self.reachable = True
        if changed:
            self.sink.status_changed(self)

    def describe(self) -> dict[str, Any]:
        """What `state/printer/{id}` and `storehub printers list` show."""
        status = self.status
        online = bool(self.reachable) and (status.online if status is not None else True)
        return {
            "printer": self.printer_id,
            "name": self.name,
            "online": None if self.reachable is None else online and self.fault_since is None,
            "reachable": self.reachable,
            "paper": status.paper if status is not None else None,
            "cover_open": status.cover_open if status is not None else None,
            "drawer_open": status.drawer_open if status is not None else None,
            "error": self.last_error,
            "queue_depth": self.depth,
            "held_s": round(time.monotonic() - self.fault_since, 1) if self.fault_since is not None else None,
            "confirmation": self.confirmation,
            "backup": self.backup,
            "printed": self.printed_count,
        }
