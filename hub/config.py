"""Store configuration: one TOML file (plus a menu file), validated before anything starts.

`load_config(path)` either returns a complete `StoreConfig` or raises `ConfigError` whose message
names the file and the key, e.g. `store.toml: broker.port: Input should be less than or equal
to 65535`. Environment variables `STOREHUB_<SECTION>__<KEY>` override the file (systemd units and
tests use them for ports and directories).
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.contract.commands import Pin
from hub.contract.menu import Menu, MenuItem, ModifierGroup, TaxClass
from hub.contract.types import DeviceId, Id

Role = Literal["kitchen", "server", "cashier", "manager"]
Port = Annotated[int, Field(ge=1, le=65535)]
PLACEHOLDER_PINS = frozenset({"0000", "1111", "1234", "12345", "123456"})


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class StoreSection(BaseModel):
    """`[store]`: who the store is, its money and its day."""

    model_config = ConfigDict(extra="forbid")

    id: DeviceId
    name: Annotated[str, Field(min_length=1, max_length=80)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    timezone: str = "UTC"
    business_day_starts_at: time = time(4, 0)
    tax_rates: Annotated[list[TaxClass], Field(min_length=1)]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from exc
        return value


class HubSection(BaseModel):
    """`[hub]`: where the hub keeps its data and how it behaves."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("/var/lib/storehub")
    web_port: Port = 8080
    menu_file: Path = Path("menu.toml")
    token_ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 12 * 3600
    attention_no_order_s: Annotated[int, Field(ge=10)] = 600
    attention_idle_s: Annotated[int, Field(ge=10)] = 1800
    tick_interval_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    command_retention_days: Annotated[int, Field(ge=7)] = 7
    allow_placeholder_pins: bool = False


class BrokerSection(BaseModel):
    """`[broker]`: the store's Mosquitto; `managed = true` runs it as the hub's child."""

    model_config = ConfigDict(extra="forbid")

    managed: bool = True
    host: str = "127.0.0.1"
    port: Port = 1883
    websockets_port: Port | None = None


class WebSection(BaseModel):
    """`[web]`: the manager page served by the hub on `hub.web_port`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    session_ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 8 * 3600
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_window_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    login_lockout_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    secure_cookies: bool = False  # true when a TLS proxy fronts the page
    pair_code_ttl_s: Annotated[int, Field(ge=1, le=3600)] = 600
    bind_retry_s: Annotated[float, Field(gt=0, le=300)] = 5.0


class TlsSection(BaseModel):
    """`[tls]`: the store CA, a TLS listener for MQTT beside the LAN one, HTTPS for the manager page."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    mqtt_port: Port = 8883
    names: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["hub.local", "127.0.0.1"])
    """DNS names and IP addresses devices use to reach the hub (the server certificate's names)."""
    plaintext_lan: bool = True
    """false: the plaintext MQTT listeners answer on 127.0.0.1 only (the hub and on-hub services)."""


class OtaSection(BaseModel):
    """`[ota]`: firmware rollouts run by the hub (docs/operations.md, "Firmware updates")."""

    model_config = ConfigDict(extra="forbid")

    trusted_key: str | None = None
    """The base64 Ed25519 public key releases must be signed with (`storehub-fw keygen` prints it)."""
    image_base_url: str | None = None
    """How devices reach the hub's web server, e.g. `http://192.168.10.2:8080` (default: from [tls]/[web])."""
    step_interval_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    offer_timeout_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 900.0
    job_ttl_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    max_failures: Annotated[int, Field(ge=1, le=1000)] = 1


class StaffEntry(BaseModel):
    """`[[staff]]`: bootstraps an empty database only; afterwards staff live in the hub."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=80)]
    role: Role
    pin: Pin


class TableEntry(BaseModel):
    """`[[tables]]`: the floor."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=40)]
    seats: Annotated[int, Field(ge=1, le=99)] = 4
    area: Annotated[str, Field(max_length=40)] = "Main"


class PrinterEntry(BaseModel):
    """`[[printers]]`: a receipt or kitchen printer, where it is, and what prints on it."""

    model_config = ConfigDict(extra="forbid")

    id: DeviceId
    name: Annotated[str, Field(min_length=1, max_length=80)] = ""
    address: Annotated[
        str, Field(pattern=r"^(tcp://[A-Za-z0-9.:_-]+(:\d{1,5})?|serial:/[^?]+(\?baud=\d+)?|virtual://[a-z0-9-]+)$")
    ]
    """`tcp://192.168.1.50:9100` (port 9100 when omitted), `serial:/dev/ttyUSB0?baud=9600`, or
    `virtual://name`: a virtual printer the hub runs itself on 127.0.0.1 (demo only)."""
    paper_mm: Literal[58, 80] = 80
    profile: str = "default"
    """A python-escpos capability profile (`TM-T88V`, `TM-T20II`, `default`, `simple`, …)."""
    confirmation: Literal["process_id", "status"] = "process_id"
    """`process_id` (GS ( H answered) or `status` for clones that never answer it."""
    backup: DeviceId | None = None
    stations: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]] = Field(default_factory=list)
    receipts: bool = False
    """The default receipt printer (receipts, checks, Z reports)."""
    receipt_devices: list[DeviceId] = Field(default_factory=list)
    """Registers / tablets whose receipts (and drawer kicks) go to this printer."""
    expo: bool = False
    drawer_pins: list[Literal[2, 5]] = Field(default_factory=list)
    """Pins a cash drawer hangs on (empty: no drawer on this printer)."""


class DrawerEntry(BaseModel):
    """`[[drawers]]`: a cash drawer on its own serial line, or an MQTT drawer controller device.

    A drawer hanging on a receipt printer is configured on the printer (`drawer_pins`) instead.
    """

    model_config = ConfigDict(extra="forbid")

    id: DeviceId
    kind: Literal["serial", "mqtt"]
    path: str | None = None
    """The serial device of a serial drawer (`/dev/ttyUSB0`)."""
    baud: Annotated[int, Field(ge=1200, le=115200)] = 9600
    device: DeviceId | None = None
    """The controller's device id for an MQTT drawer."""
    receipt_devices: list[DeviceId] = Field(default_factory=list)
    """Registers / tablets whose cash sales and no-sale opens pop this drawer (empty: every device)."""

    @model_validator(mode="after")
    def _where(self) -> DrawerEntry:
        if self.kind == "serial" and not self.path:
            raise ValueError("a serial drawer needs `path`")
        if self.kind == "mqtt" and not self.device:
            raise ValueError("an MQTT drawer needs `device` (the controller's device id)")
        return self


class PrintingSection(BaseModel):
    """`[printing]`: queue timings (tests shrink them) and discovery."""

    model_config = ConfigDict(extra="forbid")

    failover_after_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    confirm_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    status_timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    poll_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.5
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    probe_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    kick_expiry_s: Annotated[float, Field(gt=0, le=10)] = 10.0
    discovery: bool = True
    discovery_interfaces: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    """Interfaces zeroconf browses on; a store lists its LAN address (tests and demo: loopback only)."""
    discovery_misses: Annotated[int, Field(ge=1, le=100)] = 3
    discovery_recheck_s: Annotated[float, Field(gt=0, le=3600)] = 30.0


class MenuFile(BaseModel):
    """The menu file: items, modifier groups and a version; taxes come from `[store]`."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]
    items: Annotated[list[MenuItem], Field(min_length=1)]
    modifier_groups: list[ModifierGroup] = Field(default_factory=list)


class StoreConfig(BaseSettings):
    """The whole configuration of one store's hub."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="STOREHUB_", env_nested_delimiter="__", nested_model_default_partial_update=True
    )

    store: StoreSection
    hub: HubSection = Field(default_factory=HubSection)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    web: WebSection = Field(default_factory=WebSection)
    tls: TlsSection = Field(default_factory=TlsSection)
    ota: OtaSection = Field(default_factory=OtaSection)
    relay: dict[str, Any] | None = None
    """`[relay]` belongs to the relay process (cloud_relay/config.py validates it); the hub only keeps it."""
    staff: list[StaffEntry] = Field(default_factory=list)
    tables: list[TableEntry] = Field(default_factory=list)
    printers: list[PrinterEntry] = Field(default_factory=list)
    drawers: list[DrawerEntry] = Field(default_factory=list)
    printing: PrintingSection = Field(default_factory=PrintingSection)

    @model_validator(mode="after")
    def _consistent(self) -> StoreConfig:
        _unique("staff", [s.id for s in self.staff])
        _unique("tables", [t.id for t in self.tables])
        _unique("printers", [p.id for p in self.printers])
        known = {p.id for p in self.printers}
        for index, printer in enumerate(self.printers):
            if printer.backup is not None and printer.backup not in known | {printer.id}:
                raise ValueError(f"printers.{index}.backup: no printer {printer.backup!r} in [[printers]]")
            if printer.backup == printer.id:
                raise ValueError(f"printers.{index}.backup: a printer cannot be its own backup")
        if not self.hub.allow_placeholder_pins:
            for index, person in enumerate(self.staff):
                if person.pin in PLACEHOLDER_PINS:
                    raise ValueError(
                        f"staff.{index}.pin: {person.id} has the placeholder PIN {person.pin}; choose another "
                        "(or set hub.allow_placeholder_pins = true for a demo)"
                    )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the TOML file's values passed in by `load_config`."""
        del settings_cls, dotenv_settings, file_secret_settings
        return (env_settings, init_settings)


class LoadedConfig(BaseModel):
    """A validated store config with its menu, paths resolved against the config file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    config: StoreConfig
    menu: Menu

    @property
    def data_dir(self) -> Path:
        """The hub's data directory (absolute)."""
        return self.config.hub.data_dir


def load_config(path: Path) -> LoadedConfig:
    """Read, validate and resolve a store config and its menu file, or raise ConfigError."""
    raw = read_toml(path)
    try:
        config = StoreConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent
    hub = config.hub.model_copy(
        update={"data_dir": base / config.hub.data_dir, "menu_file": base / config.hub.menu_file}
    )
    config = config.model_copy(update={"hub": hub})
    menu_path = hub.menu_file
    if not menu_path.exists():
        raise ConfigError(f"{path}: hub.menu_file: {menu_path} does not exist")
    menu_raw = read_toml(menu_path)
    try:
        menu_file = MenuFile.model_validate(menu_raw)
        menu = Menu(
            version=menu_file.version,
            currency=config.store.currency,
            items=menu_file.items,
            modifier_groups=menu_file.modifier_groups,
            tax_classes=config.store.tax_rates,
        )
    except ValidationError as exc:
        raise ConfigError(f"{menu_path}: {_first_error(exc)}") from exc
    return LoadedConfig(path=path.resolve(), config=config, menu=menu)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, or ConfigError naming the file (missing, unreadable, not TOML)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config/store.example.toml)"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{loc}: {message}{suffix}"


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, item in enumerate(ids):
        if item in seen:
            raise ValueError(f"{section}.{index}.id: duplicate id {item!r}")
        seen.add(item)
