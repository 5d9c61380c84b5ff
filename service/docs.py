"""The API docs pages (Swagger UI at /docs, ReDoc at /redoc) served with their assets from the installed package,
so they work on a machine with no internet (FastAPI's own pages load them from a CDN).

The assets come from the `fastapi-offline` wheel (MIT; Swagger UI is Apache-2.0, ReDoc MIT). Every page and
asset is a FastAPI route, so the metrics label them by their path template, never "(unmatched)".
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from bazkhord.service.errors import ApiError

ASSETS_URL = "/docs/assets"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def add_docs_routes(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """/openapi.json, /docs, /docs/oauth2-redirect, /redoc and their assets. `app` is built with docs_url,
    redoc_url and openapi_url set to None (so FastAPI adds none of its own)."""
    static = files("fastapi_offline").joinpath("static")
    schema: dict[str, Any] = {}

    @app.get(openapi_url, include_in_schema=False)
    async def openapi() -> JSONResponse:
        if not schema:
            schema.update(app.openapi())
        return JSONResponse(schema)

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{openapi_url}", title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png")

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"no docs asset {name!r}; there are {sorted(ASSETS)}")
        path = static.joinpath(name)
        return FileResponse(str(path), media_type=ASSETS[name], headers={"cache-control": "public, max-age=86400"})
