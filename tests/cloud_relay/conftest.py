"""Fixtures: PostgreSQL (a random database per session, required when CI=true), SQLite, hub ledgers."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.cloud_relay.helpers import hub_ledger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


async def _admin(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A fresh PostgreSQL database (asyncpg URL prefix) for this session, dropped afterwards."""
    base = os.environ.get("STOREHUB_TEST_PG", DEFAULT_PG).replace("postgresql://", "postgresql+asyncpg://", 1)
    name = "storehub_test_" + secrets.token_hex(4)
    try:
        asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        # Central runs on PostgreSQL in production: its tests never pass without one (CI or not).
        pytest.fail(f"PostgreSQL is required (STOREHUB_TEST_PG={base}): {exc}")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend central supports; PostgreSQL tests share the session's database (distinct store ids)."""
    if request.param == "sqlite":
        return "sqlite+aiosqlite:///" + str(tmp_path / "central.db")
    pg: str = request.getfixturevalue("pg_server")
    return pg


@pytest.fixture(scope="session")
def ledger_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sold hub database (60 tickets) copied into every test that needs a plain ledger."""
    directory = tmp_path_factory.mktemp("ledger-cache")
    hub_ledger(directory / "store", "cache", 60, cache=directory / "data")
    return directory / "data"
