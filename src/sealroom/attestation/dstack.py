"""Evidence from a dstack CVM: a TDX quote from the guest agent, plus DCAP collateral.

The guest agent (reached through ``dstack_sdk.DstackClient``, normally over
``/var/run/dstack.sock``) produces the quote; collateral comes from a PCCS.
Collateral is fetched when the evidence is made and stored with it, so that a
proof bundle can be verified offline years later, at the time it was made.

Simulated sources are labelled, never trusted on their word: evidence is
marked ``simulated=True`` when the agent's ``Info`` says it is the sealroom
stand-in (its ``app_name`` contains :data:`STANDIN_APP_NAME_MARKER`) or when
the endpoint came from ``DSTACK_SIMULATOR_ENDPOINT``. These labels can only
*downgrade* evidence: an agent that hides the marker gains nothing, because a
replayed quote carries someone else's ``report_data`` and fails the key
binding check in every verifier.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import dcap_qvl
import httpx
import rfc8785
from dstack_sdk import AsyncDstackClient, DstackClient
from dstack_sdk.dstack_client import get_endpoint

from sealroom.attestation.evidence import TeeEvidence, report_data_for
from sealroom.errors import AttestationInvalid, BackendUnavailable, InvalidInput, SealroomError

__all__ = [
    "DEFAULT_PCCS_URL",
    "DEPLOYMENT_KEY_PATH",
    "PROVIDER_DSTACK",
    "PROVIDER_SIMULATOR",
    "PROVIDER_STANDIN",
    "STANDIN_APP_NAME_MARKER",
    "CollateralFetcher",
    "DstackProvider",
    "pccs_collateral_fetcher",
]

DEFAULT_PCCS_URL: str = dcap_qvl.PHALA_PCCS_URL
STANDIN_APP_NAME_MARKER = "sealroom-dstack-standin"
PROVIDER_DSTACK = "dstack"
PROVIDER_STANDIN = "dstack-standin"
PROVIDER_SIMULATOR = "dstack-simulator"
_SIMULATOR_ENV = "DSTACK_SIMULATOR_ENDPOINT"

# quote bytes -> dcap-qvl QuoteCollateralV3 JSON text; raises BackendUnavailable.
CollateralFetcher = Callable[[bytes], str]
_T = TypeVar("_T")
# What the SDK and its transport raise when the agent is absent, slow or talks nonsense.
_AGENT_ERRORS = (httpx.HTTPError, OSError, RuntimeError, ValueError, TypeError, KeyError)


# The dstack KMS path of the key the enclave workers of one deployment derive their keys from.
DEPLOYMENT_KEY_PATH = "sealroom/enclave-keys/v1"


def _run_blocking(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def pccs_collateral_fetcher(pccs_url: str = DEFAULT_PCCS_URL) -> CollateralFetcher:
    """A fetcher that asks a PCCS (or Intel PCS) for a quote's collateral, over the network."""
    if not isinstance(pccs_url, str) or not pccs_url.startswith(("https://", "http://")):
        raise InvalidInput(f"PCCS URL must be http(s), got {pccs_url!r}")

    def fetch(quote: bytes) -> str:
        async def get() -> Any:
            return await dcap_qvl.get_collateral(pccs_url, quote)

        try:
            collateral = _run_blocking(get)
            text = collateral.to_json()
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailable(
                f"PCCS at {pccs_url}: could not fetch collateral: {exc}"
            ) from exc
        if not isinstance(text, str):
            raise BackendUnavailable(f"PCCS at {pccs_url}: collateral is not JSON text")
        return text

    return fetch


def _to_hex_bytes(value: Any, *, what: str, endpoint: str) -> bytes:
    if not isinstance(value, str):
        raise BackendUnavailable(f"dstack guest agent at {endpoint}: {what} is not a string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise BackendUnavailable(f"dstack guest agent at {endpoint}: {what} is not hex") from exc


class DstackProvider:
    """An :class:`~sealroom.attestation.evidence.EvidenceProvider` backed by a dstack guest agent."""

    __slots__ = ("_endpoint", "_fetch_collateral", "_simulator_env", "_timeout")

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        collateral_fetcher: CollateralFetcher | None = None,
        pccs_url: str = DEFAULT_PCCS_URL,
        timeout: float = 30.0,
    ) -> None:
        # The SDK falls back to $DSTACK_SIMULATOR_ENDPOINT when no endpoint is
        # given; remember that, so evidence from Phala's simulator is labelled.
        self._simulator_env = endpoint is None and bool(os.environ.get(_SIMULATOR_ENV))
        self._endpoint = str(get_endpoint(endpoint))
        self._fetch_collateral = collateral_fetcher or pccs_collateral_fetcher(pccs_url)
        if timeout <= 0:
            raise InvalidInput("timeout must be positive")
        self._timeout = timeout

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def attest(self, key_document: bytes) -> TeeEvidence:
        if not isinstance(key_document, bytes):
            raise InvalidInput("key_document must be bytes")
        report_data = report_data_for(key_document)
        endpoint = self._endpoint
        try:
            client = DstackClient(endpoint, timeout=self._timeout)
            with client:  # closes the HTTP connection when done
                info: Any = client.info()
                response: Any = client.get_quote(report_data)
        except FileNotFoundError as exc:
            raise BackendUnavailable(
                f"dstack guest agent at {endpoint}: socket does not exist"
            ) from exc
        except _AGENT_ERRORS as exc:
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: {exc}") from exc

        app_name = getattr(info, "app_name", None)
        if not isinstance(app_name, str):
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: Info has no app_name")
        if STANDIN_APP_NAME_MARKER in app_name:
            simulated, provider = True, PROVIDER_STANDIN
        elif self._simulator_env:
            simulated, provider = True, PROVIDER_SIMULATOR
        else:
            simulated, provider = False, PROVIDER_DSTACK

        quote = _to_hex_bytes(response.quote, what="quote", endpoint=endpoint)
        event_log = response.event_log
        if not isinstance(event_log, str):
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: event_log is not text")
        if not simulated:
            self._check_quote_is_ours(quote, report_data)
        try:
            info_json = rfc8785.dumps(info.model_dump(mode="json")).decode("utf-8")
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackendUnavailable(
                f"dstack guest agent at {endpoint}: Info is not serialisable"
            ) from exc

        try:
            collateral = self._fetch_collateral(quote)
        except SealroomError:
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailable(f"collateral fetch failed: {exc}") from exc
        try:
            dcap_qvl.QuoteCollateralV3.from_json(collateral)
        except (TypeError, ValueError) as exc:
            raise BackendUnavailable(f"collateral is not QuoteCollateralV3 JSON: {exc}") from exc

        return TeeEvidence(
            tee="tdx",
            simulated=simulated,
            provider=provider,
            quote=quote,
            event_log=event_log,
            collateral=collateral,
            info=info_json,
        )

    def app_key(self, path: str = DEPLOYMENT_KEY_PATH) -> bytes:
        """The KMS-derived key of this app at ``path``: the same in every instance of the
        measured app, so the enclave workers of one deployment share the keys derived from it
        (:func:`sealroom.enclave.keys.deployment_identity`)."""
        endpoint = self._endpoint

        async def get() -> Any:
            # The SDK's sync client returns GetKey's coroutine unrun (dstack-sdk 0.5.4).
            async with AsyncDstackClient(endpoint, timeout=self._timeout) as client:
                return await client.get_key(path, "sealroom-enclave")

        try:
            response: Any = _run_blocking(get)
        except FileNotFoundError as exc:
            raise BackendUnavailable(
                f"dstack guest agent at {endpoint}: socket does not exist"
            ) from exc
        except _AGENT_ERRORS as exc:
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: {exc}") from exc
        try:
            key = bytes(response.decode_key())
        except (AttributeError, ValueError) as exc:
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: bad app key") from exc
        if len(key) < 32:
            raise BackendUnavailable(f"dstack guest agent at {endpoint}: app key too short")
        return key

    def _check_quote_is_ours(self, quote: bytes, report_data: bytes) -> None:
        """Catch a broken or replaying agent here, before the evidence travels anywhere."""
        try:
            parsed: Any = dcap_qvl.parse_quote(quote)
            quoted = parsed.report.report_data
        except (ValueError, AttributeError) as exc:
            raise BackendUnavailable(
                f"dstack guest agent at {self._endpoint}: returned a quote that does not parse"
            ) from exc
        if not isinstance(quoted, bytes) or not hmac.compare_digest(quoted, report_data):
            raise AttestationInvalid(
                f"dstack guest agent at {self._endpoint}: the quote it returned does not "
                "carry the report_data we asked for"
            )
