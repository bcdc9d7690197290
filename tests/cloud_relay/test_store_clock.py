"""Sales by hour and day follow each store's own clock (time zone, business-day start), not UTC."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import httpx

from tests.cloud_relay.helpers import Central, chain, post_entries, storehub, wait_for

if TYPE_CHECKING:
    from pathlib import Path


def _sales(central: Central, store_id: str, by: str) -> list[tuple[Any, ...]]:
    answer = httpx.get(
        central.url + "/v1/reports/sales",
        params={"store": store_id, "by": by},
        headers={"Authorization": f"Bearer {central.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    if by == "hour":
        return [(r["business_day"], r["hour"], r["tickets"], r["total"]) for r in rows]
    return [(r["business_day"], r["tickets"], r["total"]) for r in rows]


def _ticket(
    ticket_id: str, opened: str, closed: str, total: int, day: str | None
) -> list[tuple[str, str, dict[str, Any]]]:
    facts: dict[str, Any] = {"ticket_id": ticket_id, "number": 1, "shift_id": "sh-1"}
    if day is not None:
        facts["business_day"] = day  # the hub writes it; an entry without one gets the store clock's
    return [
        (opened, "ticket.opened", facts),
        (closed, "ticket.closed", facts | {"total": total, "tax": total // 10, "discount": 0, "tip": 0}),
    ]


def test_hours_and_days_are_the_stores_own(tmp_path: Path, database_url: str) -> None:
    store_id = "tz-" + secrets.token_hex(3)
    central = Central(tmp_path / "central", database_url).start()
    central.token = central.hq_token()
    try:
        # HQ knows the store's clock from `store add` (the hub's [store] timezone, business_day_starts_at).
        added = storehub(
            "central", "store", "add", store_id, "--timezone", "America/Los_Angeles", "--day-starts-at", "04:00",
            "--config", str(central.config),
        )  # fmt: skip
        creds = json.loads(added.stdout.strip().splitlines()[-1])
        entries = chain(
            # 07:30Z = 23:30 on Nov 27 in Los Angeles
            _ticket("t-late", "2026-11-28T07:00:00.000Z", "2026-11-28T07:30:00.000Z", 1000, "2026-11-27")
            # 10:30Z = 02:30 on Nov 28, before the 04:00 start: still business day Nov 27 (no business_day given)
            + _ticket("t-night", "2026-11-28T10:00:00.000Z", "2026-11-28T10:30:00.000Z", 500, None)
            # 20:15Z = 12:15 on Nov 28
            + _ticket("t-lunch", "2026-11-28T19:50:00.000Z", "2026-11-28T20:15:00.000Z", 700, "2026-11-28")
        )
        assert post_entries(central.url, store_id, creds, entries).status_code == 200

        hours = wait_for(lambda: (rows := _sales(central, store_id, "hour")) and sum(r[2] for r in rows) == 3 and rows)
        assert hours == [("2026-11-27", "02", 1, 500), ("2026-11-27", "23", 1, 1000), ("2026-11-28", "12", 1, 700)]
        assert _sales(central, store_id, "day") == [("2026-11-27", 2, 1500), ("2026-11-28", 1, 700)]

        # HQ corrects the clock: the store's reports are folded again on the new one.
        moved = storehub(
            "central", "store", "clock", store_id, "--timezone", "Asia/Tokyo", "--config", str(central.config)
        )
        assert json.loads(moved.stdout)["timezone"] == "Asia/Tokyo"
        # 07:30Z = 16:30, 10:30Z = 19:30 (Nov 28 in Tokyo), 20:15Z = 05:15 on Nov 29
        assert _sales(central, store_id, "hour") == [
            ("2026-11-27", "16", 1, 1000), ("2026-11-28", "05", 1, 700), ("2026-11-28", "19", 1, 500),
        ]  # fmt: skip

        # The hub's own `store.configured` entry (its [store] settings) wins from there on.
        configured = (
            "2026-11-29T08:00:00.000Z",
            "store.configured",
            {"timezone": "Europe/Paris", "business_day_starts_at": "05:00"},
        )
        more = chain(
            [configured, *_ticket("t-paris", "2026-11-29T10:40:00.000Z", "2026-11-29T11:00:00.000Z", 900, None)],
            after=entries[-1],
        )
        assert post_entries(central.url, store_id, creds, more).status_code == 200
        hours = wait_for(lambda: (rows := _sales(central, store_id, "hour")) and len(rows) == 4 and rows)
        assert ("2026-11-29", "12", 1, 900) in hours, hours  # 11:00Z = 12:00 in Paris

        # The dashboard and its CSV say the same.
        storehub("central", "user", "add", "ana", "--role", "analyst", "--config", str(central.config),
                 input_="a long password\n")  # fmt: skip
        with httpx.Client(base_url=central.url, timeout=30) as browser:
            assert browser.post("/login", data={"username": "ana", "password": "a long password"}).status_code == 303
            page = browser.get("/", params={"store": store_id})
            assert "Sales by hour (store time)" in page.text
            csv_rows = browser.get("/export/sales.csv", params={"store": store_id}).text.splitlines()
        assert csv_rows[0] == "store_id,business_day,hour,tickets,total,tax,discount,tips"
        assert f"{store_id},2026-11-29,12,1,900,90,0,0" in csv_rows

        refused = storehub("central", "store", "clock", store_id, "--timezone", "Mars/Olympus", "--config",
                           str(central.config), check=False)  # fmt: skip
        assert refused.returncode == 2
        assert "unknown time zone 'Mars/Olympus'" in refused.stderr
    finally:
        central.stop()
