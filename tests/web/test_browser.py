"""The manager runs a shift in a real headless Chromium against a real hub, broker and paho tablet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.hubproc import STAFF
from tests.web.conftest import check_screenshot
from tests.web.test_api import eventually

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.web.conftest import WebHub

pytestmark = pytest.mark.e2e
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def page(browser: Any, web_hub: WebHub) -> Iterator[Any]:
    """One tab at 1024x768 (tablet size); dialogs (confirmations) are accepted like a manager would."""
    # The page's CSP forbids eval, which Playwright's wait_for_function needs: this context bypasses it.
    context = browser.new_context(viewport={"width": 1024, "height": 768}, bypass_csp=True)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.on("dialog", lambda dialog: dialog.accept())
    tab.goto(web_hub.url + "/")
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="module")
def tablet(web_hub: WebHub) -> Iterator[Any]:
    """A paho tablet with Hugo (server) logged in."""
    tab = web_hub.proc.tablet("tab-web-1")
    tab.token = tab.login(*STAFF["server"])
    try:
        yield tab
    finally:
        tab.close()


def test_a_whole_shift_from_the_manager_page(page: Any, tablet: Any, web_hub: WebHub) -> None:
    url = web_hub.url
    # Not logged in: the login page.
    assert page.url.endswith("/login")
    check_screenshot(page, "Log in", "PIN")
    page.select_option("#employee", STAFF["mgr"][0])
    page.fill("#pin", STAFF["mgr"][1])
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    check_screenshot(page, "Shift", "Tables", "Orders", "No shift is open")

    # Open the shift with a counted float of 150.00.
    page.goto(url + "/shift")
    page.fill("#float", "150.00")
    page.click("text=Open shift")
    page.wait_for_selector("#cash-amount")  # only on the reloaded page, once the shift is open
    page.wait_for_load_state("load")
    check_screenshot(page, "Cash", "Close the shift", "150.00")

    # The dashboard, kept open: a ticket placed by the tablet appears without a reload.
    page.goto(url + "/")
    page.wait_for_function("document.body.dataset.liveState === 'open'")
    page.evaluate("window.__noReload = true")
    token = tablet.token
    assert tablet.call("table.seat", {"table_id": "t2", "guests": 3}, auth=token)["ok"]
    reply = tablet.call("ticket.open", {"ticket_id": "tk-web-1", "table_id": "t2", "channel": "dine_in"}, auth=token)
    assert reply["ok"], reply
    items = [{"line_id": "tk-web-1-a", "menu_item_id": "espresso", "qty": 2}]
    assert tablet.call("ticket.add_items", {"ticket_id": "tk-web-1", "items": items}, auth=token)["ok"]
    row = page.wait_for_selector("tr[data-ticket='tk-web-1']")
    assert "Hugo" in row.inner_text()
    page.wait_for_selector("li[data-table='t2'].st-ordered")
    assert page.evaluate("window.__noReload") is True
    check_screenshot(page, "Orders", "Hugo", "3 guests")

    # Filters and search hide rows on the client.
    page.click(".chip[data-bucket='paid']")
    assert page.locator("tr[data-ticket='tk-web-1']").is_hidden()
    page.click(".chip[data-bucket='']")
    page.fill("#order-search", "espresso")
    assert page.locator("tr[data-ticket='tk-web-1']").is_visible()

    # 86 the espresso: the tablet's next add is refused with item_unavailable.
    page.goto(url + "/menu")
    page.click("tr[data-item='espresso'] >> text=86 it")
    page.wait_for_selector("tr[data-item='espresso'] >> text=86'd")
    check_screenshot(page, "86 board", "86'd")
    more = [{"line_id": "tk-web-1-b", "menu_item_id": "espresso", "qty": 1}]
    refused = tablet.call("ticket.add_items", {"ticket_id": "tk-web-1", "items": more}, auth=token)
    assert not refused["ok"]
    assert refused["error"]["code"] == "item_unavailable"

    # Ticket detail with its ledger history; pay it in cash from the page.
    page.goto(url + "/tickets/tk-web-1")
    check_screenshot(page, "Ticket #", "ticket.opened", "ticket.items_added", "History")
    page.click("text=Pay cash")
    page.wait_for_selector("text=ticket.paid")  # after the page reloaded itself
    assert page.locator("text=Pay cash").count() == 0

    # Close the shift blind: the Z report shows the over/short.
    page.goto(url + "/shift")
    page.fill("#counted", "150.00")
    page.click("text=Close shift")
    page.wait_for_url("**/report?kind=z")
    check_screenshot(page, "Z report", "Over / short", "Expected cash", "Counted cash")
    over_short = page.inner_text("[data-testid=over-short]")
    assert over_short.startswith("-"), over_short  # the 2 espressos' cash never reached the count
    shift_id = page.url.split("/shifts/")[1].split("/")[0]

    # The Z report also came out of the receipt printer, and the shift is in the past shifts list.
    def z_printed() -> bool:
        jobs = page.request.get(url + "/api/printers").json()["jobs"]
        return any(j["kind"] == "report" and j["state"] == "printed" for j in jobs)

    eventually(z_printed, "the Z report printed on the receipt printer")
    page.goto(url + "/shift")
    past = page.wait_for_selector(f"tr:has(a[href='/shifts/{shift_id}/report?kind=z'])")
    assert past.inner_text().count("Claire") == 2  # opened and closed by her
    check_screenshot(page, "Past shifts", "Open the shift")


def test_every_main_page_renders(page: Any, web_hub: WebHub) -> None:
    url = web_hub.url
    page.goto(url + "/staff")
    check_screenshot(page, "Staff", "Claire", "Add an employee")
    page.goto(url + "/devices")
    check_screenshot(page, "Devices", "tab-web-1", "Pair a new device")
    page.click("text=Show a pairing code")
    code = page.wait_for_selector("[data-testid=pair-code]").inner_text()
    assert len(code) == 6
    assert code.isdigit()
    page.goto(url + "/reports")
    check_screenshot(page, "Sales by hour", "Item mix", "Kitchen ticket times", "Voids, discounts")
    assert page.locator("svg.chart rect.bar").count() >= 1
    page.goto(url + "/printers")
    check_screenshot(page, "Printers", "Front counter", "Print jobs", "online")
    receipt = page.wait_for_selector("tr[data-job]:has-text('receipt')")
    job_id = receipt.get_attribute("data-job")
    preview = page.request.get(f"{url}/api/printers/jobs/{job_id}/preview.png")
    assert preview.headers["content-type"] == "image/png"
    assert preview.body().startswith(b"\x89PNG")
    page.goto(url + "/hq")
    check_screenshot(page, "HQ link", "No relay configured", "Ledger entries")
    page.click("text=Verify hash chain")
    result = page.wait_for_selector("#verify-result.ok")
    assert "Chain verified" in result.inner_text()
    page.goto(url + "/docs")
    check_screenshot(page, "StoreHub manager API", "/api/pair", "/openapi.json")


def test_keyboard_reaches_the_login_form(browser: Any, web_hub: WebHub) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    try:
        tab = context.new_page()
        tab.goto(web_hub.url + "/login")
        tab.keyboard.press("Tab")  # the skip link comes first
        assert tab.evaluate("document.activeElement.className") == "skip"
        for _ in range(3):
            tab.keyboard.press("Tab")
            if tab.evaluate("document.activeElement.id") == "pin":
                break
        assert tab.evaluate("document.activeElement.id") in {"employee", "pin"}
    finally:
        context.close()


def test_after_a_hub_restart_the_open_page_stays_logged_in_and_live(page: Any, web_hub: WebHub) -> None:
    """Last in the module: browser sessions are stored in the hub database, so a restart logs nobody out."""
    page.goto(web_hub.url + "/")
    page.wait_for_function("document.body.dataset.liveState === 'open'")
    web_hub.proc.stop()
    page.wait_for_function("document.body.dataset.liveState === 'retrying'", timeout=30_000)
    web_hub.proc.start()
    page.wait_for_function("document.body.dataset.liveState === 'open'", timeout=30_000)  # the stream is back
    assert page.url == web_hub.url + "/"
    me = page.evaluate("fetch('/api/me', {credentials: 'same-origin'}).then((r) => r.status)")
    assert me == 200
    check_screenshot(page, "Shift", "Tables", "Orders")
