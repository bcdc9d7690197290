"""A bad config stops start-up with one clear message naming the key; a good one loads whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, load_config
from tests.hubproc import REPO, storehub, write_config


def test_the_example_bistro_config_loads() -> None:
    loaded = load_config(REPO / "config" / "store.example.toml")
    assert loaded.config.store.id == "bistro-verde"
    assert {i.id for i in loaded.menu.items} >= {"steak-frites", "biere"}
    assert loaded.menu.currency == "EUR"
    assert loaded.data_dir.is_absolute()
    assert loaded.config.staff, "the example bootstraps staff"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('currency = "EUR"', 'currency = "euro"', "store.currency"),
        ("\nport = ", "\nport = 99999 #", "broker.port"),
        ('timezone = "Europe/Paris"', 'timezone = "Mars/Olympus"', "unknown time zone"),
        ('role = "manager"', 'role = "boss"', "staff.0.role"),
        ('pin = "7410"', 'pin = "74a0"', "staff.0.pin"),
        ('pin = "7410"', 'pin = "1234"', "placeholder PIN"),
        ('id = "t2"', 'id = "t1"', "tables.1.id: duplicate"),
        ("[hub]", "[hub]\nweb_prot = 8080", "hub.web_prot: unknown key"),
        ('name = "Test Bistro"', 'name = "Test Bistro', "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_a_bad_menu_names_the_menu_file_and_item(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    menu = tmp_path / "menu.toml"
    menu.write_text(
        'version = "1"\n[[items]]\nid = "soup"\nname = "Soup"\nprice = 500\ntax_class = "nope"\n', encoding="utf-8"
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(text.split("menu_file = ")[1].split("\n")[0], f'"{menu}"'), encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(menu) in str(excinfo.value)
    assert "unknown tax_class 'nope'" in str(excinfo.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    monkeypatch.setenv("STOREHUB_BROKER__PORT", "24242")
    loaded = load_config(path)
    assert loaded.config.broker.port == 24242
    assert loaded.config.broker.managed is True


def test_the_cli_reports_a_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace('currency = "EUR"', 'currency = "E"'), encoding="utf-8")
    result = storehub("hub", "run", "--config", str(path), check=False)
    assert result.returncode == 2
    assert "store.currency" in result.stderr
    assert result.stderr.count("\n") == 1, "one clear line, no traceback"
    missing = storehub("device", "list", "--config", str(tmp_path / "nope.toml"), check=False)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_the_relay_section_is_kept_for_the_relay_and_a_misspelled_section_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(f'[relay]\ncentral_url = "http://127.0.0.1:9000"\n\n{text}', encoding="utf-8")
    loaded = load_config(path)
    assert loaded.config.relay == {"central_url": "http://127.0.0.1:9000"}
    path.write_text(f'[rellay]\ncentral_url = "http://127.0.0.1:9000"\n\n{text}', encoding="utf-8")
    with pytest.raises(ConfigError, match="rellay"):
        load_config(path)
