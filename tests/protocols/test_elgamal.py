"""Exponential ElGamal over Edwards25519: libsodium checked against a textbook oracle.

The oracle below is affine twisted-Edwards arithmetic straight from RFC 8032
(section 5.1), in plain Python integers, sharing no code with the module under
test; the known-answer vectors are regenerated and compared byte for byte.
Regenerate them with ``python tests/protocols/test_elgamal.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import elgamal as eg

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "pjc_elgamal.json"

# --- the oracle (RFC 8032, affine coordinates) -----------------------------------------

Q = 2**255 - 19
ED_D = -121665 * pow(121666, -1, Q) % Q
ORDER = 2**252 + 27742317777372353535851937790883648493
GY = 4 * pow(5, -1, Q) % Q
GX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
Point = tuple[int, int]
ZERO: Point = (0, 1)
# A point of order 8 (libsodium's small-order blocklist).
TORSION8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")


def o_add(p: Point, q: Point) -> Point:
    (x1, y1), (x2, y2) = p, q
    t = ED_D * x1 * x2 * y1 * y2 % Q
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, Q) % Q,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, Q) % Q,
    )


def o_mul(k: int, p: Point) -> Point:
    """``k*p`` by double-and-add; ``k >= 0`` (reduce mod ORDER first for subgroup points)."""
    assert k >= 0
    out = ZERO
    while k:
        if k & 1:
            out = o_add(out, p)
        p, k = o_add(p, p), k >> 1
    return out


def o_encode(p: Point) -> bytes:
    x, y = p
    return (y | (x & 1) << 255).to_bytes(32, "little")


def o_decode(data: bytes) -> Point:
    y = int.from_bytes(data, "little") & ((1 << 255) - 1)
    u, v = (y * y - 1) % Q, (ED_D * y * y + 1) % Q
    x = pow(u * pow(v, -1, Q), (Q + 3) // 8, Q)
    if (x * x - u * pow(v, -1, Q)) % Q:
        x = x * pow(2, (Q - 1) // 4, Q) % Q
    assert (x * x * v - u) % Q == 0, "not on the curve"
    if x & 1 != data[31] >> 7:
        x = Q - x
    return (x, y)


G: Point = (GX, GY)


def o_base(k: int) -> bytes:
    return o_encode(o_mul(k % ORDER, G))


# --- the oracle agrees with libsodium --------------------------------------------------


def test_oracle_base_point_is_libsodiums() -> None:
    assert o_encode(G) == eg.BASE
    assert o_encode(ZERO) == eg.IDENTITY
    assert o_mul(ORDER, G) == ZERO


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=-(2**260), max_value=2**260), st.integers(1, ORDER - 1))
def test_group_operations_match_the_oracle(k: int, j: int) -> None:
    p = eg.base_mul(j)
    assert p == o_base(j)
    assert eg.base_mul(k) == o_base(k % ORDER)
    assert eg.mul(k, p) == o_base(k * j)
    assert eg.add(p, eg.base_mul(k)) == o_encode(o_add(o_decode(p), o_decode(o_base(k))))
    assert eg.sub(p, eg.base_mul(k)) == o_base(j - k)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, ORDER - 1), st.integers(0, 7))
def test_clear_torsion_returns_the_prime_order_component(j: int, t: int) -> None:
    torsion = o_mul(t, o_decode(TORSION8))
    noisy = o_encode(o_add(o_mul(j, G), torsion))
    assert eg.clear_torsion(noisy) == o_base(j)
    if t:
        with pytest.raises(ProtocolError, match="prime-order subgroup"):
            eg.mul(3, noisy)
        with pytest.raises(ProtocolError, match="prime-order subgroup"):
            eg.check_subgroup(noisy, what="x")
    assert eg.clear_torsion(o_encode(torsion)) == eg.IDENTITY


def test_points_off_the_curve_are_protocol_errors() -> None:
    off = b"\x02" + bytes(31)  # y = 2 has no x on the curve
    with pytest.raises(ProtocolError, match="not a point on the curve"):
        eg.add(eg.BASE, off)
    for chosen in ([True, True], [True, False], [False, True], [False, False]):
        # An undecodable point fails the sum whether or not its ciphertext was chosen.
        with pytest.raises(ProtocolError, match="not a curve point"):
            eg.select_sum([eg.BASE + eg.BASE, eg.BASE + off], chosen, what="cts")
    with pytest.raises(ProtocolError, match="wrong length"):
        eg.select_sum([eg.BASE], [False], what="cts")
    with pytest.raises(InvalidInput, match="one choice per ciphertext"):
        eg.select_sum([eg.BASE + eg.BASE], [], what="cts")
    with pytest.raises(ProtocolError, match="not a curve point"):
        eg.sum_ciphertexts([eg.Ciphertext(off, eg.BASE)])
    with pytest.raises(ProtocolError, match="wrong length"):
        eg.mul(2, b"\x01")
    with pytest.raises(ProtocolError):
        eg.Ciphertext.from_bytes(b"\x00" * 63)
    tagged = eg.select_sum([eg.BASE + TORSION8], [True], what="torsion decodes fine")
    assert eg.sum_ciphertexts([tagged]) == eg.Ciphertext(eg.BASE, eg.IDENTITY)


# --- encryption, homomorphism, decryption ----------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), max_size=6),
    st.integers(1, ORDER - 1),
    st.binary(min_size=64, max_size=64),
)
def test_sum_of_ciphertexts_decrypts_to_the_sum(values: list[int], x: int, seed: bytes) -> None:
    key = eg.ElGamalKey.from_secret(x)
    rs = [
        int.from_bytes(hashlib.sha512(seed + bytes([i])).digest(), "little") % ORDER or 1
        for i in range(len(values))
    ]
    cts = [key.encrypt(v, r=r) for v, r in zip(values, rs, strict=True)]
    for v, r, ct in zip(values, rs, cts, strict=True):
        assert ct == eg.encrypt(key.public, v, r=r)  # owner path = public-key path
        assert ct.c1 == o_base(r)
        assert ct.c2 == o_base(v + r * x)
    total = eg.sum_ciphertexts(cts)
    assert key.decrypt(total, lo=0, hi=10**6 * 8) == sum(values)
    assert key.decrypt(total, lo=sum(values) + 1, hi=sum(values) + 1000) is None


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.booleans()), max_size=8))
def test_select_sum_adds_exactly_the_chosen(items: list[tuple[int, bool]]) -> None:
    key = eg.ElGamalKey.from_secret(777)
    values = [v for v, _ in items]
    cts = key.encrypt_many(values, randomness=hashlib.shake_256(b"s").digest(64 * len(values)))
    chosen = [c for _, c in items]
    partial = eg.select_sum(cts, chosen, what="cts")
    want = sum(v for v, c in items if c)
    assert key.decrypt(eg.sum_ciphertexts([partial]), lo=0, hi=8000) == want
    parsed = [eg.Ciphertext.from_bytes(ct) for ct, c in zip(cts, chosen, strict=True) if c]
    assert eg.sum_ciphertexts([partial]) == eg.sum_ciphertexts(parsed)


def test_encrypt_many_matches_single_encryptions() -> None:
    key = eg.ElGamalKey.from_secret(12345)
    randomness = hashlib.shake_256(b"r").digest(64 * 3)
    cts = key.encrypt_many([0, 7, 100], randomness=randomness)
    for i, (v, ct) in enumerate(zip([0, 7, 100], cts, strict=True)):
        r = int.from_bytes(randomness[64 * i : 64 * i + 64], "little") % ORDER
        assert eg.Ciphertext.from_bytes(ct) == key.encrypt(v, r=r)
    with pytest.raises(InvalidInput, match="64 random bytes"):
        key.encrypt_many([1], randomness=b"")
    with pytest.raises(InvalidInput, match="non-zero"):
        key.encrypt(1, r=ORDER)
    with pytest.raises(InvalidInput, match="non-zero"):
        eg.ElGamalKey.from_secret(ORDER)


@settings(max_examples=40, deadline=None)
@given(st.integers(-(2**30), 2**30), st.integers(0, 2**20), st.integers(0, 2**20))
def test_discrete_log_finds_exactly_the_values_in_the_window(
    m: int, below: int, above: int
) -> None:
    point = eg.base_mul(m)
    assert eg.discrete_log(point, lo=m - below, hi=m + above) == m
    assert eg.discrete_log(point, lo=m + 1, hi=m + 1 + above) is None
    assert eg.discrete_log(point, lo=m - below - 1, hi=m - 1) is None


def test_discrete_log_at_the_edges_of_a_large_window() -> None:
    lo, hi = -(2**32), 2**33
    for m in (lo, hi, 0, -1, 2**32 + 12345):
        assert eg.discrete_log(eg.base_mul(m), lo=lo, hi=hi) == m
    with pytest.raises(InvalidInput, match="window"):
        eg.discrete_log(eg.BASE, lo=0, hi=2**40)
    with pytest.raises(InvalidInput, match="window"):
        eg.discrete_log(eg.BASE, lo=1, hi=0)
    with pytest.raises(ProtocolError, match="prime-order subgroup"):
        eg.discrete_log(TORSION8, lo=0, hi=10)


# --- decryption shares and their proofs ------------------------------------------------


def _stream(seed: bytes) -> eg.Rng:
    counter = [0]

    def rng(n: int) -> bytes:
        counter[0] += 1
        return hashlib.shake_256(seed + counter[0].to_bytes(8, "big")).digest(n)

    return rng


def test_share_proofs_verify_and_bind_everything() -> None:
    key = eg.ElGamalKey.generate(rng=_stream(b"k"))
    q = eg.base_mul(987654321)
    share = key.share(q)
    assert share == o_base(key.secret * 987654321)
    proof = key.prove_share(q, share, context=b"ctx", rng=_stream(b"w"))
    eg.verify_share(key.public, q, share, proof, context=b"ctx")
    other = eg.base_mul(5)
    bad_cases = [
        (key.public, q, eg.add(share, eg.BASE), proof, b"ctx"),  # wrong share
        (key.public, other, share, proof, b"ctx"),  # another query
        (other, q, share, proof, b"ctx"),  # another key
        (key.public, q, share, proof, b"ctx2"),  # another context
        (key.public, q, share, proof[:32] + bytes(32), b"ctx"),  # wrong response
        (key.public, q, share, bytes([proof[0] ^ 1]) + proof[1:], b"ctx"),  # wrong challenge
    ]
    for public, query, s, p, ctx in bad_cases:
        with pytest.raises(ProtocolError, match="proof rejected"):
            eg.verify_share(public, query, s, p, context=ctx)
    with pytest.raises(ProtocolError, match="non-canonical"):
        eg.verify_share(
            key.public, q, share, proof[:32] + ORDER.to_bytes(32, "little"), context=b"ctx"
        )
    with pytest.raises(ProtocolError, match="64 bytes"):
        eg.verify_share(key.public, q, share, proof[:63], context=b"ctx")
    with pytest.raises(ProtocolError, match="prime-order subgroup"):
        eg.verify_share(key.public, q, TORSION8, proof, context=b"ctx")


def test_the_secret_key_is_not_in_the_repr() -> None:
    key = eg.ElGamalKey.from_secret(424242424242)
    assert "424242424242" not in repr(key)


# --- known-answer vectors --------------------------------------------------------------


def generate_vectors() -> str:
    key = eg.ElGamalKey.from_secret(
        int.from_bytes(hashlib.sha512(b"pjc elgamal kat").digest(), "little")
    )
    cases: list[dict[str, Any]] = []
    for i, value in enumerate([0, 1, 1000, 2**32, -5]):
        r = int.from_bytes(hashlib.sha512(b"r%d" % i).digest(), "little") % ORDER
        cases.append(
            {
                "value": value,
                "r": r.to_bytes(32, "little").hex(),
                "ciphertext": key.encrypt(value, r=r).to_bytes().hex(),
            }
        )
    total = eg.sum_ciphertexts(
        eg.Ciphertext.from_bytes(bytes.fromhex(c["ciphertext"])) for c in cases
    )
    share = key.share(total.c1)
    proof = key.prove_share(total.c1, share, context=b"kat", rng=_stream(b"kat proof"))
    doc = {
        "description": (
            "Exponential ElGamal over Edwards25519: c1 = r*G, c2 = (m + r*x)*G (libsodium "
            "noclamp, scalars little-endian mod L); sum = component-wise addition, torsion "
            "cleared; share = x*c1; proof = c || z, Chaum-Pedersen with SHA-512 challenge"
        ),
        "secret": key.secret.to_bytes(32, "little").hex(),
        "public": key.public.hex(),
        "cases": cases,
        "sum": {"value": sum(c["value"] for c in cases), "ciphertext": total.to_bytes().hex()},
        "share": share.hex(),
        "proof_context": b"kat".hex(),
        "proof": proof.hex(),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_are_reproduced_byte_for_byte() -> None:
    assert VECTORS.read_text() == generate_vectors()


def test_known_answer_vectors_agree_with_the_oracle() -> None:
    v = json.loads(VECTORS.read_text())
    x = int.from_bytes(bytes.fromhex(v["secret"]), "little")
    assert bytes.fromhex(v["public"]) == o_base(x)
    r_sum = 0
    for case in v["cases"]:
        r = int.from_bytes(bytes.fromhex(case["r"]), "little")
        ct = bytes.fromhex(case["ciphertext"])
        assert ct == o_base(r) + o_base(case["value"] + r * x)
        r_sum += r
    total = bytes.fromhex(v["sum"]["ciphertext"])
    assert total == o_base(r_sum) + o_base(v["sum"]["value"] + r_sum * x)
    assert bytes.fromhex(v["share"]) == o_base(r_sum * x)
    eg.verify_share(
        bytes.fromhex(v["public"]),
        total[:32],
        bytes.fromhex(v["share"]),
        bytes.fromhex(v["proof"]),
        context=bytes.fromhex(v["proof_context"]),
    )
    key = eg.ElGamalKey.from_secret(x)
    lo = v["sum"]["value"] - 10
    assert key.decrypt(eg.Ciphertext.from_bytes(total), lo=lo, hi=lo + 100) == v["sum"]["value"]


if __name__ == "__main__":  # regenerate: python tests/protocols/test_elgamal.py
    VECTORS.write_text(generate_vectors())
