"""`storehub kds run` (a kitchen screen) and `storehub bench kds` (its figures)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from kds_display.settings import KdsSettings

log = logging.getLogger("storehub.kds")

CREDENTIALS_FILE = "credentials.json"


def register(subparsers: Any) -> None:
    """Add `storehub kds run` to the CLI."""
    kds = subparsers.add_parser("kds", help="kitchen display screens").add_subparsers(metavar="ACTION")
    run = kds.add_parser("run", help="run a KDS screen: an MQTT device serving its kiosk page on 127.0.0.1")
    run.add_argument("--device", required=True, help="the screen's device id (as registered with `device add`)")
    run.add_argument("--config", type=Path, required=True, help="the store's TOML config (store id, broker)")
    run.add_argument("--port", type=int, default=8091, help="HTTP port of the kiosk page (default 8091)")
    run.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    run.add_argument(
        "--stations", default="", help="comma-separated stations (default: the device's registration on this hub)"
    )
    run.add_argument("--password", default=None, help="the device's broker password (or STOREHUB_KDS_PASSWORD)")
    run.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="the JSON printed by `storehub device add` (default: STATE_DIR/credentials.json when present)",
    )
    run.add_argument("--settings", type=Path, default=None, help="screen settings TOML (order, thresholds, keys)")
    run.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="unsent bumps, credentials.json (default $STATE_DIRECTORY or var/kds/DEVICE)",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(handler=_run)
    demo = kds.add_parser("demo", help="a hub, a grill and an expo screen fed by a simulated tablet")
    demo.add_argument("--config", type=Path, required=True, help="the store's TOML config (with [[staff]])")
    demo.add_argument("--ports", default="8091,8092", help="HTTP ports of the grill and expo pages (0: any free)")
    demo.add_argument("--tickets", type=int, default=None, help="stop after firing this many tickets")
    demo.add_argument("--interval", type=float, default=4.0, help="seconds between tickets (default 4)")
    demo.set_defaults(handler=_demo)


def register_bench(bench_subparsers: Any) -> None:
    """Add `storehub bench kds` to the CLI."""
    bench = bench_subparsers.add_parser("kds", help="KDS: fire → painted in Chromium, bump → tablet, memory")
    bench.add_argument("--json", action="store_true", help="JSON only (the default prints JSON too)")
    bench.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    bench.set_defaults(handler=_bench)


def _run(args: argparse.Namespace) -> int:
    from hub.logs import setup_logging  # noqa: PLC0415
    from kds_display.settings import SettingsError  # noqa: PLC0415

    settings = build_settings(args)  # a SettingsError is a ConfigError: `storehub` exits 2 with its message
    setup_logging(args.log_level, store=settings.store_id)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: WebSocket frames to the page must not wait for Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((settings.http_host, settings.http_port))
    except OSError as exc:
        sock.close()
        where = f"{settings.http_host}:{settings.http_port}"
        raise SettingsError(f"cannot serve the kiosk page on {where}: {exc.strerror}") from exc
    asyncio.run(serve(settings, sock))
    return 0


def build_settings(args: argparse.Namespace) -> KdsSettings:
    """Validate the flags, the store config and the screen settings into `KdsSettings`."""
    from hub.config import load_config  # noqa: PLC0415
    from kds_display.settings import (  # noqa: PLC0415
        KdsSettings,
        SettingsError,
        load_screen_file,
        parse_stations,
        resolve_password,
    )

    loaded = load_config(args.config)
    device = str(args.device)
    if not re.fullmatch(r"[a-z0-9-]{1,32}", device):
        raise SettingsError(f"--device {device!r}: a device id is 1-32 of a-z, 0-9 and '-'")
    if not 1 <= args.port <= 65535:  # noqa: PLR2004
        raise SettingsError(f"--port {args.port}: must be 1-65535")
    stations = parse_stations(args.stations) if args.stations else registered_stations(loaded.data_dir, device)
    state_dir = args.state_dir or default_state_dir(device)
    credentials = args.credentials
    if credentials is None and (state_dir / CREDENTIALS_FILE).exists():
        credentials = state_dir / CREDENTIALS_FILE  # where systemd's storehub-kds@ keeps its pairing
    return KdsSettings(
        device_id=device,
        password=resolve_password(device, args.password, credentials),
        stations=stations,
        store_id=loaded.config.store.id,
        broker_host=loaded.config.broker.host,
        broker_port=loaded.config.broker.port,
        state_dir=state_dir,
        http_host=args.host,
        http_port=args.port,
        screen=load_screen_file(args.settings),
    )


def default_state_dir(device: str) -> Path:
    """The screen's state directory: `$STATE_DIRECTORY` under systemd (storehub-kds@), else `var/kds/DEVICE`."""
    systemd = os.environ.get("STATE_DIRECTORY")
    return Path(systemd.split(":")[0]) if systemd else Path("var") / "kds" / device


def registered_stations(data_dir: Path, device: str) -> tuple[str, ...]:
    """The stations of a KDS device from the hub's registry (read-only), when this machine has it."""
    from hub.app import DB_NAME  # noqa: PLC0415
    from kds_display.settings import SettingsError  # noqa: PLC0415

    path = data_dir / DB_NAME
    hint = f"pass --stations (the stations {device} was registered with)"
    if not path.exists():
        raise SettingsError(f"no hub database at {path} to read the stations of {device} from: {hint}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute("SELECT doc FROM p_devices WHERE device_id = ?", (device,)).fetchone()
    except sqlite3.Error as exc:
        raise SettingsError(f"cannot read the device registry at {path} ({exc}): {hint}") from exc
    if row is None:
        raise SettingsError(f"{device} is not registered: run `storehub device add {device} --kind kds --stations …`")
    doc = json.loads(row[0])
    if doc.get("kind") != "kds" or not doc.get("stations"):
        raise SettingsError(f"{device} is registered as a {doc.get('kind')} device, not a kds screen with stations")
    return tuple(str(s) for s in doc["stations"])


async def serve(settings: KdsSettings, sock: socket.socket) -> None:
    """Run the device and the kiosk server until SIGTERM/SIGINT."""
    import uvicorn  # noqa: PLC0415

    from kds_display.device import KdsDevice  # noqa: PLC0415
    from kds_display.server import KioskServer  # noqa: PLC0415

    device = KdsDevice(settings)
    server = KioskServer(device, settings)
    await device.start()
    config = uvicorn.Config(server.app, log_level="warning", access_log=False, lifespan="off", ws="websockets-sansio")
    web = uvicorn.Server(config)
    log.info(
        "%s shows %s on http://%s:%d",
        settings.device_id,
        ",".join(settings.stations),
        settings.http_host,
        settings.http_port,
    )
    try:
        await web.serve(sockets=[sock])
    finally:
        await device.close()


def _demo(args: argparse.Namespace) -> int:
    from kds_display.demo import run_kds_demo  # noqa: PLC0415
    from kds_display.settings import SettingsError  # noqa: PLC0415

    try:
        grill, expo = (int(p) for p in str(args.ports).split(","))
    except ValueError as exc:
        raise SettingsError(f"--ports {args.ports!r}: two ports, for example 8091,8092") from exc
    if args.tickets is not None and args.tickets < 1:
        raise SettingsError("--tickets must be at least 1")
    if args.interval < 0:
        raise SettingsError("--interval cannot be negative")
    return run_kds_demo(args.config, tickets=args.tickets, interval=args.interval, ports=(grill, expo))


def _bench(args: argparse.Namespace) -> int:
    from kds_display.bench import run_kds  # noqa: PLC0415

    result = run_kds(quick=args.quick)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0
