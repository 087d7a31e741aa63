"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served by the coordinator itself.

FastAPI's default pages load their scripts, styles, fonts and favicon from public
CDNs: blank offline, and a third party learns who reads the API. Here the assets
come from the ``fastapi-offline`` package's pinned copies and are served under
``/docs/assets/`` (an allow-list of file names, nothing else), and the pages
reference nothing outside this origin.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from sealroom.errors import NotFound

__all__ = ["ASSETS", "install_docs"]

ASSETS_URL = "/docs/assets"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


@cache
def _asset(name: str) -> bytes:
    return (resources.files("fastapi_offline") / "static" / name).read_bytes()


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Add the two pages and their assets (the app is created with docs_url=None)."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            raise NotFound(f"no documentation asset {name}")
        return Response(
            _asset(name),
            media_type=media,
            headers={"cache-control": "public, max-age=86400"},
        )
