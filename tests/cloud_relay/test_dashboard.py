"""The HQ dashboard in real headless Chromium, on real data relayed from a hub's service."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING

import httpx
from playwright.sync_api import sync_playwright

from cloud_relay.central.repository import Repository
from cloud_relay.relay import Relay
from cloud_relay.sample import service
from tests.cloud_relay.helpers import Central, load_relay, relay_config, storehub
from tests.hubproc import write_config

if TYPE_CHECKING:
    from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _user(central: Central, name: str, role: str, password: str) -> None:
    result = storehub("central", "user", "add", name, "--role", role, "--config", str(central.config), check=False,
                      input_=password + "\n")  # fmt: skip
    assert result.returncode == 0, result.stderr


async def _stores(url: str) -> list[str]:
    repo = Repository.open(url)
    try:
        return await repo.list_stores()
    finally:
        await repo.close()


def test_hq_dashboard_shows_relayed_sales_and_guards_its_forms(tmp_path: Path) -> None:
    store_id = "dash-" + secrets.token_hex(2)
    store = write_config(tmp_path / "store", store_id=store_id)
    asyncio.run(service(store))
    central = Central(tmp_path / "central", "sqlite+aiosqlite:///" + str(tmp_path / "central" / "c.db")).start()
    try:
        relay = Relay(load_relay(relay_config(store, central.url, central.add_store(store_id))))
        asyncio.run(relay.drain())
        _user(central, "ana", "analyst", "analyst-password")
        _user(central, "root", "admin", "admin-password-1")
        short = storehub("central", "user", "add", "x", "--role", "admin", "--config", str(central.config),
                         check=False, input_="short\n")  # fmt: skip
        assert short.returncode == 2

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(central.url + "/")
                assert page.url.endswith("/login")
                page.fill("input[name=username]", "ana")
                page.fill("input[name=password]", "wrong-password")
                page.click("button")
                assert "Wrong user name or password" in page.inner_text("[role=alert]")
                page.fill("input[name=username]", "ana")
                page.fill("input[name=password]", "analyst-password")
                page.click("button")
                deadline = time.monotonic() + 60
                while "equal" not in page.inner_text("#shifts"):  # projections follow the acks
                    assert time.monotonic() < deadline, page.inner_text("main")
                    page.reload()
                assert page.locator("#sales svg.chart rect.bar").count() >= 2
                assert "43.00" in page.inner_text("#sales")
                items = page.inner_text("#items")
                assert "Crème brûlée" in items
                assert "Eggs mayonnaise" not in items, "the voided line is not in the item mix"
                exceptions = page.inner_text("#exceptions")
                for kind in ("item_void", "discount", "refund", "no_sale"):
                    assert kind in exceptions
                assert store_id in page.inner_text("#connectivity")
                assert "grill" in page.inner_text("#speed")
                with page.expect_download() as download:
                    page.click("a[href^='/export/tenders.csv']")
                csv_text = download.value.path().read_text(encoding="utf-8")
                assert csv_text.splitlines()[0] == "kind,count,amount,tips"
                assert "external,1,1250,200" in csv_text
                assert page.locator("a[href='/stores']").count() == 0, "analysts do not register stores"
                refused = page.goto(central.url + "/stores")
                assert refused is not None
                assert refused.status == 403
                page.goto(central.url + "/")
                page.click("header button")  # log out
                assert page.url.endswith("/login")

                page.fill("input[name=username]", "root")
                page.fill("input[name=password]", "admin-password-1")
                page.click("button")
                page.click("a[href='/stores']")
                page.fill("input[name=store_id]", "new-store")
                page.click("main form button")
                assert page.inner_text("#store-key").startswith("sk_")
                assert "new-store" in page.inner_text("#stores")
                cookies = {c["name"]: c["value"] for c in page.context.cookies()}
                page.goto(central.url + "/")
                page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
                shot = tmp_path / "overview.png"
                assert shot.stat().st_size > 10_000
            finally:
                browser.close()
        # A forged request with the session cookie but without its CSRF token is refused.
        forged = httpx.post(
            central.url + "/stores", data={"store_id": "evil", "csrf": "guess"}, cookies=cookies, timeout=10
        )
        assert forged.status_code == 403
        assert "evil" not in asyncio.run(_stores(central.database_url))
        assert "new-store" in asyncio.run(_stores(central.database_url))
    finally:
        central.stop()
