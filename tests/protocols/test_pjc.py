"""Private intersection-sum (PJC): answers equal the plaintext join; every bad message ends the run.

Known-answer vectors (``tests/vectors/pjc_kat.json``) are whole seeded runs:
inputs, seeds, each party's result and the SHA-256 of every message stream,
regenerated and compared byte for byte. Regenerate with
``python tests/protocols/test_pjc.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import elgamal, pjc
from sealroom.protocols.channel import Channel, LocalNetwork, run_local
from sealroom.protocols.pjc import PjcParams, PjcResult, run_pjc, run_pjc_with
from sealroom.protocols.wire import Frame

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "pjc_kat.json"
TORSION8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
OFF_CURVE = b"\x02" + bytes(31)
Intercept = Callable[[str, str, bytes], Sequence[bytes]]


def drbg(seed: bytes) -> elgamal.Rng:
    """A deterministic byte stream (SHAKE-256 per call) standing in for os.urandom."""
    counter = [0]

    def rng(n: int) -> bytes:
        counter[0] += 1
        return hashlib.shake_256(seed + counter[0].to_bytes(8, "big")).digest(n)

    return rng


def plain(ids_a: Sequence[bytes], ids_b: Sequence[bytes], values: Sequence[int]) -> tuple[int, int]:
    mine = set(ids_a)
    hits = [v for i, v in zip(ids_b, values, strict=True) if i in mine]
    return len(hits), sum(hits)


def run(
    ids_a: Sequence[bytes],
    ids_b: Sequence[bytes],
    values: Sequence[int],
    params: PjcParams,
    *,
    intercept: Intercept | None = None,
    seeds: tuple[bytes, bytes] | None = None,
    noise: Callable[[], int] | None = None,
    workers: int = 1,
    session: str | None = None,
    timeout: float = 30.0,
) -> tuple[dict[str, Any], Channel, Channel]:
    net = LocalNetwork(["a", "b"], intercept=intercept)
    sid = session or os.urandom(16).hex()
    ca = net.channel("a", protocol=pjc.PROTOCOL, version=pjc.VERSION, session=sid, timeout=timeout)
    cb = net.channel("b", protocol=pjc.PROTOCOL, version=pjc.VERSION, session=sid, timeout=timeout)
    if seeds is None and noise is None:
        fa: Callable[[], PjcResult] = lambda: run_pjc(  # noqa: E731
            ca, role="a", ids=ids_a, params=params, workers=workers
        )
        fb: Callable[[], PjcResult] = lambda: run_pjc(  # noqa: E731
            cb, role="b", ids=ids_b, values=values, params=params, workers=workers
        )
    else:
        sa, sb = seeds or (os.urandom(16), os.urandom(16))
        fa = lambda: run_pjc_with(  # noqa: E731
            ca, role="a", ids=ids_a, values=None, params=params, workers=workers,
            rng=drbg(sa), noise=None,
        )  # fmt: skip
        fb = lambda: run_pjc_with(  # noqa: E731
            cb, role="b", ids=ids_b, values=values, params=params, workers=workers,
            rng=drbg(sb), noise=noise,
        )  # fmt: skip
    return run_local({"a": fa, "b": fb}, timeout=120), ca, cb


def _const(value: int) -> Callable[[], int]:
    return lambda: value


def ids(prefix: str, lo: int, hi: int) -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(lo, hi)]


A_IDS = ids("user-", 0, 12)
B_IDS = ids("user-", 6, 20)
B_VALUES = [(i * 37) % 101 for i in range(6, 20)]
EXACT = PjcParams(min_intersection=3, max_value=100, max_set_size=64)
DP = PjcParams(min_intersection=3, max_value=100, max_set_size=64, dp_epsilon="1.5")


def both_failed(results: dict[str, Any], match: str) -> None:
    for name, value in results.items():
        assert isinstance(value, ProtocolError), f"{name} returned {value!r}"
    assert any(match in str(v) for v in results.values()), results


# --- correctness -----------------------------------------------------------------------


def test_a_learns_size_and_sum_b_learns_neither() -> None:
    results, ca, cb = run(A_IDS, B_IDS, B_VALUES, EXACT)
    size, total = plain(A_IDS, B_IDS, B_VALUES)
    assert results["a"] == PjcResult(size, total, False, 12, 14, released=True)
    assert results["b"] == PjcResult(None, None, False, 14, 12, released=True)
    assert ca.transcript() == cb.transcript()


@settings(max_examples=25, deadline=None)
@given(
    st.sets(st.binary(max_size=4), max_size=10),
    st.dictionaries(st.binary(max_size=4), st.integers(0, 1000), max_size=10),
    st.integers(0, 4),
)
def test_property_result_equals_the_plaintext_join(
    a: set[bytes], b: dict[bytes, int], minimum: int
) -> None:
    params = PjcParams(min_intersection=minimum, max_value=1000, max_set_size=16)
    ids_b, values = list(b), list(b.values())
    results, _, _ = run(list(a), ids_b, values, params)
    size, total = plain(list(a), ids_b, values)
    assert results["a"].intersection_size == size
    assert results["a"].sum == (total if size >= minimum else None)
    assert results["b"].intersection_size is None
    assert results["b"].sum is None
    assert results["b"].released == (size >= minimum)


def test_below_the_minimum_no_sum_is_released() -> None:
    params = PjcParams(min_intersection=7, max_value=100, max_set_size=64)
    results, _, _ = run(A_IDS, B_IDS, B_VALUES, params)
    assert results["a"] == PjcResult(6, None, False, 12, 14, released=False)
    assert results["b"] == PjcResult(None, None, False, 14, 12, released=False)


def _sizes() -> tuple[list[tuple[str, int]], Intercept]:
    seen: list[tuple[str, int]] = []

    def record(sender: str, recipient: str, data: bytes) -> list[bytes]:
        seen.append((Frame.decode(data).kind, len(data)))
        return [data]

    return seen, record


def test_the_relay_cannot_tell_whether_the_minimum_was_met() -> None:
    """Same messages, same sizes, above and below the minimum."""
    above, record_above = _sizes()
    below, record_below = _sizes()
    run(A_IDS, B_IDS, B_VALUES, EXACT, intercept=record_above)
    low = PjcParams(min_intersection=7, max_value=100, max_set_size=64)
    results, _, _ = run(A_IDS, B_IDS, B_VALUES, low, intercept=record_below)
    assert results["a"].sum is None
    assert sorted(above) == sorted(below)
    assert [k for k, _ in above][-2:] == ["sum", "share"]


def test_below_the_minimum_b_does_not_decrypt_the_query() -> None:
    got: dict[str, Frame] = {}

    def keep(sender: str, recipient: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        got[f"{sender}:{f.kind}"] = f
        return [data]

    low = PjcParams(min_intersection=7, max_value=100, max_set_size=64)
    for params, decrypts in ((EXACT, True), (low, False)):
        results, _, cb = run(A_IDS, B_IDS, B_VALUES, params, intercept=keep)
        hb = got["b:hello"].blobs["key"]
        query, share = got["a:sum"].blobs["query"], got["b:share"].blobs
        context = f"sealroom/pjc/v1/{cb.session}/share".encode()
        if decrypts:
            elgamal.verify_share(hb, query, share["share"], share["proof"], context=context)
        else:
            with pytest.raises(ProtocolError, match="proof rejected"):
                elgamal.verify_share(hb, query, share["share"], share["proof"], context=context)
            assert results["b"].released is False


def test_duplicate_ids_on_a_count_once_and_empty_sets_work() -> None:
    results, _, _ = run([*A_IDS, *A_IDS], B_IDS, B_VALUES, EXACT)
    assert (results["a"].intersection_size, results["a"].sum) == plain(A_IDS, B_IDS, B_VALUES)
    assert results["a"].own_size == 12
    none = PjcParams(min_intersection=0, max_value=100, max_set_size=64)
    results, _, _ = run([], B_IDS, B_VALUES, none)
    assert results["a"] == PjcResult(0, 0, False, 0, 14, released=True)
    results, _, _ = run(A_IDS, [], [], none)
    assert results["a"] == PjcResult(0, 0, False, 12, 0, released=True)


def test_many_chunks_and_workers_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pjc, "CHUNK", 4)
    seeds = (b"seed a", b"seed b")
    one, serial, _ = run(A_IDS, B_IDS, B_VALUES, EXACT, seeds=seeds, session="ab" * 16)
    three, pooled, _ = run(A_IDS, B_IDS, B_VALUES, EXACT, seeds=seeds, session="ab" * 16, workers=3)
    assert one == three
    assert one["a"].sum == plain(A_IDS, B_IDS, B_VALUES)[1]
    assert serial.transcript() == pooled.transcript()


def test_torsion_tags_from_b_change_nothing_and_never_reach_b() -> None:
    """b adds a point of order 8 to every ciphertext component: a's query is still in the
    prime-order subgroup (b checks it) and the sum is still exact."""

    def tag(sender: str, recipient: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if f.kind != "b-pairs":
            return [data]
        cts = f.blobs["ciphertexts"]
        tagged = b"".join(
            sodium.crypto_core_ed25519_add(cts[i : i + 32], TORSION8)
            for i in range(0, len(cts), 32)
        )
        return [_replace(f, blobs={**f.blobs, "ciphertexts": tagged})]

    results, _, _ = run(A_IDS, B_IDS, B_VALUES, EXACT, intercept=tag)
    assert results["a"].sum == plain(A_IDS, B_IDS, B_VALUES)[1]
    assert results["b"].released


# --- differential privacy --------------------------------------------------------------


def test_dp_noise_is_added_under_encryption_and_clamped_to_tau() -> None:
    size, total = plain(A_IDS, B_IDS, B_VALUES)
    assert DP.noise_bound == 3067  # ceil(46 * 100 / 1.5)
    for drawn, added in ((-17, -17), (0, 0), (10**12, 3067), (-(10**12), -3067)):
        results, _, _ = run(A_IDS, B_IDS, B_VALUES, DP, seeds=(b"a", b"b"), noise=_const(drawn))
        assert results["a"] == PjcResult(size, total + added, True, 12, 14, released=True)
        assert results["b"].noisy


def test_dp_with_opendp_noise_stays_within_tau() -> None:
    results, _, _ = run(A_IDS, B_IDS, B_VALUES, DP)
    size, total = plain(A_IDS, B_IDS, B_VALUES)
    assert results["a"].intersection_size == size
    assert abs(results["a"].sum - total) <= DP.noise_bound
    assert results["a"].noisy


def test_laplace_sampler_has_the_calibrated_scale() -> None:
    params = PjcParams(min_intersection=1, max_value=50, dp_epsilon="0.5")
    sample = pjc.laplace_sampler(params)
    draws = [sample() for _ in range(4000)]
    variance = sum(d * d for d in draws) / len(draws)
    scale = 50 / 0.5  # discrete Laplace variance ~ 2 * scale^2 for a scale this large
    assert 0.7 * 2 * scale**2 < variance < 1.3 * 2 * scale**2
    with pytest.raises(InvalidInput, match="do not ask for DP"):
        pjc.laplace_sampler(EXACT)


def test_dp_clamps_values_exact_mode_rejects_them() -> None:
    values = [-5, 1000, *B_VALUES[2:]]
    clamped = [0, 100, *B_VALUES[2:]]
    results, _, _ = run(A_IDS, B_IDS, values, DP, seeds=(b"a", b"b"), noise=lambda: 0)
    assert results["a"].sum == plain(A_IDS, B_IDS, clamped)[1]
    results, _, _ = run(A_IDS, B_IDS, values, EXACT)
    assert isinstance(results["b"], InvalidInput)
    assert "max_value" in str(results["b"])
    assert isinstance(results["a"], ProtocolError)


# --- parameters and local input --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_value": 2**21}, "below 2\\^40"),
        ({"dp_epsilon": "0"}, "dp_epsilon"),
        ({"dp_epsilon": "1e-3"}, "dp_epsilon"),
        ({"dp_epsilon": "-1"}, "dp_epsilon"),
        ({"dp_epsilon": "101"}, "dp_epsilon"),
        ({"dp_epsilon": "0.00000001"}, "below 2\\^40"),
        ({"min_intersection": 2_000_000}, "min_intersection"),
        ({"max_value": 0}, "max_value"),
        ({"max_value": True}, "max_value"),
        ({"max_set_size": 0}, "max_set_size"),
    ],
)
def test_bad_parameters_are_invalid_input(kwargs: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"min_intersection": 1, "max_value": 1000, **kwargs}
    with pytest.raises(InvalidInput, match=match):
        PjcParams(**values)


def test_params_as_dict_and_result_summary() -> None:
    assert DP.as_dict() == {
        "min_intersection": 3,
        "max_value": 100,
        "max_set_size": 64,
        "dp_epsilon": "1.5",
    }
    summary = PjcResult(6, 10, True, 12, 14, released=True).public_summary()
    assert summary == {
        "protocol": "pjc",
        "version": 1,
        "intersection_size": 6,
        "sum": 10,
        "noisy": True,
        "released": True,
        "own_size": 12,
        "peer_size": 14,
    }


@pytest.mark.parametrize(
    ("role", "kwargs", "match"),
    [
        ("b", {"ids": [b"x", b"x"], "values": [1, 2]}, "distinct"),
        ("b", {"ids": [b"x"], "values": None}, "one value per id"),
        ("b", {"ids": [b"x"], "values": [1.0]}, "integers"),
        ("a", {"ids": [b"x"], "values": [1]}, "no values"),
        ("a", {"ids": ["x"]}, "bytes"),
        ("a", {"ids": [bytes([i]) for i in range(65)]}, "max_set_size"),
        ("c", {"ids": []}, "role"),
        ("a", {"ids": [], "workers": 0}, "workers"),
    ],
)
def test_bad_local_input_is_invalid_input_and_the_peer_stops(
    role: str, kwargs: dict[str, Any], match: str
) -> None:
    net = LocalNetwork(["a", "b"])
    sid = os.urandom(16).hex()
    me = "a" if role != "b" else "b"
    mine = net.channel(me, protocol=pjc.PROTOCOL, version=pjc.VERSION, session=sid)
    peer = net.channel("b" if me == "a" else "a", protocol=pjc.PROTOCOL, version=1, session=sid)
    with pytest.raises(InvalidInput, match=match):
        run_pjc(mine, role=role, params=EXACT, **kwargs)
    with pytest.raises(ProtocolError, match="rejected its own local input"):
        peer.expect(me, "hello", timeout=5)


def test_a_channel_for_another_protocol_is_refused() -> None:
    net = LocalNetwork(["a", "b"])
    ch = net.channel("a", protocol="psi", version=1, session="0" * 32)
    with pytest.raises(InvalidInput, match="pjc v1"):
        run_pjc(ch, role="a", ids=[], params=EXACT)


# --- one negative test per message -----------------------------------------------------


def _replace(f: Frame, **changes: Any) -> bytes:
    values = {k: getattr(f, k) for k in Frame.__slots__}
    values.update(changes)
    return Frame(**values).encode()


def tamper(sender: str, kind: str, fn: Callable[[Frame], list[bytes]]) -> Intercept:
    """Apply ``fn`` to the first ``kind`` message from ``sender``; pass everything else."""
    done = [False]

    def intercept(s: str, r: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if s == sender and f.kind == kind and not done[0]:
            done[0] = True
            return fn(f)
        return [data]

    return intercept


def set_field(**fields: Any) -> Callable[[Frame], list[bytes]]:
    return lambda f: [_replace(f, fields={**f.fields, **fields})]


def set_blob(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Frame], list[bytes]]:
    return lambda f: [_replace(f, blobs={**f.blobs, name: edit(f.blobs[name])})]


def drop_blob(name: str) -> Callable[[Frame], list[bytes]]:
    return lambda f: [_replace(f, blobs={k: v for k, v in f.blobs.items() if k != name})]


def dup_first(size: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:size] + data[:size] + data[2 * size :]


@pytest.mark.parametrize(
    ("sender", "kind", "fn", "match"),
    [
        ("a", "hello", set_field(max_value=99), "parameters differ from the peer's: max_value"),
        ("a", "hello", set_field(size=65), "size must be an integer in 0..64"),
        ("a", "a-masked", set_blob("elements", lambda d: d[:-32]), "fewer than 12"),
        (
            "a",
            "a-masked",
            set_blob("elements", dup_first(32)),
            "a-masked elements are not distinct",
        ),
        ("a", "a-masked", set_blob("elements", lambda d: b"\xff" * 32 + d[32:]), "not a canonical"),
        ("a", "a-masked", lambda f: [f.encode(), f.encode()], "a replayed message from a"),
        ("b", "hello", set_blob("key", lambda d: TORSION8), "key is not an element of the prime"),
        ("b", "hello", set_field(dp_epsilon="2"), "parameters differ from the peer's: dp_epsilon"),
        (
            "b",
            "b-pairs",
            set_blob("ciphertexts", lambda d: OFF_CURVE + d[32:]),
            "not a curve point",
        ),
        ("b", "b-pairs", set_blob("elements", lambda d: d + d[:32]), "must be at most 448 bytes"),
        ("b", "b-pairs", set_blob("elements", dup_first(32)), "b-pairs elements are not distinct"),
        (
            "b",
            "a-double",
            set_blob("elements", dup_first(32)),
            "a-double elements are not distinct",
        ),
        ("b", "a-double", lambda f: [], "timed out waiting for"),
        ("a", "sum", set_blob("query", lambda d: TORSION8), "query is not an element of the prime"),
        ("a", "sum", drop_blob("query"), "blobs missing ['query']"),
        ("a", "sum", set_field(meets_minimum=True), "meets_minimum must be an integer in 0..1"),
        ("a", "sum", lambda f: [], "timed out waiting for"),
    ],
)
def test_a_bad_message_ends_the_run_on_both_sides(
    sender: str, kind: str, fn: Callable[[Frame], list[bytes]], match: str
) -> None:
    results, _, _ = run(
        A_IDS, B_IDS, B_VALUES, EXACT, intercept=tamper(sender, kind, fn), timeout=3
    )
    both_failed(results, match)


@pytest.mark.parametrize("overlap", [0, 14])
def test_an_invalid_ciphertext_fails_the_same_whether_or_not_it_matches(overlap: int) -> None:
    """No selective failure: every point from b is decoded before a looks at the matches."""
    a_ids = B_IDS[:overlap] + ids("other-", 0, 14 - overlap)
    edit = set_blob("ciphertexts", lambda d: d[:-32] + OFF_CURVE)
    results, _, _ = run(a_ids, B_IDS, B_VALUES, EXACT, intercept=tamper("b", "b-pairs", edit))
    both_failed(results, "b-pairs ciphertexts contains a value that is not a curve point")


@pytest.mark.parametrize(
    ("params", "fn", "match"),
    [
        (EXACT, set_blob("proof", lambda d: bytes([d[0] ^ 1]) + d[1:]), "proof rejected"),
        (EXACT, set_blob("share", lambda d: elgamal.add(d, elgamal.BASE)), "proof rejected"),
        (EXACT, set_blob("share", lambda d: TORSION8), "share is not an element of the prime"),
        (DP, drop_blob("noise"), "blobs missing ['noise']"),
        (DP, set_blob("noise", lambda d: elgamal.base_mul(5) + d[32:]), "proof rejected"),
    ],
)
def test_a_bad_share_fails_a_and_b_has_already_finished(
    params: PjcParams, fn: Callable[[Frame], list[bytes]], match: str
) -> None:
    """The share is the last message: b has returned (released=True); a gets no sum."""
    results, _, _ = run(
        A_IDS, B_IDS, B_VALUES, params, intercept=tamper("b", "share", fn), noise=lambda: 3,
        seeds=(b"a", b"b"),
    )  # fmt: skip
    assert isinstance(results["a"], ProtocolError)
    assert match in str(results["a"])
    assert isinstance(results["b"], PjcResult)
    assert results["b"].released


# --- known-answer vectors --------------------------------------------------------------

KAT_CASES: list[tuple[str, PjcParams, int | None]] = [
    ("exact", EXACT, None),
    ("below-minimum", PjcParams(min_intersection=7, max_value=100, max_set_size=64), None),
    ("dp", DP, -17),
]


def generate_vectors() -> str:
    cases = []
    for name, params, noise in KAT_CASES:
        seeds = (f"kat {name} a".encode(), f"kat {name} b".encode())
        session = hashlib.sha256(name.encode()).hexdigest()[:32]
        results, ca, cb = run(
            A_IDS, B_IDS, B_VALUES, params, seeds=seeds, session=session,
            noise=None if noise is None else _const(noise),
        )  # fmt: skip
        assert ca.transcript() == cb.transcript()
        cases.append(
            {
                "name": name,
                "params": params.as_dict(),
                "session": session,
                "seed_a": seeds[0].hex(),
                "seed_b": seeds[1].hex(),
                "noise": noise,
                "result_a": results["a"].public_summary(),
                "result_b": results["b"].public_summary(),
                "transcript": {f"{s}->{r}": h for (s, r), h in ca.transcript().items()},
            }
        )
    doc = {
        "description": (
            "PJC v1 seeded runs: rng(n) = SHAKE-256(seed || be64(call number)) truncated to n "
            "bytes, per party; noise is the injected DP draw; transcript = sealroom-stream-v1 "
            "SHA-256 of each direction's messages"
        ),
        "a_ids": [i.hex() for i in A_IDS],
        "b_ids": [i.hex() for i in B_IDS],
        "b_values": B_VALUES,
        "cases": cases,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_are_reproduced_byte_for_byte() -> None:
    assert VECTORS.read_text() == generate_vectors()


def test_known_answer_vectors_match_the_plaintext_join() -> None:
    doc = json.loads(VECTORS.read_text())
    size, total = plain(A_IDS, B_IDS, B_VALUES)
    got = {c["name"]: c["result_a"] for c in doc["cases"]}
    assert (got["exact"]["intersection_size"], got["exact"]["sum"]) == (size, total)
    assert (got["below-minimum"]["intersection_size"], got["below-minimum"]["sum"]) == (size, None)
    assert got["dp"]["sum"] == total - 17


if __name__ == "__main__":  # regenerate: python tests/protocols/test_pjc.py
    VECTORS.write_text(generate_vectors())
