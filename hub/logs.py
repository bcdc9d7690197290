"""Structured logging: one JSON object per line on stdout (journald keeps them as they are)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

from hub.contract.types import format_time

_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats records as JSON with the store id and any `extra=` fields (device, cmd, seq, …)."""

    def __init__(self, store: str | None = None) -> None:
        super().__init__()
        self.store = store

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        out: dict[str, Any] = {
            "at": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.store:
            out["store"] = self.store
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO", *, store: str | None = None) -> None:
    """Send every log record to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(store))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
