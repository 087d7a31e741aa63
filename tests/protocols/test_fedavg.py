"""Federated logistic regression over secure aggregation: accuracy, encodings, DP, failures.

Regenerate the known-answer file with ``python tests/protocols/test_fedavg.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import fedavg, secagg
from sealroom.protocols.channel import LocalNetwork, run_local
from sealroom.protocols.fedavg import (
    DPConfig,
    FedAvgConfig,
    FederatedModel,
    OwnerData,
    decode_signed,
    encode_signed,
    fit_centralized,
    train_federated,
)
from sealroom.protocols.wire import Frame

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "secagg_fedavg.json"
OWNERS = ("o1", "o2", "o3")
Intercept = Callable[[str, str, bytes], Sequence[bytes]]


def spector() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    data = sm.datasets.spector.load_pandas()
    return data.exog.to_numpy(dtype=float), data.endog.to_numpy(dtype=float)


def split(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], k: int) -> list[OwnerData]:
    parts = np.array_split(np.arange(len(y)), k)
    return [OwnerData(x[p], y[p]) for p in parts]


def train(
    config: FedAvgConfig,
    data: Mapping[str, OwnerData],
    *,
    intercept: Intercept | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    parties = (config.aggregator, *config.owners)
    net = LocalNetwork(parties, intercept=intercept)
    session = os.urandom(16).hex()
    chans = {
        p: net.channel(
            p, protocol=secagg.PROTOCOL, version=secagg.VERSION, session=session, timeout=30
        )
        for p in parties
    }
    fns: dict[str, Callable[[], Any]] = {}
    for p in parties:
        fns[p] = lambda p=p: train_federated(
            chans[p], config=config, data=data.get(p), timeout=timeout
        )
    return run_local(fns, timeout=120)


# --- known answers --------------------------------------------------------------------


def build_vectors() -> dict[str, Any]:
    base = {"aggregator": "agg", "owners": OWNERS, "features": 3}
    configs = {
        "default": FedAvgConfig(**base),
        "bound-100-five-owners": FedAvgConfig(
            aggregator="agg", owners=("a", "b", "c", "d", "e"), features=2, update_bound=100.0
        ),
        "64-bit": FedAvgConfig(**base, modulus_bits=64),
        "gaussian": FedAvgConfig(
            **base, standardize=False, rounds=20, dp=DPConfig("gaussian", 1.0, 0.5)
        ),
        "laplace": FedAvgConfig(
            **base, standardize=False, rounds=10, dp=DPConfig("laplace", 0.5, 1.0)
        ),
    }
    delta = np.array([0.1, -0.25, 3.0, -7.5])
    out: dict[str, Any] = {
        "description": "fedavg fixed-point encodings, precision and OpenDP accounting",
        "signed": {
            str(bits): [
                int(v)
                for v in encode_signed(
                    np.array([0, 1, -1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1))]), bits=bits
                )
            ]
            for bits in (12, 32, 64)
        },
        "configs": {},
    }
    for name, config in configs.items():
        entry: dict[str, Any] = {
            "config": config.as_dict(),
            "digest": config.digest(),
            "precision_bits": config.precision_bits,
            "dp": fedavg._dp_report(config),
        }
        if config.dp is None:
            update = fedavg._encode_update(config, delta, weight=0.375)
            entry["update_of_delta_weight_0.375"] = [int(v) for v in update]
        out["configs"][name] = entry
    return out


def dump(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1, sort_keys=True) + "\n"


def test_known_answer_vectors_byte_for_byte() -> None:
    assert VECTORS.read_text() == dump(build_vectors())


# --- fixed point ----------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(2, 64), data=st.data())
def test_signed_encoding_round_trips(bits: int, data: st.DataObject) -> None:
    values = data.draw(
        st.lists(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1), min_size=1, max_size=20)
    )
    enc = encode_signed(np.array(values, dtype=np.int64), bits=bits)
    assert all(0 <= int(v) < 2**bits for v in enc)
    assert [int(v) for v in decode_signed(enc, bits=bits)] == values


@settings(max_examples=30, deadline=None)
@given(
    owners=st.integers(2, 6),
    bound=st.sampled_from([0.5, 1.0, 4.0, 100.0, 5000.0]),
    bits=st.sampled_from([24, 32, 48, 64]),
    seed=st.integers(0, 2**32),
)
def test_the_precision_is_the_largest_that_cannot_wrap(
    owners: int, bound: float, bits: int, seed: int
) -> None:
    names = tuple(f"p{i}" for i in range(owners))
    config = FedAvgConfig(
        aggregator="agg", owners=names, features=3, update_bound=bound, modulus_bits=bits
    )
    f = config.precision_bits
    limit = 2 ** (bits - 1)
    assert max(bound, 1.0) * 2**f + owners < limit
    assert f == min(52, bits - 2) or max(bound, 1.0) * 2 ** (f + 1) + owners >= limit
    # Worst case: every owner saturates in the same direction; weights sum to 1.
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(owners))
    sign = rng.choice([-1.0, 1.0])
    updates = [
        fedavg._encode_update(config, np.full(4, sign * 10 * bound), weight=float(w))
        for w in weights
    ]
    total = np.zeros(5, dtype=updates[0].dtype)
    for u in updates:
        total += u
    decoded = decode_signed(total, bits=bits).astype(float)
    assert decoded[-1] == pytest.approx(2**f, abs=owners)
    assert decoded[:-1] / decoded[-1] == pytest.approx(
        np.full(4, sign * bound), rel=owners / 2**f, abs=owners / 2**f
    )


def test_parameters_that_could_wrap_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no fixed-point precision"):
        FedAvgConfig(aggregator="agg", owners=OWNERS, features=3, update_bound=1e9, modulus_bits=16)
    with pytest.raises(InvalidInput, match="no fixed-point precision"):
        FedAvgConfig(
            aggregator="agg",
            owners=OWNERS,
            features=3,
            standardize=False,
            modulus_bits=8,
            dp=DPConfig("gaussian", 1.0, 1e-6),
        )


# --- training -------------------------------------------------------------------------


def test_federated_model_matches_central_training_on_spector() -> None:
    """3 owners, the coordinator aggregates: equal to pooled gradient descent up to rounding,
    and to statsmodels' maximum-likelihood fit within 0.01 in every predicted probability."""
    x, y = spector()
    config = FedAvgConfig(
        aggregator="coord", owners=OWNERS, features=3, rounds=60, learning_rate=1.0
    )
    results = train(config, dict(zip(OWNERS, split(x, y, 3), strict=True)))
    model = results["coord"]
    assert isinstance(model, FederatedModel), model
    for o in OWNERS:
        assert results[o] == model  # everyone leaves with the same model and provenance
    weights, intercept = fit_centralized(x, y, rounds=60, learning_rate=1.0)
    # fixed point at 2^-28 per round, in standardised units: tolerance 1e-5 on coefficients
    assert np.allclose(model.weights, weights, atol=1e-5, rtol=0)
    assert model.intercept == pytest.approx(intercept, abs=1e-4)
    mle = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    p_mle = mle.predict(sm.add_constant(x))
    assert np.max(np.abs(model.predict_proba(x) - p_mle)) < 0.01
    assert model.evaluate(x, y)["accuracy"] == pytest.approx(np.mean((p_mle >= 0.5) == (y == 1)))
    assert model.participants == OWNERS
    assert model.round_participants == (OWNERS,) * 60
    assert model.precision_bits == config.precision_bits == 28
    assert model.config_digest == config.digest()
    assert model.code_digest.startswith("sha256:")
    assert json.loads(json.dumps(model.as_dict()))["weights"] == [repr(w) for w in model.weights]


def test_an_owner_can_aggregate_and_the_secure_sum_is_the_plaintext_sum() -> None:
    x, y = spector()
    parts = split(x, y, 3)
    config = FedAvgConfig(
        aggregator="o1",
        owners=("o2", "o3"),
        features=3,
        rounds=25,
        learning_rate=1.0,
        aggregator_trains=True,
    )
    results = train(config, {"o1": parts[0], "o2": parts[1], "o3": parts[2]})
    model = results["o1"]
    assert isinstance(model, FederatedModel), model
    assert results["o2"] == results["o3"] == model
    weights, _ = fit_centralized(x, y, rounds=25, learning_rate=1.0)
    assert np.allclose(model.weights, weights, atol=1e-5, rtol=0)
    assert model.participants == ("o2", "o3", "o1")

    # The secure sum of the owners' encoded first-round updates is exactly their plaintext sum.
    mean, std = x.mean(axis=0), x.std(axis=0)
    state = fedavg._Progress(theta=np.zeros(4), rows_total=len(y), mean=mean, std=std)
    vectors = {
        o: fedavg._local_input(config, state, d)
        for o, d in zip(("o2", "o3"), parts[1:], strict=True)
    }
    params = config.secagg_params(("o2", "o3"), round=1)
    net = LocalNetwork(["o1", "o2", "o3"])
    session = os.urandom(16).hex()
    ch = {
        p: net.channel(p, protocol=secagg.PROTOCOL, version=secagg.VERSION, session=session)
        for p in ("o1", "o2", "o3")
    }
    out = run_local(
        {
            "o1": lambda: secagg.aggregate_as_server(ch["o1"], params=params, round=1),
            "o2": lambda: secagg.contribute_as_client(
                ch["o2"], server="o1", params=params, vector=vectors["o2"], round=1
            ),
            "o3": lambda: secagg.contribute_as_client(
                ch["o3"], server="o1", params=params, vector=vectors["o3"], round=1
            ),
        }
    )
    expected = (vectors["o2"].astype(np.uint64) + vectors["o3"].astype(np.uint64)) % 2**32
    assert np.array_equal(out["o1"].sum, expected.astype(np.uint32))


def silence_from(who: str, kind: str, nth: int) -> Intercept:
    """``who`` stops sending from its ``nth`` message of ``kind`` on."""
    seen: list[int] = []

    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        if sender == who and Frame.decode(data).kind == kind:
            seen.append(1)
        return [] if sender == who and len(seen) >= nth else [data]

    return intercept


def test_an_owner_dropping_out_mid_training_leaves_the_others_training() -> None:
    x, y = spector()
    config = FedAvgConfig(
        aggregator="coord", owners=("o1", "o2", "o3", "o4"), features=3, rounds=6, learning_rate=1.0
    )
    data = dict(zip(config.owners, split(x, y, 4), strict=True))
    # o2 goes silent at its 4th masked input: round 0 (stats) and rounds 1, 2 count, 3.. do not.
    results = train(config, data, intercept=silence_from("o2", secagg.K_MASKED, 4), timeout=0.5)
    model = results["coord"]
    assert isinstance(model, FederatedModel), model
    assert results["o2"] is None
    for o in ("o1", "o3", "o4"):
        assert results[o] == model
    full, rest = ("o1", "o2", "o3", "o4"), ("o1", "o3", "o4")
    assert model.round_participants == (full, full) + (rest,) * 4
    assert model.participants == full
    assert model.evaluate(x, y)["accuracy"] > 0.6


def test_dp_training_reports_opendp_accounting_and_converges_with_a_large_budget() -> None:
    x, y = spector()
    x = (x - np.array([3.0, 22.0, 0.5])) / np.array([0.5, 4.0, 0.5])  # a public scale
    owners = split(x, y, 3)
    data = dict(zip(OWNERS, owners, strict=True))
    plain = FedAvgConfig(
        aggregator="coord",
        owners=OWNERS,
        features=3,
        rounds=10,
        standardize=False,
        learning_rate=0.5,
    )
    loud = FedAvgConfig(
        aggregator="coord",
        owners=OWNERS,
        features=3,
        rounds=10,
        standardize=False,
        learning_rate=0.5,
        dp=DPConfig("gaussian", clip_norm=2.0, budget_per_round=1e4),
    )
    ref = train(plain, data)["coord"]
    noisy = train(loud, data)
    model = noisy["coord"]
    assert isinstance(model, FederatedModel), model
    assert model.dp is not None
    assert model.dp["mechanism"] == "discrete_gaussian"
    assert float(model.dp["total"]) == pytest.approx(10 * 1e4)
    assert float(model.dp["noise_scale"]) == pytest.approx(4 / (2 * 1e4) ** 0.5, rel=1e-3)
    # Equal weights and clipping differ from the weighted non-DP average; the noise is tiny.
    assert np.max(np.abs(model.predict_proba(x) - ref.predict_proba(x))) < 0.1
    for o in OWNERS:
        assert noisy[o] == model


def test_dp_noise_is_present_at_small_budgets() -> None:
    x, y = spector()
    x = (x - np.array([3.0, 22.0, 0.5])) / np.array([0.5, 4.0, 0.5])
    data = dict(zip(OWNERS, split(x, y, 3), strict=True))
    config = FedAvgConfig(
        aggregator="coord",
        owners=OWNERS,
        features=3,
        rounds=2,
        standardize=False,
        dp=DPConfig("laplace", clip_norm=1.0, budget_per_round=0.5),
    )
    a, b = train(config, data)["coord"], train(config, data)["coord"]
    assert a.weights != b.weights  # two runs, independent noise of scale ~4 per coordinate
    assert a.dp is not None
    assert a.dp["total"] == "1.0"
    # sensitivity (L1, fixed point) = 2 clip 2^f + (features + 1); scale = sensitivity / epsilon
    f = a.precision_bits
    assert float(a.dp["noise_scale"]) == pytest.approx((2 * 1.0 * 2**f + 4) / 0.5 / 2**f, rel=1e-6)


# --- failures: one per fedavg message type --------------------------------------------


def rewrite(kind: str, recipient: str, change: Callable[[Frame], Frame]) -> Intercept:
    done: list[int] = []

    def intercept(s: str, r: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if f.kind == kind and r == recipient and not done:
            done.append(1)
            return [change(f).encode()]
        return [data]

    return intercept


def with_blob(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Frame], Frame]:
    def change(f: Frame) -> Frame:
        values = {k: getattr(f, k) for k in Frame.__slots__}
        values["blobs"] = {**f.blobs, name: fn(f.blobs[name])}
        return Frame(**values)

    return change


def all_failed(results: Mapping[str, Any], match: str) -> None:
    for name, value in results.items():
        assert isinstance(value, ProtocolError), f"{name} returned {value!r}"
    assert any(match in str(v) for v in results.values()), {k: str(v) for k, v in results.items()}


def small() -> tuple[FedAvgConfig, dict[str, OwnerData]]:
    x, y = spector()
    config = FedAvgConfig(aggregator="coord", owners=OWNERS, features=3, rounds=2)
    return config, dict(zip(OWNERS, split(x, y, 3), strict=True))


def test_setup_with_another_configuration_fails_everywhere() -> None:
    config, data = small()
    other = FedAvgConfig(
        aggregator="coord", owners=OWNERS, features=3, rounds=2, learning_rate=0.25
    )
    parties = ("coord", *OWNERS)
    net = LocalNetwork(parties)
    session = os.urandom(16).hex()
    ch = {
        p: net.channel(p, protocol="secagg", version=1, session=session, timeout=10)
        for p in parties
    }
    fns: dict[str, Callable[[], Any]] = {
        "coord": lambda: train_federated(ch["coord"], config=config, timeout=5)
    }
    for o in OWNERS:
        cfg = other if o == "o2" else config
        fns[o] = lambda o=o, cfg=cfg: train_federated(ch[o], config=cfg, data=data[o], timeout=5)
    all_failed(run_local(fns), "training configurations differ")


def test_stats_with_a_non_finite_mean_fail_everywhere() -> None:
    config, data = small()
    nan = np.array([np.nan]).astype("<f8").tobytes()
    results = train(
        config,
        data,
        intercept=rewrite(fedavg.K_STATS, "o1", with_blob("mean", lambda b: nan + b[8:])),
    )
    all_failed(results, "non-finite")


def test_a_model_of_the_wrong_length_fails_everywhere() -> None:
    config, data = small()
    results = train(
        config, data, intercept=rewrite(fedavg.K_MODEL, "o3", with_blob("theta", lambda b: b[:-8]))
    )
    all_failed(results, "blob theta must be exactly")


def test_a_model_that_readmits_nobody_fails_everywhere() -> None:
    config, data = small()
    results = train(
        config,
        data,
        intercept=rewrite(fedavg.K_MODEL, "o2", with_blob("members", lambda b: b"\x01\x00\x01")),
    )
    all_failed(results, "active owners")


def test_a_final_message_with_a_bad_history_fails_its_recipient() -> None:
    # The last message: the aggregator has its model before o1 can object.
    config, data = small()
    results = train(
        config,
        data,
        intercept=rewrite(fedavg.K_FINAL, "o1", with_blob("history", lambda b: b"\x07" + b[1:])),
    )
    assert isinstance(results["o1"], ProtocolError)
    assert "not a list of bitmaps" in str(results["o1"])
    assert isinstance(results["coord"], FederatedModel)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"owners": ("agg", "o1")}, "without the aggregator"),
        ({"owners": ["o1", "o2"]}, "tuple"),
        ({"features": 0}, "features"),
        ({"rounds": 0}, "rounds"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"l2": -1.0}, "l2"),
        ({"threshold": 1}, "strict majority"),
        ({"dp": DPConfig("gaussian", 1.0, 1.0)}, "standardize"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"aggregator": "agg", "owners": OWNERS, "features": 3}
    with pytest.raises(InvalidInput, match=match):
        FedAvgConfig(**{**base, **kwargs})


def test_bad_owner_data_and_dp_settings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="labels must be 0 or 1"):
        OwnerData(np.zeros((2, 1)), np.array([0, 2]))
    with pytest.raises(InvalidInput, match="finite"):
        OwnerData(np.array([[np.inf]]), np.array([1]))
    with pytest.raises(InvalidInput, match="one label per row"):
        OwnerData(np.zeros((2, 1)), np.array([1]))
    with pytest.raises(InvalidInput, match="mechanism"):
        DPConfig("exponential", 1.0, 1.0)
    with pytest.raises(InvalidInput, match="clip_norm"):
        DPConfig("laplace", 0.0, 1.0)
    with pytest.raises(InvalidInput, match="too large for the secure moment sum"):
        fedavg._encode_stats(
            FedAvgConfig(aggregator="agg", owners=OWNERS, features=1),
            OwnerData(np.array([[1e30]]), np.array([1])),
        )


if __name__ == "__main__":
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    VECTORS.write_text(dump(build_vectors()))
    print(f"wrote {VECTORS}")
