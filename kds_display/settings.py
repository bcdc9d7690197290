"""The screen's settings: who it is on the broker, what it shows, and how the kitchen drives it.

Credentials come from `--password`, `STOREHUB_KDS_PASSWORD` or `--credentials FILE` (the JSON line
`storehub device add kds-grill --kind kds --stations grill` prints). The store id and the broker's
address come from the store's TOML config. Screen behaviour (order, thresholds, bump-bar keys)
comes from an optional `--settings kds.toml`:

    order = "oldest"            # or "newest": where new tickets go
    recall_size = 10            # how many bumped tickets the recall list keeps
    undo_s = 8                  # how long a bump can be undone
    page_size = 12              # cards per page (bump-bar digits select 1-9 on the page)
    sound = true                # beep on a new ticket (the page can mute it)
    [thresholds.grill]          # age colours per station, in seconds
    warn_s = 300
    late_s = 600
    [keys]                      # bump-bar keys (KeyboardEvent.key values)
    bump = ["Enter", "b"]
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.config import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_WARN_S = 300
DEFAULT_LATE_S = 600
PASSWORD_ENV = "STOREHUB_KDS_PASSWORD"  # noqa: S105 - the name of the variable, not a secret

DEFAULT_KEYS: dict[str, list[str]] = {
    "bump": ["Enter", "b"],
    "start": ["s"],
    "recall": ["r"],
    "undo": ["u", "Backspace"],
    "next_page": ["ArrowRight", "PageDown", "n"],
    "prev_page": ["ArrowLeft", "PageUp"],
    "priority": ["p"],
    "mute": ["m"],
}
"""Bump-bar actions and their default keys; digits 1-9 always select a card on the page."""


class SettingsError(ConfigError):
    """The screen cannot start with these settings; the message says which one and why (CLI exit 2)."""


class Thresholds(BaseModel):
    """Age colours of one station: green until `warn_s`, yellow until `late_s`, then red."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_s: Annotated[int, Field(ge=1, le=24 * 3600)] = DEFAULT_WARN_S
    late_s: Annotated[int, Field(ge=1, le=24 * 3600)] = DEFAULT_LATE_S


class ScreenFile(BaseModel):
    """The optional `--settings` TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: Literal["oldest", "newest"] = "oldest"
    recall_size: Annotated[int, Field(ge=1, le=100)] = 10
    undo_s: Annotated[int, Field(ge=1, le=120)] = 8
    page_size: Annotated[int, Field(ge=1, le=60)] = 12
    sound: bool = True
    thresholds: dict[str, Thresholds] = Field(default_factory=dict)
    keys: dict[Literal[tuple(DEFAULT_KEYS)], list[str]] = Field(default_factory=dict)  # type: ignore[valid-type]


@dataclass(frozen=True)
class KdsSettings:
    """Everything `storehub kds run` needs, validated."""

    device_id: str
    password: str
    stations: tuple[str, ...]
    store_id: str
    broker_host: str
    broker_port: int
    state_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8091
    screen: ScreenFile = field(default_factory=ScreenFile)

    @property
    def is_expo(self) -> bool:
        """Whether this is an expo screen."""
        return "expo" in self.stations

    def thresholds(self, station: str) -> Thresholds:
        """The age colours of a station (defaults when not configured)."""
        return self.screen.thresholds.get(station, Thresholds())

    def keys(self) -> dict[str, list[str]]:
        """The bump-bar map: defaults overridden by the settings file."""
        return {**DEFAULT_KEYS, **self.screen.keys}


def load_screen_file(path: Path | None) -> ScreenFile:
    """Read `--settings`, or the defaults when no file is given."""
    if path is None:
        return ScreenFile()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    try:
        screen = ScreenFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SettingsError(f"{path}: {loc}: {first['msg']}") from exc
    for station, t in screen.thresholds.items():
        if t.late_s <= t.warn_s:
            raise SettingsError(f"{path}: thresholds.{station}: late_s must be greater than warn_s")
    return screen


def resolve_password(device_id: str, password: str | None, credentials: Path | None) -> str:
    """The device's broker password: the flag, then the environment, then the credentials file."""
    if password:
        return password
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if credentials is None:
        raise SettingsError(
            f"no password for {device_id}: pass --password, set {PASSWORD_ENV}, --credentials FILE, or put "
            f"credentials.json in the state directory (the JSON printed by `storehub device add {device_id} "
            "--kind kds --stations …`)"
        )
    try:
        data: Any = json.loads(credentials.read_text(encoding="utf-8").strip().splitlines()[-1])
    except FileNotFoundError as exc:
        raise SettingsError(f"{credentials}: no such file") from exc
    except (OSError, ValueError, IndexError) as exc:
        raise SettingsError(f"{credentials}: not the JSON `storehub device add` prints ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("password"), str):
        raise SettingsError(f'{credentials}: no "password" in it')
    if data.get("device_id", device_id) != device_id:
        raise SettingsError(f"{credentials}: these are the credentials of {data['device_id']}, not {device_id}")
    return str(data["password"])


def parse_stations(text: str) -> tuple[str, ...]:
    """`grill,fry` → ("grill", "fry"), checked like the contract's station ids."""
    import re  # noqa: PLC0415

    stations = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    for station in stations:
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", station):
            raise SettingsError(f"station {station!r}: use lowercase letters, digits, '-' and '_' (at most 32)")
    if not stations:
        raise SettingsError("--stations needs at least one station (for example grill, or expo)")
    return stations
