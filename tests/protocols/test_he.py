"""Homomorphic training (protocols/he): agreement with plaintext gradient descent, exact
known-answer vectors, what the trainer and the owners can see, and one negative test per
message type (setup, weights, partial, aggregate, done)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
import tenseal as ts
import tenseal.sealapi as sealapi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import he
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.wire import Frame

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "he_vectors.json"
TRAINER = "trainer"
Intercept = Callable[[str, str, bytes], Sequence[bytes]]


# --- running the protocol -----------------------------------------------------------------


def run(
    params: he.HeParams,
    parts: Sequence[tuple[Any, Any]],
    *,
    intercept: Intercept | None = None,
    key: he.HeKey | None = None,
    initial: Any | None = None,
    owner_params: he.HeParams | None = None,
    timeouts: dict[str, float] | None = None,
) -> dict[str, object]:
    net = LocalNetwork([TRAINER, *params.owners], intercept=intercept)
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(
            p,
            protocol=he.PROTOCOL,
            version=he.VERSION,
            session=session,
            timeout=(timeouts or {}).get(p, 60.0),
        )
        for p in net.parties
    }
    start = np.zeros(params.features + 1) if initial is None else initial
    fns: dict[str, Callable[[], object]] = {
        TRAINER: lambda: he.train_as_trainer_with(
            chans[TRAINER], params=params, key=key, initial=start
        )
    }
    for owner, (X, y) in zip(params.owners, parts, strict=True):
        fns[owner] = functools.partial(
            he.serve_as_owner,
            chans[owner],
            trainer=TRAINER,
            params=owner_params or params,
            X=X,
            y=y,
        )
    return run_local(fns, timeout=120)


def theta_of(model: he.HeModel) -> np.ndarray:
    return np.array([*model.weights, model.intercept])


@pytest.fixture(scope="module")
def key() -> he.HeKey:
    """One trainer key for the whole module (a real run makes a fresh one)."""
    return he.HeKey.generate(he.suite_for(linear_params()))


@pytest.fixture(scope="module")
def public(key: he.HeKey) -> Any:
    return ts.context_from(key.public)


def linear_params(**kw: Any) -> he.HeParams:
    base: dict[str, Any] = {
        "model": "linear",
        "features": 2,
        "rounds": 2,
        "learning_rate": "0.5",
        "owners": ("o1", "o2"),
    }
    base.update(kw)
    return he.HeParams(**base)


def small_parts(seed: int = 1, rows: Sequence[int] = (5, 4), features: int = 2) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(n, features)), rng.integers(0, 2, size=n).astype(float)) for n in rows
    ]


def spector_parts(owners: int) -> list[tuple[np.ndarray, np.ndarray]]:
    data = sm.datasets.spector.load_pandas().data
    X = data[["GPA", "TUCE", "PSI"]].to_numpy(dtype=float)
    y = data["GRADE"].to_numpy(dtype=float)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    cuts = np.linspace(0, len(y), owners + 1).astype(int)
    return [(X[a:b], y[a:b]) for a, b in itertools.pairwise(cuts)]


class Recorder:
    """An intercept that logs (sender, recipient, kind) and keeps the public context."""

    def __init__(self, then: Intercept | None = None) -> None:
        self.log: list[tuple[str, str, str]] = []
        self.frames: list[Frame] = []
        self.context: bytes | None = None
        self.then = then
        self.lock = threading.Lock()

    def __call__(self, sender: str, recipient: str, data: bytes) -> Sequence[bytes]:
        frame = Frame.decode(data)
        with self.lock:
            self.log.append((sender, recipient, frame.kind))
            self.frames.append(frame)
            if frame.kind == he.K_SETUP and self.context is None:
                self.context = frame.blobs["context"]
        return self.then(sender, recipient, data) if self.then else [data]

    def public(self) -> Any:
        assert self.context is not None
        return ts.context_from(self.context)


# --- agreement with plaintext gradient descent, on real data ------------------------------


@pytest.mark.parametrize(("model", "rate", "rounds"), [("linear", "0.5", 5), ("logistic", "1", 3)])
def test_spector_matches_plaintext_gradient_descent(model: str, rate: str, rounds: int) -> None:
    owners = ("o1", "o2", "o3")
    params = he.HeParams(
        model=model,  # type: ignore[arg-type]
        features=3,
        rounds=rounds,
        learning_rate=rate,
        owners=owners,
    )
    parts = spector_parts(3)
    rec = Recorder()
    net = LocalNetwork([TRAINER, *owners], intercept=rec)
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(p, protocol=he.PROTOCOL, version=1, session=session) for p in net.parties
    }
    fns: dict[str, Callable[[], object]] = {
        TRAINER: lambda: he.train_as_trainer(chans[TRAINER], params=params, rng_seed=7)
    }
    for o, (X, y) in zip(owners, parts, strict=True):
        fns[o] = functools.partial(
            he.serve_as_owner, chans[o], trainer=TRAINER, params=params, X=X, y=y
        )
    results = run_local(fns)
    assert all(results[o] is None for o in owners), results
    got = results[TRAINER]
    assert isinstance(got, he.HeModel)
    want = he.train_plaintext(params, parts, rng_seed=7)
    # CKKS error on the decrypted sums is ~1e-9 here; it compounds over rounds.
    assert np.abs(theta_of(got) - theta_of(want)).max() < 1e-6
    assert got.samples == want.samples == 32
    assert got.as_dict()["params"] == params.as_dict()
    assert theta_of(want).std() > 0.05  # the model moved: the comparison is not 0 == 0

    # The message flow: the trainer receives exactly one ciphertext per round, from the
    # last owner, and nothing else; owners only talk along the chain.
    to_trainer = [(s, k) for s, r, k in rec.log if r == TRAINER]
    assert to_trainer == [("o3", he.K_AGGREGATE)] * rounds
    chain = Counter((s, r, k) for s, r, k in rec.log if s != TRAINER)
    assert chain == {
        ("o1", "o2", he.K_PARTIAL): rounds,
        ("o2", "o3", he.K_PARTIAL): rounds,
        ("o3", TRAINER, he.K_AGGREGATE): rounds,
    }
    # Ciphertext sizes are fixed by the parameters: owners with different row counts
    # (11, 11, 10) send the same number of bytes, give or take compression.
    suite = he.suite_for(params)
    sizes: dict[str, list[int]] = {}
    for f in rec.frames:
        if "ciphertext" in f.blobs:
            sizes.setdefault(f.kind, []).append(len(f.blobs["ciphertext"]))
    assert set(sizes) == {he.K_WEIGHTS, he.K_PARTIAL, he.K_AGGREGATE}
    for kind, values in sizes.items():
        assert max(values) - min(values) < 0.01 * max(values), (kind, values)
        assert max(values) <= suite.ciphertext_limit(2 if kind == he.K_WEIGHTS else 1)

    # What owners receive cannot decrypt: no secret key in the context, at all.
    public = rec.public()
    assert not public.is_private()
    assert not public.has_secret_key()
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector(public, [1.0, 2.0]).decrypt()
    assert rec.context is not None
    assert 3 not in proto_fields(rec.context)  # TenSEALContextProto.private_context


def proto_fields(data: bytes) -> set[int]:
    """Top-level field numbers of a protobuf message (enough to see what a context carries)."""
    seen: set[int] = set()
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        seen.add(number)
        if wire == 0:
            varint()
        elif wire == 2:
            length = varint()  # (not `i += varint()`: that reads i before the call moves it)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return seen


def test_the_field_check_would_see_a_secret_key(key: he.HeKey) -> None:
    full = key.context.serialize(save_secret_key=True)
    assert 3 in proto_fields(full)
    assert 3 not in proto_fields(key.public)


def test_what_the_cubic_sigmoid_costs_on_spector() -> None:
    """The documented price of the cubic: a different fixed point, the same classifier.

    Its slope at 0 is 0.150 instead of 0.25, so gradient descent settles on weights
    about 25% larger than the maximum-likelihood ones; the decisions are the same.
    """
    params = he.HeParams(
        model="logistic", features=3, rounds=300, learning_rate="1", owners=("o1", "o2")
    )
    parts = spector_parts(2)
    approx = theta_of(he.train_plaintext(params, parts))
    X = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt = np.hstack([X, np.ones((len(y), 1))])
    mle = np.asarray(sm.Logit(y, xt).fit(disp=0).params)

    def loglik(t: np.ndarray) -> float:
        z = xt @ t
        return float(np.sum(y * z - np.logaddexp(0, z)))

    assert np.array_equal(xt @ approx > 0, xt @ mle > 0)
    assert 0 < loglik(mle) - loglik(approx) < 0.25
    ratio = approx[[0, 2, 3]] / mle[[0, 2, 3]]  # the three coefficients that matter
    assert np.all((ratio > 1.1) & (ratio < 1.35)), ratio


def test_a_larger_ring_works() -> None:
    """N = 16384: same primes, more slots, a 38 MB context; one encrypted round, two owners."""
    params = linear_params(poly_modulus_degree=16384)
    suite = he.suite_for(params)
    assert suite.slots == 8192
    big = he.HeKey.generate(suite)
    public = ts.context_from(big.public)
    parts = small_parts()
    theta = np.array([0.2, -0.4, 0.3])
    weights = ts.ckks_vector_from(public, he.encrypt_weights(big.context, suite, theta))
    acc = None
    for X, y in parts:
        matrix = he.owner_matrix(suite, he.owner_coefficients(params, X, y))
        acc = he.contribute(public, suite, weights, matrix, acc)
    assert acc is not None
    grad, count = he.decode_aggregate(
        suite, ts.ckks_vector_from(big.context, acc.serialize()).decrypt()
    )
    want = np.sum([he.plaintext_gradient(params, X, y, theta) for X, y in parts], axis=0)
    assert count == pytest.approx(want[-1], abs=1e-4)
    assert np.abs(grad - want[:-1]).max() < 1e-6


# --- the aggregate the trainer decrypts ---------------------------------------------------


def test_every_decrypted_slot_is_the_aggregate_and_nothing_else(key: he.HeKey) -> None:
    """The trainer's key opens all S slots, not just the vector's declared size."""
    params = linear_params(rounds=1)
    parts = small_parts()
    rec = Recorder()
    theta = np.array([0.3, -0.2, 0.1])
    results = run(params, parts, intercept=rec, key=key, initial=theta)
    assert isinstance(results[TRAINER], he.HeModel), results
    (agg,) = [f for f in rec.frames if f.kind == he.K_AGGREGATE]
    vec = ts.ckks_vector_from(key.context, agg.blobs["ciphertext"])
    suite = he.suite_for(params)
    slots = np.array(vec.decrypt())
    assert slots.shape == (suite.slots,)
    want = np.sum([he.plaintext_gradient(params, X, y, theta) for X, y in parts], axis=0)
    want = want * suite.sum_scale
    rows = slots.reshape(-1, suite.width)
    assert np.abs(rows[:, : suite.variables] - want).max() < 1e-7
    assert np.abs(rows[:, suite.variables :]).max(initial=0.0) < 1e-7


def test_decode_rejects_what_is_not_a_clean_aggregate() -> None:
    suite = he.suite_for(linear_params())
    good = np.tile([1.0, 2.0, 3.0, 4.0 * suite.sum_scale], suite.slots // suite.width)
    grad, count = he.decode_aggregate(suite, good)
    assert np.allclose(grad, np.array([1.0, 2.0, 3.0]) / suite.sum_scale)
    assert count == 4.0
    bumped = good.copy()
    bumped[suite.width * 7 + 1] += 0.5  # one replica differs: not the periodic layout
    with pytest.raises(ProtocolError, match="not well formed"):
        he.decode_aggregate(suite, bumped)
    with pytest.raises(ProtocolError, match="agreed number of slots"):
        he.decode_aggregate(suite, good[:-1])


def test_owners_rerandomise_what_they_forward(key: he.HeKey) -> None:
    params = linear_params()
    suite = he.suite_for(params)
    public = ts.context_from(key.public)
    weights = ts.ckks_vector_from(
        public, he.encrypt_weights(key.context, suite, np.array([0.5, 1, -1]))
    )
    matrix = he.owner_matrix(suite, he.owner_coefficients(params, *small_parts()[0]))
    a = he.contribute(public, suite, weights, matrix, None)
    b = he.contribute(public, suite, weights, matrix, None)
    assert a.serialize() != b.serialize()
    da = np.array(ts.ckks_vector_from(key.context, a.serialize()).decrypt())
    db = np.array(ts.ckks_vector_from(key.context, b.serialize()).decrypt())
    assert np.abs(da - db).max() < 1e-7


# --- properties ---------------------------------------------------------------------------


def _dataset(draw: st.DrawFn, model: str, features: int, rows: int) -> tuple[Any, Any]:
    value = st.floats(-3, 3, allow_nan=False, width=32)
    X = np.array(
        draw(
            st.lists(
                st.lists(value, min_size=features, max_size=features), min_size=rows, max_size=rows
            )
        )
    )
    labels = st.sampled_from([0.0, 1.0]) if model == "logistic" else value
    y = np.array(draw(st.lists(labels, min_size=rows, max_size=rows)))
    return X, y


@st.composite
def problems(draw: st.DrawFn, max_features: int = 4) -> tuple[he.HeParams, Any, Any, Any]:
    model = draw(st.sampled_from(["linear", "logistic"]))
    features = draw(st.integers(1, max_features))
    params = he.HeParams(
        model=model,  # type: ignore[arg-type]
        features=features,
        rounds=1,
        learning_rate="0.1",
        owners=("a", "b"),
    )
    n1, n2 = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    a = _dataset(draw, model, features, n1)
    b = _dataset(draw, model, features, n2)
    theta = np.array(
        draw(
            st.lists(
                st.floats(-1.5, 1.5, allow_nan=False), min_size=features + 1, max_size=features + 1
            )
        )
    )
    return params, a, b, theta


@given(problems())
@settings(max_examples=60, deadline=None)
def test_owner_coefficients_are_the_per_row_gradient(problem: Any) -> None:
    """sum_owners C_j^T Phi(theta) = the per-row gradient over the pooled rows (plus N)."""
    params, a, b, theta = problem
    suite = he.suite_for(params)
    pooled_c = he.owner_coefficients(params, *a) + he.owner_coefficients(params, *b)
    via_moments = he.monomial_vector(suite, theta) @ pooled_c / suite.sum_scale
    X = np.vstack([a[0], b[0]])
    y = np.concatenate([a[1], b[1]])
    direct = he.plaintext_gradient(params, X, y, theta)
    assert np.allclose(via_moments[: suite.variables], direct, rtol=1e-9, atol=1e-9)
    assert np.abs(via_moments[suite.variables :]).max(initial=0.0) == 0.0


@given(problems(max_features=3))
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_encrypted_round_equals_plaintext(key: he.HeKey, public: Any, problem: Any) -> None:
    """The CKKS path (encrypt, two owners' chain steps, decrypt, decode) = the plaintext sum."""
    params, a, b, theta = problem
    suite = he.suite_for(params)
    weights = ts.ckks_vector_from(public, he.encrypt_weights(key.context, suite, theta))
    step1 = he.contribute(
        public, suite, weights, he.owner_matrix(suite, he.owner_coefficients(params, *a)), None
    )
    step2 = he.contribute(
        public, suite, weights, he.owner_matrix(suite, he.owner_coefficients(params, *b)), step1
    )
    grad, count = he.decode_aggregate(
        suite, ts.ckks_vector_from(key.context, step2.serialize()).decrypt()
    )
    X = np.vstack([a[0], b[0]])
    y = np.concatenate([a[1], b[1]])
    want = he.plaintext_gradient(params, X, y, theta)
    assert abs(count - want[-1]) < 1e-4
    assert np.abs(grad - want[:-1]).max() < 1e-5 * (1 + np.abs(want).max())


# --- known-answer vectors (exact rationals) ------------------------------------------------


def _fr(x: Fraction) -> str:
    return str(x)


def _poly_mul(
    a: dict[tuple[int, ...], Fraction], b: dict[tuple[int, ...], Fraction]
) -> dict[tuple[int, ...], Fraction]:
    out: dict[tuple[int, ...], Fraction] = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(sorted(ma + mb))
            out[m] = out.get(m, Fraction(0)) + ca * cb
    return out


def _exact_case(
    model: str,
    rate: str,
    owners_data: list[tuple[list[list[int]], list[int]]],
    theta: list[Fraction],
) -> dict[str, Any]:
    """Everything the protocol computes for one round, in exact arithmetic, derived
    independently of he.py: the residual polynomial expanded row by row."""
    features = len(owners_data[0][0][0])
    params = he.HeParams(
        model=model,  # type: ignore[arg-type]
        features=features,
        rounds=1,
        learning_rate=rate,
        owners=tuple(f"o{i + 1}" for i in range(len(owners_data))),
    )
    suite = he.suite_for(params)
    e = features + 1
    q = 1 if model == "linear" else 3
    c = [Fraction(v) for v in (("0", "1") if model == "linear" else he.SIGMOID_COEFFICIENTS)]
    scale = Fraction(1, 2**he.SUM_SCALE_BITS)
    index = {m: i for i, m in enumerate(suite.monomials)}
    v = [*theta, Fraction(1)]
    phi = [math.prod((v[u] for u in m), start=Fraction(1)) for m in suite.monomials]
    phi += [Fraction(0)] * (suite.inputs - len(phi))
    coefficient_sets = []
    total = [Fraction(0)] * suite.width
    direct = [Fraction(0)] * (features + 2)
    for X, y in owners_data:
        C = [[Fraction(0)] * suite.width for _ in range(suite.inputs)]
        for row, label in zip(X, y, strict=True):
            xt = [Fraction(x) for x in row] + [Fraction(1)]
            linear_form: dict[tuple[int, ...], Fraction] = {
                (u,): xt[u] for u in range(features + 1)
            }
            const: dict[tuple[int, ...], Fraction] = {(e,): Fraction(1)}
            poly: dict[tuple[int, ...], Fraction] = {}
            for t in range(q + 1):
                term: dict[tuple[int, ...], Fraction] = {
                    (): c[t] - (Fraction(label) if t == 0 else 0)
                }
                for _ in range(t):
                    term = _poly_mul(term, linear_form)
                for _ in range(q - t):
                    term = _poly_mul(term, const)
                for m, val in term.items():
                    poly[m] = poly.get(m, Fraction(0)) + val
            for m, val in poly.items():
                if val == 0:
                    continue
                assert m in index, f"monomial {m} has a non-zero coefficient but is not sent"
                for k in range(features + 1):
                    C[index[m]][k] += xt[k] * val * scale
            C[index[(e,) * q]][e] += scale
            # the per-row gradient, directly
            z = sum(xt[u] * theta[u] for u in range(features + 1))
            r = sum(c[t] * z**t for t in range(q + 1)) - label
            for k in range(features + 1):
                direct[k] += xt[k] * r
            direct[e] += 1
        coefficient_sets.append([[_fr(x) for x in rowc] for rowc in C])
        for p in range(suite.inputs):
            for k in range(suite.width):
                total[k] += C[p][k] * phi[p]
    sums = [x / scale for x in total]
    assert sums[: features + 2] == direct
    assert all(x == 0 for x in sums[features + 2 :])
    n = sums[e]
    nxt = [theta[k] - Fraction(rate) * sums[k] / n for k in range(features + 1)]
    return {
        "params": params.as_dict(),
        "setup_fields": suite.setup_fields(params),
        "monomials": [list(m) for m in suite.monomials],
        "inputs": suite.inputs,
        "width": suite.width,
        "owners": [{"X": X, "y": y} for X, y in owners_data],
        "theta": [_fr(t) for t in theta],
        "phi": [_fr(x) for x in phi],
        "coefficients": coefficient_sets,
        "gradient": [_fr(x) for x in sums[: features + 1]],
        "count": int(n),
        "theta_next": [_fr(x) for x in nxt],
    }


def generate_vectors() -> str:
    ckks = {}
    for degree in he.SUPPORTED_DEGREES:
        moduli = sealapi.CoeffModulus.Create(degree, list(he.COEFF_MOD_BITS))
        ckks[str(degree)] = {
            "coeff_mod_bits": list(he.COEFF_MOD_BITS),
            "primes": [int(m.value()) for m in moduli],
            "max_bits_128": sealapi.CoeffModulus.MaxBitCount(degree, sealapi.SEC_LEVEL_TYPE.TC128),
        }
    data = [
        ([[1, 0], [0, 2], [-1, 1]], [1, 0, 1]),
        ([[2, -1], [1, 1]], [0, 1]),
    ]
    theta = [Fraction(1, 4), Fraction(-1, 2), Fraction(1, 8)]
    doc = {
        "description": "sealroom he v1: one round of the homomorphic training protocol in exact "
        "rational arithmetic (coefficients are scaled by 2^-sum_scale_bits)",
        "ckks": ckks,
        "cases": [
            _exact_case("linear", "0.5", data, theta),
            _exact_case("logistic", "1", data, theta),
        ],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def test_vectors_are_reproducible_byte_for_byte() -> None:
    assert VECTORS.read_text() == generate_vectors()


def _floats(values: Sequence[str]) -> np.ndarray:
    return np.array([float(Fraction(v)) for v in values])


@pytest.mark.parametrize("case", [0, 1])
def test_implementation_matches_the_vectors(key: he.HeKey, case: int) -> None:
    doc = json.loads(VECTORS.read_text())
    for degree, facts in doc["ckks"].items():
        suite = he.suite_for(linear_params(poly_modulus_degree=int(degree)))
        assert list(suite.primes) == facts["primes"]
        assert sum(facts["coeff_mod_bits"]) <= facts["max_bits_128"]
    v = doc["cases"][case]
    p = v["params"]
    params = he.HeParams(
        model=p["model"],
        features=p["features"],
        rounds=p["rounds"],
        learning_rate=p["learning_rate"],
        owners=tuple(p["owners"]),
    )
    suite = he.suite_for(params)
    assert [list(m) for m in suite.monomials] == v["monomials"]
    assert (suite.inputs, suite.width) == (v["inputs"], v["width"])
    assert suite.setup_fields(params) == v["setup_fields"]
    theta = _floats(v["theta"])
    assert np.allclose(he.monomial_vector(suite, theta), _floats(v["phi"]), rtol=1e-15, atol=0)
    parts = [(np.array(o["X"], dtype=float), np.array(o["y"], dtype=float)) for o in v["owners"]]
    for (X, y), coefs in zip(parts, v["coefficients"], strict=True):
        want = np.array([_floats(r) for r in coefs])
        assert np.allclose(he.owner_coefficients(params, X, y), want, rtol=1e-12, atol=1e-15)
    # And the whole protocol, encrypted, on the same inputs.
    results = run(params, parts, key=key, initial=theta)
    got = results[TRAINER]
    assert isinstance(got, he.HeModel), results
    assert got.samples == v["count"]
    assert np.abs(theta_of(got) - _floats(v["theta_next"])).max() < 1e-7


def test_sigmoid_constants_are_the_documented_fit() -> None:
    """Least squares on [-8, 8] (Kim et al. 2018): the constants and the max error we state."""
    x = np.linspace(-he.SIGMOID_INTERVAL, he.SIGMOID_INTERVAL, 20001)
    sig = 1 / (1 + np.exp(-x))
    basis = np.stack([np.ones_like(x), x, x**3], axis=1)
    fit = np.linalg.lstsq(basis, sig, rcond=None)[0]
    c = [float(Fraction(s)) for s in he.SIGMOID_COEFFICIENTS]
    assert np.allclose(fit, [c[0], c[1], c[3]], atol=2e-5)
    approx = c[0] + c[1] * x + c[3] * x**3
    assert 0.10 < np.abs(approx - sig).max() < 0.115


# --- parameters and local inputs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"owners": ("o1",)}, "2..64 owners"),
        ({"owners": ("o1", "o1")}, "distinct"),
        ({"owners": ("o1", "Bad Name")}, "distinct, valid"),
        ({"learning_rate": "1e-3"}, "plain decimal"),
        ({"learning_rate": "0"}, r"learning_rate must be in"),
        ({"features": 0}, "features"),
        ({"model": "logistic", "features": 11}, "1..10 for logistic"),
        ({"rounds": 0}, "rounds"),
        ({"poly_modulus_degree": 4096}, "poly_modulus_degree"),
        ({"model": "probit"}, "model"),
    ],
)
def test_bad_parameters_are_refused(change: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        linear_params(**change)


def test_an_owner_with_bad_data_stops_everyone(key: he.HeKey) -> None:
    params = linear_params()
    parts = small_parts()
    parts[1] = (np.array([[np.nan, 1.0]] * 4), parts[1][1])
    results = run(params, parts, key=key)
    assert isinstance(results["o2"], InvalidInput)
    assert "finite" in str(results["o2"])
    for p in (TRAINER, "o1"):
        assert isinstance(results[p], ProtocolError), results
        assert "local input was rejected" in str(results[p])


# --- negative tests: one set per message type ---------------------------------------------


def on(
    kind: str,
    action: Callable[[Frame, bytes], Sequence[bytes]],
    *,
    recipient: str | None = None,
    nth: int = 0,
) -> Intercept:
    """Apply ``action`` to the ``nth`` message of ``kind`` (to ``recipient``)."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def intercept(sender: str, to: str, data: bytes) -> Sequence[bytes]:
        frame = Frame.decode(data)
        if frame.kind != kind or (recipient is not None and to != recipient):
            return [data]
        with lock:
            i = seen[kind]
            seen[kind] += 1
        return action(frame, data) if i == nth else [data]

    return intercept


def drop(frame: Frame, data: bytes) -> Sequence[bytes]:
    return []


def replay(frame: Frame, data: bytes) -> Sequence[bytes]:
    return [data, data]


def edit(
    fields: dict[str, Any] | None = None, blobs: dict[str, bytes] | None = None
) -> Callable[[Frame, bytes], Sequence[bytes]]:
    def action(frame: Frame, data: bytes) -> Sequence[bytes]:
        return [
            dataclasses.replace(
                frame,
                fields={**frame.fields, **(fields or {})},
                blobs={**frame.blobs, **(blobs or {})},
            ).encode()
        ]

    return action


def reblob(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Frame, bytes], Sequence[bytes]]:
    def action(frame: Frame, data: bytes) -> Sequence[bytes]:
        return edit(blobs={name: fn(frame.blobs[name])})(frame, data)

    return action


def flip(blob: bytes) -> bytes:
    mid = len(blob) // 2
    return blob[:mid] + bytes([blob[mid] ^ 0x40]) + blob[mid + 1 :]


def all_failed(results: dict[str, object], match: str, *, spared: Sequence[str] = ()) -> None:
    """Every party raised ProtocolError (``spared`` ones may have finished), and one says why."""
    for name, value in results.items():
        if name in spared:
            continue
        assert isinstance(value, ProtocolError), f"{name} returned {value!r}"
    assert any(
        isinstance(v, ProtocolError) and re.search(match, str(v)) for v in results.values()
    ), results


_FOREIGN: dict[str, bytes] = {}


def foreign_context(kind: str) -> bytes:
    """A context that is not the trainer's: with its secret key, or with other parameters."""
    if kind not in _FOREIGN:
        if kind == "secret":
            other = he.HeKey.generate(he.suite_for(linear_params()))
            _FOREIGN[kind] = other.context.serialize(save_secret_key=True)
        else:
            ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
            ctx.global_scale = 2.0**40
            _FOREIGN[kind] = ctx.serialize(save_secret_key=False, save_galois_keys=False)
    return _FOREIGN[kind]


CASES: list[tuple[str, Callable[[], Intercept], str]] = [
    # setup
    (
        "setup-extra-field",
        lambda: on(he.K_SETUP, edit(fields={"note": "x"})),
        r"unexpected \['note'\]",
    ),
    (
        "setup-corrupt-context",
        lambda: on(he.K_SETUP, reblob("context", lambda b: b[: len(b) // 3])),
        "not a valid TenSEAL context",
    ),
    (
        "setup-secret-key",
        lambda: on(he.K_SETUP, edit(blobs={"context": foreign_context("secret")})),
        "carries a secret key",
    ),
    (
        "setup-other-ring",
        lambda: on(he.K_SETUP, edit(blobs={"context": foreign_context("params")})),
        "not the agreed CKKS parameters",
    ),
    (
        "setup-residual",
        lambda: on(he.K_SETUP, edit(fields={"residual": ["0", "2"]})),
        "residual does not match",
    ),
    ("setup-replay", lambda: on(he.K_SETUP, replay), "replayed"),
    # weights
    (
        "weights-corrupt",
        lambda: on(he.K_WEIGHTS, reblob("ciphertext", lambda b: b[:-7])),
        "not a valid CKKS vector",
    ),
    (
        "weights-round",
        lambda: on(he.K_WEIGHTS, edit(fields={"round": 2})),
        "round must be an integer in 1..1",
    ),
    ("weights-replay", lambda: on(he.K_WEIGHTS, replay, recipient="o1"), "replayed"),
    # partial
    (
        "partial-truncated",
        lambda: on(he.K_PARTIAL, reblob("ciphertext", lambda b: b[:-1])),
        "partial from o1: ciphertext is not a valid",
    ),
    # A flipped bit either breaks the encoding or lands in a coefficient: then the trainer
    # decrypts noise in every slot and the periodic layout check refuses it.
    (
        "partial-bit-flip",
        lambda: on(he.K_PARTIAL, reblob("ciphertext", flip)),
        "partial from o1: ciphertext|not well formed",
    ),
    ("partial-view", lambda: on(he.K_PARTIAL, reblob("view", flip)), "different weights"),
    (
        "partial-missing-view",
        lambda: on(
            he.K_PARTIAL,
            lambda f, d: [
                dataclasses.replace(f, blobs={"ciphertext": f.blobs["ciphertext"]}).encode()
            ],
        ),
        r"missing \['view'\]",
    ),
    ("partial-replay", lambda: on(he.K_PARTIAL, replay), "replayed"),
    # aggregate
    (
        "aggregate-corrupt",
        lambda: on(he.K_AGGREGATE, reblob("ciphertext", lambda b: b[:100])),
        "not a valid CKKS vector",
    ),
    ("aggregate-view", lambda: on(he.K_AGGREGATE, reblob("view", flip)), "did not see the weights"),
    ("aggregate-round", lambda: on(he.K_AGGREGATE, edit(fields={"round": 7})), "round must be"),
    ("aggregate-replay", lambda: on(he.K_AGGREGATE, replay), "replayed"),
]


@pytest.mark.parametrize(("name", "make", "match"), CASES, ids=[c[0] for c in CASES])
def test_tampered_messages_end_the_run_everywhere(
    key: he.HeKey, name: str, make: Callable[[], Intercept], match: str
) -> None:
    results = run(linear_params(), small_parts(), intercept=make(), key=key)
    all_failed(results, match)


def test_setup_parameter_mismatch_fails_on_both_sides(key: he.HeKey) -> None:
    results = run(
        linear_params(),
        small_parts(),
        key=key,
        owner_params=linear_params(learning_rate="0.25"),
    )
    all_failed(results, "learning_rate does not match this owner's parameters")


def _forged(
    rec: Recorder, values: Callable[[he.HeSuite], np.ndarray]
) -> Callable[[Frame, bytes], Sequence[bytes]]:
    """Replace a ciphertext by a fresh encryption, under the trainer's public key, of other values."""

    def action(frame: Frame, data: bytes) -> Sequence[bytes]:
        vec = ts.ckks_vector(rec.public(), values(he.suite_for(linear_params())).tolist())
        return edit(blobs={"ciphertext": vec.serialize()})(frame, data)

    return action


def _last_level(
    rec: Recorder, values: Callable[[he.HeSuite], np.ndarray], *, width: int | None = None
) -> Callable[[Frame, bytes], Sequence[bytes]]:
    """A well-formed-looking aggregate: encrypted under the trainer's key and brought down one level."""

    def action(frame: Frame, data: bytes) -> Sequence[bytes]:
        suite = he.suite_for(linear_params())
        public = rec.public()
        target = values(suite)
        one = ts.ckks_vector(public, np.pad([1.0], (0, suite.inputs - 1)).tolist())
        coefs = np.zeros((suite.inputs, width or suite.slots))
        coefs[0] = target
        vec = one.mm(ts.plain_tensor(coefs))  # = target, at the last level, clean
        return edit(blobs={"ciphertext": vec.serialize()})(frame, data)

    return action


def test_weights_of_the_wrong_size_are_refused(key: he.HeKey) -> None:
    rec = Recorder()
    rec.then = on(he.K_WEIGHTS, _forged(rec, lambda s: np.ones(2)), recipient="o1")
    all_failed(
        run(linear_params(), small_parts(), intercept=rec, key=key),
        "wrong size, level or scale",
    )


def test_different_weights_for_different_owners_are_detected(key: he.HeKey) -> None:
    """Equivocation: a valid encryption of other weights to o2 only; the chain's view check sees it."""
    rec = Recorder()
    rec.then = on(
        he.K_WEIGHTS,
        _forged(rec, lambda s: np.pad([9.0, 0, 0, 1], (0, s.inputs - 4))),
        recipient="o2",
    )
    all_failed(
        run(linear_params(), small_parts(), intercept=rec, key=key),
        "different owners different weights",
    )


def test_a_partial_at_the_wrong_level_is_refused(key: he.HeKey) -> None:
    """A fresh (top-level) ciphertext is larger than any last-level one: the size bound says no."""
    rec = Recorder()
    rec.then = on(he.K_PARTIAL, _forged(rec, lambda s: np.zeros(s.slots)))
    all_failed(
        run(linear_params(), small_parts(), intercept=rec, key=key),
        "partial from o1: blob ciphertext must be at most",
    )


def test_a_partial_of_the_wrong_size_is_refused(key: he.HeKey) -> None:
    rec = Recorder()
    rec.then = on(he.K_PARTIAL, _last_level(rec, lambda s: np.ones(8), width=8))
    all_failed(
        run(linear_params(), small_parts(), intercept=rec, key=key),
        "partial from o1: ciphertext has the wrong size, level or scale",
    )


def test_an_aggregate_that_is_not_a_gradient_is_refused(key: he.HeKey) -> None:
    rec = Recorder()
    rec.then = on(
        he.K_AGGREGATE, _last_level(rec, lambda s: np.random.default_rng(3).normal(size=s.slots))
    )
    all_failed(run(linear_params(), small_parts(), intercept=rec, key=key), "not well formed")


def test_an_aggregate_with_a_fractional_count_is_refused(key: he.HeKey) -> None:
    rec = Recorder()
    rec.then = on(
        he.K_AGGREGATE,
        _last_level(rec, lambda s: np.tile([0.0, 0.0, 0.0, 8.5 * s.sum_scale], s.slots // s.width)),
    )
    all_failed(
        run(linear_params(), small_parts(), intercept=rec, key=key),
        "row count is not a plausible integer",
    )


@pytest.mark.parametrize(
    ("kind", "recipient", "waiter"),
    [
        (he.K_SETUP, "o1", "o1"),
        (he.K_WEIGHTS, "o2", "o2"),
        (he.K_PARTIAL, None, "o2"),
        (he.K_AGGREGATE, None, TRAINER),
    ],
)
def test_a_dropped_message_times_out_everywhere(
    key: he.HeKey, kind: str, recipient: str | None, waiter: str
) -> None:
    results = run(
        linear_params(),
        small_parts(),
        intercept=on(kind, drop, recipient=recipient),
        key=key,
        timeouts={waiter: 1.5},  # the others keep a long one: the waiter must be first
    )
    # The waiting party times out, unless a later message on the same stream arrives first
    # and the channel sees the gap (out of order).
    all_failed(results, "timed out waiting for|out-of-order message")
    assert re.search("timed out|out-of-order", str(results[waiter]))


@pytest.mark.parametrize(
    ("action", "match"),
    [(edit(fields={"rounds": 3}), "rounds must be an integer in 2..2"), (drop, "timed out")],
    ids=["tampered", "dropped"],
)
def test_done_tampered_or_dropped(
    key: he.HeKey, action: Callable[[Frame, bytes], Sequence[bytes]], match: str
) -> None:
    """The last message: owners fail; the trainer, who waits for nothing after it, has its model.

    (A replayed ``done`` is never read: its receiver has finished.)
    """
    results = run(
        linear_params(),
        small_parts(),
        intercept=on(he.K_DONE, action, recipient="o2"),
        key=key,
        timeouts={"o2": 1.5},
    )
    assert isinstance(results[TRAINER], he.HeModel)
    assert isinstance(results["o2"], ProtocolError)
    assert match in str(results["o2"])


if __name__ == "__main__":  # regenerate: python tests/protocols/test_he.py
    VECTORS.write_text(generate_vectors())
