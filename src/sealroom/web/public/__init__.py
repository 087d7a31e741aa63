"""The coordinator's public pages: dataset explorer, transparency log browser, verifier.

No login: they show exactly what the API shows an unauthenticated caller, rendered
on the server (Jinja2, autoescaped) with local assets and a strict CSP.
:func:`install_public_pages` mounts them on the app ``sealroom serve`` runs.
"""

from __future__ import annotations

from sealroom.web.public.pages import PAGE_PATHS, install_public_pages

__all__ = ["PAGE_PATHS", "install_public_pages"]
