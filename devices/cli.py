"""`storehub printers …` and `storehub bench print`: the printing part of the operator's CLI.

    storehub printers list --config C          every printer's state from the running hub
    storehub printers discover [--timeout S]   zeroconf browse for raw/LPD/IPP printers (JSON lines)
    storehub printers test ADDRESS             print a test page, confirmed, and show the status
    storehub printers route --config C ...     change routing at runtime (ledgered)
    storehub printers preview --config C JOB   the PNG of a job as its printer prints it
    storehub bench print [--json] [--quick]    printing figures (see devices.printers.bench)

Errors print one line on stderr and exit 2.
"""

# ruff: noqa: T201 - a command line prints its answers

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

EXIT_USAGE = 2


class PrintCliError(Exception):
    """A refused operation (exit 2)."""


def register(subparsers: Any, bench_subparsers: Any) -> None:
    """Add `storehub printers …` and `storehub bench print`."""
    register_bench(bench_subparsers)
    printers = subparsers.add_parser("printers", help="receipt and kitchen printers").add_subparsers(
        metavar="ACTION"
    )
    lst = printers.add_parser("list", help="every printer's state from the running hub (JSON)")
    lst.add_argument("--config", type=Path, required=True)
    lst.set_defaults(handler=_guard(_list))

    discover = printers.add_parser("discover", help="browse zeroconf for printers (JSON lines)")
    discover.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    discover.add_argument("--interface", action="append", default=None, help="interface address (repeatable)")
    discover.set_defaults(handler=_guard(_discover))

    test = printers.add_parser("test", help="print a confirmed test page on a printer address")
    test.add_argument("address", help="tcp://host:port or serial:/dev/ttyUSB0?baud=9600")
    test.add_argument("--paper", type=int, choices=[58, 80], default=80)
    test.add_argument("--profile", default="default")
    test.add_argument("--confirmation", choices=["process_id", "status"], default="process_id")
    test.add_argument("--timeout", type=float, default=10.0)
    test.set_defaults(handler=_guard(_test))

    route = printers.add_parser("route", help="point a station, receipts or expo at printers (ledgered)")
    route.add_argument("--config", type=Path, required=True)
    route.add_argument("--station")
    route.add_argument("--printers", default="", help="comma-separated printer ids (empty: unroute the station)")
    route.add_argument("--receipts")
    route.add_argument("--expo")
    route.add_argument("--backup-of")
    route.add_argument("--backup")
    route.set_defaults(handler=_guard(_route))

    preview = printers.add_parser("preview", help="write the PNG of a print job")
    preview.add_argument("--config", type=Path, required=True)
    preview.add_argument("job_id")
    preview.add_argument("--output", type=Path, required=True)
    preview.set_defaults(handler=_guard(_preview))


def register_bench(bench_subparsers: Any) -> None:
    """Add `storehub bench print`."""
    bench = bench_subparsers.add_parser("print", help="printing: confirm latency, burst with faults, failover")
    bench.add_argument("--json", action="store_true", help="JSON only (the default prints JSON too)")
    bench.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    bench.set_defaults(handler=_guard(_bench))


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = fn(args)
        except PrintCliError as exc:
            print(f"storehub: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return result

    return run


def _control(config: Path, type_: str, body: dict[str, Any]) -> dict[str, Any]:
    from hub.app import control_request  # noqa: PLC0415 - keep `storehub --help` fast
    from hub.config import ConfigError, load_config  # noqa: PLC0415

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        raise PrintCliError(str(exc)) from exc
    answer = asyncio.run(control_request(loaded.data_dir, type_, body))
    if answer is None:
        raise PrintCliError(f"no hub is running on {loaded.data_dir}")
    if not answer.get("ok"):
        error = answer.get("error") or {}
        raise PrintCliError(f"{error.get('code')}: {error.get('message')}")
    result: dict[str, Any] = answer.get("result") or {}
    return result


def _list(args: argparse.Namespace) -> int:
    print(json.dumps(_control(args.config, "printers.list", {}), indent=2))
    return 0


def _route(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.station:
        body["station"] = args.station
        body["printers"] = [p for p in args.printers.split(",") if p]
    for key in ("receipts", "expo", "backup_of", "backup"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if not body:
        raise PrintCliError("say what to route: --station, --receipts, --expo or --backup-of")
    print(json.dumps(_control(args.config, "printers.route", body)))
    return 0


def _preview(args: argparse.Namespace) -> int:
    result = _control(args.config, "print.preview", {"job_id": args.job_id})
    args.output.write_bytes(base64.b64decode(result["png_base64"]))
    print(json.dumps({"job_id": args.job_id, "output": str(args.output)}))
    return 0


def _discover(args: argparse.Namespace) -> int:
    from devices.printers.discovery import browse_once  # noqa: PLC0415

    interfaces = args.interface or ["127.0.0.1"]
    for found in asyncio.run(browse_once(interfaces, args.timeout)):
        print(json.dumps(found.as_dict()))
    return 0


def _test(args: argparse.Namespace) -> int:
    from devices.printers.link import LinkTimings, PrinterLink  # noqa: PLC0415
    from devices.printers.render import Capabilities, render  # noqa: PLC0415
    from devices.printers.transport import TransportError  # noqa: PLC0415
    from hub.printing import transport_factory  # noqa: PLC0415

    try:
        factory = transport_factory(args.address, min(3.0, args.timeout))
    except ValueError as exc:
        raise PrintCliError(str(exc)) from exc
    caps = Capabilities.for_printer(args.profile, args.paper)
    doc = {"kind": "test", "job_id": "test-page", "note": args.address}

    async def _go() -> dict[str, Any]:
        transport = factory()
        await transport.open()
        try:
            link = PrinterLink(transport, LinkTimings(confirm_timeout=args.timeout))
            status = await link.status()
            if not status.can_print:
                return {"printed": False, "status": status.fault}
            await link.print_job(render(doc, caps), b"0001", args.confirmation)
            return {"printed": True, "confirmation": args.confirmation, "paper": status.paper}
        finally:
            await transport.close()

    try:
        result = asyncio.run(_go())
    except TransportError as exc:
        raise PrintCliError(f"{args.address}: {exc}") from exc
    print(json.dumps(result))
    return 0 if result["printed"] else 1


def _bench(args: argparse.Namespace) -> int:
    from devices.printers.bench import run_bench  # noqa: PLC0415

    result = asyncio.run(run_bench(quick=args.quick))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
