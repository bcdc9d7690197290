"""PrinterLink against the virtual printer over real TCP: status, confirmation and every fault."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devices.printers.link import LinkTimings, NoAnswer, PrinterLink, Unconfirmed
from devices.printers.render import Capabilities, render
from devices.printers.transport import ConnectionLost, TcpTransport, Unreachable
from devices.sim.printer import VirtualPrinter

FAST = LinkTimings(status_timeout=1.0, poll_interval=0.05, confirm_timeout=1.0)


def job(job_id: str, lines: int = 3) -> bytes:
    doc = {
        "kind": "chit",
        "job_id": job_id,
        "station": "grill",
        "number": 7,
        "lines": [{"qty": 1, "name": f"Dish {i}", "modifiers": []} for i in range(lines)],
    }
    return render(doc, Capabilities())


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _with_printer(body: Any, **kwargs: Any) -> Any:
    printer = VirtualPrinter(**kwargs)
    await printer.start()
    try:
        return await body(printer)
    finally:
        await printer.stop()


async def _link(printer: VirtualPrinter, **kwargs: Any) -> PrinterLink:
    transport = TcpTransport(printer.host, printer.port, connect_timeout=1.0)
    await transport.open()
    return PrinterLink(transport, FAST, **kwargs)


def test_healthy_job_is_confirmed_only_after_it_printed():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        assert (await link.status()).can_print
        await link.print_job(job("job-a"), b"0001")
        assert printer.job_count("job-a") == 1
        await link.transport.close()

    run(_with_printer(body))


def test_cover_open_holds_the_job_in_the_printer_until_closed():
    seen: list[Any] = []

    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer, on_status=seen.append)
        printer.open_cover()
        status = await link.status()
        assert status.cover_open
        assert status.fault == "cover open"
        sending = asyncio.create_task(link.print_job(job("job-c"), b"0002"))
        await asyncio.sleep(0.3)
        assert not sending.done(), "not confirmed while the cover is open"
        assert printer.job_count("job-c") == 0
        printer.close_cover()
        await sending
        assert printer.job_count("job-c") == 1
        await link.transport.close()

    run(_with_printer(body))
    assert any(s.cover_open for s in seen)


def test_paper_end_mid_job_finishes_the_same_job_after_a_new_roll():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        await link.enable_asb()
        printer.paper_end_after(4)
        sending = asyncio.create_task(link.print_job(job("job-p", lines=10), b"0003"))
        while printer.status.paper != "end":
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert not sending.done()
        assert link.last.paper == "end"
        printer.load_paper()
        await sending
        assert printer.job_count("job-p") == 1
        assert printer.text().count("Dish 9") == 1
        await link.transport.close()

    run(_with_printer(body))


def test_power_loss_mid_job_is_a_lost_connection_and_the_printer_is_then_off():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        printer.power_loss_after(60)
        with pytest.raises(ConnectionLost):
            await link.print_job(job("job-x", lines=10), b"0004")
        await link.transport.close()
        assert printer.job_count("job-x") == 0  # the id line comes last: a partial job has none
        assert "GRILL" in printer.text()
        with pytest.raises(Unreachable):
            await TcpTransport(printer.host, printer.port, connect_timeout=1.0).open()
        await printer.power_on()
        again = await _link(printer)
        await again.print_job(job("job-x"), b"0005")
        assert printer.job_count("job-x") == 1
        await again.transport.close()

    run(_with_printer(body))


def test_single_session_printer_resets_a_second_connection():
    async def body(printer: VirtualPrinter) -> None:
        first = await _link(printer)
        second = await _link(printer)
        with pytest.raises((ConnectionLost, NoAnswer)):
            await second.status()
        await second.transport.close()
        await first.print_job(job("job-s"), b"0006")
        await first.transport.close()
        await asyncio.sleep(0.05)
        third = await _link(printer)
        await third.print_job(job("job-t"), b"0007")
        await third.transport.close()
        assert printer.job_count("job-s") == printer.job_count("job-t") == 1

    run(_with_printer(body, single_session=True))


def test_clone_without_process_id_is_confirmed_by_status_and_unconfirmed_otherwise():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        await link.print_job(job("job-k"), b"0008", confirmation="status")
        assert printer.job_count("job-k") == 1
        with pytest.raises(Unconfirmed):
            await link.print_job(job("job-k2"), b"0009")
        await link.transport.close()

    run(_with_printer(body, process_id=False))


def test_idle_timeout_and_reset_refusal():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        await asyncio.sleep(0.4)
        with pytest.raises(ConnectionLost):
            await link.status()
        await link.transport.close()
        await printer.power_off()
        link = await _link(printer)  # "reset" printers accept, then drop
        with pytest.raises((ConnectionLost, NoAnswer)):
            await link.status()
        await link.transport.close()

    run(_with_printer(body, idle_timeout=0.2, refuse="reset"))


def test_near_end_prints_and_drawer_sensor_shows():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        printer.near_end()
        status = await link.status()
        assert status.paper == "near_end"
        assert status.can_print
        await link.transport.write(b"\x1bp\x00\x32\x64")
        await asyncio.sleep(0.1)
        assert (await link.status()).drawer_open
        assert printer.paper.kicks[0].pin == 2
        await link.transport.close()

    run(_with_printer(body))


def test_slow_printer_still_confirms():
    async def body(printer: VirtualPrinter) -> None:
        link = await _link(printer)
        await link.print_job(job("job-slow", lines=1), b"0010")
        assert printer.job_count("job-slow") == 1
        await link.transport.close()

    run(_with_printer(body, bytes_per_second=20000))
