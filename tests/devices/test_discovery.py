"""Discovery with real zeroconf on 127.0.0.1: virtual printers advertise, the browser finds them."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from devices.printers.discovery import PrinterBrowser
from devices.sim.printer import VirtualPrinter
from tests.hubproc import storehub


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_browser_finds_an_advertised_printer_and_drops_it_only_after_several_misses():
    async def go() -> tuple[list[dict[str, Any]], int, bool]:
        printer = VirtualPrinter(name="kitchen-7", advertise=True)
        await printer.start()
        changes: list[bool] = []

        def noted(b: PrinterBrowser) -> None:
            changes.append(any(f.as_dict()["name"] == "kitchen-7" for f in b.found.values()))

        browser = PrinterBrowser(
            # Three misses: the goodbye and a re-check may fail together, the third comes a re-check later,
            # so the state with misses counted but the printer still listed lasts long enough to observe.
            ["127.0.0.1"],
            misses=3,
            recheck_s=0.3,
            request_ms=400,
            on_change=noted,
        )
        await browser.start()

        def mine() -> list[Any]:  # other printers may advertise on loopback too (a demo, another hub)
            return [f for f in browser.found.values() if f.as_dict()["name"] == "kitchen-7"]

        try:
            while not mine():
                await asyncio.sleep(0.05)
            seen = [f.as_dict() for f in mine()]
            await printer.stop()  # says goodbye and stops answering
            misses_seen = 0
            while mine():
                misses_seen = max(misses_seen, *(f.misses for f in mine()))
                await asyncio.sleep(0.02)
            return seen, misses_seen, changes[-1] is False  # the last change reported: it is gone
        finally:
            await browser.stop()

    seen, misses_seen, emptied = run(go())
    assert seen[0]["name"] == "kitchen-7"
    assert seen[0]["service"] == "_pdl-datastream._tcp"
    assert seen[0]["host"] == "127.0.0.1"
    assert seen[0]["address"].startswith("tcp://127.0.0.1:")
    assert seen[0]["txt"]["product"] == "(Virtual TM)"
    assert misses_seen >= 1, "a goodbye alone does not remove it"
    assert emptied


def test_cli_discover_prints_json_lines():
    async def serve() -> tuple[VirtualPrinter, Any]:
        printer = VirtualPrinter(name="bar-7", advertise=True)
        await printer.start()
        return printer, None

    loop = asyncio.new_event_loop()
    printer, _ = loop.run_until_complete(serve())
    try:
        proc = loop.run_until_complete(
            asyncio.wait_for(
                asyncio.create_subprocess_exec(
                    *_cli("printers", "discover", "--timeout", "4"),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                ),
                10,
            )
        )
        out, _err = loop.run_until_complete(asyncio.wait_for(proc.communicate(), 30))
        found = [json.loads(line) for line in out.decode().splitlines()]
        assert any(f["name"] == "bar-7" and f["port"] == printer.port for f in found)
    finally:
        loop.run_until_complete(printer.stop())
        loop.close()


def test_cli_refuses_bad_input_with_exit_2():
    result = storehub("printers", "test", "ftp://nowhere", check=False)
    assert result.returncode == 2
    assert "unsupported printer address" in result.stderr
    result = storehub("printers", "test", "tcp://127.0.0.1:1", "--timeout", "1", check=False)
    assert result.returncode == 2
    assert "127.0.0.1:1" in result.stderr


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]
