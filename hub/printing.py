"""The hub's print service: the durable queue (SQLite) ↔ one worker per printer ↔ the engine.

    engine commit ──► writes()      print_jobs rows in the SAME transaction as their ledger events
                  ──► committed()   hand new jobs to their printer's worker, move rerouted ones,
                                    kick drawers for cash sales and no-sale opens (never queued)
    worker ──► mark_printing()      durable "bytes about to go out" mark (crash ⇒ REPRINT banner)
           ──► printed()/reroute()/failed()   ledger events through the engine (admin commands)
           ──► status_changed()     retained `state/printer/{id}`; `printer.status` ledgered on change

After a restart, `start()` reloads every job not printed: `queued` ones print normally, `printing`
ones (cut short by the crash) print with a REPRINT banner.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.drawers.mqtt import KICK_TTL, kick_job, kick_payload
from devices.drawers.serial import SerialDrawer
from devices.printers.link import Confirmation, LinkTimings
from devices.printers.render import Capabilities, render
from devices.printers.transport import SerialTransport, TcpTransport, Transport
from devices.printers.worker import Job, PrinterWorker, WorkerTimings
from hub.contract.envelopes import Reply
from hub.contract.errors import ErrorCode
from hub.store.ledger import canonical_json

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from devices.printers.discovery import PrinterBrowser
    from devices.sim.printer import VirtualPrinter
    from hub.config import DrawerEntry, PrinterEntry, PrintingSection
    from hub.engine import Engine
    from hub.store.db import Writes
    from hub.store.ledger import LedgerEntry

log = logging.getLogger("storehub.printing")

INSERT_JOB: Final = (
    "INSERT OR IGNORE INTO print_jobs (job_id, seq, printer, kind, doc, state, queued_at) "
    "VALUES (?, ?, ?, ?, ?, 'queued', ?)"
)
DONE_JOB: Final = "UPDATE print_jobs SET state = ?, done_at = ?, done_seq = ? WHERE job_id = ?"
REROUTE_JOB: Final = "UPDATE print_jobs SET printer = ?, routed_from = ?, state = 'queued' WHERE job_id = ?"
PRINTING_JOB: Final = (
    "UPDATE print_jobs SET state = 'printing', attempts = attempts + 1, reprint = ? "
    "WHERE job_id = ? AND state != 'printed'"
)
OPEN_JOBS: Final = (
    "SELECT job_id, seq, printer, doc, state, routed_from, reprint FROM print_jobs "
    "WHERE state IN ('queued', 'printing') ORDER BY seq"
)
PRUNE_DONE: Final = "DELETE FROM print_jobs WHERE state IN ('printed', 'failed') AND done_at < ?"
KEEP_DONE_S: Final = 7 * 24 * 3600
STATUS_DEBOUNCE_S: Final = 0.05
STOP_TIMEOUT_S: Final = 5.0
"""Shutdown never waits longer than this on zeroconf or a virtual printer."""


def transport_factory(address: str, connect_timeout: float) -> Callable[[], Transport]:
    """A fresh transport per job for `tcp://host:port` or `serial:/dev/x?baud=N`."""
    parts = urlsplit(address)
    if parts.scheme == "tcp":
        host, port = parts.hostname or "127.0.0.1", parts.port or 9100
        return lambda: TcpTransport(host, port, connect_timeout=connect_timeout)
    if parts.scheme == "serial":
        baud = int(parse_qs(parts.query).get("baud", ["9600"])[0])
        return lambda: SerialTransport(parts.path, baud)
    raise ValueError(f"unsupported printer address {address!r} (tcp://host:port or serial:/dev/…)")


def worker_timings(cfg: PrintingSection) -> WorkerTimings:
    """The config's timings for the workers."""
    return WorkerTimings(
        failover_after=cfg.failover_after_s,
        backoff_initial=cfg.backoff_initial_s,
        backoff_max=cfg.backoff_max_s,
        probe_interval=cfg.probe_interval_s,
        kick_expiry=cfg.kick_expiry_s,
        link=LinkTimings(
            status_timeout=cfg.status_timeout_s,
            poll_interval=cfg.poll_interval_s,
            confirm_timeout=cfg.confirm_timeout_s,
        ),
    )


def routing_body(printers: Sequence[PrinterEntry]) -> dict[str, Any]:
    """The `printers.configure` body for the `[[printers]]` of the config."""
    stations: dict[str, list[str]] = {}
    receipts_by_device: dict[str, str] = {}
    receipts = expo = None
    for p in printers:
        for station in p.stations:
            stations.setdefault(station, []).append(p.id)
        for device in p.receipt_devices:
            receipts_by_device[device] = p.id
        if p.receipts and receipts is None:
            receipts = p.id
        if p.expo and expo is None:
            expo = p.id
    return {
        "printers": [
            {
                "printer_id": p.id,
                "name": p.name or p.id,
                "backup": p.backup,
                "paper_mm": p.paper_mm,
                "drawer_pins": list(p.drawer_pins),
            }
            for p in printers
        ],
        "stations": stations,
        "receipts": receipts,
        "receipts_by_device": receipts_by_device,
        "expo": expo,
    }


class PrintService:
    """Owns the workers, keeps the queue table in step with the ledger, and reports status."""

    def __init__(
        self,
        engine: Engine,
        printers: Sequence[PrinterEntry],
        cfg: PrintingSection,
        drawers: Sequence[DrawerEntry] = (),
    ) -> None:
        self.engine = engine
        self.drawers = list(drawers)
        self.cfg = cfg
        self.entries = {p.id: p for p in printers}
        timings = worker_timings(cfg)
        self.virtual: dict[str, VirtualPrinter] = {}
        if any(p.address.startswith("virtual://") for p in printers):
            from devices.sim.printer import VirtualPrinter  # noqa: PLC0415 - the demo's printers only

            self.virtual = {
                p.id: VirtualPrinter(name=p.id, paper_mm=p.paper_mm, advertise=cfg.discovery)
                for p in printers
                if p.address.startswith("virtual://")
            }
        self.workers: dict[str, PrinterWorker] = {
            p.id: PrinterWorker(
                p.id,
                self._transport(p.id, p.address),
                self,
                name=p.name or p.id,
                caps=Capabilities.for_printer(p.profile, p.paper_mm),
                confirmation=p.confirmation,
                backup=p.backup,
                timings=timings,
            )
            for p in printers
        }
        self.pending: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ledgered: dict[str, tuple[Any, ...]] = {}
        self._dirty: set[str] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self.started = False
        self.kicks: list[dict[str, Any]] = []
        self.browser: PrinterBrowser | None = None

    def _transport(self, printer_id: str, address: str) -> Callable[[], Transport]:
        virtual = self.virtual.get(printer_id)
        if virtual is None:
            return transport_factory(address, self.cfg.connect_timeout_s)
        return lambda: TcpTransport(virtual.host, virtual.port, connect_timeout=self.cfg.connect_timeout_s)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Reload unfinished jobs and start one worker per printer (and the demo's virtual printers).

        Finished jobs older than `KEEP_DONE` are pruned first (the ledger keeps what was printed).
        """
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - KEEP_DONE_S))
        await self.engine.db.transaction([(PRUNE_DONE, [(cutoff,)])])
        for printer in self.virtual.values():
            await printer.start()
        async with self.engine.db.writer.execute(OPEN_JOBS) as cursor:
            rows = await cursor.fetchall()
        for job_id, seq, printer, doc, state, routed_from, reprint in rows:
            job = Job(
                job_id=job_id,
                doc=json.loads(doc),
                seq=int(seq),
                reprint=bool(reprint) or state == "printing",
                routed_from=routed_from,
            )
            self._enqueue(job, printer)
        for worker in self.workers.values():
            worker.start()
        self.started = True
        if self.cfg.discovery:
            from devices.printers.discovery import PrinterBrowser  # noqa: PLC0415 - zeroconf only when discovering

            self.browser = PrinterBrowser(
                self.cfg.discovery_interfaces,
                misses=self.cfg.discovery_misses,
                recheck_s=self.cfg.discovery_recheck_s,
                on_change=self._discovery_changed,
            )
            await self.browser.start()

    async def stop(self) -> None:
        """Stop discovery and the workers (unfinished jobs stay in the database)."""
        if self.browser is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.browser.stop(), STOP_TIMEOUT_S)
            self.browser = None
        for worker in self.workers.values():
            await worker.stop()
        for task in list(self._tasks):
            task.cancel()
        for printer in self.virtual.values():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(printer.stop(), STOP_TIMEOUT_S)
        if self._flush_handle is not None:
            self._flush_handle.cancel()

    # -- the engine's commit hook ---------------------------------------------------------------
    def writes(self, entries: Sequence[LedgerEntry]) -> Writes:
        """print_jobs rows for this batch's print events."""
        inserts: list[tuple[Any, ...]] = []
        done: list[tuple[Any, ...]] = []
        rerouted: list[tuple[Any, ...]] = []
        for e in entries:
            d = e.data
            if e.type == "print.queued":
                doc = d.get("doc") or {"kind": d.get("kind"), "job_id": d["print_job_id"]}
                inserts.append(
                    (d["print_job_id"], e.seq, d.get("printer"), str(d.get("kind")), _dumps(doc), e.at)
                )
            elif e.type in {"print.printed", "print.failed"}:
                state = "printed" if e.type == "print.printed" else "failed"
                done.append((state, e.at, e.seq, d["job_id"]))
            elif e.type == "print.rerouted":
                rerouted.append((d["to"], d["from"], d["job_id"]))
        return [(INSERT_JOB, inserts), (REROUTE_JOB, rerouted), (DONE_JOB, done)]

    def committed(self, entries: Sequence[LedgerEntry]) -> None:
        """Hand committed jobs to their workers; kick drawers for what was just paid or opened."""
        for e in entries:
            d = e.data
            if e.type == "print.queued":
                doc = d.get("doc") or {}
                self._enqueue(Job(job_id=d["print_job_id"], doc=doc, seq=e.seq), d.get("printer"))
            elif e.type == "print.rerouted":
                job = self.pending.get(d["job_id"])
                if job is not None:
                    job.routed_from = d["from"]
                    self._enqueue(job, d["to"])
            elif e.type in {"print.printed", "print.failed"}:
                self.pending.pop(d["job_id"], None)
            elif e.type == "ticket.paid" and any(p.get("kind") == "cash" for p in d.get("payments", [])):
                self._spawn(self._kick(e.device, "sale", e.actor, d.get("ticket_id")))
            elif e.type == "drawer.opened":
                self._spawn(self._kick(e.device, str(d.get("reason") or "no sale"), d.get("by"), None))

    def _enqueue(self, job: Job, printer: str | None) -> None:
        worker = self.workers.get(printer) if printer else None
        if worker is None:
            if job.job_id not in self.pending:
                self.pending[job.job_id] = job
                what = f"printer {printer!r} is not configured on this hub" if printer else "no printer is configured"
                self._spawn(self._fail(printer or "none", job, what))
            return
        self.pending[job.job_id] = job
        worker.add(job)

    # -- the workers' sink --------------------------------------------------------------------
    async def mark_printing(self, printer_id: str, job: Job) -> None:
        """Durable before the first byte goes out."""
        del printer_id
        await self.engine.db.transaction([(PRINTING_JOB, [(int(job.reprint), job.job_id)])])

    async def printed(self, printer_id: str, job: Job, confirmation: Confirmation) -> None:
        """Ledger `print.printed`."""
        body = {"job_id": job.job_id, "printer": printer_id, "reprint": job.reprint, "confirmation": confirmation}
        await self._admin("print.printed", body)

    async def reroute(self, printer_id: str, job: Job, to: str, reason: str) -> bool:
        """Ledger `print.rerouted`; the commit hook hands the job to the backup's worker."""
        if to not in self.workers:
            return False
        body = {"job_id": job.job_id, "from_printer": printer_id, "to": to, "reason": reason[:200]}
        return await self._admin("print.reroute", body)

    async def failed(self, printer_id: str, job: Job, error: str) -> None:
        """Ledger `print.failed`."""
        await self._fail(printer_id, job, error)

    def status_changed(self, worker: PrinterWorker) -> None:
        """Publish the printer's retained state soon (coalesced); ledger real status changes."""
        self._dirty.add(worker.printer_id)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(STATUS_DEBOUNCE_S, self._flush_status)

    def _flush_status(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for printer_id in sorted(dirty):
            worker = self.workers[printer_id]
            state = worker.describe()
            self._publish_state(printer_id, state)
            key = (state["online"], state["paper"], state["cover_open"])
            if self._ledgered.get(printer_id) != key and state["reachable"] is not None:
                self._ledgered[printer_id] = key
                body = {
                    "printer": printer_id,
                    "online": bool(state["online"]),
                    "paper": state["paper"] or "ok",
                    "cover_open": bool(state["cover_open"]),
                    "error": (state["error"] or None) and str(state["error"])[:200],
                    "confirmation": worker.confirmation,
                }
                self._spawn(self._admin("printer.status", body))

    def _publish_state(self, printer_id: str, state: dict[str, Any]) -> None:
        publisher = self.engine.publisher
        if publisher is None:
            return
        payload = canonical_json({**state, "at": _now()})
        publisher.publish(self.engine.topics.state_printer(printer_id), payload, qos=1, retain=True)

    def republish(self) -> None:
        """Every printer's retained state (on each broker (re)connect)."""
        for printer_id, worker in self.workers.items():
            self._publish_state(printer_id, worker.describe())

    # -- drawers ------------------------------------------------------------------------------
    async def _kick(self, device: str | None, reason: str, employee: str | None, ticket_id: str | None) -> None:
        """Pop the device's drawer at once (own drawer, else its receipt printer's); ledger what happened."""
        deadline = time.monotonic() + self.cfg.kick_expiry_s
        drawer = next((d for d in self.drawers if device in d.receipt_devices), None) or next(
            (d for d in self.drawers if not d.receipt_devices), None
        )
        if drawer is not None:
            name = drawer.id
            if drawer.kind == "serial":
                ok, detail = await SerialDrawer(drawer.path or "", drawer.baud).kick(deadline)
            else:
                ok, detail = self._kick_controller(drawer.device or "", reason, employee, ticket_id)
        else:
            config = self.engine.state.printing
            printer = (config.receipts_by_device.get(device or "") if device else None) or config.receipts
            spec = config.printers.get(printer) if printer else None
            worker = self.workers.get(printer) if printer else None
            if printer is None or spec is None or worker is None or not spec.drawer_pins:
                return  # no drawer anywhere for this device
            name = printer
            ok, detail = await worker.kick(tuple(spec.drawer_pins))
        record = {
            "drawer": name,
            "reason": reason[:200] or "sale",
            "employee_id": employee,
            "ticket_id": ticket_id,
            "ok": ok,
            "detail": detail[:200],
        }
        self.kicks.append(record)
        await self._admin("drawer.kicked", record)

    def _kick_controller(
        self, device: str, reason: str, employee: str | None, ticket_id: str | None
    ) -> tuple[bool, str]:
        """Send `drawer.kick` to an MQTT drawer controller, expiring in 10 s."""
        publisher = self.engine.publisher
        if publisher is None:
            return False, "the hub is not connected to its broker"
        job = kick_job({"reason": reason, "employee_id": employee, "ticket_id": ticket_id})
        topic = self.engine.topics.device_do(device)
        client = getattr(publisher, "mqtt", None)  # PahoBus: set MQTT 5 Message Expiry on the job too
        if client is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = int(KICK_TTL.total_seconds())
            client.publish(topic, kick_payload(job), qos=1, properties=props)
        else:
            publisher.publish(topic, kick_payload(job), qos=1, retain=False)
        return True, f"sent to {device} as {job.id}, expires {job.expires_at}"

    # -- discovery ----------------------------------------------------------------------------
    def discovered(self) -> list[dict[str, Any]]:
        """Printers on the network, each with the configured printer it is (or None: not assigned)."""
        if self.browser is None:
            return []
        by_address = {p.address: p.id for p in self.entries.values()}
        by_address |= {f"tcp://{v.host}:{v.port}": printer_id for printer_id, v in self.virtual.items()}
        out = []
        for found in sorted(self.browser.found.values(), key=lambda f: f.name):
            item = found.as_dict()
            address = item["address"] or ""
            item["assigned"] = by_address.get(address) or by_address.get(address.removesuffix(":9100"))
            out.append(item)
        return out

    def _discovery_changed(self, browser: PrinterBrowser) -> None:
        del browser
        fresh = [d for d in self.discovered() if d["assigned"] is None]
        if fresh:
            log.info("printers discovered, not assigned: %s", ", ".join(f"{d['name']} ({d['host']})" for d in fresh))

    # -- queries ------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """Every printer's state (for `storehub printers list`)."""
        return [worker.describe() for worker in self.workers.values()]

    async def preview(self, job_id: str, printer: str | None = None) -> bytes:
        """A PNG of a job as its printer renders it (rendered on demand, never stored)."""
        async with self.engine.db.writer.execute(
            "SELECT printer, doc, routed_from, reprint FROM print_jobs WHERE job_id = ?", (job_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise KeyError(job_id)
        worker = self.workers.get(printer or row[0] or "")
        caps = worker.caps if worker is not None else Capabilities()
        job = Job(job_id=job_id, doc=json.loads(row[1]), routed_from=row[2], reprint=bool(row[3]))
        data = render(job.doc, caps, banners=job.banners())
        from devices.escpos.paper import Paper  # noqa: PLC0415 - Pillow only when a preview is asked for

        return Paper.from_bytes(data, width_dots=384 if caps.paper_mm == 58 else 576).png()  # noqa: PLR2004

    async def control(self, type_: str, body: dict[str, Any], seq: int) -> Reply:
        """The CLI's read-only printing requests over the control socket."""
        if type_ == "printers.list":
            listing = {"printers": self.describe(), "discovered": self.discovered(), "kicks": self.kicks[-20:]}
            return Reply.success(None, seq, listing)
        job_id = body.get("job_id")
        if not isinstance(job_id, str):
            return Reply.failure(None, ErrorCode.INVALID_PAYLOAD, "print.preview needs a job_id")
        try:
            png = await self.preview(job_id)
        except KeyError:
            return Reply.failure(None, ErrorCode.NOT_FOUND, f"No print job {job_id!r}")
        return Reply.success(None, seq, {"job_id": job_id, "png_base64": base64.b64encode(png).decode()})

    # -- helpers ------------------------------------------------------------------------------
    async def _fail(self, printer: str, job: Job, error: str) -> None:
        await self._admin("print.failed", {"job_id": job.job_id, "printer": printer or "none", "error": error[:200]})

    async def _admin(self, type_: str, body: dict[str, Any]) -> bool:
        reply = await self.engine.admin(type_, body)
        if not reply.ok:
            message = reply.error.message if reply.error is not None else "?"
            log.error("%s refused: %s", type_, message, extra={"body": body})
        return reply.ok

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
