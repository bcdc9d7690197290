"""The manager page and its JSON API: `create_app(services, settings)` → a FastAPI app.

Pages are rendered on the server (Jinja2) and kept live by Server-Sent Events (`/live`): after
every engine commit the open pages receive freshly rendered fragments of the regions they show.
Forms are sent by our own small script as JSON to the `/api/…` endpoints with the session's CSRF
token in `X-CSRF-Token`; the API is the same for scripts (`POST /api/login` first).

Every action is a contract command run by `WebServices.command` with the manager's staff token,
or (staff and device administration, test pages, reroutes) an operator command run on behalf of
the logged-in manager, who is the ledger's actor either way.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NoReturn

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from devices.registry import PAIRABLE_KINDS, PairingError
from firmware_tools.server import FirmwareStore, firmware_router
from hub import __version__
from hub.contract.errors import ErrorCode
from hub.contract.types import format_time, parse_time
from hub.domain import token_hash
from hub.store.db import open_reader
from hub.store.ledger import read_entries, verify_ledger
from hub.web import views
from hub.web.services import WEB_DEVICE, TlsInfo, WebServices
from hub.web.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, LoginLimiter, WebSession, WebSessions, csrf_ok

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from datetime import tzinfo

    import aiosqlite

    from hub.contract.envelopes import Reply

HERE: Final = Path(__file__).resolve().parent
FIRMWARE_DIR: Final = "firmware"
"""Where `storehub-fw add --dir <data_dir>/firmware` puts releases the hub serves at `/firmware`."""
STATUS_OF: Final[dict[str, int]] = {
    ErrorCode.INVALID_PAYLOAD: 422,
    ErrorCode.UNKNOWN_COMMAND: 422,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.APPROVAL_REQUIRED: 403,
    ErrorCode.SHIFT_CLOSED: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_MISMATCH: 409,
    ErrorCode.ITEM_UNAVAILABLE: 409,
    ErrorCode.PAYMENT_DECLINED: 402,
    ErrorCode.OFFLINE_LIMIT_EXCEEDED: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.CLOCK_INVALID: 503,
    ErrorCode.STORAGE_FULL: 507,
    ErrorCode.INTERNAL: 500,
}
WRITE_REFUSALS: Final = (ErrorCode.CLOCK_INVALID, ErrorCode.STORAGE_FULL)
LIVE_REGIONS: Final = ("banner", "shift", "floor", "orders", "board", "devices", "hq", "printers")
LIVE_PING_S: Final = 15.0
LOW_DISK_BYTES: Final = 64 * 1024 * 1024
_IDEMPOTENCY_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Cents = Annotated[int, Field(ge=0, le=100_000_000_00, strict=True)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
PinText = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]
IdText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
DeviceIdText = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
StationText = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
NameText = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
RoleText = Literal["kitchen", "server", "cashier", "manager"]


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the page behaves (from `[web]` in the store config)."""

    session_ttl_s: int = 8 * 3600
    login_max_failures: int = 5
    login_window_s: int = 300
    login_lockout_s: int = 300
    secure_cookies: bool = False


class WebError(Exception):
    """A refusal with its contract code, HTTP status and a message for the manager."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


# -- request bodies ------------------------------------------------------------------------------
class In(BaseModel):
    """Base of every API body: unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


class LoginIn(In):
    """`POST /api/login`."""

    employee_id: IdText
    pin: PinText


class ShiftOpenIn(In):
    """`POST /api/shift/open`: the counted opening float, in minor units."""

    opening_float: Cents


class ShiftCloseIn(In):
    """`POST /api/shift/close`: the blind count, in minor units."""

    counted_cash: Cents


class CashMoveIn(In):
    """`POST /api/shift/cash`: a pay-in, pay-out or drop."""

    kind: Literal["pay_in", "pay_out", "drop"]
    amount: Annotated[int, Field(gt=0, le=100_000_000_00, strict=True)]
    reason: Reason


class ReasonIn(In):
    """A reason (no-sale, void)."""

    reason: Reason


class PayCashIn(In):
    """`POST /api/tickets/{id}/pay_cash`: the cash handed over (default: exactly the balance)."""

    tendered: Cents | None = None


class AvailabilityIn(In):
    """`POST /api/menu/availability`: 86 an item, bring it back, or set a remaining count."""

    menu_item_id: IdText
    available: bool
    remaining: Annotated[int, Field(ge=0, le=100_000, strict=True)] | None = None


class StaffIn(In):
    """`POST /api/staff`: a new employee with their first PIN."""

    employee_id: IdText
    name: NameText
    role: RoleText
    pin: PinText


class PinIn(In):
    """`POST /api/staff/{id}/pin`."""

    pin: PinText


class RoleIn(In):
    """`POST /api/staff/{id}/role`."""

    role: RoleText


class PairCodeIn(In):
    """`POST /api/devices/pair-code`: optionally pin the code to a kind (and KDS stations)."""

    kind: Literal["tablet", "kds", "drawer", "display", "button"] | None = None
    stations: Annotated[list[StationText], Field(max_length=20)] = Field(default_factory=list)


class RerouteIn(In):
    """`POST /api/printers/jobs/{job_id}/reroute`: send a held job to another printer."""

    to: DeviceIdText
    reason: Reason


class PairIn(In):
    """`POST /api/pair` (CONTRACT.md): a new device trades its code for credentials."""

    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
    device_id: DeviceIdText
    kind: Literal["tablet", "kds", "drawer", "display", "button"]
    stations: Annotated[list[StationText], Field(max_length=20)] = Field(default_factory=list)


# -- the app -------------------------------------------------------------------------------------
def create_app(services: WebServices, settings: WebSettings | None = None) -> FastAPI:
    """The manager page for one running hub."""
    settings = settings or WebSettings()
    app = FastAPI(
        title="StoreHub manager API",
        version=__version__,
        description="The store manager's page on the hub, as JSON. Log in with `POST /api/login`; "
        "send the returned `csrf` as `X-CSRF-Token` with every other POST.",
        docs_url=None,
        redoc_url=None,
    )
    web = _Web(services, settings)
    app.state.web = web
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(WebError, web.on_web_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, web.on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, web.on_http_error)  # type: ignore[arg-type]
    app.middleware("http")(web.count_requests)
    _routes(app, web)
    # Signed firmware releases for OTA (docs/operations.md): devices fetch them here, no login needed.
    app.include_router(firmware_router(FirmwareStore(services.loaded.data_dir / FIRMWARE_DIR)))
    return app


class _Web:
    """State shared by the routes: services, sessions, limiter, templates, metrics."""

    def __init__(self, services: WebServices, settings: WebSettings) -> None:
        self.services = services
        self.settings = settings
        self.sessions = WebSessions(settings.session_ttl_s, store=services.webstate)
        self.limiter = LoginLimiter(settings.login_max_failures, settings.login_window_s, settings.login_lockout_s)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        env = self.templates.env
        env.filters["money"] = views.money
        env.filters["hhmm"] = _local_time(services.engine.settings.zone)
        env.globals["currency"] = services.loaded.config.store.currency
        env.globals["store_name"] = services.loaded.config.store.name
        env.globals["BUCKETS"] = views.BUCKETS
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "storehub_web_requests",
            "HTTP requests to the manager page",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(self))

    # -- plumbing ---------------------------------------------------------------------------
    async def count_requests(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.requests.labels(request.method, path, str(response.status_code)).inc()
        return response

    async def on_web_error(self, request: Request, exc: WebError) -> Response:
        if _wants_html(request) and exc.status == 401:  # noqa: PLR2004 - HTTP status
            return RedirectResponse("/login", status_code=303)
        if _wants_html(request):
            return self.render(request, "error.html", None, {"error": exc}, status=exc.status)
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status, headers=exc.headers
        )

    async def on_http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: f"No such page or endpoint: {request.url.path}", 405: f"{request.method} is not allowed here"}
        generic = not isinstance(exc.detail, str) or exc.detail in ("Not Found", "Method Not Allowed")
        text = message.get(exc.status_code, "refused") if generic else str(exc.detail)
        error = WebError(exc.status_code, code, text)
        return await self.on_web_error(request, error)

    async def on_validation_error(self, request: Request, exc: RequestValidationError) -> Response:
        del request
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"{loc}: {first.get('msg', 'invalid')}"
        return JSONResponse({"error": {"code": ErrorCode.INVALID_PAYLOAD.value, "message": message}}, status_code=422)

    def now(self) -> datetime:
        return self.services.engine.clock()

    def session(self, request: Request) -> WebSession | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE), self.services.engine.state)

    def result(self, reply: Reply) -> dict[str, Any]:
        """The reply's result, or the WebError its error code means."""
        if reply.ok:
            return reply.result if isinstance(reply.result, dict) else {}
        error = reply.error
        code = error.code if error is not None else ErrorCode.INTERNAL
        message = error.message if error is not None else "refused"
        if code in WRITE_REFUSALS:
            self.services.feed.refusal = (str(code), message, time.time())
        retry = (error.details or {}).get("retry_after_s") if error is not None else None
        headers = {"Retry-After": str(retry)} if isinstance(retry, int) else None
        raise WebError(STATUS_OF.get(code, 400), str(code), message, headers=headers)

    async def run(self, s: WebSession, type_: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """A contract command as the logged-in employee; its result or a WebError."""
        cmd_id = None
        if key is not None:
            if not _IDEMPOTENCY_KEY.match(key):
                _raise(422, "invalid_payload", "Idempotency-Key must be 1-64 of A-Z a-z 0-9 _ -")
            cmd_id = f"k-{s.employee_id}-{key}"[:64]
        return self.result(await self.services.command(type_, body, token=s.token, cmd_id=cmd_id))

    async def admin(self, s: WebSession, type_: str, body: dict[str, Any]) -> dict[str, Any]:
        """An operator command on behalf of the logged-in manager (ledgered with them as actor)."""
        return self.result(await self.services.admin(type_, body, actor=s.employee_id))

    def banner(self) -> dict[str, Any] | None:
        """Why the hub refuses (or will soon refuse) writes, if it does."""
        engine = self.services.engine
        head_at = engine.committed_head.at
        if head_at is not None and self.now() < parse_time(head_at):
            return {
                "code": "clock_invalid",
                "message": f"The hub's clock is behind its newest ledger entry ({head_at}); "
                "it refuses every write until the clock is fixed.",
            }
        seen = self.services.feed.refusal  # the last refusal any device (this page too) was told
        if seen is not None:
            code, message, at_s = seen
            when = format_time(datetime.fromtimestamp(at_s, UTC))
            return {"code": code, "message": f"{message} (at {when})."}
        try:
            free = shutil.disk_usage(engine.db.path.parent).free
        except OSError:
            return None
        if free < LOW_DISK_BYTES:
            return {
                "code": "storage_full",
                "message": f"Only {free // (1024 * 1024)} MB free on the hub's disk: it will refuse writes when full.",
            }
        return None

    def render(
        self,
        request: Request,
        template: str,
        s: WebSession | None,
        context: dict[str, Any],
        status: int = 200,
    ) -> HTMLResponse:
        pre_login = request.cookies.get(CSRF_COOKIE) or ""
        new_cookie = s is None and not pre_login
        if new_cookie:
            pre_login = secrets.token_urlsafe(32)
        base = {
            "request": request,
            "s": s,
            "csrf": s.csrf if s else pre_login,
            "banner": self.banner(),
            "path": request.url.path,
            "seq": self.services.engine.committed_head.seq,
        }
        response = self.templates.TemplateResponse(request, template, base | context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        if new_cookie:
            self.set_cookie(response, CSRF_COOKIE, pre_login)
        return response

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
            path="/",
        )

    # -- data for pages and the API ---------------------------------------------------------
    def dashboard(self) -> dict[str, Any]:
        state = self.services.engine.state
        now = self.now()
        rows = views.order_log(state, now)
        return {
            "shift": views.shift_panel(state),
            "floor": views.floor(state, now),
            "orders": rows,
            "counts": views.bucket_counts(rows),
        }

    def regions(self, names: Iterable[str], s: WebSession) -> dict[str, str]:
        """The HTML of live regions, from one consistent read of the state."""
        names = list(names)
        context: dict[str, Any] = {"s": s, "csrf": s.csrf, "banner": self.banner()}
        state = self.services.engine.state
        if {"shift", "floor", "orders"} & set(names):
            context |= self.dashboard()
        if "board" in names:
            context["items"] = views.availability(state)
        if "hq" in names:
            context["hq"] = self.hq()
        if "printers" in names:
            context["printers"] = self.printers()
        if "devices" in names:
            context["devices"] = self.devices()
            context["codes"] = [_offer(o) for o in self.services.codes.pending()]
        env = self.templates.env
        return {name: env.get_template(f"_{name}.html").render(context) for name in names}

    def devices(self) -> list[dict[str, Any]]:
        return views.devices(self.services.engine.state, self.services.engine.presence, frozenset({WEB_DEVICE}))

    def printers(self) -> dict[str, Any]:
        """Printer states and what discovery found (the print service's own view), or that none runs."""
        desk = self.services.printing()
        if desk is None:
            return {"running": False, "printers": [], "discovered": []}
        return {"running": True, "printers": desk.describe(), "discovered": desk.discovered()}

    async def print_jobs(self, limit: int = 60) -> list[dict[str, Any]]:
        """Jobs still to print first, then the newest printed or failed ones."""
        async with open_reader(self.services.engine.db.path) as conn:
            try:
                async with conn.execute(
                    "SELECT job_id, seq, printer, kind, doc, state, routed_from, attempts, reprint, queued_at, done_at "
                    "FROM print_jobs ORDER BY (state IN ('queued', 'printing')) DESC, seq DESC LIMIT ?",
                    (limit,),
                ) as cursor:
                    rows = await cursor.fetchall()
            except sqlite3.OperationalError:  # a database from before printing existed
                return []
        jobs = []
        for r in rows:
            doc = json.loads(r[4]) if r[4] else {}
            jobs.append(
                {
                    "job_id": r[0],
                    "seq": r[1],
                    "printer": r[2],
                    "kind": r[3],
                    "state": r[5],
                    "routed_from": r[6],
                    "attempts": r[7],
                    "reprint": bool(r[8]),
                    "queued_at": r[9],
                    "done_at": r[10],
                    "ticket_id": doc.get("ticket_id") if isinstance(doc, dict) else None,
                    "number": doc.get("number") if isinstance(doc, dict) else None,
                }
            )
        return jobs

    async def print_job(self, job_id: str) -> dict[str, Any]:
        rows = await self._job_rows(job_id)
        if not rows:
            raise WebError(404, "not_found", f"There is no print job {job_id}")
        return rows[0]

    async def _job_rows(self, job_id: str) -> list[dict[str, Any]]:
        async with open_reader(self.services.engine.db.path) as conn:
            try:
                async with conn.execute(
                    "SELECT job_id, printer, kind, doc, state FROM print_jobs WHERE job_id = ?", (job_id,)
                ) as cursor:
                    rows = await cursor.fetchall()
            except sqlite3.OperationalError:
                return []
        out = []
        for r in rows:
            doc = json.loads(r[3]) if r[3] else {}
            ticket = doc.get("ticket_id") if isinstance(doc, dict) else None
            out.append({"job_id": r[0], "printer": r[1], "kind": r[2], "state": r[4], "ticket_id": ticket})
        return out

    async def ticket_detail(self, ticket_id: str) -> dict[str, Any]:
        engine = self.services.engine
        ticket = engine.state.tickets.get(ticket_id)
        doc: dict[str, Any] | None = ticket.model_dump(mode="json") if ticket is not None else None
        async with open_reader(engine.db.path) as conn:
            if doc is None:
                async with conn.execute("SELECT doc FROM p_tickets WHERE ticket_id = ?", (ticket_id,)) as cursor:
                    row = await cursor.fetchone()
                if row is None:
                    _raise(404, "not_found", f"There is no ticket {ticket_id}")
                doc = json.loads(row[0])
            # Nothing about a ticket precedes its opening: scan the ledger from there, not from seq 1.
            start = await _first_seq_at(conn, str(doc.get("opened_at") or ""))
            async with conn.execute(
                "SELECT seq, at, type, actor, device, data FROM ledger "
                "WHERE seq >= ? AND json_extract(data, '$.ticket_id') = ? ORDER BY seq",
                (start, ticket_id),
            ) as cursor:
                rows = await cursor.fetchall()
        assert doc is not None  # noqa: S101 - _raise above never returns
        staff = engine.state.staff
        history = [
            {
                "seq": r[0],
                "at": r[1],
                "type": r[2],
                "actor": staff[r[3]].name if r[3] in staff else r[3],
                "device": r[4],
                "data": json.loads(r[5]),
            }
            for r in rows
        ]
        for item in history:
            approver = staff.get(str(item["data"].get("approved_by") or ""))
            item["approved_by"] = approver.name if approver else item["data"].get("approved_by")
        doc["bucket"] = views.bucket_of(ticket) if ticket is not None else doc.get("status")
        table = engine.state.tables.get(doc.get("table_id") or "")
        doc["table_name"] = table.name if table else None
        server = staff.get(doc.get("server") or "")
        doc["server_name"] = server.name if server else doc.get("server")
        return {"ticket": doc, "history": history}

    async def reports(self) -> dict[str, Any]:
        engine = self.services.engine
        state, settings, now = engine.state, engine.settings, self.now()
        tickets = views.day_tickets(state, settings, now)
        hours = views.sales_by_hour(state, settings, now)
        day_start = settings.business_day_ends_at(settings.business_day_of(now)) - _ONE_DAY
        marks = ",".join("?" * len(views.EXCEPTION_TYPES))
        async with (
            open_reader(engine.db.path) as conn,
            conn.execute(
                f"SELECT at, type, actor, data FROM ledger WHERE at >= ? AND type IN ({marks}) ORDER BY seq",  # noqa: S608
                (format_time(day_start), *views.EXCEPTION_TYPES),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return {
            "business_day": settings.business_day_of(now).isoformat(),
            "sales_by_hour": hours,
            "sales_total": sum(h["amount"] for h in hours),
            "item_mix": views.item_mix(tickets),
            "exceptions": [views.exception_row(r[0], r[1], r[2], json.loads(r[3]), state) for r in rows],
            "kds": views.kds_times(tickets),
        }

    def hq(self) -> dict[str, Any]:
        """The relay (any device of kind `relay`, `relay` by default) and its last retained status."""
        engine = self.services.engine
        registered = sorted(d.device_id for d in engine.state.devices.values() if d.kind == "relay" and d.active)
        seen = sorted(k for k, v in engine.presence.items() if v.get("kind") == "relay")
        names = list(dict.fromkeys(["relay", *registered, *seen]))
        relay_id = next((n for n in names if n in engine.presence), registered[0] if registered else None)
        return {
            "configured": relay_id is not None,
            "relay": relay_id,
            "status": engine.presence.get(relay_id) if relay_id is not None else None,
            "head_seq": self.services.engine.committed_head.seq,
            "epoch": self.services.engine.epoch,
        }

    async def ledger(self, after: int, limit: int) -> list[dict[str, Any]]:
        async with open_reader(self.services.engine.db.path) as conn:
            entries = await read_entries(conn, after, limit)
        return [
            {
                "seq": e.seq,
                "at": e.at,
                "type": e.type,
                "actor": e.actor,
                "device": e.device,
                "data": e.data,
                "hash": e.hash,
                "prev_hash": e.prev_hash,
            }
            for e in entries
        ]

    async def verify(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        async with open_reader(self.services.engine.db.path) as conn:
            result = await verify_ledger(conn)
        return {
            "ok": result.ok,
            "entries": result.count,
            "head_seq": result.head_seq,
            "first_bad_seq": result.first_bad_seq,
            "reason": result.reason,
            "took_ms": round((time.perf_counter() - t0) * 1000, 1),
            "at": format_time(self.now()),
        }

    async def live(self, s: WebSession, regions: list[str]) -> AsyncIterator[str]:
        feed = self.services.feed
        queue = feed.listen()
        sent: dict[str, str] = {}
        try:
            # The first message carries every region: a page that reconnects (hub restart, Wi-Fi blip) is fresh again.
            sent.update(self.regions(regions, s))
            hello = {"hello": True, "seq": self.services.engine.committed_head.seq, "committed_ms": None, "html": sent}
            yield f"retry: 2000\ndata: {json.dumps(hello)}\n\n"
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), LIVE_PING_S)
                except TimeoutError:
                    if self.sessions.get(s.sid, self.services.engine.state) is None:
                        yield "event: logout\ndata: {}\n\n"
                        return
                    yield ": ping\n\n"
                    continue
                if change.seq < 0:  # the hub is stopping
                    return
                if self.sessions.get(s.sid, self.services.engine.state) is None:
                    yield "event: logout\ndata: {}\n\n"
                    return
                fresh = self.regions(regions, s)
                html = {name: text for name, text in fresh.items() if sent.get(name) != text}
                sent.update(html)  # unchanged regions are not sent: the page keeps its DOM (and focus)
                seq = self.services.engine.committed_head.seq
                message = {"seq": seq, "committed_ms": change.committed_ms, "html": html}
                yield f"data: {json.dumps(message)}\n\n"
        finally:
            feed.forget(queue)


_ONE_DAY: Final = timedelta(days=1)


class _EngineCollector:
    """Engine and page figures, read at scrape time."""

    def __init__(self, web: _Web) -> None:
        self.web = web

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        engine = self.web.services.engine
        state = engine.state
        stats = engine.stats.summary()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("storehub_ledger_seq", "Newest ledger sequence number", engine.committed_head.seq)
        yield gauge("storehub_ledger_epoch", "Ledger epoch", engine.epoch)
        yield gauge("storehub_open_tickets", "Open tickets", len(state.open_tickets))
        yield gauge(
            "storehub_tables_occupied", "Occupied tables", sum(1 for t in state.tables.values() if t.status != "free")
        )
        yield gauge("storehub_shift_open", "1 when a shift is open", 1 if state.current_shift_id else 0)
        yield gauge(
            "storehub_devices_online",
            "Devices whose last status is online",
            sum(1 for p in engine.presence.values() if p.get("state") == "online"),
        )
        yield gauge("storehub_engine_commands", "Commands the engine processed since start", stats["commands"])
        yield gauge("storehub_engine_batches", "Batches the engine committed since start", stats["batches"])
        latency = stats.get("latency_ms") or {}
        if latency.get("p99") is not None:
            yield gauge("storehub_engine_latency_p99_ms", "In-hub command latency p99 (recent)", latency["p99"])
        yield gauge("storehub_web_sessions", "Logged-in browser sessions", self.web.sessions.count())
        yield gauge("storehub_web_live_pages", "Open live pages (SSE)", self.web.services.feed.listeners)
        yield gauge("storehub_web_write_refused", "1 while the hub refuses writes", 1 if self.web.banner() else 0)


# -- dependencies --------------------------------------------------------------------------------
def _web(request: Request) -> _Web:
    web: _Web = request.app.state.web
    return web


def _session_dep(request: Request) -> WebSession:
    s = _web(request).session(request)
    if s is None:
        _raise(401, "unauthorized", "Log in first (or your session has ended)")
    assert s is not None  # noqa: S101 - _raise never returns
    return s


def _manager_dep(s: Annotated[WebSession, Depends(_session_dep)]) -> WebSession:
    if not s.manager:
        _raise(403, "forbidden", f"{s.name} is a {s.role}: this page is read-only for you")
    return s


def _csrf_dep(
    s: Annotated[WebSession, Depends(_manager_dep)],
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> WebSession:
    if not csrf_ok(s.csrf, x_csrf_token):
        _raise(403, "csrf", f"Missing or wrong {CSRF_HEADER} header; reload the page")
    return s


def _page_session(request: Request) -> WebSession | None:
    return _web(request).session(request)


Session = Annotated[WebSession, Depends(_session_dep)]
Manager = Annotated[WebSession, Depends(_manager_dep)]
Acting = Annotated[WebSession, Depends(_csrf_dep)]
MaybeSession = Annotated[WebSession | None, Depends(_page_session)]
Key = Annotated[str | None, Header(alias="Idempotency-Key")]


def _routes(app: FastAPI, web: _Web) -> None:  # noqa: PLR0915 - one place lists every route
    # -- service endpoints ------------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    async def healthz() -> JSONResponse:
        """Liveness and the basics: 200 while the engine runs, 503 when the hub refuses writes."""
        described = web.services.describe()
        banner = web.banner()
        body = {
            "ok": banner is None,
            "seq": described.get("seq"),
            "epoch": described.get("epoch"),
            "broker_connected": described.get("broker_connected"),
            "refusing_writes": banner["code"] if banner else None,
        }
        return JSONResponse(body, status_code=200 if banner is None else 503)

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(web.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request, s: MaybeSession) -> HTMLResponse:
        return web.render(request, "docs.html", s, {"spec": app.openapi()})

    # -- auth -------------------------------------------------------------------------------
    @app.post("/api/login", tags=["auth"])
    async def login(
        body: LoginIn,
        request: Request,
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        """Staff PIN login; sets the session cookie and returns the CSRF token for later POSTs.

        Needs `X-CSRF-Token` equal to the `storehub_csrf` cookie that any page (e.g. `GET /login`) sets.
        """
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), x_csrf_token):
            _raise(403, "csrf", "Missing or wrong X-CSRF-Token; open the login page again")
        client = request.client.host if request.client else "?"
        wait = web.limiter.locked_for(client, body.employee_id)
        if wait:
            raise WebError(
                429,
                "rate_limited",
                f"Too many wrong PINs for {body.employee_id} from this browser; try again in {wait} s "
                "(another employee can still log in here)",
                headers={"Retry-After": str(wait)},
            )
        reply = await web.services.command(
            "staff.login", {"employee_id": body.employee_id, "pin": body.pin}, token=None
        )
        if not reply.ok:
            if reply.error is not None and reply.error.code == ErrorCode.UNAUTHORIZED:
                web.limiter.failed(client, body.employee_id)
            web.result(reply)
        result = reply.result if isinstance(reply.result, dict) else {}
        web.limiter.succeeded(client, body.employee_id)
        s = await web.sessions.create(
            str(result["token"]),
            str(result["employee_id"]),
            str(result["name"]),
            str(result["role"]),
            parse_time(str(result["expires_at"])),
        )
        response = JSONResponse(
            {
                "employee_id": s.employee_id,
                "name": s.name,
                "role": s.role,
                "csrf": s.csrf,
                "expires_at": format_time(s.expires_at),
                "read_only": not s.manager,
            }
        )
        web.set_cookie(response, SESSION_COOKIE, s.sid, max_age=int((s.expires_at - web.now()).total_seconds()))
        return response

    @app.post("/api/logout", tags=["auth"])
    async def logout(
        request: Request, s: Session, x_csrf_token: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """End the browser session and the staff token behind it."""
        if not csrf_ok(s.csrf, x_csrf_token):
            _raise(403, "csrf", "Missing or wrong X-CSRF-Token")
        await web.sessions.end(s.sid)
        if token_hash(s.token) in web.services.engine.state.sessions:
            await web.services.command("staff.logout", {}, token=s.token)
        response = JSONResponse({"logged_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        del request
        return response

    @app.get("/api/me", tags=["auth"])
    async def me(s: Session) -> dict[str, Any]:
        """Who is logged in, and the CSRF token of the session."""
        return {
            "employee_id": s.employee_id,
            "name": s.name,
            "role": s.role,
            "csrf": s.csrf,
            "read_only": not s.manager,
        }

    # -- dashboard and tickets --------------------------------------------------------------
    @app.get("/api/dashboard", tags=["floor"])
    async def api_dashboard(s: Session) -> dict[str, Any]:
        """Shift panel, floor plan and order log (read-only roles see this too)."""
        del s
        return web.dashboard() | {"banner": web.banner(), "seq": web.services.engine.committed_head.seq}

    @app.get("/api/tickets", tags=["tickets"])
    async def api_tickets(
        s: Manager,
        bucket: Annotated[Literal["open", "fired", "ready", "paid", "voided", "refunded"] | None, Query()] = None,
        q: Annotated[str | None, Query(max_length=100)] = None,
    ) -> list[dict[str, Any]]:
        """The order log, optionally one bucket and a search (number, table, server, name, item)."""
        del s
        return views.order_log(web.services.engine.state, web.now(), bucket=bucket, query=q)

    @app.get("/api/tickets/{ticket_id}", tags=["tickets"])
    async def api_ticket(ticket_id: IdText, s: Manager) -> dict[str, Any]:
        """A ticket with its full event history from the ledger."""
        del s
        return await web.ticket_detail(ticket_id)

    @app.post("/api/tickets/{ticket_id}/pay_cash", tags=["tickets"])
    async def api_pay_cash(ticket_id: IdText, body: PayCashIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Settle the balance in cash (`ticket.pay`)."""
        ticket = web.services.engine.state.tickets.get(ticket_id)
        if ticket is None:
            _raise(404, "not_found", f"There is no ticket {ticket_id}")
        assert ticket is not None  # noqa: S101
        balance = ticket.totals.balance
        if balance <= 0:
            _raise(409, "conflict", f"Ticket #{ticket.number} has nothing left to pay")
        tendered = body.tendered if body.tendered is not None else balance
        tender = {"kind": "cash", "amount": balance, "tendered": tendered}
        return await web.run(s, "ticket.pay", {"ticket_id": ticket_id, "tenders": [tender]}, key)

    @app.post("/api/tickets/{ticket_id}/reprint", tags=["tickets"])
    async def api_reprint(ticket_id: IdText, s: Acting, key: Key = None) -> dict[str, Any]:
        """Print the receipt (or the check while open) again (`ticket.print`)."""
        ticket = web.services.engine.state.tickets.get(ticket_id)
        kind = "check" if ticket is not None and ticket.status == "open" else "receipt"
        return await web.run(s, "ticket.print", {"ticket_id": ticket_id, "kind": kind}, key)

    @app.post("/api/tickets/{ticket_id}/void", tags=["tickets"])
    async def api_void(ticket_id: IdText, body: ReasonIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Void an unpaid ticket with a reason (`ticket.void`)."""
        return await web.run(s, "ticket.void", {"ticket_id": ticket_id, "reason": body.reason}, key)

    # -- shift ------------------------------------------------------------------------------
    @app.get("/api/shift", tags=["shift"])
    async def api_shift(s: Manager) -> dict[str, Any]:
        """The open shift (blind: no expected cash) and every past shift."""
        del s
        state = web.services.engine.state
        return {"current": views.shift_panel(state), "shifts": views.past_shifts(state)}

    @app.post("/api/shift/open", tags=["shift"])
    async def api_shift_open(body: ShiftOpenIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Open the shift with the counted float (`shift.open`)."""
        return await web.run(s, "shift.open", {"opening_float": body.opening_float}, key)

    @app.post("/api/shift/cash", tags=["shift"])
    async def api_shift_cash(body: CashMoveIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Pay in, pay out or drop (`drawer.pay_in` / `drawer.pay_out` / `drawer.drop`)."""
        return await web.run(s, f"drawer.{body.kind}", {"amount": body.amount, "reason": body.reason}, key)

    @app.post("/api/shift/no_sale", tags=["shift"])
    async def api_no_sale(body: ReasonIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Open the drawer without a sale, with a reason (`drawer.open`)."""
        return await web.run(s, "drawer.open", {"reason": body.reason}, key) or {"opened": True}

    @app.post("/api/shift/close", tags=["shift"])
    async def api_shift_close(body: ShiftCloseIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """Blind close with the counted cash (`shift.close`); returns the Z report with over/short."""
        return await web.run(s, "shift.close", {"counted_cash": body.counted_cash}, key)

    @app.get("/api/shifts/{shift_id}/report", tags=["shift"])
    async def api_report(
        shift_id: IdText, s: Manager, kind: Annotated[Literal["x", "z"], Query()] = "x"
    ) -> dict[str, Any]:
        """X (running) or Z (closed) report of a shift (`shift.report`)."""
        return await web.run(s, "shift.report", {"kind": kind, "shift_id": shift_id})

    # -- menu -------------------------------------------------------------------------------
    @app.get("/api/menu/availability", tags=["menu"])
    async def api_board(s: Session) -> list[dict[str, Any]]:
        """The 86 board."""
        del s
        return views.availability(web.services.engine.state)

    @app.post("/api/menu/availability", tags=["menu"])
    async def api_set_availability(body: AvailabilityIn, s: Acting, key: Key = None) -> dict[str, Any]:
        """86 an item (or bring it back, or set how many are left): `menu.availability`."""
        return await web.run(s, "menu.availability", body.model_dump(exclude_none=True), key)

    # -- staff ------------------------------------------------------------------------------
    @app.get("/api/staff", tags=["staff"])
    async def api_staff(s: Manager) -> list[dict[str, Any]]:
        """Every employee (never PINs)."""
        del s
        return views.staff(web.services.engine.state)

    @app.post("/api/staff", tags=["staff"])
    async def api_staff_add(body: StaffIn, s: Acting) -> dict[str, Any]:
        """Add an employee (or bring a deactivated one back) with a PIN."""
        return await web.admin(s, "staff.add", body.model_dump())

    @app.post("/api/staff/{employee_id}/deactivate", tags=["staff"])
    async def api_staff_deactivate(employee_id: IdText, s: Acting) -> dict[str, Any]:
        """Deactivate an employee: their sessions end at once."""
        if employee_id == s.employee_id:
            _raise(409, "conflict", "You cannot deactivate yourself while logged in")
        return await web.admin(s, "staff.deactivate", {"employee_id": employee_id})

    @app.post("/api/staff/{employee_id}/pin", tags=["staff"])
    async def api_staff_pin(employee_id: IdText, body: PinIn, s: Acting) -> dict[str, Any]:
        """Set a new PIN (also lifts a lockout)."""
        return await web.admin(s, "staff.reset_pin", {"employee_id": employee_id, "pin": body.pin})

    @app.post("/api/staff/{employee_id}/role", tags=["staff"])
    async def api_staff_role(employee_id: IdText, body: RoleIn, s: Acting) -> dict[str, Any]:
        """Change an employee's role (applies to their live sessions at once)."""
        if employee_id == s.employee_id and body.role != "manager":
            _raise(409, "conflict", "Ask another manager to change your own role")
        return await web.admin(s, "staff.set_role", {"employee_id": employee_id, "role": body.role})

    # -- devices ----------------------------------------------------------------------------
    @app.get("/api/devices", tags=["devices"])
    async def api_devices(s: Manager) -> dict[str, Any]:
        """Registered devices with presence, and the pairing codes still open."""
        del s
        codes = [_offer(o) for o in web.services.codes.pending()]
        return {"devices": web.devices(), "codes": codes}

    @app.post("/api/devices/pair-code", tags=["devices"])
    async def api_pair_code(body: PairCodeIn, s: Acting) -> dict[str, Any]:
        """A one-time 6-digit pairing code, valid 10 minutes."""
        try:
            offer = web.services.codes.issue(kind=body.kind, stations=tuple(body.stations), issued_by=s.employee_id)
        except PairingError as refused:
            _raise(refused.status, refused.code, refused.message)
        await web.services.keep_code(offer)
        web.services.feed.notify("pairing")
        return _offer(offer, web.services.tls)

    @app.post("/api/devices/{device_id}/revoke", tags=["devices"])
    async def api_revoke(device_id: DeviceIdText, s: Acting) -> dict[str, Any]:
        """Revoke a device: its broker account and ACL go, and its connection is dropped."""
        if device_id == WEB_DEVICE:
            _raise(409, "conflict", "The web page is the hub itself; it cannot be revoked")
        return await web.admin(s, "device.revoke", {"device_id": device_id})

    @app.post("/api/pair", tags=["devices"], status_code=201)
    async def api_pair(body: PairIn, request: Request) -> JSONResponse:
        """A new device presents its one-time code once and receives its own MQTT credentials."""
        return await pair(web, body, request.client.host if request.client else "?")

    # -- printers ---------------------------------------------------------------------------
    @app.get("/api/printers", tags=["printers"])
    async def api_printers(s: Manager) -> dict[str, Any]:
        """Printer states (online, paper, cover, queue depth, last error), discovered printers, recent jobs."""
        del s
        return web.printers() | {"jobs": await web.print_jobs()}

    @app.post("/api/printers/{printer_id}/test", tags=["printers"])
    async def api_print_test(printer_id: DeviceIdText, s: Acting) -> dict[str, Any]:
        """Queue a test page on a printer (`print.test`): the same durable queue, confirmation and ledger as a chit."""
        if web.services.printing() is None:
            _raise(409, "conflict", "Printing is not running on this hub")
        return await web.admin(s, "print.test", {"printer": printer_id})

    @app.get("/api/printers/jobs/{job_id}/preview.png", tags=["printers"], response_class=Response)
    async def api_print_preview(job_id: IdText, s: Manager) -> Response:
        """The job as its printer prints it, rendered from the real ESC/POS bytes to a PNG."""
        del s
        desk = web.services.printing()
        if desk is None:
            _raise(409, "conflict", "Printing is not running on this hub")
        try:
            png = await desk.preview(job_id)
        except KeyError:
            _raise(404, "not_found", f"There is no print job {job_id}")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/printers/jobs/{job_id}/reprint", tags=["printers"])
    async def api_print_reprint(job_id: IdText, s: Acting, key: Key = None) -> dict[str, Any]:
        """Print a receipt or check again (`ticket.print`); chits are re-fired from the ticket."""
        job = await web.print_job(job_id)
        if job["kind"] not in ("receipt", "check") or not job["ticket_id"]:
            _raise(409, "conflict", f"A {job['kind']} is not reprinted from here: reprint its ticket or fire again")
        return await web.run(s, "ticket.print", {"ticket_id": job["ticket_id"], "kind": job["kind"]}, key)

    @app.post("/api/printers/jobs/{job_id}/reroute", tags=["printers"])
    async def api_print_reroute(job_id: IdText, body: RerouteIn, s: Acting) -> dict[str, Any]:
        """Send a job that has not printed to another printer (`print.reroute`, ledgered)."""
        job = await web.print_job(job_id)
        if job["state"] == "printed":
            _raise(409, "conflict", f"Job {job_id} is already printed")
        if job["printer"] == body.to:
            _raise(409, "conflict", f"Job {job_id} is already on {body.to}")
        reroute = {"job_id": job_id, "from_printer": job["printer"] or "none", "to": body.to, "reason": body.reason}
        result = await web.admin(s, "print.reroute", reroute)
        return result or {"rerouted": True, "to": body.to}

    # -- HQ link, ledger, reports -----------------------------------------------------------
    @app.get("/api/hq", tags=["hq"])
    async def api_hq(s: Manager) -> dict[str, Any]:
        """The relay's last status (from its retained `device/relay/status`), or that none is configured."""
        del s
        return web.hq()

    @app.get("/api/ledger", tags=["hq"])
    async def api_ledger(
        s: Manager,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        """Ledger entries with seq above `after`, oldest first."""
        del s
        return await web.ledger(after, limit)

    @app.post("/api/ledger/verify", tags=["hq"])
    async def api_verify(s: Acting) -> dict[str, Any]:
        """Walk the whole hash chain and report the first bad entry, if any."""
        del s
        return await web.verify()

    @app.get("/api/reports/today", tags=["reports"])
    async def api_reports(s: Manager) -> dict[str, Any]:
        """Sales by hour, item mix, voids/discounts/refunds with approvers, KDS ticket times."""
        del s
        return await web.reports()

    # -- live -------------------------------------------------------------------------------
    @app.get("/live", include_in_schema=False)
    async def live(s: Session, regions: Annotated[str, Query(max_length=200)] = "") -> StreamingResponse:
        wanted = [r for r in regions.split(",") if r in LIVE_REGIONS]
        if not s.manager:
            wanted = [r for r in wanted if r in ("banner", "shift", "floor")]
        return StreamingResponse(
            web.live(s, wanted),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- pages ------------------------------------------------------------------------------
    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request, s: MaybeSession) -> Response:
        if s is not None:
            return RedirectResponse("/", status_code=303)
        people = [p for p in views.staff(web.services.engine.state) if p["active"]]
        return web.render(request, "login.html", None, {"people": people})

    @app.get("/", include_in_schema=False)
    async def dashboard_page(request: Request, s: MaybeSession) -> Response:
        if s is None:
            return RedirectResponse("/login", status_code=303)
        return web.render(request, "dashboard.html", s, web.dashboard())

    def manager_page(request: Request, s: WebSession | None) -> WebSession | Response:
        if s is None:
            return RedirectResponse("/login", status_code=303)
        if not s.manager:
            return web.render(
                request,
                "error.html",
                s,
                {"error": WebError(403, "forbidden", f"{s.name}: this page is for managers")},
                status=403,
            )
        return s

    @app.get("/tickets/{ticket_id}", include_in_schema=False)
    async def ticket_page(ticket_id: IdText, request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        return web.render(request, "ticket.html", m, await web.ticket_detail(ticket_id))

    @app.get("/shift", include_in_schema=False)
    async def shift_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        state = web.services.engine.state
        return web.render(
            request, "shift.html", m, {"shift": views.shift_panel(state), "shifts": views.past_shifts(state)}
        )

    @app.get("/shifts/{shift_id}/report", include_in_schema=False)
    async def report_page(
        shift_id: IdText, request: Request, s: MaybeSession, kind: Annotated[Literal["x", "z"], Query()] = "x"
    ) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        report = await web.run(m, "shift.report", {"kind": kind, "shift_id": shift_id})
        return web.render(request, "report.html", m, {"report": report})

    @app.get("/menu", include_in_schema=False)
    async def menu_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        return web.render(request, "menu.html", m, {"items": views.availability(web.services.engine.state)})

    @app.get("/staff", include_in_schema=False)
    async def staff_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        return web.render(request, "staff.html", m, {"people": views.staff(web.services.engine.state)})

    @app.get("/devices", include_in_schema=False)
    async def devices_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        return web.render(
            request,
            "devices.html",
            m,
            {
                "devices": web.devices(),
                "codes": [_offer(o) for o in web.services.codes.pending()],
                "kinds": PAIRABLE_KINDS,
                "ca_sha256": web.services.tls.ca_sha256 if web.services.tls is not None else None,
            },
        )

    @app.get("/printers", include_in_schema=False)
    async def printers_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        return web.render(request, "printers.html", m, {"printers": web.printers(), "jobs": await web.print_jobs()})

    @app.get("/hq", include_in_schema=False)
    async def hq_page(request: Request, s: MaybeSession, after: Annotated[int | None, Query(ge=0)] = None) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        head = web.services.engine.committed_head.seq
        start = max(0, head - 50) if after is None else after
        entries = await web.ledger(start, 50)
        return web.render(request, "hq.html", m, {"hq": web.hq(), "entries": entries, "after": start, "head": head})

    @app.get("/reports", include_in_schema=False)
    async def reports_page(request: Request, s: MaybeSession) -> Response:
        m = manager_page(request, s)
        if isinstance(m, Response):
            return m
        data = await web.reports()
        chart = views.hour_chart_svg(data["sales_by_hour"], web.services.loaded.config.store.currency)
        return web.render(request, "reports.html", m, {"r": data, "chart": chart})


async def pair(web: _Web, body: PairIn, client: str) -> JSONResponse:
    """`POST /api/pair`: claim the code, register the device through the engine, hand out its credentials."""
    codes = web.services.codes
    stations = tuple(body.stations)
    try:
        offer = codes.claim(body.code, body.device_id, body.kind, stations, client)
    except PairingError as refused:
        _raise(refused.status, refused.code, refused.message)
    if body.device_id in ("hub", "admin", WEB_DEVICE, "relay"):
        codes.release(offer)
        _raise(409, "conflict", f"{body.device_id!r} is reserved; choose another device id")
    # The manager who showed the code is the actor (a code from `storehub device pair` has none: the operator).
    manager = offer.issued_by if offer.issued_by not in (None, "admin") else None
    issuer = web.services.engine.state.staff.get(manager) if manager is not None else None
    if manager is not None and (issuer is None or not issuer.active or issuer.role != "manager"):
        codes.release(offer)
        _raise(403, "unauthorized", "The manager who showed this code can no longer pair devices; ask for a new code")
    reply = await web.services.admin(
        "device.add", {"device_id": body.device_id, "kind": body.kind, "stations": list(stations)}, actor=manager
    )
    if not reply.ok:
        codes.release(offer)
        web.result(reply)
    codes.consume(offer)
    await web.services.keep_code(offer)
    web.services.feed.notify("pairing")
    result = reply.result if isinstance(reply.result, dict) else {}
    broker = web.services.loaded.config.broker
    tls = web.services.tls
    address: dict[str, Any] = {"host": broker.host, "port": broker.port}
    if tls is not None:  # the device should use the TLS listener, verified by the store CA
        address |= {"tls_host": tls.host, "tls_port": tls.port, "ca_cert": tls.ca_pem, "ca_sha256": tls.ca_sha256}
    return JSONResponse(
        {
            "device_id": body.device_id,
            "username": body.device_id,
            "password": result["password"],
            "broker": address,
            "store": web.services.loaded.config.store.id,
            "kind": body.kind,
            "stations": list(stations),
        },
        status_code=201,
    )


async def _first_seq_at(conn: aiosqlite.Connection, at: str) -> int:
    """The first ledger seq at or after the time `at` (binary search by seq: `at` never goes back)."""
    async with conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger") as cursor:
        row = await cursor.fetchone()
    low, high = 1, (int(row[0]) if row else 0) + 1
    while low < high:
        middle = (low + high) // 2
        async with conn.execute("SELECT at FROM ledger WHERE seq = ?", (middle,)) as cursor:
            found = await cursor.fetchone()
        if found is not None and str(found[0]) < at:
            low = middle + 1
        else:
            high = middle
    return low


def _offer(offer: Any, tls: TlsInfo | None = None) -> dict[str, Any]:
    out = {
        "code": offer.code,
        "expires_at": format_time(offer.expires_at),
        "kind": offer.kind,
        "stations": list(offer.stations),
    }
    return out | ({"ca_sha256": tls.ca_sha256} if tls is not None else {})


def _raise(status: int, code: str, message: str) -> NoReturn:
    raise WebError(status, code, message)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _local_time(zone: tzinfo) -> Callable[[str | None], str]:
    def hhmm(value: str | None) -> str:
        if not value:
            return "-"
        try:
            moment = parse_time(value)
        except ValueError:
            return value
        return moment.astimezone(zone).strftime("%H:%M")

    return hhmm
