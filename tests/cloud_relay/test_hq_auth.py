"""HQ's JSON API belongs to HQ users: per-user API tokens (hashed, revocable) or the dashboard session."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select

from cloud_relay.central.repository import Repository
from cloud_relay.central.schema import hq_tokens
from tests.cloud_relay.helpers import Central, storehub

if TYPE_CHECKING:
    from pathlib import Path

ROLLBACK = {"stores": ["nowhere"], "version": "v1"}


def _get(central: Central, token: str | None, path: str = "/v1/reports/tenders") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(central.url + path, headers=headers, timeout=30)


async def _stored_tokens(url: str) -> list[dict[str, Any]]:
    repo = Repository.open(url)
    try:
        async with repo.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(select(hq_tokens))]
    finally:
        await repo.close()


def test_api_tokens_per_user_roles_sessions_and_revocation(tmp_path: Path) -> None:
    url = "sqlite+aiosqlite:///" + str(tmp_path / "central" / "c.db")
    central = Central(tmp_path / "central", url).start()
    config = str(central.config)
    try:
        ana = central.hq_token("ana", "analyst")
        root = central.hq_token("root", "admin")
        assert ana.startswith("hqt_")
        assert ana != root

        assert _get(central, ana).status_code == 200
        assert _get(central, ana, "/v1/reports/offline-card-exposure").json() == []
        missing = _get(central, None)
        assert missing.status_code == 401
        assert "storehub central user token NAME" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = _get(central, "hqt_" + "x" * 43)
        assert (wrong.status_code, wrong.json()["detail"].startswith("unknown API token")) == (401, True)
        assert httpx.get(central.url + "/v1/reports/sales", headers={"Authorization": "Basic YTpi"}).status_code == 401

        # Reading is for every HQ user; changing what stores run (menus) is for admins.
        analyst = httpx.post(central.url + "/v1/menus/rollback", json=ROLLBACK,
                             headers={"Authorization": f"Bearer {ana}"}, timeout=30)  # fmt: skip
        assert analyst.status_code == 403
        assert "only an admin" in analyst.json()["detail"]
        admin = httpx.post(central.url + "/v1/menus/rollback", json=ROLLBACK,
                           headers={"Authorization": f"Bearer {root}"}, timeout=30)  # fmt: skip
        assert admin.status_code == 409, admin.text  # allowed, and refused for what it asks (unknown store)

        # Only hashes are kept; the token is shown once.
        stored = asyncio.run(_stored_tokens(url))
        assert len(stored) == 2
        assert all(ana not in json.dumps(row) and root not in json.dumps(row) for row in stored)

        # The dashboard session works for the API too; a write with it needs the session's CSRF token.
        with httpx.Client(base_url=central.url, timeout=30) as browser:
            assert browser.post("/login", data={"username": "root", "password": "a long password"}).status_code == 303
            assert browser.get("/v1/reports/sales", params={"by": "hour"}).status_code == 200
            forged = browser.post("/v1/menus/rollback", json=ROLLBACK)
            assert forged.status_code == 403
            assert "X-CSRF-Token" in forged.json()["detail"]
            csrf = browser.get("/").text.split('name="csrf" value="')[1].split('"')[0]
            assert browser.post("/v1/menus/rollback", json=ROLLBACK, headers={"X-CSRF-Token": csrf}).status_code == 409

        # Revocation takes effect at once, for that token only.
        [listed] = json.loads(storehub("central", "user", "tokens", "ana", "--config", config).stdout)["tokens"]
        assert listed["revoked_at"] is None
        storehub("central", "user", "revoke", listed["token_id"], "--config", config)
        revoked = _get(central, ana)
        assert revoked.status_code == 401
        assert "revoked" in revoked.json()["detail"]
        assert _get(central, root).status_code == 200

        unknown = storehub("central", "user", "token", "nobody", "--config", config, check=False)
        assert unknown.returncode == 2
        assert "no HQ user 'nobody'" in unknown.stderr
        assert storehub("central", "user", "revoke", "tok-none", "--config", config, check=False).returncode == 2
    finally:
        central.stop()


def test_the_shared_reports_token_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    central = Central(tmp_path / "central", "sqlite+aiosqlite:///" + str(tmp_path / "c.db"),
                      extra='reports_token = "an-old-shared-token-0123"\n')  # fmt: skip
    refused = storehub("central", "store", "add", "s-1", "--config", str(central.config), check=False)
    assert refused.returncode == 2
    assert "central.reports_token" in refused.stderr
    assert "storehub central user token NAME" in refused.stderr
