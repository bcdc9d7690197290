"""`storehub device pair` and `storehub bench web`, hooked into `hub.cli` by `register`/`register_bench`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from devices.registry import PAIRABLE_KINDS

EXIT_USAGE = 2

if TYPE_CHECKING:
    import argparse


def register(
    device_actions: argparse._SubParsersAction[argparse.ArgumentParser],
    bench_actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `device pair` under `storehub device` and `bench web` under `storehub bench`."""
    register_bench(bench_actions)
    pair = device_actions.add_parser(
        "pair", help="show a one-time 6-digit code a new device trades for its credentials (POST /api/pair)"
    )
    pair.add_argument("--config", type=Path, required=True, help="the store's TOML config")
    pair.add_argument("--kind", choices=PAIRABLE_KINDS, help="only a device of this kind may use the code")
    pair.add_argument("--stations", default="", help="comma-separated KDS stations (kind kds)")
    pair.set_defaults(handler=_device_pair)


def register_bench(bench_actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench web`."""
    web = bench_actions.add_parser("web", help="manager page: first paint and live-update latency (Chromium)")
    web.add_argument("--json", action="store_true", help="JSON only (the default prints JSON too)")
    web.add_argument("--quick", action="store_true", help="a short run for smoke tests")
    web.add_argument("--updates", type=int, default=None, help="live updates to measure (default 200, quick 40)")
    web.set_defaults(handler=_bench_web)


def _device_pair(args: argparse.Namespace) -> int:
    from hub.app import HubError, control_request  # noqa: PLC0415
    from hub.config import load_config  # noqa: PLC0415

    loaded = load_config(args.config)
    stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    if args.kind == "kds" and not stations:
        return _refuse("a kds code needs --stations (for example --stations grill)")
    if stations and args.kind != "kds":
        return _refuse("--stations is only for --kind kds")
    body = {"kind": args.kind, "stations": stations}
    try:
        answer = asyncio.run(control_request(loaded.data_dir, "device.pair_code", body))
    except HubError as exc:
        return _refuse(str(exc))
    if answer is None:
        return _refuse(f"no hub is running on {loaded.data_dir}: pairing needs the running hub's HTTP API")
    if not answer.get("ok"):
        error = answer.get("error") or {}
        return _refuse(f"{error.get('code', 'error')}: {error.get('message', 'refused')}")
    result = answer["result"]
    print(json.dumps(result))  # noqa: T201 - the CLI's output
    what = result["kind"] or "any device"
    print(  # noqa: T201
        f"Pairing code {result['code']} for {what}, valid until {result['expires_at']} (POST {result['pair_url']})",
        file=sys.stderr,
    )
    return 0


def _refuse(message: str) -> int:
    """The CLI's refusal: one line on stderr, exit code 2 (as `hub.cli` does)."""
    print(f"storehub: {message}", file=sys.stderr)  # noqa: T201
    return EXIT_USAGE


def _bench_web(args: argparse.Namespace) -> int:
    from hub.web.bench import run_web_bench  # noqa: PLC0415

    result = run_web_bench(quick=args.quick, updates=args.updates)
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0
