"""Shared fixtures for the coordinator's API tests: a tiny computation, signed HTTP calls."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from sealroom.computations.base import Computation, PrivacyContext
from sealroom.computations.registry import Registry
from sealroom.crypto.keys import Identity, b64encode
from sealroom.crypto.request_signing import sign_request


class CountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = 5


class CountOutput(BaseModel):
    rows: int


def _run(inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext) -> BaseModel:
    return CountOutput(rows=sum(t.num_rows for t in inputs))


ROW_COUNT = Computation(
    id="row-count",
    version="1.0.0",
    summary="Counts rows (test only).",
    privacy_class="aggregate",
    release="requester",
    input_names=("a",),
    params=CountParams,
    output=CountOutput,
    run_fn=_run,
    modules=(sys.modules[__name__],),
)

PAIR_COUNT = Computation(
    id="topic-overlap",
    version="1.0.0",
    summary="Counts rows of two inputs (test stand-in for topic-overlap).",
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=CountParams,
    output=CountOutput,
    run_fn=_run,
    modules=(sys.modules[__name__],),
)


def test_registry() -> Registry:
    return Registry([ROW_COUNT, PAIR_COUNT])


test_registry.__test__ = False  # type: ignore[attr-defined]


class Clock:
    """A settable clock for the app (unix seconds)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Client:
    """Signed calls as one identity, with the wire format the SDK uses."""

    def __init__(self, http: httpx.Client, identity: Identity, clock: Clock) -> None:
        self.http = http
        self.identity = identity
        self.clock = clock

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        signed = sign_request(
            self.identity, method=method, target=path, body=data, now=self.clock.now
        )
        h = dict(signed)
        if data:
            h["content-type"] = content_type
        h.update(headers or {})
        return self.http.request(method, path, content=data, headers=h)

    def register(self, name: str) -> httpx.Response:
        pub = self.identity.public
        return self.call(
            "POST",
            "/v1/parties",
            {
                "name": name,
                "signing_key": b64encode(pub.signing_key),
                "sealing_key": b64encode(pub.sealing_key),
            },
        )
