"""`/v1/reports/...` and `/v1/menus/...`: HQ's JSON API (OpenAPI at /docs), for HQ users (`hq_auth`).

Reports are open to every HQ user (admin and analyst); publishing and rolling back menus to admins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud_relay.central import reports
from hub.contract.menu import Menu
from hub.contract.types import format_time

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cloud_relay.central.hq_auth import HqAuth
    from cloud_relay.central.repository import Repository

Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class MenuPublication(BaseModel):
    """`POST /v1/menus/publish`: a whole menu (CONTRACT.md "Menu") for these stores."""

    model_config = ConfigDict(extra="forbid")

    stores: Annotated[list[str], Field(min_length=1, max_length=1000)]
    menu: Menu


class MenuRollback(BaseModel):
    """`POST /v1/menus/rollback`: back to a version these stores already had."""

    model_config = ConfigDict(extra="forbid")

    stores: Annotated[list[str], Field(min_length=1, max_length=1000)]
    version: Annotated[str, Field(min_length=1, max_length=64)]


async def _each(stores: list[str], act: Callable[[str, str], Awaitable[str | None]]) -> dict[str, Any]:
    now = format_time(datetime.now(UTC))
    refused = {}
    for store in stores:
        why = await act(store, now)
        if why is not None:
            refused[store] = why
    if refused:
        raise HTTPException(409, {"refused": refused, "published": [s for s in stores if s not in refused]})
    return {"published": stores}


def add_report_routes(app: FastAPI, repo: Repository, auth: HqAuth) -> None:
    """Register the report and menu endpoints on `app`."""

    async def _reader(request: Request) -> None:
        await auth.user(request)

    async def _admin(request: Request) -> None:
        await auth.user(request, write=True, admin=True)

    def _filters(store: str | None, day_from: str | None, day_to: str | None) -> reports.Filters:
        return reports.Filters(store=store, day_from=day_from, day_to=day_to)

    @app.get("/v1/reports/sales")
    async def sales(
        request: Request,
        by: Annotated[str, Query(pattern="^(store|day|hour)$")] = "day",
        store: str | None = None,
        day_from: Day = None,
        day_to: Day = None,
    ) -> list[dict[str, Any]]:
        """Sales of closed tickets by store, business day or hour."""
        await _reader(request)
        return await reports.sales(repo, _filters(store, day_from, day_to), by)

    @app.get("/v1/reports/item-mix")
    async def item_mix(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Quantities and amounts per menu item."""
        await _reader(request)
        return await reports.item_mix(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/tenders")
    async def tenders(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Payments by tender kind."""
        await _reader(request)
        return await reports.tender_mix(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/exceptions")
    async def exceptions(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Voids, discounts, refunds and no-sales with actor and approver."""
        await _reader(request)
        return await reports.exceptions(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/shifts")
    async def shifts(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Shift reconciliation: the hub's Z next to central's sums (`equal` must be true)."""
        await _reader(request)
        return await reports.shift_reconciliation(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/offline-card-exposure")
    async def offline_card_exposure(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Per store: offline card payments still awaiting authorisation (count, amount, oldest, by day)."""
        await _reader(request)
        return await reports.offline_card_exposure(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/speed")
    async def speed(request: Request, store: str | None = None) -> list[dict[str, Any]]:
        """Kitchen speed of service per station."""
        await _reader(request)
        return await reports.speed_of_service(repo, reports.Filters(store=store))

    @app.post("/v1/menus/publish")
    async def publish_menu(request: Request, body: MenuPublication) -> dict[str, Any]:
        """Publish a versioned menu to one store or a group of stores (their relays fetch it); admins only."""
        await _admin(request)
        text = body.menu.model_dump_json()
        return await _each(body.stores, lambda store, now: repo.publish_menu(store, body.menu.version, text, now))

    @app.post("/v1/menus/rollback")
    async def rollback_menu(request: Request, body: MenuRollback) -> dict[str, Any]:
        """Make an earlier version the current menu again for one store or a group; admins only."""
        await _admin(request)
        return await _each(body.stores, lambda store, now: repo.publish_menu(store, body.version, None, now))

    @app.get("/v1/reports/connectivity")
    async def connectivity(request: Request) -> list[dict[str, Any]]:
        """Every store: last batch, newest entry held, and how far behind."""
        await _reader(request)
        return await reports.connectivity(repo)
