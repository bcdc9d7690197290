"""`storehub …`: the operator's command line.

Exit codes: 0 success, 1 a check failed (ledger verify, replay diff), 2 bad input or the
operation was refused (with one clear message on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_relay import cli as relay_cli
from devices import cli as devices_cli
from hub import backup, doctor
from hub.config import ConfigError, LoadedConfig, load_config
from hub.web import cli as web_cli
from kds_display import cli as kds_cli

if TYPE_CHECKING:
    from collections.abc import Sequence

DEVICE_KINDS = ("tablet", "kds", "drawer", "button", "display", "relay")
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A refused operation: printed on stderr, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `storehub` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.handler(args)
    except (CliError, ConfigError) as exc:
        print(f"storehub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storehub", description="StoreHub: the store's hub.")
    sub = parser.add_subparsers(metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, required=True, help="the store's TOML config")
        return p

    hub = sub.add_parser("hub", help="run the hub").add_subparsers(metavar="ACTION")
    run = with_config(hub.add_parser("run", help="run the hub until SIGTERM/SIGINT"))
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(handler=_hub_run)
    status = with_config(hub.add_parser("status", help="ask the running hub how it is"))
    status.set_defaults(handler=_hub_status)

    device = sub.add_parser("device", help="register, list and revoke devices").add_subparsers(metavar="ACTION")
    add = with_config(device.add_parser("add", help="register a device; prints its MQTT credentials as JSON"))
    add.add_argument("device_id")
    add.add_argument("--kind", required=True, choices=DEVICE_KINDS)
    add.add_argument("--stations", default="", help="comma-separated KDS stations (kind kds)")
    add.set_defaults(handler=_device_add)
    lst = with_config(device.add_parser("list", help="list registered devices"))
    lst.set_defaults(handler=_device_list)
    revoke = with_config(device.add_parser("revoke", help="revoke a device: the broker refuses it from now on"))
    revoke.add_argument("device_id")
    revoke.set_defaults(handler=_device_revoke)

    _staff_commands(sub.add_parser("staff", help="add, list, deactivate staff; change roles and PINs"))

    ledger = sub.add_parser("ledger", help="the hash-chained ledger").add_subparsers(metavar="ACTION")
    verify = with_config(ledger.add_parser("verify", help="walk the chain; exit 1 at the first bad entry"))
    verify.set_defaults(handler=_ledger_verify)

    replay = with_config(sub.add_parser("replay", help="rebuild projections from the ledger and diff them"))
    replay.add_argument("--keep", type=Path, help="keep the scratch database at this path")
    replay.set_defaults(handler=_replay)

    contract = sub.add_parser("contract", help="the MQTT contract").add_subparsers(metavar="ACTION")
    asyncapi = contract.add_parser("asyncapi", help="write docs/asyncapi.yaml from the contract models")
    asyncapi.add_argument("--output", type=Path, default=Path("docs/asyncapi.yaml"))
    asyncapi.set_defaults(handler=_asyncapi)

    bench = sub.add_parser("bench", help="benchmarks (JSON on stdout)").add_subparsers(metavar="SUITE")
    core = bench.add_parser("core", help="hub core: latency, throughput, fan-out, memory, start-up")
    core.add_argument("--json", action="store_true", help="JSON only (the default prints JSON too)")
    core.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    core.set_defaults(handler=_bench_core)
    web_cli.register(device, bench)
    relay_cli.register_bench(bench)
    relay_cli.register(sub)
    kds_cli.register_bench(bench)
    kds_cli.register(sub)
    devices_cli.register(sub, bench)

    demo = with_config(sub.add_parser("demo", help="a whole store on this machine: hub, screens, tablets playing"))
    demo.add_argument("--once", action="store_true", help="play a bounded service, check the books, stop")
    demo.add_argument("--rush", action="store_true", help="play the service at rush-hour pace")
    demo.add_argument("--parties", type=int, default=None, help="stop the service after this many parties")
    demo.set_defaults(handler=_demo)
    backup.register(sub)
    doctor.register(sub)
    return parser


def _staff_commands(parser: argparse.ArgumentParser) -> None:
    staff = parser.add_subparsers(metavar="ACTION")
    staff_add = _with_config(staff.add_parser("add", help="add an employee (the PIN is read from stdin or a prompt)"))
    staff_add.add_argument("employee_id")
    staff_add.add_argument("--name", required=True)
    staff_add.add_argument("--role", required=True, choices=ROLES)
    staff_add.set_defaults(handler=_staff_add)
    staff_list = _with_config(staff.add_parser("list", help="list employees (never their PINs)"))
    staff_list.set_defaults(handler=_staff_list)
    staff_off = _with_config(staff.add_parser("deactivate", help="stop an employee's logins; their sessions end now"))
    staff_off.add_argument("employee_id")
    staff_off.set_defaults(handler=_staff_deactivate)
    staff_role = _with_config(staff.add_parser("set-role", help="change an employee's role"))
    staff_role.add_argument("employee_id")
    staff_role.add_argument("role", choices=ROLES)
    staff_role.set_defaults(handler=_staff_set_role)
    staff_pin = _with_config(staff.add_parser("reset-pin", help="set a new PIN (read from stdin or a prompt)"))
    staff_pin.add_argument("employee_id")
    staff_pin.set_defaults(handler=_staff_reset_pin)


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", type=Path, required=True, help="the store's TOML config")
    return p


# -- hub ---------------------------------------------------------------------------------------
def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_config(args.config)


def _database(loaded: LoadedConfig) -> Path:
    """The hub database of a config, or a clear refusal when there is none yet."""
    from hub.app import DB_NAME  # noqa: PLC0415

    path = loaded.data_dir / DB_NAME
    if not path.exists():
        raise CliError(f"no hub database at {path} yet: start the hub or add a device first")
    return path


def _hub_run(args: argparse.Namespace) -> int:
    from hub.app import Hub, HubError, settle_memory  # noqa: PLC0415 - keep `storehub --help` fast
    from hub.logs import setup_logging  # noqa: PLC0415

    loaded = _load(args)
    setup_logging(args.log_level, store=loaded.config.store.id)
    hub = Hub(loaded)

    async def _run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, hub.request_stop)
        await hub.run(on_ready=settle_memory)

    try:
        asyncio.run(_run())
    except HubError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        from hub.broker import BrokerError  # noqa: PLC0415
        from hub.bus import BusError  # noqa: PLC0415

        if isinstance(exc, BrokerError | BusError):
            raise CliError(str(exc)) from exc
        raise
    return 0


def _hub_status(args: argparse.Namespace) -> int:
    from hub.app import control_request  # noqa: PLC0415

    loaded = _load(args)
    answer = asyncio.run(control_request(loaded.data_dir, "hub.status", {}))
    if answer is None:
        raise CliError(f"no hub is running on {loaded.data_dir}")
    print(json.dumps(answer.get("result"), indent=2))
    return 0


# -- devices -----------------------------------------------------------------------------------
def _admin(loaded: LoadedConfig, type_: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run an admin command on the running hub, or directly on its database when none runs."""
    from hub.app import HubError, apply_registry, control_request, open_engine  # noqa: PLC0415

    async def _go() -> dict[str, Any]:
        answer = await control_request(loaded.data_dir, type_, body)
        if answer is not None:
            return answer
        async with open_engine(loaded) as engine:
            reply = await engine.admin(type_, body)
            result: dict[str, Any] = json.loads(reply.model_dump_json(exclude_none=True))
            if reply.ok and type_ in ("device.add", "device.revoke"):
                await apply_registry(engine, loaded)
            return result

    try:
        answer = asyncio.run(_go())
    except HubError as exc:
        raise CliError(str(exc)) from exc
    if not answer.get("ok"):
        error = answer.get("error") or {}
        raise CliError(f"{error.get('code', 'error')}: {error.get('message', 'refused')}")
    return answer


def _device_add(args: argparse.Namespace) -> int:
    loaded = _load(args)
    stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    if args.kind == "kds" and not stations:
        raise CliError("a kds device needs --stations (for example --stations grill or --stations expo)")
    if stations and args.kind != "kds":
        raise CliError("--stations is only for kds devices")
    answer = _admin(loaded, "device.add", {"device_id": args.device_id, "kind": args.kind, "stations": stations})
    result = answer.get("result") or {}
    print(json.dumps({"device_id": args.device_id, "username": args.device_id, "password": result["password"]}))
    return 0


def _device_list(args: argparse.Namespace) -> int:
    from hub.store.db import open_reader  # noqa: PLC0415

    path = _database(_load(args))

    async def _go() -> list[dict[str, Any]]:
        async with open_reader(path) as conn, conn.execute("SELECT doc FROM p_devices ORDER BY device_id") as cursor:
            return [json.loads(row[0]) async for row in cursor]

    for device in asyncio.run(_go()):
        print(json.dumps(device))
    return 0


def _device_revoke(args: argparse.Namespace) -> int:
    loaded = _load(args)
    _admin(loaded, "device.revoke", {"device_id": args.device_id})
    print(json.dumps({"device_id": args.device_id, "revoked": True}))
    return 0


# -- staff -------------------------------------------------------------------------------------
ROLES = ("kitchen", "server", "cashier", "manager")


def _read_pin() -> str:
    """A PIN from a prompt (typed twice) or one line of stdin; never from the command line (ps shows argv)."""
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN (4-8 digits): ")
        if getpass.getpass("PIN again: ") != pin:
            raise CliError("the two PINs differ; nothing was changed")
    else:
        pin = sys.stdin.readline().strip()
    if not pin.isdigit() or not 4 <= len(pin) <= 8:  # noqa: PLR2004 - the contract's PIN length
        raise CliError("a PIN is 4 to 8 digits; nothing was changed")
    return pin


def _staff_add(args: argparse.Namespace) -> int:
    loaded = _load(args)
    pin = _read_pin()
    body = {"employee_id": args.employee_id, "name": args.name, "role": args.role, "pin": pin}
    answer = _admin(loaded, "staff.add", body)
    print(json.dumps({"employee_id": args.employee_id, "name": args.name, "role": args.role, "seq": answer.get("seq")}))
    return 0


def _staff_list(args: argparse.Namespace) -> int:
    from hub.store.db import open_reader  # noqa: PLC0415

    path = _database(_load(args))

    async def _go() -> list[dict[str, Any]]:
        async with open_reader(path) as conn, conn.execute("SELECT doc FROM p_staff ORDER BY employee_id") as cursor:
            return [json.loads(row[0]) async for row in cursor]

    for employee in asyncio.run(_go()):
        print(json.dumps(employee))
    return 0


def _staff_deactivate(args: argparse.Namespace) -> int:
    answer = _admin(_load(args), "staff.deactivate", {"employee_id": args.employee_id})
    print(json.dumps({"employee_id": args.employee_id, "active": False, "seq": answer.get("seq")}))
    return 0


def _staff_set_role(args: argparse.Namespace) -> int:
    answer = _admin(_load(args), "staff.set_role", {"employee_id": args.employee_id, "role": args.role})
    print(json.dumps({"employee_id": args.employee_id, "role": args.role, "seq": answer.get("seq")}))
    return 0


def _staff_reset_pin(args: argparse.Namespace) -> int:
    loaded = _load(args)
    answer = _admin(loaded, "staff.reset_pin", {"employee_id": args.employee_id, "pin": _read_pin()})
    print(json.dumps({"employee_id": args.employee_id, "pin_reset": True, "seq": answer.get("seq")}))
    return 0


# -- ledger and replay -------------------------------------------------------------------------
def _ledger_verify(args: argparse.Namespace) -> int:
    from hub.store.db import open_reader  # noqa: PLC0415
    from hub.store.ledger import verify_ledger  # noqa: PLC0415

    path = _database(_load(args))

    async def _go() -> Any:
        async with open_reader(path) as conn:
            return await verify_ledger(conn)

    result = asyncio.run(_go())
    print(
        json.dumps(
            {
                "ok": result.ok,
                "entries": result.count,
                "head_seq": result.head_seq,
                "first_bad_seq": result.first_bad_seq,
                "reason": result.reason,
            }
        )
    )
    return 0 if result.ok else EXIT_FAILED


def _replay(args: argparse.Namespace) -> int:
    from hub.store.replay import replay_and_diff  # noqa: PLC0415

    path = _database(_load(args))
    report = asyncio.run(replay_and_diff(path, keep=args.keep))
    print(json.dumps(report, indent=2))
    return 0 if report["equal"] else EXIT_FAILED


# -- contract, bench, demo ---------------------------------------------------------------------
def _asyncapi(args: argparse.Namespace) -> int:
    from hub.contract.asyncapi import write_asyncapi  # noqa: PLC0415

    changed = write_asyncapi(args.output)
    print(f"{args.output}: {'written' if changed else 'already up to date'}")
    return 0


def _bench_core(args: argparse.Namespace) -> int:
    from hub.bench import run_core  # noqa: PLC0415

    result = run_core(quick=args.quick)
    print(json.dumps(result, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from hub.demo import run_demo  # noqa: PLC0415

    if args.parties is not None and args.parties < 1:
        raise CliError("--parties must be at least 1")
    return run_demo(args.config, once=args.once, rush=args.rush, parties=args.parties)


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
