"""Signed-request verification as FastAPI dependencies.

The request signature covers the exact body bytes and the raw request target,
so a signed route reads the body raw, verifies the signature over it, and only
then parses it with its wire model (:func:`sealroom.wire.parse_body`). Order of
refusals: wrong media type (415), missing or bad signature (401), bad body
(400); for registrations, whose signer's keys are in the body, the body is
parsed before the signature is checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from sealroom.coordinator.service import Coordinator
from sealroom.crypto.keys import PartyId, PublicIdentity
from sealroom.crypto.request_signing import parse_party, verify_request
from sealroom.errors import UnsupportedMediaType
from sealroom.wire import WireModel, parse_body

__all__ = [
    "Api",
    "ApiDep",
    "Caller",
    "SignedBody",
    "SignedBytes",
    "get_api",
    "signed",
    "signed_bytes",
    "signed_json",
]

M = TypeVar("M", bound=WireModel)

_SIGNATURE_HEADERS = (
    "Sealroom-Party",
    "Sealroom-Timestamp",
    "Sealroom-Nonce",
    "Sealroom-Signature",
)
_signature = APIKeyHeader(
    name="Sealroom-Signature",
    scheme_name="SealroomSignature",
    description="Ed25519 request signature over method, path+query, SHA-256(body), timestamp "
    "and nonce; sent with the headers " + ", ".join(_SIGNATURE_HEADERS) + " (±300 s, a nonce "
    "is accepted once).",
    auto_error=False,
)
SignatureHeader = Annotated[str | None, Security(_signature)]


@dataclass(frozen=True, slots=True)
class Api:
    """What the routes work with: the coordinator's services and the clock."""

    coordinator: Coordinator
    clock: Callable[[], int]


def get_api(request: Request) -> Api:
    return cast(Api, request.app.state.api)


ApiDep = Annotated[Api, Depends(get_api)]


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller, and the time the call is served at."""

    party: PartyId
    now: int


@dataclass(frozen=True, slots=True)
class SignedBody(Generic[M]):
    caller: Caller
    body: M


@dataclass(frozen=True, slots=True)
class SignedBytes:
    caller: Caller
    body: bytes


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _verify(
    request: Request, api: Api, body: bytes, keys: PublicIdentity | None = None
) -> Caller:
    party = parse_party(request.headers)
    now = api.clock()
    coordinator = api.coordinator
    signer = keys
    if signer is None:
        signer = await run_in_threadpool(coordinator.parties.public_identity, party)
    verified = await run_in_threadpool(
        verify_request,
        request.headers,
        method=request.method,
        target=_target(request),
        body=body,
        signer=signer,
        now=now,
        nonces=coordinator.nonces,
    )
    return Caller(party=verified.party, now=api.clock())


async def signed(request: Request, api: ApiDep, _: SignatureHeader) -> Caller:
    """A signed call without a body (reads, the job claim)."""
    body = await request.body()
    if body and _media(request) != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    return await _verify(request, api, body)


def signed_json(
    model: type[M], *, keys: Callable[[M], PublicIdentity] | None = None
) -> Callable[..., Awaitable[SignedBody[M]]]:
    """A dependency: the verified caller and the body parsed as ``model``.

    With ``keys``, the signer is the body's own keys (self-certifying registrations).
    """

    async def dependency(request: Request, api: ApiDep, _: SignatureHeader) -> SignedBody[M]:
        raw = await request.body()
        if raw and _media(request) != "application/json":
            raise UnsupportedMediaType("send the body as application/json")
        if keys is None:
            caller = await _verify(request, api, raw)
            return SignedBody(caller, parse_body(model, raw, what="body"))
        parse_party(request.headers)
        body = parse_body(model, raw, what="body")
        return SignedBody(await _verify(request, api, raw, keys(body)), body)

    return dependency


def signed_bytes(what: str) -> Callable[..., Awaitable[SignedBytes]]:
    """A dependency: the verified caller and a raw ``application/octet-stream`` body."""

    async def dependency(request: Request, api: ApiDep, _: SignatureHeader) -> SignedBytes:
        if _media(request) != "application/octet-stream":
            raise UnsupportedMediaType(f"send the {what} as application/octet-stream")
        raw = await request.body()
        return SignedBytes(await _verify(request, api, raw), raw)

    return dependency
