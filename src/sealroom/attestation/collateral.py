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

import dataclasses
import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dcap_qvl
import httpx
from cryptography import x509

from sealroom.attestation.evidence import TeeEvidence
from sealroom.errors import AttestationInvalid, BackendUnavailable, InvalidInput

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
    """Current collateral for each quote from a PCCS, over its v4 API (Intel PCS speaks it too).

    Fetched with httpx rather than ``dcap_qvl.get_collateral``: the latter's
    Rust runtime intermittently crashes the interpreter at exit after a failed
    fetch (SIGSEGV), and a refusal must end in a clean error, not a crash. The
    answer is checked by parsing it as dcap-qvl's ``QuoteCollateralV3``; its
    signatures are checked by the DCAP verification that follows. Any failure
    (unreachable, HTTP error, malformed answer, timeout) raises
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
        try:
            parsed: Any = dcap_qvl.Quote.parse(quote)
            fmspc, ca, tee = parsed.fmspc(), parsed.ca(), "tdx" if parsed.is_tdx() else "sgx"
            chain = parsed.cert_chain_pem_bytes()
        except ValueError as exc:
            raise AttestationInvalid(f"DCAP: quote does not name its platform: {exc}") from exc
        if not _FMSPC.fullmatch(str(fmspc)) or ca not in ("platform", "processor"):
            raise AttestationInvalid("DCAP: quote names a malformed FMSPC or PCK CA")
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:
                text = self._fetch(http, fmspc=fmspc, ca=ca, tee=tee, chain=chain)
        except httpx.TimeoutException as exc:
            raise self._down(f"no answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise self._down(" ".join(str(exc).split()) or type(exc).__name__) from exc
        try:
            dcap_qvl.QuoteCollateralV3.from_json(text)
        except (TypeError, ValueError) as exc:
            raise self._down(f"the answer is not valid collateral: {exc}") from exc
        return text

    def _down(self, why: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"PCCS at {self.url}: could not fetch collateral: {why} (fail closed: the "
            "evidence's own collateral is not used in its place)"
        )

    def _get(self, http: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
        response = http.get(f"{self.url}{path}", params=params)
        if response.status_code != 200:
            raise self._down(f"GET {path} answered HTTP {response.status_code}")
        if len(response.content) > _MAX_ANSWER:
            raise self._down(f"GET {path} answered more than {_MAX_ANSWER} bytes")
        return response

    def _header(self, response: httpx.Response, *names: str) -> str:
        for name in names:
            value = response.headers.get(name)
            if value:
                return urllib.parse.unquote(value)
        raise self._down(f"{response.request.url.path} answered without a {names[0]} header")

    def _signed(self, response: httpx.Response, key: str) -> tuple[str, str]:
        """The exact text of the signed body ``key`` (signatures cover it byte for byte)."""
        members = _top_level_members(response.text)
        if members is None or key not in members or "signature" not in members:
            raise self._down(f"{response.request.url.path} answered without {key}/signature")
        signature = json.loads(members["signature"])
        if not isinstance(signature, str) or not _HEX.fullmatch(signature):
            raise self._down(f"{response.request.url.path} answered a malformed signature")
        return members[key], signature

    def _fetch(
        self, http: httpx.Client, *, fmspc: str, ca: str, tee: str, chain: bytes | None
    ) -> str:
        pck = self._get(http, "/sgx/certification/v4/pckcrl", {"ca": ca, "encoding": "der"})
        tcb = self._get(http, f"/{tee}/certification/v4/tcb", {"fmspc": fmspc})
        qe = self._get(http, f"/{tee}/certification/v4/qe/identity", {})
        tcb_info, tcb_signature = self._signed(tcb, "tcbInfo")
        qe_identity, qe_signature = self._signed(qe, "enclaveIdentity")
        return json.dumps(
            {
                "pck_crl_issuer_chain": self._header(pck, "SGX-PCK-CRL-Issuer-Chain"),
                "root_ca_crl": self._root_ca_crl(http, chain),
                "pck_crl": _der_hex(pck.content),
                "tcb_info_issuer_chain": self._header(
                    tcb, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"
                ),
                "tcb_info": tcb_info,
                "tcb_info_signature": tcb_signature,
                "qe_identity_issuer_chain": self._header(qe, "SGX-Enclave-Identity-Issuer-Chain"),
                "qe_identity": qe_identity,
                "qe_identity_signature": qe_signature,
            }
        )

    def _root_ca_crl(self, http: httpx.Client, chain: bytes | None) -> str:
        """From the PCCS; Intel's PCS has no such path, so then from the root's CRL URL."""
        response = http.get(f"{self.url}/sgx/certification/v4/rootcacrl")
        if response.status_code == 200:
            return _der_hex(response.content)
        if response.status_code != 404 or not chain:
            raise self._down(
                f"GET /sgx/certification/v4/rootcacrl answered HTTP {response.status_code}"
            )
        url = _root_crl_url(chain)
        if url is None:
            raise self._down("no root CA CRL: the PCCS has none and the quote's root names none")
        # Signed by Intel's root CA (dcap-qvl checks it), so a redirect cannot change it.
        answer = http.get(url, follow_redirects=True)
        if answer.status_code != 200:
            raise self._down(f"root CA CRL at {url} answered HTTP {answer.status_code}")
        return _der_hex(answer.content)


_FMSPC = re.compile(r"[0-9A-F]{12}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_MAX_ANSWER = 1 << 20


def _der_hex(body: bytes) -> str:
    """A CRL as lowercase hex: PCCSs answer DER, or (some) its hex text."""
    text = body.strip()
    if text[:1] == b"\x30":
        return body.hex()
    try:
        return bytes.fromhex(text.decode("ascii")).hex()
    except (UnicodeDecodeError, ValueError):
        return body.hex()  # dcap-qvl refuses it below, naming the CRL


def _top_level_members(text: str) -> dict[str, str] | None:
    """The raw JSON text of each member of a top-level object (``None`` if it is not one)."""
    decoder = json.JSONDecoder()
    members: dict[str, str] = {}
    i, n = 0, len(text)

    def skip(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    try:
        i = skip(i)
        if text[i : i + 1] != "{":
            return None
        i = skip(i + 1)
        while i < n and text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = skip(i)
            if not isinstance(key, str) or text[i : i + 1] != ":":
                return None
            start = skip(i + 1)
            _, i = decoder.raw_decode(text, start)
            members[key] = text[start:i]
            i = skip(i)
            if text[i : i + 1] == ",":
                i = skip(i + 1)
        return members
    except (ValueError, IndexError):
        return None


def _root_crl_url(chain: bytes) -> str | None:
    try:
        certs = x509.load_pem_x509_certificates(chain)
        points = certs[-1].extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except (ValueError, x509.ExtensionNotFound):
        return None
    for point in points.value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(
                "https://"
            ):
                return str(name.value)
    return None


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
