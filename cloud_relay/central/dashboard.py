"""The HQ dashboard: server-rendered pages over the reports, with login, roles, CSRF and CSV export.

Sessions are Fernet tokens (encrypted and authenticated with central's key) in an HttpOnly,
SameSite=Strict cookie; every POST carries the session's CSRF token in a form field. Roles:
`analyst` reads everything; `admin` also registers stores.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape

from cloud_relay.central import reports
from cloud_relay.central.hq_auth import COOKIE, SESSION_TTL_S
from cloud_relay.central.keys import new_credentials
from cloud_relay.central.storetime import check_zone
from cloud_relay.central.svg import bar_chart
from hub.contract.types import format_time
from hub.domain.auth import verify_pin_hash

if TYPE_CHECKING:
    from collections.abc import Callable

    from cloud_relay.central.hq_auth import HqAuth
    from cloud_relay.central.keys import SecretBox
    from cloud_relay.central.repository import Repository

ROLES: Final = ("admin", "analyst")
CSV_REPORTS: Final = (
    "sales", "item-mix", "tenders", "exceptions", "shifts", "speed", "connectivity", "offline-card-exposure",
)  # fmt: skip
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]


def add_dashboard(app: FastAPI, repo: Repository, auth: HqAuth) -> None:
    """Register the HQ pages on `app`."""
    env = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    box = auth.box
    session = auth.session

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status)

    def check_csrf(sess: dict[str, str], token: str) -> None:
        if not secrets.compare_digest(sess.get("csrf", ""), token):
            raise HTTPException(403, "the form's CSRF token does not match this session; reload the page")

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form() -> HTMLResponse:
        return page("login.html", error=None)

    @app.post("/login", include_in_schema=False)
    async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
        user = await repo.get_user(username)
        if user is None or not verify_pin_hash(password, user[1]):
            return page("login.html", status=401, error="Wrong user name or password.")
        token = box.seal_session({"user": username, "role": user[0], "csrf": secrets.token_urlsafe(24)})
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, token, max_age=SESSION_TTL_S, httponly=True, samesite="strict")
        return answer

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
        sess = session(request)
        if sess is not None:
            check_csrf(sess, csrf)
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(
        request: Request, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> Response:
        sess = session(request)
        if sess is None:
            return RedirectResponse("/login", status_code=303)
        f = reports.Filters(store=store or None, day_from=day_from, day_to=day_to)
        by_hour = await reports.sales(repo, f, "hour")
        hours: dict[str, int] = {}
        for row in by_hour:
            hours[row["hour"]] = hours.get(row["hour"], 0) + row["total"]
        by_store = await reports.sales(repo, f, "store")
        data = {
            "by_store": by_store,
            "item_mix": await reports.item_mix(repo, f),
            "tenders": await reports.tender_mix(repo, f),
            "offline_cards": await reports.offline_card_exposure(repo, f),
            "exceptions": await reports.exceptions(repo, f),
            "shifts": await reports.shift_reconciliation(repo, f),
            "speed": await reports.speed_of_service(repo, f),
            "links": await reports.connectivity(repo),
            "alerts": await repo.quarantined(store or None),
        }
        charts = {
            "hour": bar_chart("Sales by hour (store time)", sorted(hours.items())),
            "store": bar_chart("Sales by store", [(r["store_id"], r["total"]) for r in by_store]),
        }
        query = {k: v for k, v in {"store": store, "day_from": day_from, "day_to": day_to}.items() if v}
        return page(
            "overview.html", sess=sess, data=data, charts=charts, store=store, day_from=day_from or "",
            day_to=day_to or "", query=query, stores=await repo.list_stores(), money=_money,
        )  # fmt: skip

    @app.get("/export/{report}.csv", include_in_schema=False)
    async def export(
        request: Request, report: str, store: str | None = None, day_from: Day = None, day_to: Day = None
    ) -> Response:
        if session(request) is None:
            raise HTTPException(401, "log in first")
        if report not in CSV_REPORTS:
            raise HTTPException(404, f"no report {report!r}; one of {', '.join(CSV_REPORTS)}")
        f = reports.Filters(store=store or None, day_from=day_from, day_to=day_to)
        rows = await _report_rows(repo, report, f)
        return Response(
            _csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{report}.csv"'},
        )

    _add_store_pages(app, repo, box=box, page=page, session=session, check_csrf=check_csrf)


def _add_store_pages(
    app: FastAPI,
    repo: Repository,
    *,
    box: SecretBox,
    page: Callable[..., HTMLResponse],
    session: Callable[[Request], dict[str, str] | None],
    check_csrf: Callable[[dict[str, str], str], None],
) -> None:
    @app.get("/stores", response_class=HTMLResponse, include_in_schema=False)
    async def stores_page(request: Request) -> Response:
        sess = _admin(session(request))
        return page("stores.html", sess=sess, stores=await repo.list_stores(), created=None, error=None)

    @app.post("/stores", include_in_schema=False)
    async def add_store(
        request: Request,
        store_id: Annotated[str, Form()],
        csrf: Annotated[str, Form()],
        timezone: Annotated[str, Form()] = "UTC",
    ) -> Response:
        sess = _admin(session(request))
        check_csrf(sess, csrf)
        error = None
        created = None
        if not _STORE_ID.fullmatch(store_id):
            error = "A store id is 1-32 of a-z, 0-9 and '-' (the hub's store.id)."
        elif not _zone_ok(timezone):
            error = f"Unknown time zone {timezone!r}: use the hub's [store] timezone, e.g. Europe/Paris."
        else:
            creds, key_hash, sealed = new_credentials(box)
            now = format_time(datetime.now(UTC))
            if await repo.add_store(store_id, key_hash, sealed, now, timezone=timezone):
                created = {"store": store_id} | creds
            else:
                error = f"Store {store_id} is already registered."
        stores = await repo.list_stores()
        return page("stores.html", status=200 if error is None else 400, sess=sess, stores=stores, created=created,
                    error=error)  # fmt: skip


def _zone_ok(name: str) -> bool:
    try:
        check_zone(name)
    except ValueError:
        return False
    return True


def _admin(sess: dict[str, str] | None) -> dict[str, str]:
    if sess is None:
        raise HTTPException(401, "log in first")
    if sess.get("role") != "admin":
        raise HTTPException(403, "only an admin may register stores")
    return sess


async def _report_rows(repo: Repository, report: str, f: reports.Filters) -> list[dict[str, Any]]:
    if report == "sales":
        return await reports.sales(repo, f, "hour")
    if report == "item-mix":
        return await reports.item_mix(repo, f)
    if report == "tenders":
        return await reports.tender_mix(repo, f)
    if report == "exceptions":
        return await reports.exceptions(repo, f)
    if report == "shifts":
        return [
            {"store_id": r["store_id"], "shift_id": r["shift_id"], "business_day": r["business_day"],
             "equal": r["equal"], **{f"hub_{k}": v for k, v in r["hub_z"].items()},
             **{f"central_{k}": v for k, v in r["central"].items()}}
            for r in await reports.shift_reconciliation(repo, f)
        ]  # fmt: skip
    if report == "speed":
        return await reports.speed_of_service(repo, f)
    if report == "offline-card-exposure":
        return [
            {"store_id": r["store_id"], **day}
            for r in await reports.offline_card_exposure(repo, f)
            for day in r["by_day"]
        ]
    return await reports.connectivity(repo)


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ would be a formula in a spreadsheet: quote it.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _money(cents: int | None) -> str:
    cents = int(cents or 0)
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


_STORE_ID: Final = __import__("re").compile(r"[a-z0-9-]{1,32}")

_BASE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>StoreHub HQ</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#1d2a22;background:#f6f7f5}
header{background:#1d3b2c;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center}
header a{color:#fff} main{padding:1rem;max-width:1100px}
table{border-collapse:collapse;margin:.4rem 0 1.2rem;background:#fff}
th,td{border:1px solid #ccd;padding:.25rem .5rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} .bad{color:#a40000;font-weight:bold} .ok{color:#176b2c}
section{margin-bottom:1.4rem} .alert{background:#ffe3e3;border:1px solid #a40000;padding:.5rem}
</style></head><body>
<header><strong>StoreHub HQ</strong>{% if sess %}<span>{{ sess.user }} ({{ sess.role }})</span>
<a href="/">Overview</a>{% if sess.role == 'admin' %}<a href="/stores">Stores</a>{% endif %}
<form method="post" action="/logout" style="margin-left:auto"><input type="hidden" name="csrf" value="{{ sess.csrf }}">
<button>Log out</button></form>{% endif %}</header>
<main>{% block main %}{% endblock %}</main></body></html>"""

TEMPLATES: Final = {
    "base.html": _BASE,
    "login.html": """{% extends "base.html" %}{% block main %}<h1>Log in</h1>
{% if error %}<p class="alert" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/login"><p><label>User <input name="username" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button>Log in</button></p></form>{% endblock %}""",
    "stores.html": """{% extends "base.html" %}{% block main %}<h1>Stores</h1>
{% if error %}<p class="alert" role="alert">{{ error }}</p>{% endif %}
{% if created %}<div class="alert" id="created"><p>Store <b>{{ created.store }}</b> registered. Copy these now; they are
never shown again.</p><p>Store key: <code id="store-key">{{ created.store_key }}</code></p>
<p>Secret: <code id="store-secret">{{ created.secret }}</code></p></div>{% endif %}
<ul id="stores">{% for s in stores %}<li>{{ s }}</li>{% endfor %}</ul>
<form method="post" action="/stores"><input type="hidden" name="csrf" value="{{ sess.csrf }}">
<label>New store id <input name="store_id" required pattern="[a-z0-9-]{1,32}"></label>
<label>Time zone <input name="timezone" value="UTC" required></label> <button>Register</button></form>
{% endblock %}""",
    "overview.html": """{% extends "base.html" %}{% block main %}
<form method="get" action="/" id="filters"><label>Store <select name="store"><option value="">all stores</option>
{% for s in stores %}<option value="{{ s }}" {% if s == store %}selected{% endif %}>{{ s }}</option>
{% endfor %}</select></label>
<label>From <input type="date" name="day_from" value="{{ day_from }}"></label>
<label>To <input type="date" name="day_to" value="{{ day_to }}"></label> <button>Show</button></form>
{% if data.alerts %}<section class="alert" id="alerts"><h2>Refused batches</h2><table><tr><th>store</th><th>when</th>
<th>kind</th><th>reason</th></tr>{% for a in data.alerts %}<tr><td>{{ a.store_id }}</td><td>{{ a.received_at }}</td>
<td>{{ a.kind }}{% if a.fork %} (fork){% endif %}</td><td>{{ a.reason }}</td></tr>{% endfor %}</table></section>
{% endif %}
<section id="connectivity"><h2>Connectivity</h2><table><tr><th>store</th><th>last batch</th><th>newest entry</th>
<th>behind (s)</th></tr>{% for c in data.links %}<tr><td>{{ c.store_id }}</td><td>{{ c.last_batch_at or 'never' }}</td>
<td class="num">{{ c.last_seq }}</td><td class="num">{{ c.behind_s if c.behind_s is not none else '-' }}</td></tr>
{% endfor %}</table></section>
<section id="sales"><h2>Sales</h2>{{ charts.hour }}{{ charts.store }}
<table><tr><th>store</th><th>tickets</th><th>total</th><th>tips</th></tr>{% for r in data.by_store %}<tr>
<td>{{ r.store_id }}</td><td class="num">{{ r.tickets }}</td><td class="num">{{ money(r.total) }}</td>
<td class="num">{{ money(r.tips) }}</td></tr>{% endfor %}</table>
<a href="/export/sales.csv?{{ query|urlencode }}" download>sales.csv</a></section>
<section id="items"><h2>Item mix</h2><table><tr><th>item</th><th>qty</th><th>amount</th></tr>
{% for r in data.item_mix %}
<tr><td>{{ r.name }}</td><td class="num">{{ r.qty }}</td><td class="num">{{ money(r.amount) }}</td></tr>{% endfor %}
</table><a href="/export/item-mix.csv?{{ query|urlencode }}" download>item-mix.csv</a></section>
<section id="tenders"><h2>Tenders</h2><table><tr><th>kind</th><th>count</th><th>amount</th><th>tips</th></tr>
{% for r in data.tenders %}<tr><td>{{ r.kind }}</td><td class="num">{{ r.count }}</td>
<td class="num">{{ money(r.amount) }}</td>
<td class="num">{{ money(r.tips) }}</td></tr>{% endfor %}</table>
<a href="/export/tenders.csv?{{ query|urlencode }}" download>tenders.csv</a></section>
<section id="offline-cards"><h2>Offline card exposure (awaiting authorisation)</h2><table><tr><th>store</th>
<th>pending</th><th>amount</th><th>oldest</th><th>by day</th><th>declined</th></tr>{% for r in data.offline_cards %}<tr>
<td>{{ r.store_id }}</td><td class="num">{{ r.count }}</td><td class="num">{{ money(r.amount) }}</td>
<td>{{ r.oldest_at or '-' }}</td><td>{% for d in r.by_day %}{{ d.business_day }}: {{ d.count }} / {{ money(d.amount) }}
{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
<td class="num">{{ r.declined_count }} / {{ money(r.declined_amount) }}</td></tr>
{% else %}<tr><td colspan="6">No card payment is waiting for authorisation.</td></tr>{% endfor %}</table>
<a href="/export/offline-card-exposure.csv?{{ query|urlencode }}" download>offline-card-exposure.csv</a></section>
<section id="exceptions"><h2>Voids, discounts, refunds, no-sales</h2><table><tr><th>store</th><th>when</th><th>kind</th>
<th>ticket</th><th>amount</th><th>by</th><th>approved by</th><th>reason</th></tr>{% for e in data.exceptions %}<tr>
<td>{{ e.store_id }}</td><td>{{ e.at }}</td><td>{{ e.kind }}</td><td>{{ e.ticket_id or '' }}</td>
<td class="num">{{ money(e.amount) }}</td><td>{{ e.actor or '' }}</td><td>{{ e.approver or '' }}</td>
<td>{{ e.reason or '' }}</td>
</tr>{% endfor %}</table><a href="/export/exceptions.csv?{{ query|urlencode }}" download>exceptions.csv</a></section>
<section id="shifts"><h2>Shift reconciliation (hub Z vs central)</h2><table><tr><th>store</th><th>shift</th><th>day</th>
<th>hub tenders</th><th>central tenders</th><th></th></tr>{% for s in data.shifts %}<tr><td>{{ s.store_id }}</td>
<td>{{ s.shift_id }}</td><td>{{ s.business_day }}</td><td>{{ s.hub_z.tenders }}</td><td>{{ s.central.tenders }}</td>
<td class="{{ 'ok' if s.equal else 'bad' }}">{{ 'equal' if s.equal else 'DIFFERENT' }}</td></tr>{% endfor %}</table>
<a href="/export/shifts.csv?{{ query|urlencode }}" download>shifts.csv</a></section>
<section id="speed"><h2>Speed of service</h2><table><tr><th>store</th><th>station</th><th>lines</th><th>avg (s)</th>
<th>max (s)</th></tr>{% for k in data.speed %}<tr><td>{{ k.store_id }}</td><td>{{ k.station }}</td>
<td class="num">{{ k.lines }}</td><td class="num">{{ k.avg_s }}</td><td class="num">{{ k.max_s }}</td></tr>{% endfor %}
</table><a href="/export/speed.csv?{{ query|urlencode }}" download>speed.csv</a></section>
<a href="/export/connectivity.csv" download>connectivity.csv</a>
{% endblock %}""",
}
