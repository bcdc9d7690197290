"""`storehub relay …` and `storehub central …` (hooked into hub/cli.py by `register`)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.config import ConfigError

if TYPE_CHECKING:
    import argparse

STORE_ID_PATTERN = r"^[a-z0-9-]{1,32}$"


class RelayCliError(ConfigError):
    """Refused: printed on stderr by hub.cli, exit code 2."""


def register(sub: Any) -> None:
    """Add the `relay` and `central` commands to the `storehub` parser."""
    relay = sub.add_parser("relay", help="ship the hub's ledger to central").add_subparsers(metavar="ACTION")
    run = relay.add_parser("run", help="relay until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, required=True, help="the store's TOML config (with [relay])")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--drain", action="store_true", help="exit once central holds the ledger's current head")
    run.set_defaults(handler=_relay_run)
    status = relay.add_parser("status", help="cursor, backlog and lag (JSON)")
    status.add_argument("--config", type=Path, required=True)
    status.set_defaults(handler=_relay_status)

    central = sub.add_parser("central", help="HQ: the central API").add_subparsers(metavar="ACTION")
    crun = central.add_parser("run", help="serve the central API until SIGTERM/SIGINT")
    crun.add_argument("--config", type=Path, required=True, help="central.toml")
    crun.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    crun.set_defaults(handler=_central_run)
    store = central.add_parser("store", help="the store registry").add_subparsers(metavar="ACTION")
    add = store.add_parser("add", help="register a store; prints its key and secret once (JSON)")
    add.add_argument("store_id")
    add.add_argument("--config", type=Path, required=True)
    add.add_argument("--timezone", help="the hub's [store] timezone, e.g. Europe/Paris (reports use store time)")
    add.add_argument("--day-starts-at", help="the hub's [store] business_day_starts_at, HH:MM (default 04:00)")
    add.set_defaults(handler=_central_store_add)
    clock = store.add_parser("clock", help="set a store's time zone / business-day start and rebuild its reports")
    clock.add_argument("store_id")
    clock.add_argument("--config", type=Path, required=True)
    clock.add_argument("--timezone", help="IANA zone, e.g. America/New_York")
    clock.add_argument("--day-starts-at", help="HH:MM store time")
    clock.set_defaults(handler=_central_store_clock)
    _register_users(central)
    rebuild = central.add_parser("rebuild", help="rebuild every projection from the stored ledgers")
    rebuild.add_argument("--config", type=Path, required=True)
    rebuild.set_defaults(handler=_central_rebuild)
    audit = store.add_parser("audit", help="entries, duplicates, gaps and last hash held for a store (JSON)")
    audit.add_argument("store_id")
    audit.add_argument("--config", type=Path, required=True)
    audit.set_defaults(handler=_central_store_audit)


def _register_users(central: Any) -> None:
    user = central.add_parser("user", help="HQ dashboard users").add_subparsers(metavar="ACTION")
    uadd = user.add_parser("add", help="create or reset an HQ user; the password is read from stdin")
    uadd.add_argument("username")
    uadd.add_argument("--role", required=True, choices=["admin", "analyst"])
    uadd.add_argument("--config", type=Path, required=True)
    uadd.set_defaults(handler=_central_user_add)
    utoken = user.add_parser("token", help="mint an API token for an HQ user; printed once (JSON)")
    utoken.add_argument("username")
    utoken.add_argument("--config", type=Path, required=True)
    utoken.set_defaults(handler=_central_user_token)
    utokens = user.add_parser("tokens", help="an HQ user's API tokens: ids, created, revoked (JSON)")
    utokens.add_argument("username")
    utokens.add_argument("--config", type=Path, required=True)
    utokens.set_defaults(handler=_central_user_tokens)
    urevoke = user.add_parser("revoke", help="revoke an API token at once, by its id")
    urevoke.add_argument("token_id")
    urevoke.add_argument("--config", type=Path, required=True)
    urevoke.set_defaults(handler=_central_user_revoke)


def register_bench(bench: Any) -> None:
    """Add `storehub bench relay`."""
    relay = bench.add_parser("relay", help="relay → central: drain rate, limit, 20 concurrent relays")
    relay.add_argument("--json", action="store_true", help="JSON only (the default prints JSON too)")
    relay.add_argument("--entries", type=int, default=None, help="backlog size (default: a quick run)")
    relay.set_defaults(handler=_bench_relay)


# -- relay -------------------------------------------------------------------------------------
def _relay_run(args: argparse.Namespace) -> int:
    from cloud_relay.config import load_relay_config  # noqa: PLC0415
    from cloud_relay.mqtt import RelayMqtt  # noqa: PLC0415
    from cloud_relay.relay import Relay, RelayHaltedError  # noqa: PLC0415
    from hub.logs import setup_logging  # noqa: PLC0415

    config = load_relay_config(args.config)
    setup_logging(args.log_level, store=config.store_id)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    mqtt = None
    if config.relay.mqtt_username and config.mqtt_password:
        mqtt = RelayMqtt(
            config.store_id, config.mqtt_host, config.mqtt_port, username=config.relay.mqtt_username,
            password=config.mqtt_password, state_dir=config.state_dir,
        )  # fmt: skip
        mqtt.start()
    relay = Relay(config, mqtt=mqtt)

    async def _go() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, relay.stop)
        if args.drain:
            try:
                await relay.drain(progress=_progress_bar if sys.stderr.isatty() else None)
            except RelayHaltedError as exc:
                sys.stderr.write(f"storehub: relay stopped: {exc}\n")
                return 1
            _out(json.dumps(relay.status()))
            return 0
        await relay.run()
        return 1 if relay.halted else 0

    try:
        return asyncio.run(_go())
    finally:
        if mqtt is not None:
            mqtt.close()


def _relay_status(args: argparse.Namespace) -> int:
    from cloud_relay import state  # noqa: PLC0415
    from cloud_relay.config import load_relay_config  # noqa: PLC0415
    from hub.store.db import open_reader  # noqa: PLC0415
    from hub.store.ledger import read_entries, read_head  # noqa: PLC0415

    config = load_relay_config(args.config, need_secrets=False)
    cursor = state.load_cursor(config.state_dir)
    if not config.database.exists():
        raise RelayCliError(f"no hub database at {config.database} yet")

    async def _go() -> dict[str, Any]:
        async with open_reader(config.database) as conn:
            head = await read_head(conn)
            pending = await read_entries(conn, cursor.seq, 1)
        lag = 0.0
        if pending:
            at = datetime.strptime(pending[0].at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            lag = max(0.0, (datetime.now(UTC) - at).total_seconds())
        last = state.load_status(config.state_dir) or {}
        return {
            "store": config.store_id,
            "central": config.relay.central_url,
            "cursor": cursor.seq,
            "epoch": cursor.epoch,
            "head": head.seq,
            "backlog": max(0, head.seq - cursor.seq),
            "lag_s": round(lag, 3),
            "last_error": last.get("last_error"),
            "halted": bool(last.get("halted")),
            "status_updated_at": last.get("updated_at"),
        }

    _out(json.dumps(asyncio.run(_go()), indent=2))
    return 0


# -- central -----------------------------------------------------------------------------------
def _central_run(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from cloud_relay.central.app import create_app  # noqa: PLC0415
    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.keys import SecretBox  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415
    from hub.logs import setup_logging  # noqa: PLC0415

    settings = load_central_config(args.config)
    setup_logging(args.log_level)
    box = SecretBox.from_file(settings.key_file, create=True)

    async def _go() -> None:
        repo = Repository.open(settings.database_url, pool_size=settings.pool_size)
        try:
            await repo.migrate()
            app = create_app(repo, box, settings)
            config = uvicorn.Config(
                app, host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="off"
            )
            await uvicorn.Server(config).serve()
        finally:
            await repo.close()

    asyncio.run(_go())
    return 0


def _central_store_add(args: argparse.Namespace) -> int:
    import re  # noqa: PLC0415

    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.keys import SecretBox, new_credentials  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415
    from hub.contract.types import format_time  # noqa: PLC0415

    if not re.match(STORE_ID_PATTERN, args.store_id):
        raise RelayCliError(f"store id {args.store_id!r}: use 1-32 of a-z, 0-9 and '-' (the hub's store.id)")
    zone, cutoff = _clock_args(args)
    settings = load_central_config(args.config)
    box = SecretBox.from_file(settings.key_file, create=True)
    creds, key_hash, sealed = new_credentials(box)

    async def _go() -> bool:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            now = format_time(datetime.now(UTC))
            return await repo.add_store(args.store_id, key_hash, sealed, now, timezone=zone, day_starts_at=cutoff)
        finally:
            await repo.close()

    if not asyncio.run(_go()):
        raise RelayCliError(f"store {args.store_id!r} is already registered")
    _out(json.dumps({"store": args.store_id} | creds))
    return 0


def _clock_args(args: argparse.Namespace) -> tuple[str | None, str | None]:
    from cloud_relay.central.storetime import check_cutoff, check_zone  # noqa: PLC0415

    try:
        zone = None if args.timezone is None else check_zone(args.timezone)
        cutoff = None if args.day_starts_at is None else check_cutoff(args.day_starts_at)
    except ValueError as exc:
        raise RelayCliError(str(exc)) from exc
    return zone, cutoff


def _central_store_clock(args: argparse.Namespace) -> int:
    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.projections import Projector  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415

    zone, cutoff = _clock_args(args)
    if zone is None and cutoff is None:
        raise RelayCliError("give --timezone and/or --day-starts-at")
    settings = load_central_config(args.config)

    async def _go() -> tuple[bool, int, tuple[str | None, str | None]]:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            if not await repo.set_store_clock(args.store_id, zone, cutoff):
                return False, 0, (None, None)
            # Hours and fallback business days were folded with the old clock: fold this store again.
            applied = await Projector(repo).rebuild(args.store_id)
            return True, applied, (await repo.store_clocks())[args.store_id]
        finally:
            await repo.close()

    known, applied, (tz, starts) = asyncio.run(_go())
    if not known:
        raise RelayCliError(f"unknown store {args.store_id!r}")
    out = {"store": args.store_id, "timezone": tz or "UTC", "day_starts_at": starts or "04:00", "refolded": applied}
    _out(json.dumps(out))
    return 0


def _central_store_audit(args: argparse.Namespace) -> int:
    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415

    settings = load_central_config(args.config)

    async def _go() -> dict[str, Any]:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            return await repo.audit(args.store_id) | {"quarantined": len(await repo.quarantined(args.store_id))}
        finally:
            await repo.close()

    _out(json.dumps({"store": args.store_id} | asyncio.run(_go())))
    return 0


def _central_user_add(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415

    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415
    from hub.contract.types import format_time  # noqa: PLC0415
    from hub.domain.auth import hash_pin  # noqa: PLC0415

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.username):
        raise RelayCliError(f"user name {args.username!r}: use 1-64 of letters, digits, '_', '.', '-'")
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 10:  # noqa: PLR2004
        raise RelayCliError("the password (read from stdin) must have at least 10 characters")
    settings = load_central_config(args.config)
    hashed = hash_pin(password, os.urandom(16))

    async def _go() -> None:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            await repo.put_user(args.username, args.role, hashed, format_time(datetime.now(UTC)))
        finally:
            await repo.close()

    asyncio.run(_go())
    _out(json.dumps({"user": args.username, "role": args.role}))
    return 0


def _central_user_token(args: argparse.Namespace) -> int:
    from cloud_relay.central.keys import hash_key, new_api_token  # noqa: PLC0415
    from hub.contract.types import format_time  # noqa: PLC0415

    token_id, token = new_api_token()

    async def _go(repo: Any) -> bool:
        ok: bool = await repo.add_token(token_id, args.username, hash_key(token), format_time(datetime.now(UTC)))
        return ok

    if not _with_repo(args.config, _go):
        raise RelayCliError(f"no HQ user {args.username!r}: add one first with `storehub central user add`")
    _out(json.dumps({"user": args.username, "token_id": token_id, "token": token}))
    return 0


def _central_user_tokens(args: argparse.Namespace) -> int:
    async def _go(repo: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await repo.tokens(args.username)
        return found

    _out(json.dumps({"user": args.username, "tokens": _with_repo(args.config, _go)}))
    return 0


def _central_user_revoke(args: argparse.Namespace) -> int:
    from hub.contract.types import format_time  # noqa: PLC0415

    async def _go(repo: Any) -> bool:
        ok: bool = await repo.revoke_token(args.token_id, format_time(datetime.now(UTC)))
        return ok

    if not _with_repo(args.config, _go):
        raise RelayCliError(f"no API token {args.token_id!r} (see `storehub central user tokens NAME`)")
    _out(json.dumps({"revoked": args.token_id}))
    return 0


def _with_repo(config: Path, act: Any) -> Any:
    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415

    settings = load_central_config(config)

    async def _go() -> Any:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            return await act(repo)
        finally:
            await repo.close()

    return asyncio.run(_go())


def _central_rebuild(args: argparse.Namespace) -> int:
    from cloud_relay.central.config import load_central_config  # noqa: PLC0415
    from cloud_relay.central.projections import Projector  # noqa: PLC0415
    from cloud_relay.central.repository import Repository  # noqa: PLC0415

    settings = load_central_config(args.config)

    async def _go() -> int:
        repo = Repository.open(settings.database_url)
        try:
            await repo.migrate()
            return await Projector(repo).rebuild()
        finally:
            await repo.close()

    _out(json.dumps({"rebuilt": True, "entries": asyncio.run(_go())}))
    return 0


def _bench_relay(args: argparse.Namespace) -> int:
    from cloud_relay.bench import run_relay_bench  # noqa: PLC0415

    if args.entries is not None and args.entries < 100:  # noqa: PLR2004
        raise RelayCliError("--entries must be at least 100")
    _out(json.dumps(run_relay_bench(entries=args.entries), indent=2))
    return 0


def _progress_bar(done: int, target: int, width: int = 40) -> None:
    """A one-line bar on an interactive terminal while a backlog drains."""
    share = done / target if target else 1.0
    filled = int(width * share)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{target} entries acked ({share:.0%})")
    if done >= target:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
