"""HQ's snapshot endpoints (docs/sync.md, "Snapshot bootstrap"), included by hq/api.py.

- `GET /v1/sync/snapshot` (outlet token): the manifest of the current snapshot (its file
  header plus `file_bytes`), or 404 `not_found` when HQ offers none;
- `GET /v1/sync/snapshot/{sha256}` (outlet token): the file, with HTTP Range support so
  an interrupted download resumes; HQ keeps the current and the previous snapshot, a
  download of an older one gets 404 and starts again from the manifest;
- `POST /v1/admin/snapshot` (admin token): build one now (e.g. before opening many
  outlets) and answer its manifest.
Promises: serving never builds (hq/snapshot.py `Snapshots.refresh` does, on a schedule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from hq.snapshot import Snapshots
from schema.errors import NotFound
from schema.snapshotfile import header_json

SHA256 = r"^[0-9a-f]{64}$"


class _SnapshotFile(FileResponse):
    chunk_size = 1 << 20  # 1 MiB a send: 64 KiB (the default) costs HQ CPU per byte


def router(snapshots: Snapshots, outlet: Callable[..., str],
           admin_only: Callable[..., None]) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/sync/snapshot", dependencies=[Depends(outlet)])
    def manifest() -> Response:
        offer = snapshots.current()
        if offer is None:
            raise NotFound("HQ offers no snapshot now: pull from cursor 0")
        return Response(header_json(offer.header), media_type="application/json")

    @api.get("/v1/sync/snapshot/{sha256}", dependencies=[Depends(outlet)])
    def download(sha256: Annotated[str, Path(pattern=SHA256)]) -> Response:
        offer = snapshots.find(sha256)
        if offer is None:
            raise NotFound("HQ no longer keeps this snapshot: ask for the current one "
                           "(GET /v1/sync/snapshot)")
        return _SnapshotFile(offer.path, media_type="application/octet-stream",
                             filename=offer.path.name, headers={"ETag": f'"{sha256}"'})

    @api.post("/v1/admin/snapshot", dependencies=[Depends(admin_only)], status_code=201)
    async def build() -> dict[str, Any]:
        offer = await run_in_threadpool(snapshots.build_now)
        return {**offer.header.model_dump(mode="json"), "file_bytes": offer.header.file_bytes}

    return api
