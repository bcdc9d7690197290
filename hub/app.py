"""Composition root: config → database → engine → broker → bus → control socket, and back down.

`Hub` owns the pieces of one running hub. `open_offline` gives the CLI the same engine without
broker or bus when no hub is running (the data directory's lock guarantees a single writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import secrets
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from hub import __version__, domain, sdnotify
from hub.broker import BrokerConfig, BrokerUser, ManagedBroker, device_user, hash_password, hub_user, write_broker_files
from hub.bus import BusSettings, PahoBus
from hub.contract.envelopes import HubStatus, Reply
from hub.contract.errors import ErrorCode
from hub.contract.types import format_time
from hub.engine import Engine
from hub.printing import PrintService, routing_body
from hub.store.db import Database
from hub.tls import StorePki, TlsError, ensure_store_pki

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from hub.config import LoadedConfig
    from hub.ota import OtaService
    from hub.web.runtime import WebRuntime

log = logging.getLogger("storehub.hub")

DB_NAME: Final = "hub.db"
LOCK_NAME: Final = "hub.lock"
SOCKET_NAME: Final = "hub.sock"
HUB_SECRET_NAME: Final = "hub.secret"  # noqa: S105 - a file name, not a secret
CONTROL_LIMIT: Final = 1 << 20
STARTING_WAIT_S: Final = 30.0
"""How long a control request waits for a starting hub's socket."""
GC_YOUNG: Final = 10_000
"""Allocations between young-generation collections (the interpreter's default is 700)."""


CONTROL_PRINTING: Final = frozenset({"printers.list", "print.preview"})
"""Control-socket requests the print service answers itself (no ledger)."""


async def start_printing(engine: Engine, loaded: LoadedConfig) -> PrintService:
    """Hook the print queue into the engine's commits, apply `[[printers]]`, and start the workers.

    The TOML's printer table is applied when the hub has none yet or its printers changed; routing
    edited at runtime (`storehub printers route`, ledgered) survives restarts otherwise.
    """
    cfg = loaded.config
    printing = PrintService(engine, cfg.printers, cfg.printing, cfg.drawers)
    engine.hooks.append(printing)
    if {p.id for p in cfg.printers} != set(engine.state.printing.printers):
        await _expect_ok(engine.admin("printers.configure", routing_body(cfg.printers)))
    await printing.start()
    return printing


class HubError(Exception):
    """The hub cannot start or the operation cannot be done; the message says why."""


def settle_memory() -> None:
    """Once start-up is done, keep the cyclic garbage collector off what it loaded, and run it less.

    Process-wide, so `storehub hub run` calls it (as `Hub.run`'s `on_ready`), never a library user.

    The store's state, the menu, the models and the imported modules live as long as the hub; every
    full collection would walk them all again, a pause that grows with the day's tickets and lands
    on whichever command is being decided. Freezing moves them out of the collector's sight (plain
    reference counting still frees them), and a larger young generation (`GC_YOUNG`) collects the
    engine's short-lived objects in fewer, equally cheap passes. Measured with the engine alone:
    about a tenth less CPU per command.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, middle, old)


def store_settings(loaded: LoadedConfig) -> domain.StoreSettings:
    """The domain's view of the config."""
    cfg = loaded.config
    return domain.StoreSettings(
        store_id=cfg.store.id,
        name=cfg.store.name,
        currency=cfg.store.currency,
        timezone=cfg.store.timezone,
        business_day_starts_at=cfg.store.business_day_starts_at,
        token_ttl_s=cfg.hub.token_ttl_s,
        attention_no_order_s=cfg.hub.attention_no_order_s,
        attention_idle_s=cfg.hub.attention_idle_s,
        shared_devices=("web",),  # the manager page limits wrong PINs per browser (hub.web.sessions)
    )


class DataDirLock:
    """An exclusive flock on the data directory: one writer per database, hub or CLI."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        """Whether a hub (or a CLI command) holds the lock right now; takes nothing and writes nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also drops the probe's shared lock
        return False

    def release(self) -> None:
        """Release the lock."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def hub_password(data_dir: Path) -> str:
    """The hub's own broker password, created on first start and kept in the data dir (0600)."""
    path = data_dir / HUB_SECRET_NAME
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password)
    return password


async def broker_users(engine: Engine, data_dir: Path) -> list[BrokerUser]:
    """The hub plus every active registered device, with their password hashes."""
    users = [hub_user(engine.topics, hash_password(hub_password(data_dir)))]
    async with engine.db.writer.execute("SELECT device_id, password_hash FROM device_credentials") as cursor:
        hashes = {row[0]: row[1] async for row in cursor}
    users.extend(
        device_user(engine.topics, device.device_id, device.kind, device.stations, hashes[device.device_id])
        for device in sorted(engine.state.devices.values(), key=lambda d: d.device_id)
        if device.active and device.device_id in hashes
    )
    return users


def broker_config(loaded: LoadedConfig) -> BrokerConfig:
    """The broker settings of a store config; the generated files live in `<data_dir>/broker`."""
    cfg = loaded.config.broker
    tls = loaded.config.tls
    pki = store_pki(loaded)
    return BrokerConfig(
        host=cfg.host,
        port=cfg.port,
        websockets_port=cfg.websockets_port,
        conf_dir=loaded.data_dir / "broker",
        tls_port=tls.mqtt_port if pki is not None else None,
        tls_certfile=pki.server_cert if pki is not None else None,
        tls_keyfile=pki.server_key if pki is not None else None,
        plaintext_lan=tls.plaintext_lan,
    )


def store_pki(loaded: LoadedConfig) -> StorePki | None:
    """The store CA and the hub's server certificate (made on first use) when `[tls] enabled`."""
    tls = loaded.config.tls
    if not tls.enabled:
        return None
    try:
        return ensure_store_pki(loaded.data_dir / "tls", loaded.config.store.id, tls.names)
    except (TlsError, OSError) as exc:
        raise HubError(f"[tls]: {exc}") from exc


async def apply_registry(engine: Engine, loaded: LoadedConfig, broker: ManagedBroker | None = None) -> None:
    """Bring the broker's password file and ACL in line with the device registry (reloading a managed broker)."""
    users = await broker_users(engine, loaded.data_dir)
    if broker is not None:
        await broker.update_users(users)
    else:
        write_broker_files(broker_config(loaded), users)


async def bootstrap(engine: Engine, loaded: LoadedConfig) -> None:
    """Bring the database in line with the config: the store itself, staff (empty database only), tables, menu."""
    cfg = loaded.config
    await _expect_ok(engine.admin("store.configure", {}))
    if not engine.state.staff:
        for person in cfg.staff:
            await _expect_ok(
                engine.admin(
                    "staff.add", {"employee_id": person.id, "name": person.name, "role": person.role}, secret=person.pin
                )
            )
    tables = [t.model_dump() | {"table_id": t.id} for t in cfg.tables]
    for table in tables:
        table.pop("id")
    await _expect_ok(engine.admin("tables.configure", {"tables": tables}))
    await _expect_ok(engine.admin("menu.load", loaded.menu.model_dump(mode="json")))


async def _expect_ok(waiter: Any) -> Reply:
    reply: Reply = await waiter
    if not reply.ok and reply.error is not None:
        raise HubError(f"start-up step failed: {reply.error.code}: {reply.error.message}")
    return reply


@asynccontextmanager
async def open_engine(loaded: LoadedConfig, *, for_hub: bool = False) -> AsyncIterator[Engine]:
    """Lock the data dir, open the database and run an engine on it (no broker, no bus)."""
    data_dir = loaded.data_dir
    lock = DataDirLock(data_dir)
    if not lock.acquire():
        what = "another hub" if for_hub else "the running hub"
        raise HubError(f"{data_dir} is in use by {what} (lock {lock.path})")
    try:
        db = await Database.open(data_dir / DB_NAME)
        try:
            engine = Engine(db, store_settings(loaded), retention_days=loaded.config.hub.command_retention_days)
            await engine.load()
            engine.start()
            # A running hub copies its WAL into the database in the background, off its commits.
            checkpoints = asyncio.create_task(db.run_checkpoints(), name="wal-checkpoints") if for_hub else None
            try:
                yield engine
            finally:
                await engine.stop()
                if checkpoints is not None:
                    checkpoints.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checkpoints
        finally:
            await db.close()
    finally:
        lock.release()


class Hub:
    """One running hub: engine, managed broker, bus, control socket and timers."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.data_dir = loaded.data_dir
        self.engine: Engine | None = None
        self.broker: ManagedBroker | None = None
        self.bus: PahoBus | None = None
        self.web: WebRuntime | None = None
        self.printing: PrintService | None = None
        self.ota: OtaService | None = None
        self.started_at = format_time(datetime.now(UTC))
        self._stop = asyncio.Event()
        self._presence: Callable[[str, dict[str, Any]], None] = lambda _device, _status: None
        self._submit: Callable[[str, bytes], None] = lambda _device, _payload: None
        self._engine_answered = time.monotonic()
        self._systemd = sdnotify.Notifier.from_environment()  # before any child inherits it

    def request_stop(self) -> None:
        """Ask the hub to shut down cleanly."""
        self._stop.set()

    async def run(self, *, on_ready: Any = None) -> None:  # noqa: PLR0915 - the composition root wires each part in order
        """Run until `request_stop`; raises HubError when start-up is impossible."""
        t0 = time.perf_counter()
        cfg = self.loaded.config
        async with open_engine(self.loaded, for_hub=True) as engine:
            self.engine = engine
            await bootstrap(engine, self.loaded)
            if cfg.broker.managed:
                self.broker = ManagedBroker(broker_config(self.loaded))
                await self.broker.start(await broker_users(engine, self.data_dir))
            else:
                await apply_registry(engine, self.loaded)
            engine.on_devices_changed = self._devices_changed
            self._submit, self._presence = engine.submit, engine.note_device_status
            printing = self.printing = await start_printing(engine, self.loaded)
            bus = PahoBus(
                BusSettings(cfg.broker.host, cfg.broker.port, "hub", hub_password(self.data_dir)), engine.topics
            )
            self.bus = bus
            engine.attach(bus)
            try:
                await bus.start(
                    self._status(),
                    on_command=self._command,
                    on_device_status=self._device_status,
                    on_connect=self._on_connect,
                )
                ticker = asyncio.create_task(self._tick_loop(), name="ticker")
                ready_ms = round((time.perf_counter() - t0) * 1000, 1)
                log.info("hub ready", extra={"store": cfg.store.id, "seq": engine.head.seq, "ready_ms": ready_ms})
                watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
                server: asyncio.Server | None = None
                try:
                    # Tablets, screens and printers are served from here on; the manager page (FastAPI,
                    # about a second on a Pi) comes up right behind them instead of in front of them,
                    # and the control socket last, so `storehub hub status` answers when all is up.
                    web = await self._start_web(engine)
                    engine.attach(web.publisher(bus))
                    # Firmware rollouts see device statuses and results on their way to the engine.
                    ota = self.ota = self._ota(engine, bus)
                    self._presence = ota.tap_status(web.on_device_status(engine.note_device_status))
                    self._submit = ota.tap_command(engine.submit)
                    ota.start()
                    server = await asyncio.start_unix_server(
                        self._control, path=str(self.data_dir / SOCKET_NAME), limit=CONTROL_LIMIT
                    )
                    (self.data_dir / SOCKET_NAME).chmod(0o600)
                    if on_ready is not None:
                        on_ready()
                    self._engine_answered = time.monotonic()
                    self._systemd.notify(sdnotify.READY, f"STATUS=ready in {ready_ms} ms, seq {engine.head.seq}")
                    await self._stop.wait()
                finally:
                    self._systemd.notify(sdnotify.STOPPING)
                    watchdog.cancel()
                    ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ticker
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
                    if server is not None:
                        server.close()
                        await server.wait_closed()
                    with contextlib.suppress(FileNotFoundError):
                        (self.data_dir / SOCKET_NAME).unlink()
            finally:
                if self.ota is not None:
                    await self.ota.stop()
                if self.web is not None:  # also when it failed half-way through starting
                    await self.web.stop()
                await printing.stop()
                await engine.flush_acked()
                await bus.stop()
                if self.broker is not None:
                    await self.broker.stop()

    async def _start_web(self, engine: Engine) -> WebRuntime:
        """The manager page: its `web` device registered, its server listening (or retrying its port)."""
        from hub.web.runtime import WebRuntime  # noqa: PLC0415 - FastAPI only where the hub runs

        self.web = WebRuntime(engine, self.loaded, self.describe, printing=lambda: self.printing)
        await self.web.prepare()
        await self.web.start()
        return self.web

    def _command(self, device_id: str, payload: bytes) -> None:
        """A command from `cmd/{device}`: to the engine (through the rollouts' tap once it is up)."""
        self._submit(device_id, payload)

    def _device_status(self, device_id: str, status: dict[str, Any]) -> None:
        """Presence from `device/{id}/status`: the engine's, and the manager page's once it is up."""
        self._presence(device_id, status)

    def _ota(self, engine: Engine, bus: PahoBus) -> OtaService:
        """Firmware rollouts (hub/ota.py); stepped once the bus is up."""
        from hub.ota import OtaService  # noqa: PLC0415 - FastAPI (the firmware router) only where the hub runs

        return OtaService(engine, self.loaded, bus.connected.is_set)

    def _status(self) -> HubStatus:
        assert self.engine is not None  # noqa: S101 - called after the engine exists
        return HubStatus(
            state="online",
            version=__version__,
            started_at=self.started_at,
            epoch=self.engine.epoch,
            seq=self.engine.committed_head.seq,
        )

    async def _on_connect(self) -> None:
        assert self.engine is not None  # noqa: S101 - set in run()
        await self.engine.republish()
        if self.printing is not None:
            self.printing.republish()

    async def _devices_changed(self) -> None:
        assert self.engine is not None  # noqa: S101 - set in run()
        await apply_registry(self.engine, self.loaded, self.broker)

    async def _tick_loop(self) -> None:
        assert self.engine is not None  # noqa: S101 - set in run()
        interval = self.loaded.config.hub.tick_interval_s
        announced = self.engine.committed_head.seq
        while True:
            await asyncio.sleep(interval)
            try:
                await self.engine.tick()
                if self.bus is not None and self.engine.committed_head.seq != announced:
                    # `hub/status` carries the head as a hint for late joiners; refreshed once a tick.
                    status = self._status()
                    self.bus.set_status(status)
                    announced = status.seq or 0
            except Exception:
                log.exception("tick failed")
            else:
                self._engine_answered = time.monotonic()

    async def _watchdog(self) -> None:
        """Feed WatchdogSec: ping only while the engine answered a tick recently (hub/sdnotify.py)."""
        window = 2 * self.loaded.config.hub.tick_interval_s + (self._systemd.watchdog_s or 0)
        await sdnotify.Watchdog(self._systemd, lambda: time.monotonic() - self._engine_answered <= window).run()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The CLI's local channel: one JSON request per line, one reply per line."""
        assert self.engine is not None  # noqa: S101 - set in run()
        try:
            while line := await reader.readline():
                reply = await self._control_one(line)
                writer.write(reply.model_dump_json(exclude_none=True).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _control_one(self, line: bytes) -> Reply:
        assert self.engine is not None  # noqa: S101 - set in run()
        try:
            request = json.loads(line)
            type_ = str(request["type"])
            body = dict(request.get("body") or {})
            secret = request.get("secret")
        except (ValueError, KeyError, TypeError):
            return Reply.failure(None, ErrorCode.INVALID_PAYLOAD, "control request must be {type, body, secret?}")
        if type_ == "device.pair_code" and self.web is not None:
            return await self.web.pair_code(body)
        if self.printing is not None and type_ in CONTROL_PRINTING:
            return await self.printing.control(type_, body, self.engine.head.seq)
        if self.ota is not None and type_ in self.ota.requests:
            return await self.ota.control(type_, body)
        if type_ == "hub.status":
            described = self.describe()
            if body.get("reset_stats"):
                self.engine.stats.reset()
            return Reply.success(None, self.engine.head.seq, described)
        return await self.engine.admin(type_, body, secret=secret if isinstance(secret, str) else None)

    def describe(self) -> dict[str, Any]:
        """What `storehub hub status` shows."""
        assert self.engine is not None  # noqa: S101 - set in run()
        return {
            "store": self.loaded.config.store.id,
            "version": __version__,
            "started_at": self.started_at,
            "seq": self.engine.head.seq,
            "epoch": self.engine.epoch,
            "broker_connected": self.bus is not None and self.bus.connected.is_set(),
            "devices_online": sorted(d for d, s in self.engine.presence.items() if s.get("state") == "online"),
            "engine": self.engine.stats.summary(),
            "web": self.web.describe() if self.web is not None else None,
        }


async def control_request(
    data_dir: Path, type_: str, body: dict[str, Any], secret: str | None = None
) -> dict[str, Any] | None:
    """Send one request to a running hub's control socket; None when no hub is running.

    A hub serves tablets before its manager page and control socket are up: while the data
    directory is locked and the socket is not there yet, wait for it (up to `STARTING_WAIT_S`).
    """
    path = data_dir / SOCKET_NAME
    deadline = time.monotonic() + STARTING_WAIT_S
    while not path.exists():
        if time.monotonic() > deadline or not DataDirLock(data_dir).held():
            return None
        await asyncio.sleep(0.05)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=CONTROL_LIMIT)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    try:
        request = {"type": type_, "body": body} | ({"secret": secret} if secret is not None else {})
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    if not line:
        raise HubError("the hub closed the control connection without answering")
    answer: dict[str, Any] = json.loads(line)
    return answer
