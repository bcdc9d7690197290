"""Central's HTTP API: `POST /v1/stores/{store}/ledger` exactly as CONTRACT.md "Ledger and relay" says.

Order of checks, cheapest and safest first: bearer key (401), declared and actual size (413),
signature over the exact gzip bytes (422), bounded decompression (413), shape and hash chain (422),
then one database transaction for contiguity (409), forks (422) and the insert (200). Every 422 is
quarantined with the raw body. A database that is down or busy answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from cloud_relay.central.batch import BatchRefusedError, TooManyEntriesError, check_batch
from cloud_relay.central.dashboard import add_dashboard
from cloud_relay.central.hq_auth import HqAuth
from cloud_relay.central.keys import key_matches
from cloud_relay.central.projections import Projector
from cloud_relay.central.reports_api import add_report_routes
from cloud_relay.central.repository import Acked, Fork, Gap, StorageUnavailableError
from cloud_relay.wire import SIGNATURE_HEADER, BodyTooLargeError, gunzip_limited, signature_ok
from hub.contract.types import format_time

if TYPE_CHECKING:
    from cloud_relay.central.config import CentralSection
    from cloud_relay.central.keys import SecretBox
    from cloud_relay.central.repository import Repository

log = logging.getLogger("storehub.central")
RETRY_AFTER_S = "1"


def create_app(repo: Repository, box: SecretBox, settings: CentralSection) -> FastAPI:
    """The central API over `repo`."""
    app = FastAPI(title="StoreHub central", version="1", docs_url="/docs", redoc_url=None)
    secrets_cache: dict[str, bytes] = {}
    projector = Projector(repo)
    app.state.projector = projector

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/stores/{store}/ledger",
        responses={
            200: {"description": '`{"acked_seq": N}`: stored, or already stored (re-sending is harmless)'},
            401: {"description": "unknown store or bad key"},
            409: {"description": '`{"epoch": E, "expected_seq": N}`: a gap; resend from N'},
            413: {"description": "batch too large: halve it"},
            422: {"description": "hash chain, signature or shape broken, or a fork: refused and quarantined"},
            503: {"description": "database unavailable: retry after `Retry-After` seconds"},
        },
    )
    async def ingest(store: str, request: Request) -> JSONResponse:
        """Store a batch of a hub's ledger."""
        auth = request.headers.get("authorization", "")
        record = await repo.get_store(store)
        if record is None or not auth.startswith("Bearer ") or not key_matches(auth[7:], record.key_hash):
            return _error(401, "unknown store or bad key")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return _error(413, f"body over {settings.max_body_bytes} bytes")
        if request.headers.get("content-encoding", "").lower() != "gzip":
            return _error(415, "Content-Encoding must be gzip")
        try:
            body = await _read_limited(request, settings.max_body_bytes)
        except BodyTooLargeError as exc:
            return _error(413, str(exc))
        except ClientDisconnect:
            return _error(400, "client went away mid-body")
        now = format_time(datetime.now(UTC))
        secret = secrets_cache.get(store)
        if secret is None:
            secret = secrets_cache[store] = box.open(record.secret_enc)
        if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return await _refuse(repo, store, "signature", "signature does not match the body", body, now)
        try:
            raw = gunzip_limited(body, settings.max_batch_bytes)
            batch = check_batch(raw, store, settings.max_entries)
        except (BodyTooLargeError, TooManyEntriesError) as exc:
            return _error(413, str(exc))
        except ValueError as exc:
            return await _refuse(repo, store, "invalid", str(exc), body, now)
        except BatchRefusedError as exc:
            return await _refuse(repo, store, exc.kind, exc.reason, body, now)
        try:
            result = await repo.ingest(batch, now)
        except (OperationalError, DBAPIError, OSError, StorageUnavailableError) as exc:
            log.warning("database unavailable during ingest: %s", exc, extra={"store": store})
            return _error(503, "database unavailable, retry", retry_after=RETRY_AFTER_S)
        if isinstance(result, Acked):
            # Projections follow after the answer: a slow report table never holds a relay up.
            later = BackgroundTask(_project, projector, store) if settings.project_on_ingest else None
            return JSONResponse({"acked_seq": result.seq}, background=later)
        if isinstance(result, Gap):
            return JSONResponse({"epoch": result.epoch, "expected_seq": result.expected_seq}, status_code=409)
        assert isinstance(result, Fork)  # noqa: S101 - IngestResult is a closed union
        return await _refuse(
            repo, store, "fork", result.reason, body, now,
            epoch=batch.epoch, first_seq=batch.first_seq, last_seq=batch.last_seq, fork=True,
        )  # fmt: skip

    _add_store_menu(app, repo)

    @app.get("/v1/stores/{store}/quarantine")
    async def quarantined(store: str) -> list[dict[str, Any]]:
        """Refused batches of a store (HQ alerts)."""
        return await repo.quarantined(store)

    auth = HqAuth(repo, box)
    add_report_routes(app, repo, auth)
    add_dashboard(app, repo, auth)
    return app


def _add_store_menu(app: FastAPI, repo: Repository) -> None:
    @app.get("/v1/stores/{store}/menu", responses={304: {"description": "unchanged since If-None-Match"}})
    async def store_menu(store: str, request: Request) -> Response:
        """The menu HQ wants this store to run; the ETag names its publication."""
        record = await repo.get_store(store)
        auth = request.headers.get("authorization", "")
        if record is None or not auth.startswith("Bearer ") or not key_matches(auth[7:], record.key_hash):
            return _error(401, "unknown store or bad key")
        current = await repo.current_menu(store)
        if current is None:
            return _error(404, "HQ has published no menu for this store")
        version, publication, body = current
        etag = f'"{publication}-{version}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})


async def _project(projector: Projector, store: str) -> None:
    try:
        await projector.catch_up(store)
    except Exception:
        log.exception("projection failed; `storehub central rebuild` rebuilds it", extra={"store": store})


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _refuse(  # noqa: PLR0917 - the refusal's facts, in the order they are logged
    repo: Repository,
    store: str,
    kind: str,
    reason: str,
    body: bytes,
    now: str,
    **where: Any,
) -> JSONResponse:
    qid = await repo.add_quarantine(store_id=store, kind=kind, reason=reason, body=body, now=now, **where)
    log.error("batch refused and quarantined: %s", reason, extra={"store": store, "kind": kind, "quarantine": qid})
    return JSONResponse({"detail": reason, "kind": kind, "quarantine_id": qid}, status_code=422)


def _error(status: int, detail: str, *, retry_after: str | None = None) -> JSONResponse:
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
