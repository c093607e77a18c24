"""Snapshot bootstrap routes (docs/sync.md, "Snapshot bootstrap").

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

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from hq.api import auth
from hq.chain import Chain
from hq.snapshot import Snapshots
from schema.errors import NotFound
from schema.snapshotfile import SnapshotManifest, header_json
from web import httperrors

SHA256 = r"^[0-9a-f]{64}$"


class _SnapshotFile(FileResponse):
    chunk_size = 1 << 20  # 1 MiB a send: 64 KiB (the default) costs HQ CPU per byte


def router(chain: Chain, snapshots: Snapshots) -> APIRouter:
    api = APIRouter(tags=["sync"], dependencies=[Depends(auth.outlet_of(chain))],
                    route_class=httperrors.JSONBodyRoute)

    @api.get("/v1/sync/snapshot", response_model=SnapshotManifest,
             responses=auth.refusals(NotFound))
    def manifest() -> Response:
        offer = snapshots.current()
        if offer is None:
            raise NotFound("HQ offers no snapshot now: pull from cursor 0")
        return Response(header_json(offer.header), media_type="application/json")

    @api.get("/v1/sync/snapshot/{sha256}", response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}},
                              "description": "the snapshot file (Range requests resume it)"},
                        **auth.refusals(NotFound)})
    def download(sha256: Annotated[str, Path(pattern=SHA256)]) -> Response:
        offer = snapshots.find(sha256)
        if offer is None:
            raise NotFound("HQ no longer keeps this snapshot: ask for the current one "
                           "(GET /v1/sync/snapshot)")
        return _SnapshotFile(offer.path, media_type="application/octet-stream",
                             filename=offer.path.name, headers={"ETag": f'"{sha256}"'})

    return api


def admin_router(chain: Chain, snapshots: Snapshots) -> APIRouter:
    routes = auth.admin_routes(chain, "snapshots")

    @routes.post("/snapshot", status_code=201, response_model=SnapshotManifest,
                 responses=auth.refusals())
    async def build() -> Response:
        offer = await run_in_threadpool(snapshots.build_now)
        return Response(header_json(offer.header), status_code=201,
                        media_type="application/json")

    return routes
