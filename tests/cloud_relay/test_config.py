"""The relay's and central's configs: clear refusals, exit code 2, secrets never from the TOML."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.cloud_relay.helpers import storehub
from tests.hubproc import write_config

if TYPE_CHECKING:
    from pathlib import Path


def test_relay_refuses_a_config_without_relay_section_or_secrets(tmp_path: Path) -> None:
    store = write_config(tmp_path / "store", store_id="cfg")
    missing = storehub("relay", "run", "--config", str(store), check=False)
    assert missing.returncode == 2
    assert "relay: missing section [relay]" in missing.stderr
    with store.open("a", encoding="utf-8") as handle:
        handle.write('\n[relay]\ncentral_url = "http://127.0.0.1:9"\nsecret_env = "STOREHUB_TEST_NOPE"\n')
    no_secret = storehub("relay", "run", "--config", str(store), check=False, env={"STOREHUB_RELAY_STORE_KEY": "sk_x"})
    assert no_secret.returncode == 2
    assert "no HMAC secret (set $STOREHUB_TEST_NOPE" in no_secret.stderr
    typo = store.read_text(encoding="utf-8").replace("[relay]\n", "[relay]\nbatch_entires = 5\n")
    store.write_text(typo, encoding="utf-8")
    unknown = storehub("relay", "status", "--config", str(store), check=False)
    assert unknown.returncode == 2
    assert "relay.batch_entires: unknown key" in unknown.stderr


def test_central_refuses_unknown_keys_and_databases(tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text('[central]\ndatabase_url = "mysql://x"\n', encoding="utf-8")
    bad_url = storehub("central", "store", "add", "s1", "--config", str(config), check=False)
    assert bad_url.returncode == 2
    assert "central.database_url" in bad_url.stderr
    config.write_text("[central]\nprot = 1\n", encoding="utf-8")
    typo = storehub("central", "run", "--config", str(config), check=False)
    assert typo.returncode == 2
    assert "central.prot: unknown key" in typo.stderr
