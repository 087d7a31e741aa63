"""Server-rendered web pages over the coordinator and the SDK.

:mod:`sealroom.web.public` is what the coordinator serves to anyone (dataset
explorer, transparency log browser, public verifier), showing exactly what the
API shows an unauthenticated caller; the party console (``sealroom ui``) lives in
``sealroom.web.console`` and runs beside the party's keystore. Both link the shared
stylesheet ``static/sealroom.css``; every asset is served locally, never from a CDN.
"""

from __future__ import annotations
