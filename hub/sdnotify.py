"""systemd's notify protocol (sd_notify) over `$NOTIFY_SOCKET`, with a plain datagram socket.

`Type=notify` units wait for `READY=1`; with `WatchdogSec=` systemd restarts the service when no
`WATCHDOG=1` arrives within the interval. The hub pings only while its engine is answering (the
health check is handed in), so a hung writer or a stuck event loop both end in a restart.

`Notifier.from_environment()` takes the variables out of the environment, like sd_notify's
`unset_environment`: a child process (the managed Mosquitto speaks sd_notify too) must not
report itself ready in the hub's name. Outside systemd every call is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

log = logging.getLogger("storehub.sdnotify")

READY: Final = "READY=1"
WATCHDOG: Final = "WATCHDOG=1"
STOPPING: Final = "STOPPING=1"
_VARIABLES: Final = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@dataclass(frozen=True)
class Notifier:
    """Where to notify systemd (None: not under a notify unit) and the watchdog timeout, if any."""

    address: str | None
    watchdog_s: float | None

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """Read and remove NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from the environment."""
        env = os.environ if environ is None else environ
        values = {name: env.pop(name, "") for name in _VARIABLES}
        address: str | None = values["NOTIFY_SOCKET"] or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract socket; not notifying", address)
            address = None
        usec, pid = values["WATCHDOG_USEC"], values["WATCHDOG_PID"]
        watchdog_s: float | None = None
        # WATCHDOG_PID names the process the watchdog is meant for; a wrapper's pid means not us.
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog_s = int(usec) / 1_000_000
        return cls(address, watchdog_s)

    def notify(self, *states: str) -> bool:
        """Send `states` (READY=1, STATUS=…) in one datagram; False when not under systemd or on error."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall("\n".join(states).encode("utf-8"))
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True


class Watchdog:
    """Pings `WATCHDOG=1` every half timeout while `healthy()` holds; stays silent otherwise."""

    def __init__(self, notifier: Notifier, healthy: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.healthy = healthy
        self.pings = 0
        self._unhealthy_logged = False

    async def run(self) -> None:
        """Run until cancelled; returns at once when the unit has no watchdog."""
        if self.notifier.watchdog_s is None:
            return
        while True:
            self.beat()
            await asyncio.sleep(self.notifier.watchdog_s / 2)

    def beat(self) -> bool:
        """One check: ping if healthy; returns whether a ping was sent."""
        if not self.healthy():
            if not self._unhealthy_logged:
                log.error("the engine is not answering: withholding the systemd watchdog ping")
                self._unhealthy_logged = True
            return False
        self._unhealthy_logged = False
        sent = self.notifier.notify(WATCHDOG)
        self.pings += int(sent)
        return sent
