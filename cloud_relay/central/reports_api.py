"""`/v1/reports/...`: HQ's JSON reports (OpenAPI at /docs), behind a bearer reports token."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request

from cloud_relay.central import reports

if TYPE_CHECKING:
    from cloud_relay.central.config import CentralSection
    from cloud_relay.central.repository import Repository

Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]


def add_report_routes(app: FastAPI, repo: Repository, settings: CentralSection) -> None:
    """Register the report endpoints on `app`."""

    def _reader(request: Request) -> None:
        token = settings.reports_token
        if token is None:
            raise HTTPException(403, "reports are closed: set reports_token (STOREHUB_CENTRAL__REPORTS_TOKEN)")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(401, "a valid reports token is required (Authorization: Bearer ...)")

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
        _reader(request)
        return await reports.sales(repo, _filters(store, day_from, day_to), by)

    @app.get("/v1/reports/item-mix")
    async def item_mix(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Quantities and amounts per menu item."""
        _reader(request)
        return await reports.item_mix(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/tenders")
    async def tenders(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Payments by tender kind."""
        _reader(request)
        return await reports.tender_mix(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/exceptions")
    async def exceptions(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Voids, discounts, refunds and no-sales with actor and approver."""
        _reader(request)
        return await reports.exceptions(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/shifts")
    async def shifts(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> list[dict[str, Any]]:
        """Shift reconciliation: the hub's Z next to central's sums (`equal` must be true)."""
        _reader(request)
        return await reports.shift_reconciliation(repo, _filters(store, day_from, day_to))

    @app.get("/v1/reports/speed")
    async def speed(request: Request, store: str | None = None) -> list[dict[str, Any]]:
        """Kitchen speed of service per station."""
        _reader(request)
        return await reports.speed_of_service(repo, reports.Filters(store=store))

    @app.get("/v1/reports/connectivity")
    async def connectivity(request: Request) -> list[dict[str, Any]]:
        """Every store: last batch, newest entry held, and how far behind."""
        _reader(request)
        return await reports.connectivity(repo)
