"""Virtual printers on their own event loop thread, so synchronous tests can drive a hub process."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from devices.sim.printer import VirtualPrinter

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path


class PrintFarm:
    """Start virtual printers by name; call their fault methods from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="printfarm", daemon=True)
        self.thread.start()
        self.printers: dict[str, VirtualPrinter] = {}

    def add(self, name: str, **kwargs: Any) -> VirtualPrinter:
        """Start a virtual printer (on a free port)."""
        printer = VirtualPrinter(name=name, **kwargs)
        self.run(printer.start())
        self.printers[name] = printer
        return printer

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """Run a coroutine on the farm's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a plain method on the farm's loop (printer state is the loop's)."""

        async def _call() -> Any:
            return fn(*args)

        return self.run(_call())

    def close(self) -> None:
        """Stop every printer and the loop."""
        for printer in self.printers.values():
            self.run(printer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def count(self, job_id: str) -> int:
        """How many times a job came out, on all printers."""
        return sum(self.call(p.job_count, job_id) for p in self.printers.values())

    def jobs(self) -> list[tuple[str, str, list[str]]]:
        """(printer, job id, banners) for every printed job."""
        out: list[tuple[str, str, list[str]]] = []
        for name, printer in self.printers.items():
            out.extend((name, job_id, banners) for job_id, banners in self.call(printer.jobs))
        return out

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll until `predicate()` (generous timeouts: they wait, they do not measure)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


PRINTING_FAST = """
[printing]
failover_after_s = {failover}
confirm_timeout_s = 5
status_timeout_s = 2
connect_timeout_s = 1
poll_interval_s = 0.05
backoff_initial_s = 0.05
backoff_max_s = 0.3
probe_interval_s = 1
discovery = {discovery}
discovery_recheck_s = 1
"""


def add_printers(
    config: Path, farm: PrintFarm, entries: list[dict[str, Any]], failover: float = 1.0, *, discovery: bool = False
) -> None:
    """Append `[printing]` (fast timers) and `[[printers]]` pointing at the farm's printers."""
    text = PRINTING_FAST.format(failover=failover, discovery="true" if discovery else "false")
    for entry in entries:
        printer = farm.printers[entry["id"]]
        text += "\n[[printers]]\n"
        text += f'address = "tcp://127.0.0.1:{printer.port}"\n'
        for key, value in entry.items():
            if isinstance(value, bool):
                text += f"{key} = {'true' if value else 'false'}\n"
            elif isinstance(value, str):
                text += f'{key} = "{value}"\n'
            else:
                text += f"{key} = {value!r}\n".replace("'", '"')
    with config.open("a", encoding="utf-8") as handle:
        handle.write(text)
