"""Shamir sharing over GF(2^256 + 297): the field, reconstruction, batch interpolation, vectors.

Regenerate the known-answer file with ``python tests/protocols/test_shamir.py``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import gmpy2
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import shamir
from sealroom.protocols.shamir import PRIME, Share

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "secagg_shamir.json"


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic byte stream (ChaCha20 keystream) for known-answer tests only."""
    enc = Cipher(algorithms.ChaCha20(hashlib.sha256(seed).digest(), bytes(16)), None).encryptor()
    return lambda n: enc.update(bytes(n))


def build_vectors() -> dict[str, object]:
    cases = []
    for name, threshold, xs in (
        ("t1", 1, [1, 2]),
        ("t3-of-5", 3, [1, 2, 3, 4, 5]),
        ("gaps", 2, [3, 7, 100]),
    ):
        secret = hashlib.sha256(name.encode()).digest()
        shares = shamir.split(secret, threshold=threshold, xs=xs, rng=seeded_rng(name.encode()))
        cases.append(
            {
                "name": name,
                "secret": secret.hex(),
                "threshold": threshold,
                "rng_seed": name,
                "shares": [[s.x, s.value_bytes().hex()] for s in shares],
            }
        )
    return {
        "description": "Shamir shares over GF(2^256+297); rng = ChaCha20(SHA-256(seed), zero nonce) keystream",
        "prime": hex(PRIME),
        "cases": cases,
    }


def dump(vectors: dict[str, object]) -> str:
    return json.dumps(vectors, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_byte_for_byte() -> None:
    assert VECTORS.read_text() == dump(build_vectors())
    for case in json.loads(VECTORS.read_text())["cases"]:
        shares = [Share(x, int(y, 16)) for x, y in case["shares"]]
        t = case["threshold"]
        for subset in (shares[:t], shares[-t:]):
            assert shamir.combine(subset, threshold=t).hex() == case["secret"]


def test_the_field_is_the_smallest_prime_above_2_256() -> None:
    assert PRIME == 2**256 + 297
    assert gmpy2.is_prime(PRIME, 64)
    assert not any(gmpy2.is_prime(2**256 + k, 25) for k in range(1, 297))
    assert (1 << 256) - 1 < PRIME < 1 << (8 * shamir.SHARE_SIZE)


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    n=st.integers(1, 9),
    data=st.data(),
)
def test_any_threshold_subset_reconstructs(secret: bytes, n: int, data: st.DataObject) -> None:
    t = data.draw(st.integers(1, n))
    xs = data.draw(st.lists(st.integers(1, 2**64), min_size=n, max_size=n, unique=True))
    shares = shamir.split(secret, threshold=t, xs=xs)
    subset = data.draw(st.permutations(shares))[:t]
    assert shamir.combine(subset, threshold=t) == secret
    # the batched inner product agrees with the plain one
    lams = shamir.lagrange_at_zero([s.x for s in subset])
    rows = [s.value_bytes() for s in subset]
    assert shamir.combine_many(lams, rows, what="x") == [
        shamir.combine_with(lams, [s.y for s in subset])
    ]


def test_fewer_than_t_shares_give_a_different_value_and_are_refused() -> None:
    secret = bytes(range(32))
    shares = shamir.split(secret, threshold=3, xs=[1, 2, 3, 4])
    with pytest.raises(ProtocolError, match="fewer than the threshold"):
        shamir.combine(shares[:2], threshold=3)
    lams = shamir.lagrange_at_zero([1, 2])
    assert shamir.combine_with(lams, [shares[0].y, shares[1].y]).to_bytes(33, "big")[1:] != secret


def test_lagrange_coefficients_match_exact_rational_arithmetic() -> None:
    xs = [2, 5, 11, 12, 40]
    for j, lam in enumerate(shamir.lagrange_at_zero(xs)):
        exact = Fraction(1)
        for m, xm in enumerate(xs):
            if m != j:
                exact *= Fraction(xm, xm - xs[j])
        assert lam == exact.numerator * pow(exact.denominator, -1, PRIME) % PRIME


@settings(max_examples=40, deadline=None)
@given(
    holders=st.integers(1, 12),
    secrets=st.integers(0, 20),
    seed=st.integers(0, 2**32),
)
def test_combine_many_equals_one_inner_product_per_secret(
    holders: int, secrets: int, seed: int
) -> None:
    rnd = random.Random(seed)
    edge = [0, 1, PRIME - 1, 2**256, 2**256 - 1]
    values = [
        [rnd.choice([*edge, rnd.randrange(PRIME)]) for _ in range(secrets)] for _ in range(holders)
    ]
    lams = [rnd.choice([PRIME - 1, rnd.randrange(PRIME)]) for _ in range(holders)]
    rows = [b"".join(v.to_bytes(33, "big") for v in row) for row in values]
    expected = [
        shamir.combine_with(lams, [values[j][k] for j in range(holders)]) for k in range(secrets)
    ]
    assert shamir.combine_many(lams, rows, what="x") == expected


def test_combine_many_rejects_values_outside_the_field_and_ragged_rows() -> None:
    ok = (5).to_bytes(33, "big")
    for bad in (PRIME.to_bytes(33, "big"), (PRIME + 1).to_bytes(33, "big"), b"\x02" + bytes(32)):
        with pytest.raises(ProtocolError, match="not a field element"):
            shamir.combine_many([1, 1], [ok + ok, ok + bad], what="test shares")
    with pytest.raises(ProtocolError, match="whole 33-byte values"):
        shamir.combine_many([1, 1], [ok, ok + ok], what="test shares")
    with pytest.raises(ProtocolError, match="not a field element"):
        Share.from_bytes(1, PRIME.to_bytes(33, "big"), what="share")


def test_coefficients_are_drawn_without_modular_bias() -> None:
    # The first draw (all ones, >= p) must be rejected, not reduced mod p.
    draws = [b"\xff" * 33, (7).to_bytes(33, "big")]
    shares = shamir.split(bytes(32), threshold=2, xs=[1, 2], rng=lambda n: draws.pop(0))
    assert [s.y for s in shares] == [7, 14]  # f(X) = 0 + 7 X


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"secret": b"short", "threshold": 1, "xs": [1]}, "32 bytes"),
        ({"secret": bytes(32), "threshold": 3, "xs": [1, 2]}, "threshold"),
        ({"secret": bytes(32), "threshold": 0, "xs": [1, 2]}, "threshold"),
        ({"secret": bytes(32), "threshold": 2, "xs": [1, 1]}, "distinct"),
        ({"secret": bytes(32), "threshold": 1, "xs": [0, 1]}, "1..p-1"),
        ({"secret": bytes(32), "threshold": 1, "xs": [PRIME]}, "1..p-1"),
    ],
)
def test_bad_local_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        shamir.split(**kwargs)  # type: ignore[arg-type]


def test_share_repr_hides_the_value() -> None:
    share = shamir.split(bytes(range(32)), threshold=1, xs=[3])[0]
    assert str(share.y) not in repr(share)
    assert "hidden" in repr(share)


if __name__ == "__main__":
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    VECTORS.write_text(dump(build_vectors()))
    print(f"wrote {VECTORS}")
