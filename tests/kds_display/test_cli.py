"""`storehub kds run` refuses bad input with one clear message and exit code 2."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from hub.cli import main
from tests.hubproc import write_config

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "store")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):
    """`storehub kds run …` in this process (it exits before serving): (exit code, stderr)."""

    def _run(config: Path, *extra: str, password: str | None = "pw-for-tests") -> tuple[int, str]:  # noqa: S107
        args = ["kds", "run", "--device", "kds-grill", "--config", str(config), *extra]
        if password is not None:
            args += ["--password", password]
        code = main(args)
        return code, capsys.readouterr().err

    return _run


def test_without_a_password_it_says_where_to_put_one(config: Path, run) -> None:
    code, err = run(config, "--stations", "grill", password=None)
    assert code == 2
    assert "STOREHUB_KDS_PASSWORD" in err
    assert "--credentials" in err


def test_without_stations_or_a_registry_it_asks_for_stations(config: Path, run) -> None:
    code, err = run(config)
    assert code == 2
    assert "pass --stations" in err


def test_a_bad_settings_file_names_the_key(config: Path, tmp_path: Path, run) -> None:
    settings = tmp_path / "kds.toml"
    settings.write_text("[thresholds.grill]\nwarn_s = 600\nlate_s = 300\n", encoding="utf-8")
    code, err = run(config, "--stations", "grill", "--settings", str(settings))
    assert code == 2
    assert "thresholds.grill: late_s must be greater than warn_s" in err
    settings.write_text('order = "sideways"\n', encoding="utf-8")
    code, err = run(config, "--stations", "grill", "--settings", str(settings))
    assert code == 2
    assert "order" in err


def test_credentials_of_another_device_are_refused(config: Path, tmp_path: Path, run) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text('{"device_id": "kds-bar", "username": "kds-bar", "password": "x"}\n', encoding="utf-8")
    code, err = run(config, "--stations", "grill", "--credentials", str(creds), password=None)
    assert code == 2
    assert "credentials of kds-bar, not kds-grill" in err


def test_a_port_in_use_is_refused(config: Path, run) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err = run(config, "--stations", "grill", "--port", str(busy.getsockname()[1]))
    assert code == 2
    assert "cannot serve the kiosk page on 127.0.0.1:" in err


def test_a_bad_station_name_is_refused(config: Path, run) -> None:
    code, err = run(config, "--stations", "Grill Station")
    assert code == 2
    assert "station 'Grill Station'" in err


def test_under_systemd_the_credentials_come_from_the_state_directory(
    config: Path, tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    monkeypatch.delenv("STOREHUB_KDS_PASSWORD", raising=False)
    code, err = run(config, "--stations", "grill", password=None)
    assert code == 2
    assert "credentials.json in the state directory" in err
    (state / "credentials.json").write_text('{"device_id": "kds-bar", "password": "x"}\n', encoding="utf-8")
    code, err = run(config, "--stations", "grill", password=None)
    assert code == 2
    assert f"{state / 'credentials.json'}: these are the credentials of kds-bar" in err
