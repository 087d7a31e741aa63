"""ECDH-PSI: known answers, agreement with the plaintext computation, thresholds, and
every message broken in turn (each must end the run on every side, with no result).

Regenerate the vectors (only after a deliberate wire change) with
``python tests/protocols/test_psi.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import psi
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.group import _P, hash_to_group, mul
from sealroom.protocols.psi import (
    PROTOCOL,
    VERSION,
    BelowThreshold,
    PsiParams,
    PsiResult,
    keyword_overlap,
    normalize_keyword,
    run_psi,
    run_psi_with,
)
from sealroom.protocols.wire import Frame

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
Intercept = Callable[[str, str, bytes], Sequence[bytes]]
Shuffle = Callable[[list[bytes]], None]
Outcome = PsiResult | BaseException
ROLE_OF = {"alice": "a", "bob": "b"}


# --- helpers ------------------------------------------------------------------------------


def seeded_shuffle(seed: bytes) -> Shuffle:
    """Deterministic Fisher-Yates for vectors only: call c uses SHAKE-256(seed || be32(c));
    for i = n-1 .. 1, j = be64(next 8 bytes) mod (i + 1) (biased; never use outside tests)."""
    calls = [0]

    def shuffle(items: list[bytes]) -> None:
        stream = hashlib.shake_256(seed + calls[0].to_bytes(4, "big")).digest(8 * len(items))
        calls[0] += 1
        for k, i in enumerate(range(len(items) - 1, 0, -1)):
            j = int.from_bytes(stream[8 * k : 8 * k + 8], "big") % (i + 1)
            items[i], items[j] = items[j], items[i]

    return shuffle


def run_pair(
    a_set: Iterable[bytes],
    b_set: Iterable[bytes],
    params: PsiParams,
    *,
    b_params: PsiParams | None = None,
    intercept: Intercept | None = None,
    timeout: float = 20.0,
    workers: int = 1,
    fixed: dict[str, tuple[bytes, Shuffle]] | None = None,
    session: str | None = None,
    roles: tuple[str, str] = ("a", "b"),
) -> dict[str, Outcome]:
    """Run alice (role a) against bob (role b); each party's result or exception."""
    net = LocalNetwork(["alice", "bob"], intercept=intercept)
    sid = session or os.urandom(16).hex()
    inputs = {
        "alice": (roles[0], list(a_set), params),
        "bob": (roles[1], list(b_set), b_params or params),
    }

    def party(me: str) -> Callable[[], PsiResult]:
        role, elements, prm = inputs[me]
        ch = net.channel(me, protocol=PROTOCOL, version=VERSION, session=sid, timeout=timeout)
        if fixed is None:
            return lambda: run_psi(ch, role=role, elements=elements, params=prm, workers=workers)
        scalar, shuffle = fixed[me]
        return lambda: run_psi_with(
            ch,
            role=role,
            elements=elements,
            params=prm,
            scalar=scalar,
            shuffle=shuffle,
            workers=workers,
        )

    return run_local({"alice": party("alice"), "bob": party("bob")}, timeout=120)


def plain(a_set: Iterable[bytes], b_set: Iterable[bytes]) -> tuple[int, int, set[bytes]]:
    a, b = set(a_set), set(b_set)
    return len(a), len(b), a & b


def check_correct(
    results: dict[str, Outcome], a_set: Iterable[bytes], b_set: Iterable[bytes], params: PsiParams
) -> None:
    na, nb, inter = plain(a_set, b_set)
    if len(inter) < params.threshold:
        for name, r in results.items():
            assert isinstance(r, BelowThreshold), (name, r)
            assert not re.search(r"\d", str(r)), "a below-threshold error must not carry a number"
        return
    ra, rb = results["alice"], results["bob"]
    assert isinstance(ra, PsiResult), ra
    assert isinstance(rb, PsiResult), rb
    assert (ra.own_size, ra.peer_size, rb.own_size, rb.peer_size) == (na, nb, nb, na)
    jaccard = Fraction(len(inter), na + nb - len(inter))
    if params.mode == "cardinality":
        for r in (ra, rb):
            assert r.intersection_size == len(inter)
            assert r.jaccard == jaccard
            assert r.intersection is None
    else:
        assert ra.intersection == tuple(sorted(inter))
        assert ra.intersection_size == len(inter)
        assert ra.jaccard == jaccard
        assert (rb.intersection_size, rb.jaccard, rb.intersection) == (None, None, None)


def all_failed(results: dict[str, Outcome], match: str) -> None:
    """Every party raised ProtocolError (no result anywhere), and one of them says ``match``."""
    for name, r in results.items():
        assert isinstance(r, ProtocolError), f"{name} got {r!r}"
        assert not isinstance(r, BelowThreshold)
    assert any(match in str(r) for r in results.values()), results


def rewrite(kind: str, change: Callable[[Frame], Frame | None], *, index: int = 0) -> Intercept:
    """Replace (or drop, when ``change`` returns None) the ``index``-th message of ``kind``."""
    seen = [0]

    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if f.kind != kind:
            return [data]
        seen[0] += 1
        if seen[0] - 1 != index:
            return [data]
        new = change(f)
        return [] if new is None else [new.encode()]

    return intercept


def replay(kind: str) -> Intercept:
    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        return [data, data] if Frame.decode(data).kind == kind else [data]

    return intercept


def with_items(f: Frame, fn: Callable[[list[bytes]], list[bytes]]) -> Frame:
    raw = f.blobs["items"]
    items = fn([raw[i : i + 32] for i in range(0, len(raw), 32)])
    return with_blobs(f, {"items": b"".join(items)})


def with_blobs(f: Frame, blobs: dict[str, bytes]) -> Frame:
    return Frame(**{**{k: getattr(f, k) for k in Frame.__slots__}, "blobs": blobs})


def with_fields(f: Frame, **fields: Any) -> Frame:
    return Frame(
        **{**{k: getattr(f, k) for k in Frame.__slots__}, "fields": {**f.fields, **fields}}
    )


A = [b"alice-%d" % i for i in range(12)] + [b"shared-%d" % i for i in range(8)]
B = [b"bob-%d" % i for i in range(9)] + [b"shared-%d" % i for i in range(8)]
CARD = PsiParams(mode="cardinality")
INTER = PsiParams(mode="intersection")


# --- correctness ------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [CARD, INTER], ids=["cardinality", "intersection"])
def test_a_clean_run_gives_the_plaintext_answer(params: PsiParams) -> None:
    results = run_pair(A + A[:3], B, params)  # duplicates are merged before hashing
    check_correct(results, A, B, params)


subsets = st.sets(st.binary(max_size=6), max_size=10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shared=subsets,
    only_a=subsets,
    only_b=subsets,
    mode=st.sampled_from(["cardinality", "intersection"]),
    threshold=st.integers(min_value=0, max_value=6),
)
def test_output_equals_the_plaintext_computation(
    shared: set[bytes], only_a: set[bytes], only_b: set[bytes], mode: str, threshold: int
) -> None:
    a_set = (shared | only_a) or {b"a-only"}
    b_set = (shared | only_b) or {b"b-only"}
    params = PsiParams(mode=mode, threshold=threshold)  # type: ignore[arg-type]
    check_correct(run_pair(a_set, b_set, params), a_set, b_set, params)


def test_disjoint_and_identical_sets() -> None:
    check_correct(run_pair([b"x"], [b"y"], CARD), [b"x"], [b"y"], CARD)
    check_correct(run_pair(A, A, INTER), A, A, INTER)


def test_two_worker_threads_give_the_same_bytes_as_one() -> None:
    big_a = [b"%d" % i for i in range(1500)]
    big_b = [b"%d" % i for i in range(700, 2200)]
    frames: dict[int, list[bytes]] = {}
    for workers in (1, 2):
        seen: list[bytes] = []

        def record(s: str, r: str, d: bytes, seen: list[bytes] = seen) -> list[bytes]:
            seen.append(d)
            return [d]

        fixed = {
            "alice": (b"\x01" * 32, seeded_shuffle(b"a")),
            "bob": (b"\x02" * 32, seeded_shuffle(b"b")),
        }
        results = run_pair(
            big_a, big_b, CARD, workers=workers, fixed=fixed, intercept=record, session=SESSION
        )
        check_correct(results, big_a, big_b, CARD)
        frames[workers] = sorted(seen)
    assert frames[1] == frames[2]


def test_lists_longer_than_one_message_travel_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psi, "CHUNK", 4)
    kinds: list[str] = []

    def record(s: str, r: str, d: bytes) -> list[bytes]:
        kinds.append(Frame.decode(d).kind)
        return [d]

    for params in (CARD, INTER):
        kinds.clear()
        check_correct(run_pair(A, B, params, intercept=record), A, B, params)
        assert kinds.count("a-masked") == 5
        assert kinds.count("b-masked") == 5
    # A chunk in the middle with one item too few ends the run.
    cut = rewrite("b-masked", lambda f: with_items(f, lambda xs: xs[:-1]), index=2)
    all_failed(run_pair(A, B, CARD, intercept=cut), "fewer than 4")


# --- what is shuffled and bound ------------------------------------------------------------


def test_every_list_goes_out_in_the_order_the_shuffle_chose() -> None:
    """a's own order, b's own order, and (cardinality) a NEW order for the doubly masked list."""
    calls: dict[str, list[int]] = {"alice": [], "bob": []}
    captured: dict[str, bytes] = {}

    def reverse_for(me: str) -> Shuffle:
        def shuffle(items: list[bytes]) -> None:
            calls[me].append(len(items))
            items.reverse()

        return shuffle

    def record(s: str, r: str, d: bytes) -> list[bytes]:
        f = Frame.decode(d)
        if "items" in f.blobs:
            captured[f.kind] = f.blobs["items"]
        return [d]

    sa = b"\x05" * 32
    fixed = {"alice": (sa, reverse_for("alice")), "bob": (b"\x06" * 32, reverse_for("bob"))}
    check_correct(run_pair(A, B, CARD, fixed=fixed, intercept=record), A, B, CARD)
    assert calls == {"alice": [len(A), len(B)], "bob": [len(B)]}
    b_masked = [captured["b-masked"][i : i + 32] for i in range(0, 32 * len(B), 32)]
    doubled = [mul(sa, x) for x in b_masked]
    b_double = [captured["b-double"][i : i + 32] for i in range(0, 32 * len(B), 32)]
    assert b_double == doubled[::-1]  # b cannot line it up with what it sent


def test_masked_values_are_bound_to_the_session() -> None:
    masked: list[bytes] = []

    def record(s: str, r: str, d: bytes) -> list[bytes]:
        f = Frame.decode(d)
        if f.kind == "a-masked":
            masked.append(f.blobs["items"])
        return [d]

    for session in ("1" * 32, "2" * 32):
        fixed = {"alice": (b"\x07" * 32, lambda xs: None), "bob": (b"\x08" * 32, lambda xs: None)}
        run_pair(A, B, CARD, fixed=fixed, intercept=record, session=session)
    assert len(masked) == 2
    assert masked[0] != masked[1]
    assert not {masked[0][i : i + 32] for i in range(0, len(masked[0]), 32)} & {
        masked[1][i : i + 32] for i in range(0, len(masked[1]), 32)
    }


# --- threshold ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cardinality", "intersection"])
def test_below_threshold_both_sides_learn_only_that(mode: str) -> None:
    sizes: dict[str, int] = {}

    def record(s: str, r: str, d: bytes) -> list[bytes]:
        f = Frame.decode(d)
        if f.kind in ("outcome", "done"):
            sizes[f.kind] = len(d)
        return [d]

    at = PsiParams(mode=mode, threshold=8)  # type: ignore[arg-type]
    above = PsiParams(mode=mode, threshold=9)  # type: ignore[arg-type]
    check_correct(run_pair(A, B, at, intercept=record), A, B, at)
    passed = dict(sizes)
    results = run_pair(A, B, above, intercept=record)
    check_correct(results, A, B, above)
    assert sizes == passed, "the last message has the same length whether or not it passed"
    for r in results.values():
        assert isinstance(r, BelowThreshold)
        assert isinstance(r, ProtocolError)
        assert "8" not in str(r)
        assert "8" not in r.public_message


# --- parameters and local input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("b_params", "match"),
    [
        (
            PsiParams(mode="intersection"),
            "parameters differ: mode 'cardinality' (a) != 'intersection' (b)",
        ),
        (PsiParams(mode="cardinality", threshold=3), "threshold 0 (a) != 3 (b)"),
        (PsiParams(mode="cardinality", max_set_size=100), "max_set_size 1000000 (a) != 100 (b)"),
    ],
)
def test_a_parameter_mismatch_fails_on_both_sides(b_params: PsiParams, match: str) -> None:
    all_failed(run_pair(A, B, CARD, b_params=b_params), match)


def test_two_initiators_fail_on_both_sides() -> None:
    all_failed(run_pair(A, B, CARD, roles=("a", "a"), timeout=2), "expected accept")


def test_a_party_whose_own_input_is_refused_tells_its_peer() -> None:
    small = PsiParams(mode="cardinality", max_set_size=len(A))
    results = run_pair(A, [*B, *(b"x%d" % i for i in range(len(A)))], small)
    assert isinstance(results["bob"], InvalidInput)
    assert "more than max_set_size" in str(results["bob"])
    assert isinstance(results["alice"], ProtocolError)
    assert "bob aborted the run: the peer refused its own input" in str(results["alice"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "union"}, "mode must be one of"),
        ({"mode": "cardinality", "threshold": -1}, "threshold"),
        ({"mode": "cardinality", "threshold": True}, "threshold"),
        ({"mode": "cardinality", "max_set_size": 0}, "max_set_size"),
        ({"mode": "cardinality", "max_set_size": psi.MAX_SET_SIZE + 1}, "max_set_size"),
        ({"mode": "cardinality", "max_set_size": 5, "threshold": 6}, "threshold"),
    ],
)
def test_bad_params_are_invalid_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        PsiParams(**kwargs)


def test_bad_local_arguments_are_invalid_input() -> None:
    def channel(protocol: str = PROTOCOL) -> Any:
        net = LocalNetwork(["alice", "bob"])
        return net.channel("alice", protocol=protocol, version=VERSION, session="0" * 32)

    too_many = {
        "elements": [b"1", b"2", b"3"],
        "params": PsiParams(mode="cardinality", max_set_size=2),
    }
    for kwargs, match in [
        ({"elements": []}, "the set is empty"),
        ({"elements": ["text"]}, "must be bytes"),
        (too_many, "more than max_set_size = 2"),
        ({"role": "c"}, "role must be one of"),
        ({"workers": 0}, "workers must be"),
        ({"params": {"mode": "cardinality"}}, "params must be PsiParams"),
    ]:
        args: dict[str, Any] = {"role": "a", "elements": [b"1"], "params": CARD, **kwargs}
        with pytest.raises(InvalidInput, match=match):
            run_psi(channel(), **args)
    with pytest.raises(InvalidInput, match="the channel must be for psi v1"):
        run_psi(channel("pjc"), role="a", elements=[b"1"], params=CARD)
    with pytest.raises(InvalidInput, match="32 bytes"):
        run_psi_with(
            channel(),
            role="a",
            elements=[b"1"],
            params=CARD,
            scalar=b"short",
            shuffle=lambda x: None,
        )


# --- one broken message of each kind: every side fails, nobody gets a result ----------------


def _outcome(status: int, count: int) -> Callable[[Frame], Frame]:
    return lambda f: with_blobs(f, {"outcome": bytes([status]) + count.to_bytes(8, "big")})


NOT_CANONICAL = (_P + 3).to_bytes(32, "little")
LOW_ORDER = bytes(32)  # u = 0, a point of order 2

# A dropped message leaves both parties waiting (the receiver for it, the sender for the reply):
# whichever times out first aborts the other, whose error then names the gap in the sequence.
BROKEN: list[tuple[str, str, Intercept, str]] = [
    # hello (a -> b)
    (
        "cardinality",
        "hello",
        rewrite("hello", lambda f: with_fields(f, threshold=2)),
        "parameters differ",
    ),
    (
        "cardinality",
        "hello",
        rewrite("hello", lambda f: with_fields(f, extra=1)),
        "unexpected ['extra']",
    ),
    (
        "intersection",
        "hello",
        rewrite("hello", lambda f: with_fields(f, size=10**9)),
        "size must be an integer",
    ),
    ("cardinality", "hello", rewrite("hello", lambda f: None), "timed out waiting for"),
    # accept (b -> a)
    (
        "cardinality",
        "accept",
        rewrite("accept", lambda f: with_fields(f, size=0)),
        "size must be an integer",
    ),
    ("intersection", "accept", replay("accept"), "replayed"),
    # a-masked (a -> b)
    (
        "cardinality",
        "a-masked",
        rewrite("a-masked", lambda f: with_items(f, lambda x: x[:-1])),
        "fewer than 20",
    ),
    (
        "cardinality",
        "a-masked",
        rewrite("a-masked", lambda f: with_items(f, lambda x: [*x[:-1], NOT_CANONICAL])),
        "not a canonical group element",
    ),
    (
        "intersection",
        "a-masked",
        rewrite("a-masked", lambda f: with_items(f, lambda x: [x[0], *x[:-1]])),
        "a-masked from alice repeats an element",
    ),
    ("cardinality", "a-masked", replay("a-masked"), "replayed"),
    (
        "intersection",
        "a-masked",
        rewrite("a-masked", lambda f: None),
        "timed out waiting for",
    ),
    # b-masked (b -> a)
    (
        "cardinality",
        "b-masked",
        rewrite("b-masked", lambda f: with_items(f, lambda x: [*x, x[0]])),
        "must be at most 544 bytes",
    ),
    (
        "intersection",
        "b-masked",
        rewrite("b-masked", lambda f: with_items(f, lambda x: [LOW_ORDER, *x[1:]])),
        "low order",
    ),
    (
        "cardinality",
        "b-masked",
        rewrite("b-masked", lambda f: with_blobs(f, {"item": f.blobs["items"]})),
        "blobs missing ['items'], unexpected ['item']",
    ),
    ("intersection", "b-masked", replay("b-masked"), "replayed"),
    # b-double (a -> b, cardinality)
    (
        "cardinality",
        "b-double",
        rewrite("b-double", lambda f: with_items(f, lambda x: [x[1], *x[1:]])),
        "b-double from alice repeats an element",
    ),
    (
        "cardinality",
        "b-double",
        rewrite("b-double", lambda f: with_items(f, lambda x: x[:3])),
        "fewer than 17",
    ),
    (
        "cardinality",
        "b-double",
        rewrite("b-double", lambda f: None),
        "timed out waiting for",
    ),
    # a-double (b -> a, intersection)
    (
        "intersection",
        "a-double",
        rewrite("a-double", lambda f: with_items(f, lambda x: x[1:])),
        "fewer than 20",
    ),
    (
        "intersection",
        "a-double",
        rewrite("a-double", lambda f: with_items(f, lambda x: [NOT_CANONICAL, *x[1:]])),
        "not a canonical group element",
    ),
    (
        "intersection",
        "a-double",
        rewrite("a-double", lambda f: None),
        "timed out waiting for",
    ),
]


@pytest.mark.parametrize(
    ("mode", "intercept", "match"),
    [(m, i, s) for m, _, i, s in BROKEN],
    ids=[f"{m[:5]}-{k}-{s[:24]}" for m, k, _, s in BROKEN],
)
def test_a_broken_message_ends_the_run_everywhere(
    mode: str, intercept: Intercept, match: str
) -> None:
    params = PsiParams(mode=mode)  # type: ignore[arg-type]
    all_failed(run_pair(A, B, params, intercept=intercept, timeout=1.5), match)


def test_every_message_kind_is_covered() -> None:
    kinds = {k for _, k, _, _ in BROKEN} | {k for k, _, _ in LAST}
    assert kinds == {
        "hello",
        "accept",
        "a-masked",
        "b-masked",
        "b-double",
        "a-double",
        "outcome",
        "done",
    }


LAST: list[tuple[str, Callable[[Frame], Frame | None], str]] = [
    ("outcome", _outcome(2, 8), "the outcome is not a possible result"),
    ("outcome", _outcome(1, 18), "the outcome is not a possible result"),  # more than min(|A|, |B|)
    ("outcome", _outcome(0, 0), "the outcome is not a possible result"),  # below, with no threshold
    (
        "outcome",
        lambda f: with_blobs(f, {"outcome": f.blobs["outcome"][:8]}),
        "must be exactly 9 bytes",
    ),
    ("done", lambda f: with_blobs(f, {"status": b"\x07"}), "status must be 0 or 1"),
    ("done", lambda f: None, "timed out waiting for done"),
]


@pytest.mark.parametrize(
    ("kind", "change", "match"), LAST, ids=[f"{k}-{m[:20]}" for k, _, m in LAST]
)
def test_a_broken_last_message_fails_its_receiver_and_splits_the_transcripts(
    kind: str, change: Callable[[Frame], Frame | None], match: str
) -> None:
    """Nothing comes after the last message, so its sender cannot know it went wrong; the
    receiver fails with no result, and the two transcripts differ, so the signed receipts
    that close every run cannot match."""
    mode = "cardinality" if kind == "outcome" else "intersection"
    receiver, sender = ("alice", "bob") if kind == "outcome" else ("bob", "alice")
    net = LocalNetwork(["alice", "bob"], intercept=rewrite(kind, change))
    sid = os.urandom(16).hex()
    ch = {
        p: net.channel(p, protocol=PROTOCOL, version=VERSION, session=sid, timeout=1.5)
        for p in ("alice", "bob")
    }
    params = PsiParams(mode=mode)  # type: ignore[arg-type]
    elements = {"alice": A, "bob": B}
    results = run_local(
        {
            p: (lambda p=p: run_psi(ch[p], role=ROLE_OF[p], elements=elements[p], params=params))
            for p in ch
        }
    )
    assert isinstance(results[receiver], ProtocolError)
    assert match in str(results[receiver])
    assert isinstance(results[sender], PsiResult)
    assert ch["alice"].transcript() != ch["bob"].transcript()


# --- private discovery ----------------------------------------------------------------------


def test_keyword_normalisation() -> None:
    assert normalize_keyword("  Machine\u3000LEARNING ") == "machine learning"
    assert normalize_keyword("\uff34\uff24\uff38") == "tdx"  # full width
    assert normalize_keyword("Straße") == normalize_keyword("STRASSE") == "strasse"
    assert normalize_keyword("e\u0301") == normalize_keyword("\u00e9")
    with pytest.raises(InvalidInput, match="strings"):
        normalize_keyword(b"x")  # type: ignore[arg-type]


def test_keyword_overlap_gives_jaccard_on_normalised_sets() -> None:
    net = LocalNetwork(["alice", "bob"])
    sid = os.urandom(16).hex()
    ca = net.channel("alice", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    cb = net.channel("bob", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    mine = ["Genomics", "genomics ", "Rare  Disease", "EHR", ""]
    theirs = ["rare disease", "GENOMICS", "claims", "imaging", "ehr"]
    results = run_local(
        {
            "a": lambda: keyword_overlap(ca, role="a", keywords=mine),
            "b": lambda: keyword_overlap(cb, role="b", keywords=theirs),
        }
    )
    for r, own, peer in ((results["a"], 3, 5), (results["b"], 5, 3)):
        assert isinstance(r, PsiResult)
        assert (r.own_size, r.peer_size, r.intersection_size) == (own, peer, 3)
        assert r.jaccard == Fraction(3, 5)
        assert r.public_summary()["jaccard"] == "3/5"
    net = LocalNetwork(["alice", "bob"])
    ca = net.channel("alice", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    cb = net.channel("bob", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    refused = run_local(
        {
            "a": lambda: keyword_overlap(ca, role="a", keywords=["  ", ""]),
            "b": lambda: keyword_overlap(cb, role="b", keywords=theirs),
        }
    )
    assert isinstance(refused["a"], InvalidInput)
    assert "no keywords" in str(refused["a"])
    assert isinstance(refused["b"], ProtocolError)
    assert "the peer refused its own input" in str(refused["b"])


def test_keyword_overlap_threshold() -> None:
    net = LocalNetwork(["alice", "bob"])
    sid = os.urandom(16).hex()
    ca = net.channel("alice", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    cb = net.channel("bob", protocol=PROTOCOL, version=VERSION, session=sid, timeout=20)
    results = run_local(
        {
            "a": lambda: keyword_overlap(ca, role="a", keywords=["x", "y"], threshold=2),
            "b": lambda: keyword_overlap(cb, role="b", keywords=["x", "z"], threshold=2),
        }
    )
    assert all(isinstance(r, BelowThreshold) for r in results.values())


def test_public_summary() -> None:
    r = PsiResult(3, 4, 2, Fraction(2, 5), (b"b", b"a"))
    s = r.public_summary()
    assert s["jaccard"] == "2/5"
    assert s["intersection_size"] == 2
    assert s == PsiResult(3, 4, 2, Fraction(2, 5), (b"a", b"b")).public_summary()
    assert str(s["intersection_digest"]).startswith("sha256:")
    json.dumps(s)
    assert PsiResult(3, 4, None, None, None).public_summary()["intersection_digest"] is None


# --- known-answer vectors -------------------------------------------------------------------


VECTOR_CASES: dict[str, tuple[PsiParams, list[bytes], list[bytes]]] = {
    "psi_cardinality.json": (
        PsiParams(mode="cardinality", threshold=2, max_set_size=8),
        [b"apple", b"banana", b"cherry", b"date", b"elder"],
        [b"banana", b"date", b"fig", b"grape", b"apple", b"kiwi"],
    ),
    "psi_intersection.json": (
        PsiParams(mode="intersection", max_set_size=8),
        [b"apple", b"banana", b"cherry", b"date", b"elder"],
        [b"banana", b"date", b"fig", b"grape", b"apple", b"kiwi"],
    ),
    "psi_below_threshold.json": (
        PsiParams(mode="cardinality", threshold=4, max_set_size=8),
        [b"apple", b"banana", b"cherry", b"date", b"elder"],
        [b"banana", b"date", b"fig", b"grape", b"apple", b"kiwi"],
    ),
}
SESSION = "5e55" * 8


def _vector(params: PsiParams, a_set: list[bytes], b_set: list[bytes]) -> dict[str, Any]:
    scalars = {
        p: hashlib.sha256(b"sealroom psi vector scalar " + p.encode()).digest()
        for p in ("alice", "bob")
    }
    seeds = {p: b"sealroom psi vector shuffle " + p.encode() for p in ("alice", "bob")}
    streams: dict[str, list[dict[str, str]]] = {"alice->bob": [], "bob->alice": []}

    def record(s: str, r: str, d: bytes) -> list[bytes]:
        streams[f"{s}->{r}"].append({"kind": Frame.decode(d).kind, "frame": d.hex()})
        return [d]

    fixed = {p: (scalars[p], seeded_shuffle(seeds[p])) for p in scalars}
    results = run_pair(a_set, b_set, params, fixed=fixed, intercept=record, session=SESSION)
    outputs: dict[str, Any] = {}
    for p, r in sorted(results.items()):
        if isinstance(r, BelowThreshold):
            outputs[p] = "below threshold"
        elif isinstance(r, PsiResult):
            outputs[p] = {
                **r.public_summary(),
                "intersection": None
                if r.intersection is None
                else [e.hex() for e in r.intersection],
            }
        else:
            raise r
    return {
        "description": "sealroom ECDH-PSI v1 run between alice (role a) and bob (role b); "
        "frames are the exact bytes on each stream, in order",
        "protocol": PROTOCOL,
        "version": VERSION,
        "session": SESSION,
        "params": params.as_dict(),
        "hash_domain": f"sealroom/{PROTOCOL}/v{VERSION}/{SESSION}",
        "shuffle": "Fisher-Yates: the c-th call (from 0) on a list of n uses S = SHAKE-256(seed || "
        "be32(c)); for k = 0, 1, ..., with i = n-1-k down to 1: j = be64(S[8k:8k+8]) mod (i+1), "
        "swap items i and j. The first call shuffles the party's own elements before masking; "
        "a's second call (cardinality) shuffles the doubly masked b-masked list.",
        "alice": {
            "role": "a",
            "elements": [e.hex() for e in a_set],
            "scalar": scalars["alice"].hex(),
            "shuffle_seed": seeds["alice"].hex(),
        },
        "bob": {
            "role": "b",
            "elements": [e.hex() for e in b_set],
            "scalar": scalars["bob"].hex(),
            "shuffle_seed": seeds["bob"].hex(),
        },
        "streams": streams,
        "outputs": outputs,
    }


def generate_vectors() -> dict[str, str]:
    return {
        name: json.dumps(_vector(*case), indent=1, sort_keys=True) + "\n"
        for name, case in VECTOR_CASES.items()
    }


@pytest.mark.parametrize("name", sorted(VECTOR_CASES))
def test_known_answer_vectors_byte_for_byte(name: str) -> None:
    expected = (VECTORS / name).read_text()
    assert _vector(*VECTOR_CASES[name]) == json.loads(expected)
    assert generate_vectors()[name] == expected


@pytest.mark.parametrize("name", ["psi_cardinality.json", "psi_intersection.json"])
def test_vector_frames_follow_the_message_flow(name: str) -> None:
    """Recompute every list in the vector from its description with the group primitives."""
    v = json.loads((VECTORS / name).read_text())
    domain = v["hash_domain"].encode()
    sa, sb = (bytes.fromhex(v[p]["scalar"]) for p in ("alice", "bob"))
    shuffles = {p: seeded_shuffle(bytes.fromhex(v[p]["shuffle_seed"])) for p in ("alice", "bob")}
    sets = {p: [bytes.fromhex(e) for e in v[p]["elements"]] for p in ("alice", "bob")}
    frames = {
        k: [Frame.decode(bytes.fromhex(m["frame"])) for m in msgs]
        for k, msgs in v["streams"].items()
    }

    def items(stream: str, kind: str) -> list[bytes]:
        (f,) = [f for f in frames[stream] if f.kind == kind]
        return f.items("items", size=32, max_count=64)

    for p in sets:
        shuffles[p](sets[p])
    a_masked = [mul(sa, h) for h in hash_to_group(sets["alice"], domain=domain)]
    b_masked = [mul(sb, h) for h in hash_to_group(sets["bob"], domain=domain)]
    assert items("alice->bob", "a-masked") == a_masked
    assert items("bob->alice", "b-masked") == b_masked
    if v["params"]["mode"] == "cardinality":
        b_double = [mul(sa, x) for x in b_masked]
        shuffles["alice"](b_double)
        assert items("alice->bob", "b-double") == b_double
        count = len({mul(sb, x) for x in a_masked} & set(b_double))
        (outcome,) = [f for f in frames["bob->alice"] if f.kind == "outcome"]
        assert outcome.blobs["outcome"] == b"\x01" + count.to_bytes(8, "big")
    else:
        assert items("bob->alice", "a-double") == [mul(sb, x) for x in a_masked]
    assert [f.kind for f in frames["alice->bob"]][:2] == ["hello", "a-masked"]


if __name__ == "__main__":
    for file_name, text in generate_vectors().items():
        (VECTORS / file_name).write_text(text)
        print(f"wrote {VECTORS / file_name}", file=sys.stderr)
