"""A real hub process (managed Mosquitto, the manager page on its web port) and a real headless Chromium."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from tests.hubproc import HubProcess, write_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


PRINTERS = """
[printing]
discovery = false

[[printers]]
id = "front-1"
name = "Front counter"
address = "virtual://front-1"
stations = ["bar", "grill", "cold", "pastry"]
receipts = true
"""
"""One virtual printer the hub runs itself on 127.0.0.1: receipts and every station."""


@dataclass
class WebHub:
    """A running hub and the address of its manager page."""

    proc: HubProcess
    url: str

    def client(self) -> httpx.Client:
        """A fresh HTTP client (its own cookie jar)."""
        return httpx.Client(base_url=self.url, timeout=30, headers={"Accept": "application/json"})

    def login(self, client: httpx.Client, employee_id: str, pin: str) -> str:
        """Log in through the API as a script would; returns the session's CSRF token."""
        pre = prelogin_csrf(client)
        reply = client.post("/api/login", json={"employee_id": employee_id, "pin": pin}, headers={"X-CSRF-Token": pre})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["csrf"])


def prelogin_csrf(client: httpx.Client) -> str:
    """The pre-login CSRF token the login page sets as a cookie and in its meta tag."""
    page = client.get("/login", headers={"Accept": "text/html"})
    assert page.status_code == 200
    match = re.search(r'name="csrf" content="([^"]+)"', page.text)
    assert match is not None
    assert client.cookies.get("storehub_csrf") == match.group(1)
    return match.group(1)


def start_web_hub(directory: Path, extra: str = "") -> WebHub:
    """Write a store config (plus extra TOML), start the hub, and find its web port."""
    config = write_config(directory)
    if extra:
        config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    port = int(re.findall(r"web_port = (\d+)", config.read_text(encoding="utf-8"))[0])
    return WebHub(HubProcess(config).start(), f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHub]:
    """One hub for a module's tests, with a virtual printer and pairing codes that expire after 2 s."""
    hub = start_web_hub(tmp_path_factory.mktemp("webhub"), "\n[web]\npair_code_ttl_s = 2\n" + PRINTERS)
    try:
        yield hub
    finally:
        hub.proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module (the system's, never a downloaded one)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def check_screenshot(page: Any, *texts: str) -> None:
    """Not blank, shows `texts`, no horizontal scroll, every field labelled, touch targets at least 40 px high."""
    png = page.screenshot(full_page=False)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "the page looks blank"
    body = page.inner_text("body")
    for text in texts:
        assert text in body, f"{text!r} not on {page.url}"
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth"), f"{page.url} scrolls sideways"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML)"""
    )
    assert unlabelled == [], f"fields without a label on {page.url}: {unlabelled}"
    small = page.evaluate(
        """() => [...document.querySelectorAll('button, input:not([type=hidden]), select')]
            .filter((el) => el.offsetParent !== null && el.getBoundingClientRect().height < 40)
            .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert small == [], f"touch targets under 40 px on {page.url}: {small}"
