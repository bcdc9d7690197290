"""Firmware images over HTTP: a directory of signed releases and a FastAPI router serving them.

The hub's web app mounts `firmware_router(store)`; `storehub-fw serve` runs it standalone. Layout
on disk: `<dir>/<kind>/<version>/image.bin` and `manifest.json`. Only images whose manifest
verifies with the store's trusted key and whose bytes match it are ever added.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import ValidationError

from firmware_tools.ota import VERSION_PATTERN, Manifest, parse_version, verify_image, verify_manifest

if TYPE_CHECKING:
    from typing import Any

IMAGE_NAME: Final = "image.bin"
MANIFEST_NAME: Final = "manifest.json"
KIND_PATTERN: Final = r"^[a-z][a-z0-9-]{0,31}$"
KindParam = Annotated[str, PathParam(pattern=KIND_PATTERN)]
VersionParam = Annotated[str, PathParam(pattern=VERSION_PATTERN)]


class FirmwareStore:
    """Signed firmware releases in a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, image: Path, manifest_file: Path, trusted_key: str) -> Manifest:
        """Check and store a release; OtaRefusedError or ValueError when it must not be served."""
        manifest = read_manifest(manifest_file)
        verify_manifest(manifest, trusted_key)
        data = image.read_bytes()
        verify_image(manifest, data)
        target = self.root / manifest.device_kind / manifest.version
        if target.exists():
            raise ValueError(f"{manifest.device_kind} {manifest.version} is already in {self.root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}.", dir=target.parent))
        try:
            (staging / IMAGE_NAME).write_bytes(data)
            (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
            for name in (IMAGE_NAME, MANIFEST_NAME):
                with (staging / name).open("rb") as handle:
                    os.fsync(handle.fileno())
            staging.chmod(0o755)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def get(self, kind: str, version: str) -> tuple[Manifest, Path] | None:
        """A release's manifest and image path."""
        folder = self.root / kind / version
        if not (folder / MANIFEST_NAME).is_file() or not (folder / IMAGE_NAME).is_file():
            return None
        return read_manifest(folder / MANIFEST_NAME), folder / IMAGE_NAME

    def releases(self, kind: str | None = None) -> list[Manifest]:
        """Every release (of one kind), oldest version first."""
        found = []
        for manifest_file in sorted(self.root.glob(f"{kind or '*'}/*/{MANIFEST_NAME}")):
            try:
                found.append(read_manifest(manifest_file))
            except ValueError:
                continue
        return sorted(found, key=lambda m: (m.device_kind, parse_version(m.version)))

    def latest(self, kind: str) -> Manifest | None:
        """The newest release of a kind."""
        releases = self.releases(kind)
        return releases[-1] if releases else None


def read_manifest(path: Path) -> Manifest:
    """Load a manifest file; ValueError naming the file and the problem."""
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ValueError(f"{path}: {where}: {first['msg']}") from exc


def firmware_router(store: FirmwareStore) -> APIRouter:
    """`GET /firmware`, `/firmware/{kind}/{version}/manifest.json` and `/firmware/{kind}/{version}/image`."""
    router = APIRouter(prefix="/firmware", tags=["firmware"])

    @router.get("")
    def list_releases() -> list[dict[str, Any]]:
        return [m.model_dump() for m in store.releases()]

    @router.get("/{kind}/{version}/manifest.json")
    def manifest(kind: KindParam, version: VersionParam) -> dict[str, Any]:
        return _release(store, kind, version)[0].model_dump()

    @router.get("/{kind}/{version}/image")
    def image(kind: KindParam, version: VersionParam) -> FileResponse:
        release, path = _release(store, kind, version)
        return FileResponse(
            path,
            media_type="application/octet-stream",
            filename=f"{kind}-{version}.bin",
            headers={"ETag": f'"{release.sha256}"', "X-Firmware-Sha256": release.sha256, "Cache-Control": "no-cache"},
        )

    return router


def create_app(store: FirmwareStore) -> FastAPI:
    """A standalone app serving only the firmware router (`storehub-fw serve`)."""
    app = FastAPI(title="StoreHub firmware", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(firmware_router(store))
    return app


def _release(store: FirmwareStore, kind: str, version: str) -> tuple[Manifest, Path]:
    try:
        found = store.get(kind, version)
    except ValueError as exc:
        raise HTTPException(status_code=500, detail=f"release {kind} {version} is damaged: {exc}") from exc
    if found is None:
        raise HTTPException(status_code=404, detail=f"no firmware {version} for {kind}")
    return found


def manifest_json(manifest: Manifest) -> str:
    """A manifest as the file `storehub-fw sign` writes."""
    return json.dumps(manifest.model_dump(), indent=2) + "\n"
