"""Federated logistic regression: federated averaging over secure aggregation.

Parties: an aggregator ``A`` (the coordinator, or one owner that also trains
with ``aggregator_trains``) and owners ``O_1 .. O_m`` holding ``(X_k, y_k)``
with ``n_k`` rows each. Nobody but ``O_k`` sees ``X_k``, ``y_k``, ``n_k`` or
``O_k``'s update; ``A`` sees only sums (secure aggregation, ``secagg.py``).
All messages run on one ``secagg`` v1 channel; secure-aggregation round
``r`` carries FedAvg round ``r``.

Message flow::

  A -> O_k  "fedavg-setup"   digest of the FedAvgConfig (a mismatch aborts all)
  (no DP) secagg round 0 over [n_k, sum_i x_i, sum_i x_i^2] (modulus 2^64,
          moments at 2^-16): A learns N = sum n_k and, with ``standardize``,
          every feature's pooled mean and standard deviation
  A -> O_k  "fedavg-stats"   N, means, stds; U3 of round 0 = the participants
  for r = 1 .. rounds:
    A -> O_k  "fedavg-model" theta_{r-1} (float64) and the active owners
    O_k: local full-batch gradient steps from theta_{r-1}; update d_k
    secagg round r over   no DP: [fix(w_k d_k), fix(w_k)], w_k = n_k / N
                          DP:    [fix(clip(d_k)) + noise_k, 1]
    A: theta_r = theta_{r-1} + (sum of updates) / (sum of weights or count)
  A -> O_k  "fedavg-final"   the model in original feature units + who took part

Fixed point: ``fix(v) = round(v * 2^f)`` mod ``2^b`` (two's complement),
``b = modulus_bits``. The precision ``f`` is the largest for which no sum can
wrap (``FedAvgConfig.precision_bits``): without DP every update coordinate is
saturated to ``+-update_bound`` and the weights sum to at most 1, so
``max(update_bound, 1) 2^f + m < 2^(b-1)``; with DP the bound adds ``m`` clip
norms, roundings and 12 (Gaussian) or 80 (Laplace) noise scales per owner.
An owner that is dropped from a round is out for the rest of the run.

Differential privacy (optional, ``DPConfig``): each owner clips its update
(L2 for the Gaussian, L1 for the Laplace mechanism), encodes it and adds
*the full* discrete Gaussian or discrete Laplace noise itself, calibrated by
OpenDP for the sensitivity of one owner's whole dataset being replaced
(``2 clip 2^f`` plus rounding). So each owner's own noise protects it against
everyone else together (aggregator and other owners), whatever they do, and
dropouts do not weaken it; the price is ``sqrt(m)`` (Gaussian) times more
noise in the sum than a trusted curator would add. Rounds compose (zCDP
adds; pure epsilon adds). No round 0 runs with DP (it would release exact
moments), so features must come on a public scale and updates are weighted
equally.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols import secagg
from sealroom.protocols.channel import Channel
from sealroom.protocols.wire import Frame
from sealroom.statements.canonical import canonical_json

__all__ = [
    "DPConfig",
    "FedAvgConfig",
    "FederatedModel",
    "OwnerData",
    "decode_signed",
    "encode_signed",
    "fit_centralized",
    "train_federated",
    "train_federated_aggregator",
    "train_federated_owner",
]

K_SETUP = "fedavg-setup"
K_STATS = "fedavg-stats"
K_MODEL = "fedavg-model"
K_FINAL = "fedavg-final"

STATS_BITS = 64
STATS_PRECISION = 16
MAX_FEATURES = 10_000
MAX_ROUNDS = 10_000
_GAUSS_TAIL = 12.0  # P(|N(0, s^2)| > 12 s) < 2^-100
_LAPLACE_TAIL = 80.0  # P(|Laplace(s)| > 80 s) = e^-80 < 2^-115

Rng = Callable[[int], bytes]
Array = np.ndarray[Any, Any]


def _f(x: float) -> str:
    return repr(float(x))


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class DPConfig:
    """Per-owner noise on every update. ``budget_per_round`` is rho (zCDP) or epsilon."""

    mechanism: str  # "gaussian" (L2 clip, zCDP) or "laplace" (L1 clip, pure DP)
    clip_norm: float
    budget_per_round: float
    delta: float = 1e-6  # only to report an (epsilon, delta) equivalent of zCDP

    def __post_init__(self) -> None:
        if self.mechanism not in ("gaussian", "laplace"):
            raise InvalidInput("dp mechanism must be 'gaussian' or 'laplace'")
        for name in ("clip_norm", "budget_per_round"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise InvalidInput(f"dp {name} must be a positive finite number")
        if not 0 < self.delta < 1:
            raise InvalidInput("dp delta must lie in (0, 1)")

    def as_dict(self) -> dict[str, object]:
        return {
            "mechanism": self.mechanism,
            "clip_norm": _f(self.clip_norm),
            "budget_per_round": _f(self.budget_per_round),
            "delta": _f(self.delta),
        }


@dataclass(frozen=True)
class FedAvgConfig:
    """Everything the parties must agree on before training (its digest opens the run)."""

    aggregator: str
    owners: tuple[str, ...]  # contribute through secure aggregation
    features: int
    rounds: int = 30
    local_steps: int = 1
    learning_rate: float = 0.5
    l2: float = 0.0
    threshold: int | None = None  # default: a strict majority of the owners
    aggregator_trains: bool = False
    update_bound: float = 4.0
    modulus_bits: int = 32
    standardize: bool = True
    dp: DPConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.owners, tuple) or self.aggregator in self.owners:
            raise InvalidInput("owners must be a tuple of names without the aggregator")
        if type(self.features) is not int or not 1 <= self.features <= MAX_FEATURES:
            raise InvalidInput(f"features must be an integer in 1..{MAX_FEATURES}")
        if type(self.rounds) is not int or not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidInput(f"rounds must be an integer in 1..{MAX_ROUNDS}")
        if type(self.local_steps) is not int or not 1 <= self.local_steps <= 1000:
            raise InvalidInput("local_steps must be an integer in 1..1000")
        for name, lo in (("learning_rate", 0.0), ("update_bound", 0.0)):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= lo:
                raise InvalidInput(f"{name} must be a positive finite number")
        if not isinstance(self.l2, int | float) or not math.isfinite(self.l2) or self.l2 < 0:
            raise InvalidInput("l2 must be a finite number >= 0")
        if self.dp is not None and self.standardize:
            raise InvalidInput(
                "standardize releases exact feature moments; with dp, scale features "
                "publicly and set standardize=False"
            )
        self.secagg_params(self.owners, round=1)  # validates owners, threshold, bits
        self.precision_bits  # noqa: B018 - refuses parameters that could wrap

    @property
    def effective_threshold(self) -> int:
        return self.threshold if self.threshold is not None else len(self.owners) // 2 + 1

    @property
    def contributors(self) -> int:
        """The most parties whose updates can be in one sum."""
        return len(self.owners) + int(self.aggregator_trains)

    def secagg_params(self, owners: Sequence[str], *, round: int) -> secagg.SecAggParams:
        if round == 0:
            dim = 1 + (2 * self.features if self.standardize else 0)
            return secagg.SecAggParams(tuple(owners), self.effective_threshold, dim, STATS_BITS)
        return secagg.SecAggParams(
            tuple(owners), self.effective_threshold, self.features + 2, self.modulus_bits
        )

    @property
    def precision_bits(self) -> int:
        """The largest ``f`` for which no round's sum can wrap mod ``2^b`` (see the module doc)."""
        return _precision_bits(self)

    def as_dict(self) -> dict[str, object]:
        return {
            "aggregator": self.aggregator,
            "owners": list(self.owners),
            "features": self.features,
            "rounds": self.rounds,
            "local_steps": self.local_steps,
            "learning_rate": _f(self.learning_rate),
            "l2": _f(self.l2),
            "threshold": self.effective_threshold,
            "aggregator_trains": self.aggregator_trains,
            "update_bound": _f(self.update_bound),
            "modulus_bits": self.modulus_bits,
            "standardize": self.standardize,
            "dp": self.dp.as_dict() if self.dp else None,
        }

    def digest(self) -> str:
        body = {"protocol": "fedavg-logistic", "version": 1, "config": self.as_dict()}
        return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


@functools.lru_cache(maxsize=64)
def _precision_bits(config: FedAvgConfig) -> int:
    limit = 2 ** (config.modulus_bits - 1)
    m = config.contributors
    for f in range(min(52, config.modulus_bits - 2), 0, -1):
        if config.dp is None:
            worst = max(config.update_bound, 1.0) * (1 << f) + m
        else:
            tail = _GAUSS_TAIL if config.dp.mechanism == "gaussian" else _LAPLACE_TAIL
            sens = _sensitivity(config, f)
            budget = config.dp.budget_per_round
            # Closed form first (cheap), OpenDP's certified scale for the survivor.
            guess = sens / math.sqrt(2 * budget) if tail == _GAUSS_TAIL else sens / budget
            if m * (config.dp.clip_norm * (1 << f) + 1 + tail * guess * 0.99) >= limit:
                continue
            _, scale = _dp_scale(config, f)
            worst = m * (config.dp.clip_norm * (1 << f) + 1 + tail * scale)
        if worst < limit:
            return f
    raise InvalidInput(
        f"no fixed-point precision fits {m} updates in {config.modulus_bits} bits: "
        "raise modulus_bits or lower update_bound / clip_norm / noise"
    )


@dataclass(frozen=True, eq=False)
class OwnerData:
    """One owner's training rows: ``features`` (n x d, finite floats), ``labels`` in {0, 1}."""

    features: Array
    labels: Array

    def __post_init__(self) -> None:
        x, y = self.features, self.labels
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[0] < 1:
            raise InvalidInput("features must be a 2-d array with at least one row")
        if not isinstance(y, np.ndarray) or y.shape != (x.shape[0],):
            raise InvalidInput("labels must be a 1-d array with one label per row")
        if not np.isfinite(x.astype(np.float64)).all():
            raise InvalidInput("features must be finite numbers")
        if not np.isin(y, (0, 1)).all():
            raise InvalidInput("labels must be 0 or 1")
        if x.shape[0] >= 2**40:
            raise InvalidInput("too many rows")

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


# --- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class FederatedModel:
    """A trained logistic regression in original feature units, with its provenance."""

    weights: tuple[float, ...]
    intercept: float
    rounds: int
    participants: tuple[str, ...]  # every party whose data entered the model
    precision_bits: int
    dp: dict[str, object] | None
    round_participants: tuple[tuple[str, ...], ...] = ()  # per round, whose update counted
    config_digest: str = ""
    code_digest: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-safe (floats as their shortest round-trip decimal strings)."""
        return {
            "model": "logistic_regression",
            "weights": [_f(w) for w in self.weights],
            "intercept": _f(self.intercept),
            "rounds": self.rounds,
            "participants": list(self.participants),
            "round_participants": [list(r) for r in self.round_participants],
            "precision_bits": self.precision_bits,
            "dp": self.dp,
            "config_digest": self.config_digest,
            "code_digest": self.code_digest,
        }

    def predict_proba(self, features: Array) -> Array:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.weights):
            raise InvalidInput(f"features must be n x {len(self.weights)}")
        return _sigmoid(x @ np.array(self.weights) + self.intercept)

    def evaluate(self, features: Array, labels: Array) -> dict[str, float]:
        """Accuracy, log loss and Brier score on held-out rows (for rating the model)."""
        p = self.predict_proba(features)
        y = np.asarray(labels, dtype=np.float64)
        eps = 1e-15
        pc = np.clip(p, eps, 1 - eps)
        return {
            "rows": float(len(y)),
            "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
            "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
            "brier": float(np.mean((p - y) ** 2)),
        }


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _local_steps(theta: Array, x: Array, y: Array, *, steps: int, lr: float, l2: float) -> Array:
    """``steps`` full-batch gradient steps on mean log-loss + l2/2 |w|^2 (not the intercept)."""
    w = theta.copy()
    n = x.shape[0]
    for _ in range(steps):
        g = _sigmoid(x @ w[:-1] + w[-1]) - y
        grad = np.empty_like(w)
        grad[:-1] = x.T @ g / n + l2 * w[:-1]
        grad[-1] = g.mean()
        w -= lr * grad
    return w


def _to_original_units(theta: Array, mean: Array, std: Array) -> tuple[tuple[float, ...], float]:
    w = theta[:-1] / std
    return tuple(float(v) for v in w), float(theta[-1] - np.dot(w, mean))


def fit_centralized(
    features: Array,
    labels: Array,
    *,
    rounds: int,
    learning_rate: float,
    l2: float = 0.0,
    standardize: bool = True,
) -> tuple[tuple[float, ...], float]:
    """Full-batch gradient descent on pooled data: the reference FedAvg matches.

    With one local step, FedAvg weighted by sample counts *is* this (the
    weighted mean of the owners' gradients is the pooled gradient), so the
    two agree up to fixed-point rounding.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mean = x.mean(axis=0) if standardize else np.zeros(x.shape[1])
    std = _safe_std(x.std(axis=0)) if standardize else np.ones(x.shape[1])
    theta = np.zeros(x.shape[1] + 1)
    theta = _local_steps(theta, (x - mean) / std, y, steps=rounds, lr=learning_rate, l2=l2)
    return _to_original_units(theta, mean, std)


def _safe_std(std: Array) -> Array:
    return np.where(std > 1e-12, std, 1.0)


# --- fixed point and DP ---------------------------------------------------------------


def encode_signed(values: Array, *, bits: int) -> Array:
    """Signed int64 values as residues mod ``2^bits`` (two's complement)."""
    v = np.asarray(values, dtype=np.int64)
    dtype = np.dtype("<u4") if bits <= 32 else np.dtype("<u8")
    return (v.astype(np.uint64) & np.uint64((1 << bits) - 1)).astype(dtype)


def decode_signed(residues: Array, *, bits: int) -> Array:
    """Residues mod ``2^bits`` back to signed int64 (the representative in [-2^(b-1), 2^(b-1)))."""
    r = np.asarray(residues).astype(np.uint64) & np.uint64((1 << bits) - 1)
    if bits == 64:
        return r.view(np.int64)
    # Sign-extend from bit b-1 by shifting it into bit 63 and back (arithmetic shift),
    # which avoids the constant 2^b that does not fit int64 when b = 63.
    shift = np.uint64(64 - bits)
    return ((r << shift).view(np.int64) >> np.int64(64 - bits)).astype(np.int64)


def _need_dp(config: FedAvgConfig) -> DPConfig:
    if config.dp is None:
        raise InvalidInput("this configuration has no differential privacy")
    return config.dp


def _dp_measurement(config: FedAvgConfig, scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    dpc = _need_dp(config)
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    if dpc.mechanism == "gaussian":
        return dp.m.make_gaussian(domain, dp.l2_distance(T="i64"), scale=scale)
    return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)


def _sensitivity(config: FedAvgConfig, f: int) -> int:
    """Largest change of one owner's encoded update when its whole dataset is replaced.

    Both clipped updates lie in the norm ball of radius ``clip 2^f``; rounding
    each coordinate to an integer moves a vector by at most ``sqrt(k)/2`` (L2)
    or ``k/2`` (L1), ``k = features + 1``. The count coordinate never changes.
    """
    dpc = _need_dp(config)
    k = config.features + 1
    rounding = math.sqrt(k) if dpc.mechanism == "gaussian" else float(k)
    return math.ceil(2 * dpc.clip_norm * (1 << f) + rounding)


@functools.lru_cache(maxsize=256)
def _dp_scale(config: FedAvgConfig, f: int) -> tuple[int, float]:
    """(sensitivity, the smallest noise scale OpenDP certifies for the per-round budget)."""
    import opendp.prelude as dp

    dpc = _need_dp(config)
    sens = _sensitivity(config, f)
    scale = dp.binary_search_param(
        lambda s: _dp_measurement(config, s), d_in=sens, d_out=dpc.budget_per_round
    )
    return sens, float(scale)


def _dp_report(config: FedAvgConfig) -> dict[str, object] | None:
    """The privacy accounting, as OpenDP computes it."""
    if config.dp is None:
        return None
    import opendp.prelude as dp

    dp.enable_features("contrib")
    f = config.precision_bits
    sens, scale = _dp_scale(config, f)
    meas = _dp_measurement(config, scale)
    per_round = float(meas.map(sens))
    total: Any = dp.c.make_composition([meas] * config.rounds)
    gaussian = config.dp.mechanism == "gaussian"
    report: dict[str, object] = {
        "mechanism": "discrete_gaussian" if gaussian else "discrete_laplace",
        "measure": "zCDP (rho)" if gaussian else "pure DP (epsilon)",
        "unit": "one owner's whole local dataset, replaced; per owner",
        "trust": "each owner adds the full noise itself: holds against the aggregator and "
        "all other owners together, and under dropouts",
        "clip_norm": _f(config.dp.clip_norm),
        "norm": "l2" if gaussian else "l1",
        "sensitivity_fixed_point": sens,
        "noise_scale_fixed_point": _f(scale),
        "noise_scale": _f(scale / (1 << f)),
        "per_round": _f(per_round),
        "rounds": config.rounds,
        "total": _f(float(total.map(sens))),
    }
    if gaussian:
        approx: Any = dp.c.make_zCDP_to_approxDP(total)
        profile = approx.map(sens)
        try:
            report["epsilon_at_delta"] = _f(float(profile.epsilon(config.dp.delta)))
        except dp.OpenDPException:  # rho so large that epsilon overflows a float
            report["epsilon_at_delta"] = None
        report["delta"] = _f(config.dp.delta)
    return report


def _noise(config: FedAvgConfig, size: int) -> Array:
    f = config.precision_bits
    _, scale = _dp_scale(config, f)
    sample = _dp_measurement(config, scale)([0] * size)
    return np.array(sample, dtype=np.int64)


def _encode_update(config: FedAvgConfig, delta: Array, *, weight: float) -> Array:
    """One owner's secure-aggregation input for a training round."""
    f = config.precision_bits
    scale = float(1 << f)
    if config.dp is None:
        d = np.clip(delta, -config.update_bound, config.update_bound)
        body = np.rint(weight * d * scale).astype(np.int64)
        tail = np.array([round(weight * scale)], dtype=np.int64)
    else:
        order = 2 if config.dp.mechanism == "gaussian" else 1
        norm = float(np.linalg.norm(delta, ord=order))
        d = delta * min(1.0, config.dp.clip_norm / norm) if norm > 0 else delta
        body = np.rint(d * scale).astype(np.int64) + _noise(config, len(d))
        tail = np.array([1], dtype=np.int64)
    return encode_signed(np.concatenate([body, tail]), bits=config.modulus_bits)


def _apply_sum(config: FedAvgConfig, theta: Array, total: Array) -> Array:
    values = decode_signed(total, bits=config.modulus_bits).astype(np.float64)
    if config.dp is None:
        weight = values[-1]
        if weight <= 0:
            raise ProtocolError("the aggregated weights are not positive")
        updated: Array = theta + values[:-1] / weight
        return updated
    count = values[-1]
    if count < 1:
        raise ProtocolError("the aggregated update count is not positive")
    averaged: Array = theta + values[:-1] / (count * (1 << config.precision_bits))
    return averaged


def _encode_stats(config: FedAvgConfig, data: OwnerData) -> Array:
    """Round 0 input: [n, sum x, sum x^2] (moments at 2^-16), refusing what could wrap."""
    parts = [np.array([data.rows], dtype=np.int64)]
    if config.standardize:
        x = data.features.astype(np.float64)
        moments = np.concatenate([x.sum(axis=0), (x * x).sum(axis=0)]) * 2**STATS_PRECISION
        limit = 2 ** (STATS_BITS - 1) / (config.contributors + 1)
        if not np.all(np.abs(moments) < limit):
            raise InvalidInput(
                "feature values are too large for the secure moment sum; rescale them"
            )
        parts.append(np.rint(moments).astype(np.int64))
    return encode_signed(np.concatenate(parts), bits=STATS_BITS)


def _decode_stats(config: FedAvgConfig, total: Array) -> tuple[int, Array, Array]:
    values = decode_signed(total, bits=STATS_BITS)
    n = int(values[0])
    if n < 1:
        raise ProtocolError("the aggregated row count is not positive")
    d = config.features
    if not config.standardize:
        return n, np.zeros(d), np.ones(d)
    sums = values[1 : 1 + d].astype(np.float64) / 2**STATS_PRECISION
    squares = values[1 + d :].astype(np.float64) / 2**STATS_PRECISION
    mean = sums / n
    std = _safe_std(np.sqrt(np.maximum(squares / n - mean * mean, 0.0)))
    return n, mean, std


# --- wire helpers ---------------------------------------------------------------------


def _floats(frame: Frame, name: str, count: int) -> Array:
    data = frame.blob(name, max_size=8 * count, size=8 * count)
    values = np.frombuffer(data, dtype="<f8")
    if not np.isfinite(values).all():
        raise ProtocolError(f"{frame.what}: {name} holds a non-finite number")
    return values.copy()


def _bitmap(names: Sequence[str], members: Sequence[str]) -> bytes:
    return bytes(1 if n in members else 0 for n in names)


def _read_bitmap(frame: Frame, name: str, names: Sequence[str]) -> list[str]:
    data = frame.blob(name, max_size=len(names), size=len(names))
    if any(b > 1 for b in data):
        raise ProtocolError(f"{frame.what}: {name} is not a bitmap")
    return [n for n, b in zip(names, data, strict=True) if b]


def _code_digest() -> str:
    from sealroom.protocols.receipts import code_digest

    return str(code_digest("secagg"))


def _check_round(frame: Frame, expected: int) -> None:
    got = frame.int_field("round", lo=0, hi=MAX_ROUNDS + 1)
    if got != expected:
        raise ProtocolError(f"{frame.what}: round {got}, expected {expected}")


# --- drivers --------------------------------------------------------------------------


@dataclass
class _Progress:
    theta: Array
    rows_total: int = 0
    mean: Array = field(default_factory=lambda: np.zeros(0))
    std: Array = field(default_factory=lambda: np.zeros(0))
    history: list[tuple[str, ...]] = field(default_factory=list)


def train_federated_aggregator(
    channel: Channel,
    *,
    config: FedAvgConfig,
    data: OwnerData | None = None,
    timeout: float = 60.0,
) -> FederatedModel:
    """The aggregator: runs every secure-aggregation server round and averages."""
    _check_party(channel, config, aggregator=True)
    if config.aggregator_trains != (data is not None):
        raise InvalidInput("pass data exactly when config.aggregator_trains is set")
    if data is not None and data.features.shape[1] != config.features:
        raise InvalidInput(f"features must have {config.features} columns")
    d = config.features
    state = _Progress(theta=np.zeros(d + 1), mean=np.zeros(d), std=np.ones(d))
    active = list(config.owners)
    with channel.guard():
        for o in active:
            channel.send(o, K_SETUP, fields={"config": config.digest()})
        if config.dp is None:
            params = config.secagg_params(active, round=0)
            result = secagg.aggregate_as_server(channel, params=params, round=0, timeout=timeout)
            total = result.sum.copy()
            if data is not None:
                total += _encode_stats(config, data)
            n, state.mean, state.std = _decode_stats(config, total)
            state.rows_total = n
            joined = list(result.survivors)
            for o in active:
                inside = o in joined
                channel.send(
                    o,
                    K_STATS,
                    fields={"included": inside, "rows": n if inside else 0},
                    blobs={
                        "members": _bitmap(config.owners, joined),
                        "mean": state.mean.astype("<f8").tobytes(),
                        "std": state.std.astype("<f8").tobytes(),
                    }
                    if inside
                    else None,
                )
            active = joined
        for r in range(1, config.rounds + 1):
            previous = active
            params = config.secagg_params(active, round=r)
            for o in previous:
                channel.send(
                    o,
                    K_MODEL,
                    fields={"round": r, "included": True},
                    blobs={
                        "theta": state.theta.astype("<f8").tobytes(),
                        "members": _bitmap(config.owners, active),
                    },
                )
            result = secagg.aggregate_as_server(channel, params=params, round=r, timeout=timeout)
            total = result.sum.copy()
            if data is not None:
                total += _local_input(config, state, data)
            state.theta = _apply_sum(config, state.theta, total)
            if not np.isfinite(state.theta).all():
                raise ProtocolError("the averaged model is not finite")
            state.history.append(
                (*result.survivors, *((config.aggregator,) if data is not None else ()))
            )
            active = list(result.survivors)
            stop = K_MODEL if r < config.rounds else K_FINAL
            for o in previous:
                if o not in active:  # dropped: out for good; its next message says so
                    channel.send(o, stop, fields={"round": r + 1, "included": False})
        model = _model(config, state)
        for o in active:
            channel.send(
                o,
                K_FINAL,
                fields={"round": config.rounds + 1, "included": True},
                blobs={
                    "theta": state.theta.astype("<f8").tobytes(),
                    "mean": state.mean.astype("<f8").tobytes(),
                    "std": state.std.astype("<f8").tobytes(),
                    "history": b"".join(_bitmap(_everyone(config), h) for h in state.history),
                },
            )
    return model


def _local_input(config: FedAvgConfig, state: _Progress, data: OwnerData) -> Array:
    x = (data.features.astype(np.float64) - state.mean) / state.std
    y = data.labels.astype(np.float64)
    theta = _local_steps(
        state.theta, x, y, steps=config.local_steps, lr=config.learning_rate, l2=config.l2
    )
    weight = data.rows / state.rows_total if config.dp is None else 1.0
    if config.dp is None and not 0 < weight <= 1:
        raise ProtocolError("the announced total row count is smaller than this owner's rows")
    return _encode_update(config, theta - state.theta, weight=weight)


def _everyone(config: FedAvgConfig) -> tuple[str, ...]:
    return (*config.owners, config.aggregator)


def _model(config: FedAvgConfig, state: _Progress) -> FederatedModel:
    weights, intercept = _to_original_units(state.theta, state.mean, state.std)
    participants = tuple(p for p in _everyone(config) if any(p in h for h in state.history))
    return FederatedModel(
        weights=weights,
        intercept=intercept,
        rounds=config.rounds,
        participants=participants,
        precision_bits=config.precision_bits,
        dp=_dp_report(config),
        round_participants=tuple(state.history),
        config_digest=config.digest(),
        code_digest=_code_digest(),
    )


def train_federated_owner(
    channel: Channel,
    *,
    config: FedAvgConfig,
    data: OwnerData,
    rng: Rng = os.urandom,
    timeout: float | None = None,
) -> FederatedModel | None:
    """One owner: local steps each round, updates only through secure aggregation.

    Returns the final model, or None if this owner was dropped along the way.
    """
    _check_party(channel, config, aggregator=False)
    if data.features.shape[1] != config.features:
        raise InvalidInput(f"features must have {config.features} columns")
    me, agg, d = channel.me, config.aggregator, config.features
    state = _Progress(theta=np.zeros(d + 1), mean=np.zeros(d), std=np.ones(d))
    active = list(config.owners)
    with channel.guard():
        f = channel.expect(agg, K_SETUP, timeout=timeout)
        f.only(fields=("config",))
        theirs = f.str_field("config", max_len=80)
        if theirs != config.digest():
            raise ProtocolError(f"{f.what}: training configurations differ")
        if config.dp is None:
            params = config.secagg_params(active, round=0)
            secagg.contribute_as_client(
                channel,
                server=agg,
                params=params,
                vector=_encode_stats(config, data),
                round=0,
                rng=rng,
                timeout=timeout,
            )
            f = channel.expect(agg, K_STATS, timeout=timeout)
            if not f.bool_field("included"):
                f.only(fields=("included", "rows"))
                return None
            f.only(fields=("included", "rows"), blobs=("members", "mean", "std"))
            state.rows_total = f.int_field("rows", lo=data.rows, hi=2**53)
            state.mean, state.std = _floats(f, "mean", d), _floats(f, "std", d)
            if not (state.std > 0).all():
                raise ProtocolError(f"{f.what}: a standard deviation is not positive")
            active = _read_bitmap(f, "members", config.owners)
            if me not in active:
                raise ProtocolError(f"{f.what}: {me} is included but not a member")
        for r in range(1, config.rounds + 1):
            f = channel.expect(agg, K_MODEL, timeout=timeout)
            if not f.bool_field("included"):
                f.only(fields=("round", "included"))
                return None
            f.only(fields=("round", "included"), blobs=("theta", "members"))
            _check_round(f, r)  # the stop notice after round r says r + 1; nothing to check
            state.theta = _floats(f, "theta", d + 1)
            members = _read_bitmap(f, "members", config.owners)
            if me not in members or not set(members) <= set(active):
                raise ProtocolError(
                    f"{f.what}: the active owners do not follow from the last round"
                )
            active = members
            outcome = secagg.contribute_as_client(
                channel,
                server=agg,
                params=config.secagg_params(active, round=r),
                vector=_local_input(config, state, data),
                round=r,
                rng=rng,
                timeout=timeout,
            )
            if outcome.included:
                active = list(outcome.survivors)
        f = channel.expect(agg, K_FINAL, timeout=timeout)
        if not f.bool_field("included"):
            f.only(fields=("round", "included"))
            return None
        f.only(fields=("round", "included"), blobs=("theta", "mean", "std", "history"))
        _check_round(f, config.rounds + 1)
        state.theta = _floats(f, "theta", d + 1)
        mean, std = _floats(f, "mean", d), _floats(f, "std", d)
        if config.dp is None and not (
            np.array_equal(mean, state.mean) and np.array_equal(std, state.std)
        ):
            raise ProtocolError(f"{f.what}: the standardisation changed during training")
        state.mean, state.std = mean, std
        everyone = _everyone(config)
        width = len(everyone)
        history = f.blob("history", max_size=width * config.rounds, size=width * config.rounds)
        for r in range(config.rounds):
            if any(b > 1 for b in history[r * width : (r + 1) * width]):
                raise ProtocolError(f"{f.what}: history is not a list of bitmaps")
            row = [
                p for p, b in zip(everyone, history[r * width : (r + 1) * width], strict=True) if b
            ]
            state.history.append(tuple(row))
        return _model(config, state)


def train_federated(
    channel: Channel,
    *,
    config: FedAvgConfig,
    data: OwnerData | None = None,
    rng: Rng = os.urandom,
    timeout: float = 60.0,
) -> FederatedModel | None:
    """The aggregator's or an owner's side, by ``channel.me``.

    ``timeout`` is how long the aggregator waits for each step of a round
    before counting the missing owners as dropped; owners wait as long as
    their channel's timeout, which must be longer.
    """
    if channel.me == config.aggregator:
        return train_federated_aggregator(channel, config=config, data=data, timeout=timeout)
    if data is None:
        raise InvalidInput("an owner needs its data")
    return train_federated_owner(channel, config=config, data=data, rng=rng)


def _check_party(channel: Channel, config: FedAvgConfig, *, aggregator: bool) -> None:
    if aggregator and channel.me != config.aggregator:
        raise InvalidInput("this channel does not belong to the aggregator")
    if not aggregator and channel.me not in config.owners:
        raise InvalidInput(f"{channel.me!r} is not one of the owners")
    wanted = set(config.owners) | {config.aggregator}
    if not wanted - {channel.me} <= set(channel.peers):
        raise InvalidInput("every owner and the aggregator must be peers on the channel")
