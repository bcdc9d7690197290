"""`central.toml`: where central keeps its data and what it accepts.

```toml
[central]
database_url = "sqlite+aiosqlite:///central.db"   # or postgresql+asyncpg://user@host/db
host = "127.0.0.1"
port = 8700
key_file = "central.key"                          # encrypts the stores' HMAC secrets at rest
```
HQ's JSON API (`/v1/reports/…`, `/v1/menus/…`) takes per-user API tokens
(`storehub central user token NAME`) or a dashboard session; the old shared `reports_token` is refused.
Relative SQLite paths and `key_file` are relative to the config file. `STOREHUB_CENTRAL__<KEY>`
environment variables override the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.config import ConfigError

SQLITE_PREFIX = "sqlite+aiosqlite:///"


class CentralSection(BaseModel):
    """`[central]`."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = SQLITE_PREFIX + "central.db"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8700
    key_file: Path = Path("central.key")
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    max_batch_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    max_entries: Annotated[int, Field(ge=1, le=100_000)] = 5000
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    project_on_ingest: bool = True


def load_central_config(path: Path) -> CentralSection:
    """Read and resolve `central.toml`, or raise ConfigError naming the key."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    section = dict(raw.get("central") or {})
    if "reports_token" in section or os.environ.get("STOREHUB_CENTRAL__REPORTS_TOKEN") is not None:
        raise ConfigError(
            f"{path}: central.reports_token: the shared reports token is gone; give each HQ user an API token "
            "(storehub central user token NAME) and remove reports_token / STOREHUB_CENTRAL__REPORTS_TOKEN"
        )
    unknown = set(raw) - {"central"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)} (only [central])")
    for name in CentralSection.model_fields:
        value = os.environ.get(f"STOREHUB_CENTRAL__{name.upper()}")
        if value is not None:
            section[name] = value
    try:
        central = CentralSection.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{path}: central.{loc}: {message}") from exc
    base = path.resolve().parent
    url = central.database_url
    if url.startswith(SQLITE_PREFIX) and not url.startswith(SQLITE_PREFIX + "/"):
        url = SQLITE_PREFIX + str(base / url.removeprefix(SQLITE_PREFIX))
    elif not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(f"{path}: central.database_url: use sqlite+aiosqlite:///… or postgresql+asyncpg://…")
    return central.model_copy(update={"database_url": url, "key_file": base / central.key_file})
