"""The interactive API documentation (`/docs`) of both services, served with no internet.

FastAPI's own `/docs` page loads Swagger UI from a CDN, so on an outlet or an HQ without
internet it was a blank page. Here the page names only the service's own URLs: Swagger UI
(swagger-ui-dist 5.36.0 from npm, Apache-2.0: web/static/swagger-ui.LICENSE and
swagger-ui.NOTICE) is shipped in the package (web/static/, package data) and served at
`/docs/static/NAME`. Promises: the page and its assets answer without any credential, like
`/openapi.json` (they describe the API, they do not use it); only the files in `ASSETS` are
served; Swagger UI's online validator (an outside URL) is off; ReDoc (`/redoc`, another CDN
page) is not offered. Call `install` on an app made with `docs_url=None, redoc_url=None`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse

STATIC = Path(__file__).resolve().parent / "static"
DOCS = "/docs"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-favicon.png": "image/png",
}


def install(app: FastAPI) -> None:
    """`GET /docs` (Swagger UI over the app's OpenAPI document) and its assets."""

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        static = f"{root}{DOCS}/static"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API documentation",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/swagger-ui-favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(404, f"no such file in {DOCS}/static")
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name],
                        headers={"Cache-Control": "max-age=86400"})

    # plain routes: outside the OpenAPI document and free of the app's token dependencies
    app.add_route(DOCS, page, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route(DOCS + "/static/{name}", asset, methods=["GET", "HEAD"],
                  include_in_schema=False)
