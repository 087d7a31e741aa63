"""Where the DCAP collateral for a verification comes from: the evidence, or a trusted PCCS.

TDX evidence carries the collateral (TCB info, QE identity, CRLs) the enclave's
host fetched when the evidence was made. That is right for offline bundle
verification "as of issue time", and wrong for a live decision: the host picks
the collateral, so it can keep sending a copy from before Intel marked the
platform out of date or revoked a PCK certificate, and the copy stays valid for
weeks. A live decision therefore uses the relying party's own
:class:`CollateralSource`: :class:`PccsCollateral` fetches current collateral
for the quote from a PCCS the party trusts (Intel's PCS or its cloud's PCCS).
A configured PCCS that cannot be reached is an error, never a silent fall back
to the embedded copy (fail closed). :class:`EmbeddedCollateral` keeps today's
behaviour and says so in a warning on every live TDX decision it serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dcap_qvl

from sealroom.attestation.dstack import run_blocking
from sealroom.attestation.evidence import TeeEvidence
from sealroom.errors import BackendUnavailable, InvalidInput

__all__ = [
    "EMBEDDED_COLLATERAL_WARNING",
    "PCCS_URL_ENV",
    "CollateralSource",
    "EmbeddedCollateral",
    "FetchedCollateral",
    "PccsCollateral",
    "collateral_source",
    "prefetch",
    "with_collateral",
]

PCCS_URL_ENV = "SEALROOM_PCCS_URL"
EMBEDDED_COLLATERAL_WARNING = (
    "collateral: verified with the collateral the enclave's host sent with its evidence, "
    "not with current collateral from a PCCS you trust (configure --pccs-url or "
    f"{PCCS_URL_ENV}); a platform whose TCB was downgraded or revoked since may pass"
)
_DEFAULT_TIMEOUT = 15.0


class CollateralSource(Protocol):
    """Supplies the DCAP collateral (dcap-qvl QuoteCollateralV3 JSON) to verify a quote with."""

    @property
    def description(self) -> str:
        """Where the collateral comes from, for reports and refusals."""
        ...

    @property
    def embedded(self) -> bool:
        """True when the evidence's own collateral is used (no fresh source configured)."""
        ...

    def collateral_for(self, quote: bytes, embedded: str) -> str:
        """The collateral to verify ``quote`` with; ``embedded`` is the evidence's own copy."""
        ...


@dataclass(frozen=True, slots=True)
class EmbeddedCollateral:
    """The evidence's own collateral: right for offline verification as of issue time."""

    @property
    def description(self) -> str:
        return "the collateral embedded in the evidence"

    @property
    def embedded(self) -> bool:
        return True

    def collateral_for(self, quote: bytes, embedded: str) -> str:
        return embedded


@dataclass(frozen=True, slots=True)
class PccsCollateral:
    """Current collateral for each quote from a PCCS (PCCS v4 API, via dcap-qvl's fetcher).

    Any failure (unreachable, HTTP error, malformed answer, timeout) raises
    :class:`~sealroom.errors.BackendUnavailable`; the caller never falls back.
    """

    url: str
    timeout: float = _DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("https://", "http://")):
            raise InvalidInput(f"PCCS URL must be an http(s) URL, got {self.url!r}")
        if any(c.isspace() for c in self.url) or "?" in self.url or "#" in self.url:
            raise InvalidInput(f"PCCS URL must be a plain base URL, got {self.url!r}")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise InvalidInput("PCCS timeout must be a number of seconds")
        if not 0 < self.timeout <= 300:
            raise InvalidInput("PCCS timeout must be in (0, 300] seconds")

    @property
    def description(self) -> str:
        return f"current collateral from the PCCS at {self.url}"

    @property
    def embedded(self) -> bool:
        return False

    def collateral_for(self, quote: bytes, embedded: str) -> str:
        if not isinstance(quote, bytes) or not quote:
            raise InvalidInput("quote must be non-empty bytes")
        url, timeout = self.url, self.timeout

        async def get() -> Any:
            return await asyncio.wait_for(dcap_qvl.get_collateral(url, quote), timeout)

        try:
            collateral: Any = run_blocking(get)
            text = collateral.to_json()
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"PCCS at {url}: no collateral within {timeout:g} s (fail closed: the "
                "evidence's own collateral is not used in its place)"
            ) from exc
        except (ValueError, RuntimeError, OSError, AttributeError) as exc:
            detail = " ".join(str(exc).split())
            raise BackendUnavailable(
                f"PCCS at {url}: could not fetch collateral: {detail} (fail closed: the "
                "evidence's own collateral is not used in its place)"
            ) from exc
        if not isinstance(text, str) or not text:
            raise BackendUnavailable(f"PCCS at {url}: the collateral is not JSON text")
        return text


@dataclass(frozen=True, slots=True)
class FetchedCollateral:
    """Collateral fetched once for one quote, reused by several checks of the same decision."""

    quote: bytes
    collateral: str
    origin: str

    @property
    def description(self) -> str:
        return self.origin

    @property
    def embedded(self) -> bool:
        return False

    def collateral_for(self, quote: bytes, embedded: str) -> str:
        if quote != self.quote:
            raise InvalidInput("the fetched collateral belongs to another quote")
        return self.collateral


def prefetch(evidence: TeeEvidence, source: CollateralSource) -> CollateralSource:
    """Fetch ``evidence``'s collateral from ``source`` once (raise if unavailable)."""
    if evidence.tee != "tdx" or source.embedded:
        return source
    fetched = source.collateral_for(evidence.quote, evidence.collateral)
    return FetchedCollateral(quote=evidence.quote, collateral=fetched, origin=source.description)


def with_collateral(evidence: TeeEvidence, source: CollateralSource) -> TeeEvidence:
    """``evidence`` with its collateral taken from ``source`` (TDX only; others unchanged)."""
    if evidence.tee != "tdx" or source.embedded:
        return evidence
    fresh = source.collateral_for(evidence.quote, evidence.collateral)
    return dataclasses.replace(evidence, collateral=fresh)


def collateral_source(
    pccs_url: str | None = None, *, environ: Mapping[str, str] | None = None
) -> CollateralSource:
    """The party's source: ``pccs_url``, else ``$SEALROOM_PCCS_URL``, else the embedded copy."""
    env = os.environ if environ is None else environ
    url = pccs_url if pccs_url is not None else (env.get(PCCS_URL_ENV) or None)
    if url is None:
        return EmbeddedCollateral()
    return PccsCollateral(url)
