"""Offline-card exposure: card payments taken without the payments API, until authorised or declined."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import httpx

from tests.cloud_relay.helpers import Central, chain, post_entries, storehub, wait_for

if TYPE_CHECKING:
    from pathlib import Path


def _exposure(central: Central, store_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        central.url + "/v1/reports/offline-card-exposure",
        params={"store": store_id},
        headers={"Authorization": f"Bearer {central.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _paid(ticket_id: str, at: str, day: str, *payments: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    data = {"ticket_id": ticket_id, "number": 1, "business_day": day, "shift_id": "sh-1", "payments": list(payments)}
    return at, "ticket.paid", data


def _card(payment_id: str, amount: int, tip: int = 0, **extra: Any) -> dict[str, Any]:
    return {"payment_id": payment_id, "kind": "card", "amount": amount, "tip": tip, "tendered": None, "change": 0,
            "reference": None} | extra  # fmt: skip


def test_offline_cards_are_exposure_until_authorised_or_declined(tmp_path: Path, database_url: str) -> None:
    store_id = "oc-" + secrets.token_hex(3)
    central = Central(tmp_path / "central", database_url).start()
    central.token = central.hq_token()
    try:
        creds = central.add_store(store_id)
        cash = {"payment_id": "p-cash", "kind": "cash", "amount": 300, "tip": 0, "tendered": 500, "change": 200,
                "reference": None}  # fmt: skip
        entries = chain([
            _paid("t-1", "2026-11-27T19:00:00.000Z", "2026-11-27", _card("p-1", 1200, 100, offline=True)),
            _paid("t-2", "2026-11-28T12:00:00.000Z", "2026-11-28", _card("p-2", 800, offline=True)),
            _paid("t-3", "2026-11-28T12:30:00.000Z", "2026-11-28", _card("p-3", 500, offline=True)),
            _paid("t-4", "2026-11-28T13:00:00.000Z", "2026-11-28", cash),
            _paid("t-5", "2026-11-28T13:10:00.000Z", "2026-11-28", _card("p-online", 400, reference="auth-77")),
        ])  # fmt: skip
        assert post_entries(central.url, store_id, creds, entries).status_code == 200

        [store] = wait_for(lambda: _exposure(central, store_id))
        assert (store["count"], store["amount"], store["oldest_at"]) == (
            3,
            1300 + 800 + 500,
            "2026-11-27T19:00:00.000Z",
        )
        assert [(d["business_day"], d["count"], d["amount"]) for d in store["by_day"]] == [
            ("2026-11-27", 1, 1300), ("2026-11-28", 2, 1300),
        ]  # fmt: skip
        assert (store["declined_count"], store["declined_amount"]) == (0, 0)
        assert store["oldest_age_s"] > 0

        # The payments service answers later: one authorised, one declined; both leave the exposure.
        later = chain(
            [
                ("2026-11-28T14:00:00.000Z", "payment.authorised",
                 {"payment_id": "p-2", "ticket_id": "t-2", "amount": 800, "reference": "auth-81"}),
                ("2026-11-28T14:01:00.000Z", "payment.declined",
                 {"payment_id": "p-3", "ticket_id": "t-3", "amount": 500, "reason": "insufficient funds"}),
            ],
            after=entries[-1],
        )  # fmt: skip
        assert post_entries(central.url, store_id, creds, later).status_code == 200
        [store] = wait_for(lambda: (rows := _exposure(central, store_id)) and rows[0]["count"] == 1 and rows)
        assert (store["amount"], store["declined_count"], store["declined_amount"]) == (1300, 1, 500)
        assert [d["business_day"] for d in store["by_day"]] == ["2026-11-27"]

        storehub("central", "user", "add", "ana", "--role", "analyst", "--config", str(central.config),
                 input_="a long password\n")  # fmt: skip
        with httpx.Client(base_url=central.url, timeout=30) as browser:
            assert browser.post("/login", data={"username": "ana", "password": "a long password"}).status_code == 303
            page = browser.get("/", params={"store": store_id}).text
            assert "Offline card exposure" in page
            assert "2026-11-27: 1 / 13.00" in page
            csv_rows = browser.get("/export/offline-card-exposure.csv", params={"store": store_id}).text.splitlines()
        assert csv_rows == [
            "store_id,business_day,count,amount,oldest_at",
            f"{store_id},2026-11-27,1,1300,2026-11-27T19:00:00.000Z",
        ]

        rebuilt = storehub("central", "rebuild", "--config", str(central.config))
        assert json.loads(rebuilt.stdout)["rebuilt"] is True
        assert _exposure(central, store_id)[0] | {"oldest_age_s": 0} == store | {"oldest_age_s": 0}
    finally:
        central.stop()
