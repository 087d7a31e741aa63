"""The DH group: hashing lands in the prime-order subgroup, masking commutes, bad points are refused.

Regenerate the vectors (only after a deliberate change) with
``python tests/protocols/test_group.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols.group import (
    GroupPool,
    check_elements,
    hash_to_group,
    mul,
    mul_many,
    random_scalar,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "psi_group.json"
P = 2**255 - 19
# The canonical u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 (and its twist).
LOW_ORDER = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P - 1,
]


def reference_hash(element: bytes, domain: bytes) -> bytes:
    """hash_to_group one element at a time, written out with no batching."""
    digest = hashlib.sha512(len(domain).to_bytes(2, "big") + domain + element).digest()
    y = int.from_bytes(sodium.crypto_core_ed25519_from_uniform(digest[:32]), "little") % 2**255
    return ((1 + y) * pow(1 - y, P - 2, P) % P).to_bytes(32, "little")


def edwards_from_u(u: bytes) -> bytes:
    """The Edwards encoding (x sign 0) of the point with Montgomery coordinate ``u``."""
    n = int.from_bytes(u, "little")
    return ((n - 1) * pow(n + 1, P - 2, P) % P).to_bytes(32, "little")


def test_rfc7748_x25519_vector() -> None:
    scalar = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    expected = "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    assert mul(scalar, u).hex() == expected


@settings(max_examples=40, deadline=None)
@given(elements=st.lists(st.binary(max_size=40), min_size=1, max_size=8, unique=True))
def test_hashing_matches_the_reference_and_lands_in_the_prime_order_subgroup(
    elements: list[bytes],
) -> None:
    domain = b"sealroom/test"
    out = hash_to_group(elements, domain=domain)
    assert out == [reference_hash(e, domain) for e in elements]
    assert len(set(out)) == len(elements)
    check_elements(out, what="hashed")
    for u in out:
        # libsodium's check: on the curve, not of small order, in the main subgroup.
        assert sodium.crypto_core_ed25519_is_valid_point(edwards_from_u(u))


def test_batches_spanning_several_inversion_blocks_match_the_reference() -> None:
    elements = [b"%d" % i for i in range(600)]  # blocks of 256: 256 + 256 + 88
    assert hash_to_group(elements, domain=b"d") == [reference_hash(e, b"d") for e in elements]


def test_the_domain_separates() -> None:
    assert hash_to_group([b"x"], domain=b"one") != hash_to_group([b"x"], domain=b"two")
    # The length prefix keeps (domain, element) splits apart.
    assert hash_to_group([b"bc"], domain=b"a") != hash_to_group([b"c"], domain=b"ab")
    assert hash_to_group([], domain=b"d") == []


@settings(max_examples=25, deadline=None)
@given(
    x=st.binary(max_size=16),
    a=st.binary(min_size=32, max_size=32),
    b=st.binary(min_size=32, max_size=32),
)
def test_masking_commutes(x: bytes, a: bytes, b: bytes) -> None:
    (h,) = hash_to_group([x], domain=b"d")
    assert mul(a, mul(b, h)) == mul(b, mul(a, h))


@pytest.mark.parametrize("u", LOW_ORDER)
def test_low_order_points_are_refused(u: int) -> None:
    point = u.to_bytes(32, "little")
    check_elements([point], what="peer")  # canonical, so only the multiplication can catch it
    with pytest.raises(ProtocolError, match="low order"):
        mul(random_scalar(), point)
    with pytest.raises(ProtocolError, match="low order"):
        mul_many(random_scalar(), [*hash_to_group([b"ok"], domain=b"d"), point])


@pytest.mark.parametrize(
    "element",
    [P.to_bytes(32, "little"), (2**255 - 1).to_bytes(32, "little"), b"\x01" * 31, b"\x01" * 33],
)
def test_non_canonical_encodings_are_refused(element: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"peer\[1\] is not a canonical group element"):
        check_elements([b"\x09" + bytes(31), element], what="peer")


def test_the_pool_gives_the_inline_answer_in_chunks() -> None:
    elements = [b"%d" % i for i in range(1300)]
    chunks = [elements[:700], elements[700:], []]
    scalar = random_scalar()
    with GroupPool(1) as one, GroupPool(2, inline_below=10) as two:
        inline = list(one.hash_mul_chunks(scalar, chunks, domain=b"d"))
        threaded = list(two.hash_mul_chunks(scalar, chunks, domain=b"d"))
        assert [len(c) for c in threaded] == [700, 600, 0]
        assert inline == threaded
        assert list(two.mul_chunks(scalar, threaded)) == list(one.mul_chunks(scalar, inline))
        bad = [*threaded[0][:-1], bytes(32)]
        with pytest.raises(ProtocolError, match="low order"):
            list(two.mul_chunks(scalar, [bad]))


@pytest.mark.parametrize("workers", [0, -1, 65, True, 1.5])
def test_pool_size_is_checked(workers: Any) -> None:
    with pytest.raises(InvalidInput, match="workers must be"):
        GroupPool(workers)


# --- known answers ------------------------------------------------------------------------


def generate_vectors() -> str:
    domain = b"sealroom/psi/v1/" + b"5e55" * 8
    inputs = [b"", b"apple", b"\x00" * 64, bytes(range(256))]
    scalars = [hashlib.sha256(b"sealroom group vector %d" % i).digest() for i in range(2)]
    hashed = hash_to_group(inputs, domain=domain)
    once = [mul_many(s, hashed) for s in scalars]
    vector = {
        "description": "hash_to_group: SHA-512(be16(len(domain)) || domain || element)[:32] -> "
        "libsodium crypto_core_ed25519_from_uniform -> Montgomery u = (1+y)/(1-y), 32 bytes LE; "
        "mul: X25519 (RFC 7748)",
        "domain": domain.hex(),
        "inputs": [e.hex() for e in inputs],
        "hash_to_group": [h.hex() for h in hashed],
        "scalars": [s.hex() for s in scalars],
        "mul_by_scalar": [[m.hex() for m in row] for row in once],
        "mul_by_both": [m.hex() for m in mul_many(scalars[1], once[0])],
    }
    return json.dumps(vector, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_byte_for_byte() -> None:
    expected = VECTORS.read_text()
    assert generate_vectors() == expected
    v = json.loads(expected)
    s0, s1 = (bytes.fromhex(s) for s in v["scalars"])
    for h, both in zip(v["hash_to_group"], v["mul_by_both"], strict=True):
        assert mul(s0, mul(s1, bytes.fromhex(h))).hex() == both


if __name__ == "__main__":
    VECTORS.write_text(generate_vectors())
    print(f"wrote {VECTORS}", file=sys.stderr)
