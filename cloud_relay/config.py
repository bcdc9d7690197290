"""The relay's `[relay]` section, read from the store's TOML file.

The relay reads the raw file itself (the hub keeps `[relay]` without reading it):
`[store].id`, `[hub].data_dir` (relative to the file, as the hub resolves it), `[broker]` for the
MQTT defaults, and its own `[relay]` section. Secrets come from the environment or a file, never
from the TOML itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.config import ConfigError, read_toml

DEFAULT_SECRET_ENV = "STOREHUB_RELAY_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_KEY_ENV = "STOREHUB_RELAY_STORE_KEY"
DEFAULT_MQTT_PASSWORD_ENV = "STOREHUB_RELAY_MQTT_PASSWORD"  # noqa: S105 - the variable's name


class RelaySection(BaseModel):
    """`[relay]`: where central is, who this store is to it, and how to batch."""

    model_config = ConfigDict(extra="forbid")

    central_url: Annotated[str, Field(pattern=r"^https?://")]
    store_key_env: str = DEFAULT_KEY_ENV
    store_key_file: Path | None = None
    secret_env: str = DEFAULT_SECRET_ENV
    secret_file: Path | None = None
    state_dir: Path = Path("relay-state")
    batch_entries: Annotated[int, Field(ge=1, le=10_000)] = 2000
    batch_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 2 * 1024 * 1024
    linger_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    poll_s: Annotated[float, Field(gt=0, le=60)] = 0.25
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.2
    backoff_max_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    status_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    menu_poll_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    mqtt_username: str | None = "relay"
    mqtt_password_env: str = DEFAULT_MQTT_PASSWORD_ENV
    mqtt_password_file: Path | None = None
    mqtt_host: str | None = None
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] | None = None

    @field_validator("central_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class RelayConfig(BaseModel):
    """Everything the relay needs, paths resolved and secrets read."""

    model_config = ConfigDict(frozen=True)

    path: Path
    store_id: str
    database: Path
    relay: RelaySection
    store_key: str
    secret: bytes
    mqtt_host: str
    mqtt_port: int
    mqtt_password: str | None

    @property
    def state_dir(self) -> Path:
        """The relay's own directory (cursor, status, MQTT session counter)."""
        return self.relay.state_dir


def load_relay_config(path: Path, *, need_secrets: bool = True) -> RelayConfig:
    """Read the store TOML's `[store]`, `[hub]`, `[broker]` and `[relay]`, or raise ConfigError."""
    raw = read_toml(path)
    base = path.resolve().parent
    store = raw.get("store")
    if not isinstance(store, dict) or not isinstance(store.get("id"), str):
        raise ConfigError(f"{path}: store.id: missing (the relay ships this store's ledger)")
    hub: dict[str, Any] = raw["hub"] if isinstance(raw.get("hub"), dict) else {}
    data_dir = base / str(os.environ.get("STOREHUB_HUB__DATA_DIR") or hub.get("data_dir", "/var/lib/storehub"))
    section = raw.get("relay")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: relay: missing section [relay] (central_url, secret_env, ...)")
    try:
        relay = RelaySection.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{path}: relay.{loc}: {message}") from exc
    relay = relay.model_copy(
        update={
            "state_dir": base / relay.state_dir,
            "store_key_file": base / relay.store_key_file if relay.store_key_file else None,
            "secret_file": base / relay.secret_file if relay.secret_file else None,
            "mqtt_password_file": base / relay.mqtt_password_file if relay.mqtt_password_file else None,
        }
    )
    broker: dict[str, Any] = raw["broker"] if isinstance(raw.get("broker"), dict) else {}
    store_key = _secret(path, "store key", relay.store_key_env, relay.store_key_file, required=need_secrets)
    secret = _secret(path, "HMAC secret", relay.secret_env, relay.secret_file, required=need_secrets)
    mqtt_password = _secret(path, "MQTT password", relay.mqtt_password_env, relay.mqtt_password_file, required=False)
    return RelayConfig(
        path=path.resolve(),
        store_id=store["id"],
        database=data_dir / "hub.db",
        relay=relay,
        store_key=store_key or "",
        secret=(secret or "").encode("utf-8"),
        mqtt_host=relay.mqtt_host or str(broker.get("host", "127.0.0.1")),
        mqtt_port=relay.mqtt_port or int(os.environ.get("STOREHUB_BROKER__PORT") or broker.get("port", 1883)),
        mqtt_password=mqtt_password if relay.mqtt_username else None,
    )


def _secret(path: Path, what: str, env: str, file: Path | None, *, required: bool) -> str | None:
    value = os.environ.get(env)
    if value:
        return value.strip()
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{path}: relay: the {what} file {file} cannot be read: {exc.strerror}") from exc
        if text:
            return text
    if required:
        where = f"${env}" + (f" or {file}" if file else "")
        raise ConfigError(f"{path}: relay: no {what} (set {where}; `storehub central store add` prints it)")
    return None
