"""Templates, security headers and local assets for the public pages.

Every page is rendered by Jinja2 with autoescaping on, and every response carries a
strict Content-Security-Policy (no inline script or style, nothing from another
origin, no framing): the pages show text that parties wrote (titles, descriptions,
keywords), and a stored string must never become markup or script in a reader's browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from sealroom import __version__
from sealroom.errors import NotFound
from sealroom.web.public.explorer import day

__all__ = ["ASSETS", "Renderer", "asset_response", "security_headers"]

# Only the verifier page fetches: a linked bundle from an https URL, in the reader's browser
# (the server never fetches a URL a stranger gives it).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src {connect}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def security_headers(*, fetch_https: bool = False) -> dict[str, str]:
    """The headers of every public page and asset."""
    return {
        "content-security-policy": _CSP.format(
            connect="'self' https:" if fetch_https else "'self'"
        ),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin",
    }


# URL name -> (package, file, media type): an allow-list, nothing else is served.
ASSETS: dict[str, tuple[str, str, str]] = {
    "sealroom.css": ("sealroom.web", "static/sealroom.css", "text/css; charset=utf-8"),
    "verify.js": ("sealroom.web.public", "static/verify.js", "text/javascript; charset=utf-8"),
}


@cache
def _asset_bytes(name: str) -> bytes:
    package, path = ASSETS[name][:2]
    return resources.files(package).joinpath(path).read_bytes()


def asset_response(name: str) -> Response:
    """A static asset by its allow-listed name; anything else is not found."""
    if name not in ASSETS:
        raise NotFound(f"no asset {name}")
    headers = {**security_headers(), "cache-control": "public, max-age=3600"}
    return Response(_asset_bytes(name), media_type=ASSETS[name][2], headers=headers)


@dataclass(frozen=True, slots=True)
class Renderer:
    """The public pages' template environment (one per app, built when pages are installed)."""

    env: Environment

    @classmethod
    def create(cls) -> Renderer:
        env = Environment(
            loader=PackageLoader("sealroom.web.public", "templates"),
            autoescape=select_autoescape(("html",), default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals["version"] = __version__
        env.globals["day"] = day  # imported macros (the result card) see globals only
        return cls(env)

    def page(
        self, template: str, *, status: int = 200, fetch_https: bool = False, **context: Any
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        headers = {**security_headers(fetch_https=fetch_https), "cache-control": "no-store"}
        return HTMLResponse(html, status_code=status, headers=headers)
