"""`storehub-fw …`: the technician's tool for microcontroller devices, firmware and printers.

Exit codes: 0 success, 1 a check failed (verify), 2 bad input or the operation failed (one clear
message on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class FwCliError(Exception):
    """A refused operation: printed on stderr, exit code 2."""


class HubAwayError(FwCliError):
    """No hub answered on the data directory (none running, or it went away mid-request)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `storehub-fw` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except FwCliError as exc:
        sys.stderr.write(f"storehub-fw: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one flat list of options
    parser = argparse.ArgumentParser(
        prog="storehub-fw", description="StoreHub devices: provisioning, firmware, printers."
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    prov = sub.add_parser("provision", help="write Wi-Fi, hub address and MQTT credentials to a device over serial")
    prov.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    prov.add_argument(
        "--credentials", type=Path, help="JSON from `storehub device add` (device_id, username, password)"
    )
    prov.add_argument("--device-id", help="device id (or from --credentials)")
    prov.add_argument("--mqtt-password-file", type=Path, help="file holding the MQTT password (or --credentials)")
    prov.add_argument("--store", help="the store id (default: the --config store's)")
    prov.add_argument(
        "--config", type=Path, help="the store's TOML: its id, and its CA certificate when [tls] is enabled"
    )
    prov.add_argument("--ca-cert", type=Path, help="the store CA certificate (PEM) the device must trust")
    prov.add_argument("--hub-host", required=True, help="the hub's address on the staff network")
    prov.add_argument("--hub-port", type=int, default=1883)
    prov.add_argument("--wifi-ssid", required=True, help="the staff network's SSID (never the guest Wi-Fi)")
    prov.add_argument("--wifi-psk-file", type=Path, help="file holding the Wi-Fi passphrase (or env STOREHUB_WIFI_PSK)")
    prov.add_argument("--ota-key", help="base64 Ed25519 public key the device trusts for firmware")
    prov.add_argument("--baud", type=int, default=115200)
    prov.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each answer (default 1)")
    prov.add_argument("--retries", type=int, default=3, help="resends per frame (default 3)")
    prov.add_argument("--no-reboot", action="store_true", help="do not reboot the device after committing")
    prov.set_defaults(handler=_provision)

    keygen = sub.add_parser("keygen", help="create an Ed25519 signing key; prints the public key to provision")
    keygen.add_argument("--out", type=Path, required=True, help="private key file to create (PEM, 0600)")
    keygen.set_defaults(handler=_keygen)

    sign = sub.add_parser("sign", help="sign a firmware image into a manifest")
    sign.add_argument("image", type=Path)
    sign.add_argument("--key", type=Path, required=True, help="the private key (PEM)")
    sign.add_argument("--kind", required=True, help="device kind, e.g. drawer")
    sign.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
    sign.add_argument("--min-version", default="0.0.0", help="oldest firmware that may install this one")
    sign.add_argument("--out", type=Path, help="manifest file (default: IMAGE.manifest.json)")
    sign.set_defaults(handler=_sign)

    verify = sub.add_parser("verify", help="check an image against its manifest and a trusted key")
    verify.add_argument("image", type=Path)
    verify.add_argument("manifest", type=Path)
    verify.add_argument("--trusted-key", required=True, help="base64 Ed25519 public key")
    verify.add_argument("--current", help="running version: also refuse downgrades and min-version gaps")
    verify.set_defaults(handler=_verify)

    add = sub.add_parser("add", help="add a signed release to a firmware directory (checked first)")
    add.add_argument("image", type=Path)
    add.add_argument("manifest", type=Path)
    add.add_argument("--dir", type=Path, required=True, help="the firmware directory the hub serves")
    add.add_argument("--trusted-key", required=True, help="base64 Ed25519 public key")
    add.set_defaults(handler=_add)

    serve = sub.add_parser("serve", help="serve a firmware directory over HTTP (the hub mounts the same router)")
    serve.add_argument("--dir", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8070)
    serve.set_defaults(handler=_serve)

    printer = sub.add_parser("printer-test", help="print a self-test chit on an ESC/POS printer")
    where = printer.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="network printer address (raw TCP, port 9100)")
    where.add_argument("--serial", help="serial printer device, e.g. /dev/ttyUSB0")
    printer.add_argument("--port", type=int, default=9100)
    printer.add_argument("--baud", type=int, default=19200)
    printer.add_argument("--width", type=int, default=48, choices=[32, 42, 48], help="characters per line")
    printer.add_argument("--timeout", type=float, default=5.0)
    printer.set_defaults(handler=_printer_test)

    _rollout_parser(sub)
    return parser


def _rollout_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "rollout",
        help="hand a signed release to the running hub for a percentage of a device kind, and follow it",
        description="The hub serves the image, offers it on device/{id}/do and stops on failures; "
        "`rollout status` shows where it stands, `rollout stop` stops it. Exit: 0 complete, 1 stopped, "
        "2 refused, 3 still running when --follow-timeout ran out (the hub carries on).",
    )
    cmd.add_argument("action", nargs="?", choices=("start", "status", "stop"), default="start")
    cmd.add_argument("--config", type=Path, required=True, help="the store's TOML (finds the running hub)")
    cmd.add_argument("--manifest", type=Path, help="the release's signed manifest (storehub-fw sign)")
    cmd.add_argument("--image", type=Path, help="the firmware image the manifest describes")
    cmd.add_argument("--percent", type=int, help="how much of the kind's fleet gets it (widen later: same release)")
    cmd.add_argument("--force", action="store_true", help="also during an open shift")
    cmd.add_argument("--max-failures", type=int, help="stop at this many failed devices (default [ota])")
    cmd.add_argument("--offer-timeout", type=float, help="seconds a device has to come back updated (default [ota])")
    cmd.add_argument("--no-follow", action="store_true", help="return once the hub took the release")
    cmd.add_argument("--follow-timeout", type=float, default=3600.0, help="stop following after this many seconds")
    cmd.add_argument("--interval", type=float, default=1.0, help="seconds between progress checks")
    cmd.add_argument("--reason", help="rollout stop: why (ledgered)")
    cmd.set_defaults(handler=_rollout)


def _rollout(args: argparse.Namespace) -> int:
    from firmware_tools.rollout import rollout_cli  # noqa: PLC0415

    return rollout_cli(args)


# -- provisioning --------------------------------------------------------------------------------
def _provision(args: argparse.Namespace) -> int:
    from firmware_tools.provision import LinkSettings, ProvisionError, provision  # noqa: PLC0415

    settings = _provision_settings(args)
    if args.timeout <= 0 or args.retries < 0:
        raise FwCliError("--timeout must be above 0 and --retries at least 0")
    link = LinkSettings(baudrate=args.baud, answer_timeout_s=args.timeout, retries=args.retries)
    try:
        report = provision(args.port, settings, link_settings=link, reboot=not args.no_reboot)
    except ProvisionError as exc:
        raise FwCliError(str(exc)) from exc
    _print(
        {
            "port": report.port,
            "device": vars(report.device),
            "written": report.written,
            "verified": report.verified,
            "committed": report.committed,
            "rebooted": report.rebooted,
            "ca_sha256": report.ca_sha256,
            "requests": report.requests_sent,
            "resends": report.resends,
        }
    )
    return 0


def _provision_settings(args: argparse.Namespace) -> dict[str, str]:
    device_id, password, creds_ca = args.device_id, None, None
    if args.credentials is not None:
        try:
            creds = json.loads(args.credentials.read_text(encoding="utf-8"))
            device_id = device_id or creds["device_id"]
            password = creds["password"]
            creds_ca = creds.get("ca_cert")
            if creds.get("username", device_id) != device_id:
                raise FwCliError(f"{args.credentials}: username differs from the device id")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FwCliError(f"{args.credentials}: expected the JSON of `storehub device add`: {exc}") from exc
    if args.mqtt_password_file is not None:
        password = _read_secret(args.mqtt_password_file)
    if not device_id or not password:
        raise FwCliError("give --credentials, or --device-id and --mqtt-password-file")
    psk = _read_secret(args.wifi_psk_file) if args.wifi_psk_file else os.environ.get("STOREHUB_WIFI_PSK")
    if not psk:
        raise FwCliError(
            "give the Wi-Fi passphrase with --wifi-psk-file or STOREHUB_WIFI_PSK (never on the command line)"
        )
    settings = {
        "device_id": device_id,
        "store": _store_id(args),
        "wifi_ssid": args.wifi_ssid,
        "wifi_psk": psk,
        "hub_host": args.hub_host,
        "hub_port": str(args.hub_port),
        "mqtt_user": device_id,
        "mqtt_pass": password,
    }
    if args.ota_key:
        settings["ota_key"] = args.ota_key
    ca = _store_ca(args, creds_ca)
    if ca is not None:
        from firmware_tools.protocol import ca_settings  # noqa: PLC0415

        try:
            settings |= ca_settings(ca)
        except ValueError as exc:
            raise FwCliError(str(exc)) from exc
    return settings


def _store_id(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    if args.config is None:
        raise FwCliError("give --store or --config")
    store_id: str = _load_config(args.config).config.store.id
    return store_id


def _store_ca(args: argparse.Namespace, from_credentials: str | None) -> bytes | None:
    """The store CA (DER): --ca-cert, else the pairing answer's `ca_cert`, else the --config hub's."""
    import ssl  # noqa: PLC0415

    pem, where = None, ""
    if args.ca_cert is not None:
        pem, where = _read_secret(args.ca_cert), str(args.ca_cert)
    elif from_credentials:
        pem, where = from_credentials, f"{args.credentials} (ca_cert)"
    elif args.config is not None:
        loaded = _load_config(args.config)
        if not loaded.config.tls.enabled:
            return None
        path = loaded.data_dir / "tls" / "ca.crt"
        if not path.exists():
            raise FwCliError(f"[tls] is enabled but {path} does not exist yet: start the hub once (it makes the CA)")
        pem, where = _read_secret(path), str(path)
    if pem is None:
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(pem.strip() + "\n")
    except ValueError as exc:
        raise FwCliError(f"{where}: not a PEM certificate") from exc


def _load_config(path: Path) -> Any:
    from hub.config import ConfigError, load_config  # noqa: PLC0415

    try:
        return load_config(path)
    except ConfigError as exc:
        raise FwCliError(str(exc)) from exc


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FwCliError(f"{path}: cannot read: {exc.strerror}") from exc


# -- firmware ------------------------------------------------------------------------------------
def _keygen(args: argparse.Namespace) -> int:
    from firmware_tools.ota import generate_key  # noqa: PLC0415

    try:
        public = generate_key(args.out)
    except FileExistsError as exc:
        raise FwCliError(f"{args.out} already exists; never overwrite a signing key") from exc
    except OSError as exc:
        raise FwCliError(f"{args.out}: {exc.strerror}") from exc
    _print({"private_key": str(args.out), "public_key": public})
    return 0


def _sign(args: argparse.Namespace) -> int:
    from firmware_tools.ota import load_private_key, sign  # noqa: PLC0415
    from firmware_tools.server import manifest_json  # noqa: PLC0415

    try:
        key = load_private_key(args.key)
        image = args.image.read_bytes()
        manifest = sign(image, kind=args.kind, version=args.version, min_version=args.min_version, key=key)
    except OSError as exc:
        raise FwCliError(f"{args.image}: {exc.strerror}") from exc
    except ValueError as exc:
        raise FwCliError(_first_line(exc)) from exc
    out = args.out or args.image.with_name(args.image.name + ".manifest.json")
    out.write_text(manifest_json(manifest), encoding="utf-8")
    _print({"manifest": str(out)} | manifest.model_dump())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from firmware_tools.ota import OtaRefusedError, check_offer, verify_image, verify_manifest  # noqa: PLC0415
    from firmware_tools.server import read_manifest  # noqa: PLC0415

    try:
        manifest = read_manifest(args.manifest)
        image = args.image.read_bytes()
    except (OSError, ValueError) as exc:
        raise FwCliError(str(exc)) from exc
    try:
        if args.current:
            check_offer(manifest, image, trusted_key=args.trusted_key, kind=manifest.device_kind, current=args.current)
        else:
            verify_manifest(manifest, args.trusted_key)
            verify_image(manifest, image)
    except OtaRefusedError as exc:
        _print({"ok": False, "code": exc.code, "reason": str(exc)})
        return EXIT_FAILED
    _print({"ok": True, "device_kind": manifest.device_kind, "version": manifest.version})
    return 0


def _add(args: argparse.Namespace) -> int:
    from firmware_tools.ota import OtaRefusedError  # noqa: PLC0415
    from firmware_tools.server import FirmwareStore  # noqa: PLC0415

    try:
        manifest = FirmwareStore(args.dir).add(args.image, args.manifest, args.trusted_key)
    except OtaRefusedError as exc:
        raise FwCliError(f"refused: {exc.code}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise FwCliError(_first_line(exc)) from exc
    _print({"added": f"{manifest.device_kind} {manifest.version}", "dir": str(args.dir)})
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from firmware_tools.server import FirmwareStore, create_app  # noqa: PLC0415

    if not args.dir.is_dir():
        raise FwCliError(f"{args.dir}: no such directory")
    uvicorn.run(create_app(FirmwareStore(args.dir)), host=args.host, port=args.port, log_level="warning")
    return 0


def _printer_test(args: argparse.Namespace) -> int:
    from firmware_tools.printer_test import PrinterTestError, print_self_test  # noqa: PLC0415

    try:
        result = print_self_test(
            host=args.host,
            port=args.port,
            serial_device=args.serial,
            baud=args.baud,
            width=args.width,
            timeout=args.timeout,
        )
    except PrinterTestError as exc:
        raise FwCliError(str(exc)) from exc
    _print(result)
    return 0


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


if __name__ == "__main__":
    # Run the module under its package name, so `FwCliError` raised by lazily imported submodules
    # (which import `firmware_tools.cli`) is the class `main` catches.
    from firmware_tools.cli import main as package_main

    sys.exit(package_main())
