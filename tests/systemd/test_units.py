"""The systemd units: rendered by install.sh with real paths, `systemd-analyze verify` clean, hardened."""

from __future__ import annotations

import configparser
import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config
from tests.hubproc import REPO

INSTALL = REPO / "systemd" / "install.sh"
BIN = Path(sys.executable).parent
DATA_DIR = "/var/lib/storehub-test"
SERVICES = ["storehub-hub.service", "storehub-relay.service", "storehub-kds@kds-grill.service"]
ANALYZE = shutil.which("systemd-analyze")


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def units(tmp_path_factory) -> Path:
    dest: Path = tmp_path_factory.mktemp("units")
    result = _install(
        "--render-only", str(dest), "--bin", str(BIN), "--data-dir", DATA_DIR, "--backup-dir", "/var/backups/sh-test"
    )
    assert result.returncode == 0, result.stderr
    # A template is verified through an instance; the drop-in through Debian's own mosquitto.service.
    shutil.copy(dest / "storehub-kds@.service", dest / "storehub-kds@kds-grill.service")
    shutil.copy("/lib/systemd/system/mosquitto.service", dest / "mosquitto.service")
    return dest


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None, "systemd-analyze is missing: apt-get install -y systemd"
    return subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False)


def _parse(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


UNIT_FILES = [
    "storehub-hub.service",
    "storehub-relay.service",
    "storehub-kds@kds-grill.service",
    "storehub-kiosk.service",
    "storehub-backup.service",
    "storehub-backup.timer",
    "storehub-broker-reload.path",
    "storehub-broker-reload.service",
    "mosquitto.service",
]


@pytest.mark.parametrize("name", UNIT_FILES)
def test_every_unit_verifies_clean(units, name):
    result = _verify(units / name)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_catches_a_broken_unit(units, tmp_path):
    text = (units / "storehub-hub.service").read_text()
    broken = tmp_path / "storehub-hub.service"
    broken.write_text(text.replace(f"ExecStart={BIN}/storehub", "ExecStart=/nonexistent/storehub") + "Bogus=1\n")
    result = _verify(broken)
    assert result.returncode != 0
    assert "/nonexistent/storehub is not executable" in result.stderr


def test_drop_in_is_read_and_runs_the_generated_config(units):
    (units / "mosquitto.service.d" / "extra.conf").write_text("[Service]\nNotAKey=1\n")
    try:
        result = _verify(units / "mosquitto.service")
        assert "NotAKey" in result.stderr  # proves verify reads the drop-in directory
    finally:
        (units / "mosquitto.service.d" / "extra.conf").unlink()
    dropin = _parse(units / "mosquitto.service.d" / "storehub.conf")
    assert f"{DATA_DIR}/broker/mosquitto.conf" in dropin["Service"]["ExecStart"]
    assert dropin["Service"]["User"] == "mosquitto"
    assert dropin["Service"]["SupplementaryGroups"] == "storehub"


def test_hub_is_a_watched_notify_service(units):
    service = _parse(units / "storehub-hub.service")["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "always"
    assert int(service["WatchdogSec"]) > 0
    assert service["ExecStart"].startswith(f"{BIN}/storehub hub run --config ")
    assert service["ReadWritePaths"] == DATA_DIR
    assert service["CacheDirectory"] == "storehub"  # python-escpos's parsed profiles, kept between starts
    assert service["User"] == "storehub"


@pytest.mark.parametrize("name", [*SERVICES, "mosquitto.service.d/storehub.conf", "storehub-backup.service"])
def test_long_running_services_are_hardened(units, name):
    service = _parse(units / name)["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert "AF_PACKET" not in service["RestrictAddressFamilies"]
    assert service.get("User") or service.get("DynamicUser") == "yes"


def test_path_unit_watches_the_generated_files(units):
    path = (units / "storehub-broker-reload.path").read_text()
    for name in ("passwd", "acl", "mosquitto.conf"):
        assert f"PathChanged={DATA_DIR}/broker/{name}" in path
    assert "reload-or-restart mosquitto.service" in (units / "storehub-broker-reload.service").read_text()


def test_backup_keeps_the_chosen_number_of_days(tmp_path):
    result = _install("--render-only", str(tmp_path), "--bin", str(BIN), "--keep-days", "30")
    assert result.returncode == 0, result.stderr
    assert "--keep-days 30" in _parse(tmp_path / "storehub-backup.service")["Service"]["ExecStart"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-days", "0"], "--keep-days must be a whole number"),
        (["--data-dir", "relative/dir"], "paths must be absolute"),
        (["--kds", "Bad_Id"], "device ids are"),
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--config"], "--config needs a value"),
        (["--kiosk-url", "javascript:alert(1)"], "--kiosk-url must be an http(s) URL"),
    ],
)
def test_install_refuses_bad_options(tmp_path, args, message):
    result = _install("--render-only", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_starting_config_is_for_a_real_store(units, tmp_path):
    config = units / "store.toml"
    with pytest.raises(ConfigError, match="placeholder PIN"):
        load_config(config)
    text = config.read_text().replace("allow_placeholder_pins = false", "allow_placeholder_pins = true")
    accepted = tmp_path / "store.toml"
    accepted.write_text(text)
    shutil.copy(units / "menu.toml", tmp_path / "menu.toml")
    loaded = load_config(accepted).config
    assert loaded.broker.managed is False
    assert ipaddress.ip_address(loaded.broker.host).is_unspecified, "the broker listens for the staff network"
    assert (loaded.broker.port, loaded.broker.websockets_port) == (1883, None)
    assert loaded.hub.data_dir == Path(DATA_DIR)


def _fake_release(prefix: Path, version: str, *, backup_exit: int = 0) -> Path:
    """A release directory whose `storehub` records how it was called."""
    release = prefix / "releases" / version
    (release / "bin").mkdir(parents=True)
    script = release / "bin" / "storehub"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{prefix}/calls-{version}"\nexit {backup_exit}\n')
    script.chmod(0o755)
    return release


def _version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")


def test_upgrade_backs_up_first_then_switches_and_rollback_switches_back(tmp_path):
    prefix = tmp_path / "opt"
    old = _fake_release(prefix, "0.0.9")
    new = _fake_release(prefix, _version())  # already built: no pip in this test
    (prefix / "current").symlink_to(old)
    config = tmp_path / "store.toml"
    config.write_text("")
    common = ["--prefix", str(prefix), "--config", str(config), "--backup-dir", str(tmp_path / "bk"), "--no-start"]

    upgraded = _install("--upgrade", *common)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (prefix / "calls-0.0.9").read_text().split() == [
        "backup", "run", "--config", str(config), "--dest", str(tmp_path / "bk"), "--keep-days", "14",
    ]  # fmt: skip
    assert (prefix / "current").resolve() == new
    assert (prefix / "previous").resolve() == old

    rolled = _install("--rollback", *common)
    assert rolled.returncode == 0, rolled.stderr
    assert (prefix / "current").resolve() == old
    assert (prefix / "previous").resolve() == new


def test_upgrade_refuses_when_the_backup_fails(tmp_path):
    prefix = tmp_path / "opt"
    old = _fake_release(prefix, "0.0.9", backup_exit=2)
    _fake_release(prefix, _version())
    (prefix / "current").symlink_to(old)
    config = tmp_path / "store.toml"
    config.write_text("")
    result = _install("--upgrade", "--prefix", str(prefix), "--config", str(config), "--no-start")
    assert result.returncode == 2
    assert "the pre-upgrade backup failed: not upgrading" in result.stderr
    assert (prefix / "current").resolve() == old


def test_rollback_without_a_previous_release(tmp_path):
    prefix = tmp_path / "opt"
    (prefix / "current").parent.mkdir(parents=True)
    (prefix / "current").symlink_to(_fake_release(prefix, "0.0.9"))
    result = _install("--rollback", "--prefix", str(prefix), "--no-start")
    assert result.returncode == 2
    assert "no previous release" in result.stderr


def test_help_lists_every_option():
    result = _install("--help")
    assert result.returncode == 0
    for option in ("--prefix", "--kds", "--kiosk-url", "--render-only", "--upgrade", "--rollback"):
        assert option in result.stdout
