from __future__ import annotations

import json

import pytest

from sealroom.crypto.keys import b64encode
from sealroom.errors import StatementFormatError
from sealroom.statements import ReleasedOutput, canonical_json
from sealroom.verification.bundle import MAX_PROOF_LENGTH, MAX_STATEMENTS, ProofBundle
from tests.verification.scenario import build_job

JOB = build_job()
HASH_31, HASH_32, HASH_33 = (b64encode(bytes(n)) for n in (31, 32, 33))


def _reparsed(mutate: object) -> ProofBundle:
    doc = json.loads(JOB.bundle.to_json())
    mutate(doc)  # type: ignore[operator]
    return ProofBundle.from_json(canonical_json(doc))


def test_bundle_round_trips_canonically() -> None:
    data = JOB.bundle.to_json()
    assert ProofBundle.from_json(data) == JOB.bundle
    assert ProofBundle.from_json(data).to_json() == data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "unknown proof bundle version 2"),
        (lambda d: d.update(type="x"), "not a proof bundle"),
        (lambda d: d.update(extra=1), "unknown \\['extra'\\]"),
        (lambda d: d["log"]["entries"][0].update(index=-1), "non-negative integer"),
        (lambda d: d["log"]["entries"][0].update(index=True), "non-negative integer"),
        (lambda d: d["log"]["entries"][0].update(digest="sha256:00"), "statement digest"),
        (lambda d: d["log"].update(checkpoint=7), "log checkpoint must be a string"),
    ],
)
def test_malformed_bundles(mutate: object, message: str) -> None:
    with pytest.raises(StatementFormatError, match=message):
        _reparsed(mutate)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["log"]["entries"][0]["proof"].append(HASH_31), "expected 32 bytes"),
        (lambda d: d["log"]["entries"][0]["proof"].append(HASH_33), "expected 32 bytes"),
        (lambda d: d["log"]["entries"][0]["proof"].append("AA=="), "expected 32 bytes"),
        (
            lambda d: d["log"]["entries"][0].update(proof=[HASH_32] * (MAX_PROOF_LENGTH + 1)),
            f"at most {MAX_PROOF_LENGTH} items",
        ),
        (
            lambda d: d.update(statements=d["statements"] * (MAX_STATEMENTS // 3 + 1)),
            f"at most {MAX_STATEMENTS} items",
        ),
    ],
)
def test_wrong_sizes(mutate: object, message: str) -> None:
    with pytest.raises(StatementFormatError, match=message):
        _reparsed(mutate)


@pytest.mark.parametrize("garbage", [b"\n", b" ", b"{}", b"\x00"])
def test_trailing_garbage(garbage: bytes) -> None:
    with pytest.raises(StatementFormatError):
        ProofBundle.from_json(JOB.bundle.to_json() + garbage)


def test_non_canonical_encoding_is_refused() -> None:
    pretty = json.dumps(json.loads(JOB.bundle.to_json()), indent=1).encode()
    with pytest.raises(StatementFormatError, match="canonical"):
        ProofBundle.from_json(pretty)


def test_released_output_parsing() -> None:
    data = JOB.output.to_json()
    assert ReleasedOutput.from_json(data) == JOB.output
    with pytest.raises(StatementFormatError):
        ReleasedOutput.from_json(data.replace(b'"version":1', b'"version":2'))
    with pytest.raises(StatementFormatError):
        ReleasedOutput.from_json(data + b" ")
