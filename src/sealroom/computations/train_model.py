"""train-model: a generalised linear model on the joined or stacked data of several parties.

Privacy contract (class ``model``, released to every party) against a requester who
controls every input but the one protected, every parameter, any number of
identities and the timing of requests. The privacy unit is an ENTITY of each input:
all rows that share a value of its policy's ``entity_column`` (a row, when None).

* **Inputs.** ``layout="join"``: vertically split data; every input holds
  ``id_column`` and some of the columns; rows are matched on the id (inner join; an
  id that occurs more than once in an input is dropped). ``layout="stack"``:
  horizontally split data; every input holds every column and the rows are
  concatenated. Each input drops its own rows with a missing, non-finite or
  out-of-range value (|x| > 1e100; a binomial target not 0/1, a Poisson target < 0)
  before anything else: a row-wise filter, so one bad row never turns a fit into an
  error. ``never_output`` and ``join_only`` columns may not be the target or a
  feature; ``id_column`` joins only and is never output.

* **DP mode** (``dp`` given; binomial or gaussian; Poisson is refused, see
  docs/decisions.md). Contribution bound: every input is truncated, on its own,
  to ``dp.max_rows_per_entity`` = m rows per entity, chosen by a hash of the row's
  content (so an entity's kept rows do not depend on any other entity). Stability:
  adding or removing one entity of input i, the other inputs fixed (whatever the
  adversary put in them), changes at most m rows of the truncated input i; each
  such row changes at most one row after the duplicate-id drop (it adds itself, or
  removes the one row that shared its id) and, ids being unique per input, at most
  one joined row; so the training and test rows together change by at most m rows
  (symmetric difference), in either layout. The train/test split is row-local (a
  hash of ``seed`` and the id for join, of the input and entity for stack), so
  those m rows are split between the two and nothing else moves. Every number
  below is an OpenDP Laplace measurement (vector ``make_laplace`` over
  ``l1_distance``) whose privacy map is evaluated at the L1 sensitivity for m rows,
  and the epsilons add up (sequential composition) to ``dp.epsilon``, charged on
  every input:

  - binomial (output perturbation, Chaudhuri, Monteleoni & Sarwate 2011, in its
    add/remove form): 10% of epsilon buys a noisy training-row count n~ (L1
    sensitivity m). Features are clamped to the declared ``bounds`` and scaled to
    [-1, 1]; with the intercept each row z is divided by sqrt(p), so ||z||_2 <= 1
    and the logistic loss is 1-Lipschitz in theta. theta minimises
    sum_rows loss + (L/2)||theta||^2 with L = l2 * max(n~, 1) (set from the DP
    count, never the exact one). The objective is L-strongly convex, so adding a
    set A of rows moves the minimiser by at most |A| / L (at the new minimiser the
    old objective's gradient is minus the added rows' gradients, of norm <= |A|);
    through the common subset, a symmetric difference of m rows moves it at most
    m / L in L2, sqrt(p) * m / L in L1. 70% of epsilon (90% without a test split)
    buys vector Laplace noise on theta at that sensitivity. With a test split, 20%
    buys the noisy pair (correct predictions, test rows) of the noisy model on
    held-out rows (L1 sensitivity 2m), released as their ratio, ``accuracy``.
  - gaussian (noisy sufficient statistics): features and target are clamped to
    the ``bounds`` and scaled to [-1, 1]; z = (1, x, y). 80% of epsilon (all
    without a test split) buys Laplace noise on the upper triangle of sum z z^T
    (one row moves it by sum_{j<=l} |z_j z_l| = (||z||_1^2 + ||z||_2^2) / 2 <=
    (q^2 + q) / 2 in L1, q = len(z); m rows by m times that); the coefficients
    solve the noisy normal equations with the noisy Gram matrix projected to be
    positive definite and a ridge of l2 * max(n~, 1), n~ being its noisy (0, 0)
    entry (post-processing). With a test split, 20% buys the noisy pair (sum of
    squared clamped residuals, each <= 4, and test rows; L1 sensitivity 5m),
    released as ``rmse`` in the target's units.

  Released: the coefficients in the original units (post-processing), the noisy
  metric, the noisy training-row count, the mechanism's parameters. Never an exact
  count, a standard error, a convergence flag or an iteration count; no refusal
  depends on the data (k thresholds apply only to exact releases). Residual: the
  epsilon charged, per input, at the declared contribution bound; an entity with
  more than m rows is protected at m rows (its extra rows are not used). The
  minimiser is computed to floating-point precision (Newton with backtracking).

* **Exact mode** (no ``dp``; only from a shape the owner pinned, P0's rules: every
  parameter above is isolating, and the other inputs are pinned partners). For
  every input i, counting ITS distinct entities (never rows, never another input's):
  at least k_i entities in the training rows (``k-threshold``); at most
  n_i / (2 k_i) parameters and at least 5 training rows per parameter
  (``parameter-bound``); every feature and the target take a value other than
  their most common one on no entity or on at least k_i entities
  (``influence-bound``: an indicator of fewer than k people, e.g. one id, is
  refused); and no entity has
  leverage above 1/k_i in the matrix [1, features, target] of the training rows
  (input i's own rows in stack) (``influence-bound``). Leverage is the share of
  the most concentrated linear combination of the columns that falls on one entity,
  so the last rule also refuses indicators built as differences of covering ones,
  planted outliers and a target that singles someone out: from the exact
  coefficients an adversary who knows everything else learns a combination of
  values in which the target's weight is at most sqrt(1/(k-1)) of the others'.
  Metrics are computed on held-out rows only (``test_fraction`` > 0; none
  otherwise), which must hold k_i entities of every input. The release reports
  its footprint (per input: the entities of the used, training and test rows)
  for the enclave's difference checks. Released: coefficients (12 significant
  digits), standard errors, held-out metrics, row counts, convergence.
  Residual: exact releases are not DP; an adversary who knows the values of all
  but one of k entities that share a direction learns the last one.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _glm
from sealroom.computations._glm import Family, SignedDecimal, signed_decimal
from sealroom.computations.base import (
    Computation,
    Footprint,
    PrivacyContext,
    PrivacyCost,
    Released,
)
from sealroom.computations.column_uses import ColumnUse
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import DecimalStr

__all__ = [
    "COMPUTATION",
    "Coefficient",
    "DpOptions",
    "DpReport",
    "InputUse",
    "Prepared",
    "TrainModelOutput",
    "TrainModelParams",
    "dp_measurements",
    "prepare",
    "release_dp",
    "run",
]

MAX_FEATURES = 50
MIN_ROWS_PER_PARAMETER = 5
PARAMETER_FACTOR = 2
"""Exact mode: at most n_entities / (PARAMETER_FACTOR * k) parameters, per input."""
MAX_ABS_VALUE = 1e100
MAX_ROWS_PER_ENTITY = 1000
INTERCEPT = "(intercept)"
LINKS: dict[Family, Literal["logit", "identity", "log"]] = {
    "binomial": "logit",
    "gaussian": "identity",
    "poisson": "log",
}
# Shares of dp.epsilon (sequential composition; they add up to 1).
COUNT_SHARE = Decimal("0.1")
METRIC_SHARE = Decimal("0.2")

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DpOptions(_Model):
    epsilon: DecimalStr
    bounds: dict[ColumnName, tuple[SignedDecimal, SignedDecimal]]
    l2: DecimalStr = "0.1"
    max_rows_per_entity: Annotated[int, Field(ge=1, le=MAX_ROWS_PER_ENTITY)] = 1


class TrainModelParams(_Model):
    family: Family = "binomial"
    """Model family of the generalised linear model."""
    layout: Literal["join", "stack"]
    """join: each input holds some columns of the same entities (joined on id_column); stack: each
    input holds some rows with every column."""
    id_column: ColumnName | None = None
    """Identifier column to join on (layout join only)."""
    target: ColumnName
    """Column to predict."""
    features: Annotated[tuple[ColumnName, ...], Field(min_length=1, max_length=MAX_FEATURES)]
    """Feature columns."""
    intercept: bool = True
    """Fit an intercept."""
    test_fraction: DecimalStr = "0.25"
    """Share of rows held out to evaluate the model, a decimal."""
    seed: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    """Seed of the train/test split."""
    max_iter: Annotated[int, Field(ge=1, le=1000)] = 100
    """Most optimiser iterations."""
    dp: DpOptions | None = None
    """Differential privacy: epsilon, public bounds per column, L2 regularisation and rows per
    entity; the policy's DP budget is charged."""


class Coefficient(_Model):
    name: ColumnName
    estimate: SignedDecimal
    std_error: DecimalStr | None


class InputUse(_Model):
    input: Annotated[int, Field(ge=0)]
    rows_used: Annotated[int, Field(ge=0)] | None
    columns: tuple[ColumnName, ...]


class DpReport(_Model):
    epsilon: DecimalStr
    count_epsilon: DecimalStr
    params_epsilon: DecimalStr
    metric_epsilon: DecimalStr
    mechanism: Literal["laplace"]
    max_rows_per_entity: int
    l1_sensitivity: DecimalStr
    scale: DecimalStr
    l2: DecimalStr
    noisy_rows_train: SignedDecimal
    clipping: Annotated[str, Field(min_length=1, max_length=1000)]


class TrainModelOutput(_Model):
    family: Family
    link: Literal["logit", "identity", "log"]
    layout: Literal["join", "stack"]
    target: ColumnName
    coefficients: tuple[Coefficient, ...]
    converged: bool | None
    iterations: Annotated[int, Field(ge=0)] | None
    rows_train: Annotated[int, Field(ge=0)] | None
    rows_test: Annotated[int, Field(ge=0)] | None
    inputs: tuple[InputUse, ...]
    metrics: dict[str, SignedDecimal]
    dp: DpReport | None


def _dec(value: Decimal | float, digits: int = 12) -> str:
    return signed_decimal(float(value), digits)


def _check_params(params: TrainModelParams) -> Decimal:
    fraction = Decimal(params.test_fraction)
    if fraction > Decimal("0.5"):
        raise InvalidInput("train-model test_fraction must be between 0 and 0.5")
    if params.layout == "join" and params.id_column is None:
        raise InvalidInput("train-model layout 'join' needs id_column")
    names = (params.target, *params.features)
    if len(set(names)) != len(names):
        raise InvalidInput("train-model: the target and features must be distinct columns")
    if params.id_column is not None and params.id_column in names:
        raise InvalidInput("train-model: id_column is a join key, not a feature or target")
    if params.dp is not None:
        if params.family == "poisson":
            raise InvalidInput(
                "train-model dp training is available for families 'binomial' and 'gaussian'"
            )
        if Decimal(params.dp.epsilon) <= 0 or Decimal(params.dp.l2) <= 0:
            raise InvalidInput("train-model dp needs epsilon > 0 and l2 > 0")
        bounded = [*params.features, *([params.target] if params.family == "gaussian" else [])]
        missing = [f for f in bounded if f not in params.dp.bounds]
        if missing:
            raise InvalidInput(f"train-model dp needs bounds for column {missing[0]!r}")
        for name, (lo, hi) in params.dp.bounds.items():
            if Decimal(lo) >= Decimal(hi):
                raise InvalidInput(f"train-model dp bounds for {name!r} need lower < upper")
    return fraction


# --- the rows the model sees ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """The rows a fit uses, every one valid, in a deterministic order.

    ``entities[i]`` holds input i's entity value per row (None where the row is not
    input i's: stack). ``split_key`` is what the DP split hashes (the id for join,
    (input, entity) for stack); ``is_test`` that split (DP mode only).
    """

    x: np.ndarray
    y: np.ndarray
    entities: tuple[tuple[Hashable | None, ...], ...]
    split_key: tuple[str, ...]
    used: dict[int, list[str]]
    is_test: np.ndarray | None = None


def _owner(inputs: Sequence[pa.Table], column: str, params: TrainModelParams) -> list[int]:
    holders = [i for i, t in enumerate(inputs) if column in t.column_names]
    if not holders:
        raise InvalidInput(f"train-model: no input has column {column!r}")
    if params.layout == "join" and len(holders) > 1:
        raise InvalidInput(
            f"train-model: column {column!r} is in inputs {holders}; with layout 'join' "
            "each column must come from one input"
        )
    if params.layout == "stack" and len(holders) != len(inputs):
        lacking = next(i for i in range(len(inputs)) if i not in holders)
        raise InvalidInput(f"train-model: input {lacking} has no column {column!r} to stack")
    return holders


def _check_rules(column: str, holders: Sequence[int], privacy: PrivacyContext) -> None:
    for i in holders:
        if column in privacy.never_output[i]:
            raise InvalidInput(
                f"train-model: column {column!r} of input {i} is never_output; "
                "a model trained on it would release a function of it"
            )
        if column in privacy.join_only[i]:
            raise InvalidInput(
                f"train-model: column {column!r} of input {i} is join_only; "
                "it may be used to match rows and nothing else"
            )


def _numeric(col: pa.ChunkedArray, name: str) -> np.ndarray:
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise InvalidInput(f"train-model: column {name!r} is {t}, a model needs numbers")
    as_float = pc.cast(col, pa.float64()).fill_null(float("nan"))
    return np.asarray(as_float.to_numpy(), dtype=np.float64)


def _valid(values: np.ndarray, *, target: Family | None) -> np.ndarray:
    ok: np.ndarray = np.isfinite(values) & (np.abs(np.nan_to_num(values)) <= MAX_ABS_VALUE)
    if target == "binomial":
        ok &= (values == 0) | (values == 1)
    elif target == "poisson":
        ok &= values >= 0
    return ok


def _row_hash(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode("utf-8")).digest()


def _truncate(entity: list[Hashable], content: list[bytes], bound: int) -> np.ndarray:
    """Indices of at most ``bound`` rows per entity, the smallest by content hash (so the
    rows an entity keeps depend on its own rows only)."""
    order = sorted(range(len(entity)), key=lambda r: content[r])
    seen: dict[Hashable, int] = {}
    keep: list[int] = []
    for r in order:
        n = seen.get(entity[r], 0)
        if n < bound:
            seen[entity[r]] = n + 1
            keep.append(r)
    return np.array(sorted(keep), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Part:
    """One input's valid (and, in DP mode, truncated) rows."""

    ids: list[Hashable]
    entity: list[Hashable]
    values: dict[str, np.ndarray]
    split_key: list[str]


def _part(
    i: int,
    t: pa.Table,
    columns: Sequence[str],
    params: TrainModelParams,
    privacy: PrivacyContext,
    bound: int | None,
) -> _Part:
    entity_col = privacy.entity_columns[i]
    if entity_col is not None and entity_col not in t.column_names:
        raise InvalidInput(f"train-model: input {i} has no entity column {entity_col!r}")
    values = {c: _numeric(t.column(c), c) for c in columns}
    ok = np.ones(t.num_rows, dtype=bool)
    for c, v in values.items():
        ok &= _valid(v, target=params.family if c == params.target else None)
    ids: list[Hashable] = list(range(t.num_rows))
    if params.layout == "join":
        id_column = params.id_column
        assert id_column is not None
        if id_column not in t.column_names:
            raise InvalidInput(f"train-model: input {i} has no id column {id_column!r}")
        ids = t.column(id_column).to_pylist()
        ok &= np.array([v is not None for v in ids], dtype=bool)
    entity: list[Hashable] = (
        list(range(t.num_rows)) if entity_col is None else t.column(entity_col).to_pylist()
    )
    rows = np.flatnonzero(ok)
    if entity_col is not None:  # a row without an entity belongs to no one we can bound
        rows = np.array([r for r in rows if entity[r] is not None], dtype=np.int64)
    content = [
        _row_hash(ids[r] if params.layout == "join" else None, *(values[c][r] for c in columns))
        for r in rows
    ]
    if bound is not None:
        kept = _truncate([entity[r] for r in rows], content, bound)
        rows, content = rows[kept], [content[r] for r in kept]
    if params.layout == "join":
        counts: dict[Hashable, int] = {}
        for r in rows:
            counts[ids[r]] = counts.get(ids[r], 0) + 1
        once = [n for n, r in enumerate(rows) if counts[ids[r]] == 1]
        rows, content = rows[once], [content[n] for n in once]
    # The DP split's key, from the row alone: its id (join); its entity, so an entity's rows
    # stay together, or its content when rows are the entities (stack; row numbers would
    # shift when another row is added).
    if params.layout == "join":
        keys = [repr(ids[r]) for r in rows]
    elif entity_col is None:
        keys = [repr((i, c.hex())) for c in content]
    else:
        keys = [repr((i, entity[r])) for r in rows]
    return _Part(
        ids=[ids[r] for r in rows],
        entity=[entity[r] for r in rows],
        values={c: v[rows] for c, v in values.items()},
        split_key=keys,
    )


def prepare(
    inputs: Sequence[pa.Table], params: TrainModelParams, privacy: PrivacyContext
) -> Prepared:
    """The rows the model sees (deterministic; truncated per entity in DP mode)."""
    names = [params.target, *params.features]
    used: dict[int, list[str]] = {i: [] for i in range(len(inputs))}
    for name in names:
        holders = _owner(inputs, name, params)
        _check_rules(name, holders, privacy)
        for i in holders:
            used[i].append(name)
    bound = params.dp.max_rows_per_entity if params.dp is not None else None
    parts = [_part(i, t, used[i], params, privacy, bound) for i, t in enumerate(inputs)]
    n_inputs = len(inputs)
    if params.layout == "stack":
        x = np.vstack([np.column_stack([p.values[f] for f in params.features]) for p in parts])
        y = np.concatenate([p.values[params.target] for p in parts])
        entities = tuple(
            tuple(e if j == i else None for j, p in enumerate(parts) for e in p.entity)
            for i in range(n_inputs)
        )
        keys = tuple(k for p in parts for k in p.split_key)
        return Prepared(
            x=x, y=y, entities=entities, split_key=keys, used=used, is_test=_split_dp(keys, params)
        )
    # join: ids unique per input; keep the ids every input has, sorted.
    id_types = {t.schema.field(params.id_column).type for t in inputs}
    if len(id_types) > 1:
        raise InvalidInput(f"train-model: id column {params.id_column!r} has different types")
    index = [{v: r for r, v in enumerate(p.ids)} for p in parts]
    common = set(parts[0].ids)
    for p in parts[1:]:
        common &= set(p.ids)
    try:
        ordered = sorted(common)  # type: ignore[type-var]
    except TypeError:
        raise InvalidInput(
            f"train-model: id column {params.id_column!r} has values that cannot be ordered"
        ) from None
    column: dict[str, np.ndarray] = {}
    for i, p in enumerate(parts):
        rows = np.array([index[i][v] for v in ordered], dtype=np.int64)
        for c in used[i]:
            column[c] = p.values[c][rows] if len(rows) else np.zeros(0)
    x = (
        np.column_stack([column[f] for f in params.features])
        if ordered
        else np.zeros((0, len(params.features)))
    )
    entities = tuple(tuple(p.entity[index[i][v]] for v in ordered) for i, p in enumerate(parts))
    keys = tuple(parts[0].split_key[index[0][v]] for v in ordered)
    return Prepared(
        x=x,
        y=column[params.target],
        entities=entities,
        split_key=keys,
        used=used,
        is_test=_split_dp(keys, params),
    )


def _split_dp(keys: Sequence[str], params: TrainModelParams) -> np.ndarray | None:
    """DP mode: True for a test row, by a hash of the seed and the row's key (row-local)."""
    if params.dp is None:
        return None
    limit = int(Decimal(params.test_fraction) * (1 << 64))
    test = [int.from_bytes(_row_hash(params.seed, key)[:8], "big") < limit for key in keys]
    return np.array(test, dtype=bool)


# --- exact mode -----------------------------------------------------------------------


def _rows_of(rows: Prepared, i: int, mask: np.ndarray) -> np.ndarray:
    mine = np.array([e is not None for e in rows.entities[i]], dtype=bool)
    out: np.ndarray = np.flatnonzero(mine & mask)
    return out


def _entity_set(rows: Prepared, i: int, idx: np.ndarray) -> frozenset[Hashable]:
    return frozenset(map(rows.entities[i].__getitem__, idx.tolist()))


def leverage(z: np.ndarray) -> np.ndarray:
    """The diagonal of the hat matrix of ``z``, z_r (Z'Z)^+ z_r' (a pseudo-inverse, so
    collinear columns count once); columns are scaled first, which leaves it unchanged."""
    if z.shape[0] == 0:
        return np.zeros(0)
    z = z / np.maximum(np.abs(z).max(axis=0), 1e-300)
    gram_pinv = np.linalg.pinv(z.T @ z, rcond=1e-10, hermitian=True)
    h: np.ndarray = np.einsum("ij,jk,ik->i", z, gram_pinv, z)
    return h


def _check_exact(
    rows: Prepared, train: np.ndarray, test: np.ndarray, params: TrainModelParams, k: Sequence[int]
) -> None:
    """The exact-mode rules of the module docstring, input by input."""
    p = len(params.features) + (1 if params.intercept else 0)
    names = [params.target, *params.features]
    columns = np.column_stack([rows.y, rows.x])
    is_train = np.zeros(len(rows.y), dtype=bool)
    is_train[train] = True
    for i, k_i in enumerate(k):
        mine = _rows_of(rows, i, is_train)
        ents = [rows.entities[i][r] for r in mine]
        n_ent = len(set(ents))
        if n_ent < k_i:
            raise PolicyDenied(
                f"train-model: input {i} contributes fewer than its k={k_i} distinct entities "
                "to the training rows",
                rule="k-threshold",
            )
        if p * PARAMETER_FACTOR * k_i > n_ent or len(train) < MIN_ROWS_PER_PARAMETER * p:
            raise PolicyDenied(
                f"train-model: {p} parameters need {PARAMETER_FACTOR * k_i} entities of input "
                f"{i} (k={k_i}) and {MIN_ROWS_PER_PARAMETER} training rows per parameter; "
                f"there are {n_ent} entities and {len(train)} rows",
                rule="parameter-bound",
            )
        block = columns[mine]
        for j, name in enumerate(names):
            col = block[:, j]
            values, counts = np.unique(col, return_counts=True)
            mode = values[int(np.argmax(counts))]
            covered = {e for e, v in zip(ents, col, strict=True) if v != mode}
            if 0 < len(covered) < k_i:  # constant on this input: it singles out no one
                raise PolicyDenied(
                    f"train-model: column {name!r} differs from its most common value on "
                    f"fewer than k={k_i} entities of input {i}",
                    rule="influence-bound",
                )
        z = np.column_stack([np.ones(len(mine)), block])
        h = leverage(z)
        per_entity: dict[Hashable, float] = {}
        for e, v in zip(ents, h, strict=True):
            per_entity[e] = per_entity.get(e, 0.0) + float(v)
        if max(per_entity.values()) > 1.0 / k_i + 1e-9:
            raise PolicyDenied(
                f"train-model: one entity of input {i} has leverage above 1/k={1 / k_i:.3g} "
                "in the training rows (a feature or the target singles it out)",
                rule="influence-bound",
            )
        if len(test) and len(_entity_set(rows, i, _rows_of(rows, i, ~is_train))) < k_i:
            raise PolicyDenied(
                f"train-model: the test rows hold fewer than k={k_i} entities of input {i}",
                rule="k-threshold",
            )


def _metrics(family: Family, y: np.ndarray, mu: np.ndarray) -> dict[str, str]:
    if y.size == 0:
        return {}
    out: dict[str, str] = {}
    if family == "binomial":
        p = np.clip(mu, 1e-15, 1 - 1e-15)
        out["accuracy"] = _dec(float(np.mean((mu >= 0.5) == (y == 1))))
        out["log_loss"] = _dec(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
        out["brier"] = _dec(float(np.mean((mu - y) ** 2)))
        area = _glm.auc(y, mu)
        if area is not None:
            out["auc"] = _dec(area)
    else:
        out["rmse"] = _dec(float(np.sqrt(np.mean((y - mu) ** 2))))
        out["mae"] = _dec(float(np.mean(np.abs(y - mu))))
        total = float(np.sum((y - np.mean(y)) ** 2))
        if total > 0:
            out["r2"] = _dec(1.0 - float(np.sum((y - mu) ** 2)) / total)
    if family == "poisson":
        out["mean_deviance"] = _dec(_glm._deviance("poisson", y, mu) / y.size)
    return out


def _run_exact(
    rows: Prepared, params: TrainModelParams, fraction: Decimal, privacy: PrivacyContext
) -> Released:
    n = len(rows.y)
    order = np.random.default_rng(params.seed).permutation(n)
    n_test = int(Decimal(n) * fraction)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    _check_exact(rows, train, test, params, privacy.k)

    def design(x: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(x)), x]) if params.intercept else x

    fit = _glm.fit_glm(
        design(rows.x[train]), rows.y[train], family=params.family, max_iter=params.max_iter
    )
    names = ([INTERCEPT] if params.intercept else []) + list(params.features)
    coefs = tuple(
        Coefficient(name=name, estimate=_dec(b), std_error=_dec(se) if fit.converged else None)
        for name, b, se in zip(names, fit.params, fit.std_errors, strict=True)
    )
    mu = _glm.inverse_link(params.family, design(rows.x[test]) @ fit.params)
    metrics = _metrics(params.family, rows.y[test], mu) if fit.converged else {}
    everything = np.ones(n, dtype=bool)
    used = [_rows_of(rows, i, everything) for i in range(len(rows.entities))]
    output = TrainModelOutput(
        family=params.family,
        link=LINKS[params.family],
        layout=params.layout,
        target=params.target,
        coefficients=coefs,
        converged=fit.converged,
        iterations=fit.iterations,
        rows_train=len(train),
        rows_test=len(test),
        inputs=tuple(
            InputUse(input=i, rows_used=len(used[i]), columns=tuple(rows.used[i]))
            for i in range(len(used))
        ),
        metrics=metrics,
        dp=None,
    )
    cells = tuple(
        tuple(
            s
            for s in (
                _entity_set(rows, i, used[i]),
                _entity_set(rows, i, np.intersect1d(used[i], train)),
                _entity_set(rows, i, np.intersect1d(used[i], test)),
            )
            if s
        )
        for i in range(len(used))
    )
    return Released(output, Footprint(cells=cells))


# --- DP mode --------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _laplace(d_in: float, epsilon: float) -> tuple[object, float]:
    """OpenDP's vector Laplace on float vectors (L1 distance), calibrated so that its map
    at ``d_in`` is at most ``epsilon``; with its scale. (A measurement holds no state:
    each call samples afresh, so one built earlier for the same calibration is reused.)"""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    metric = dp.l1_distance(T=float)
    scale = d_in / epsilon * (1 + 1e-12)
    meas = dp.m.make_laplace(domain, metric, scale=scale)
    while meas.map(d_in) > epsilon:  # type: ignore[no-untyped-call]
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
        meas = dp.m.make_laplace(domain, metric, scale=scale)
    return meas, scale


@dataclass(frozen=True, slots=True)
class _Measurement:
    """One release: its OpenDP measurement, the L1 sensitivity at the bound, its epsilon."""

    name: str
    meas: object
    d_in: float
    epsilon: float
    scale: float

    def __call__(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.asarray(self.meas([float(v) for v in values]), dtype=np.float64)  # type: ignore[operator]


def _float_eps(epsilon: Decimal) -> float:
    """``epsilon`` as a float no larger than the Decimal (a budget is never overspent)."""
    value = float(epsilon)
    return math.nextafter(value, 0.0) if Decimal(value) > epsilon else value


def _shares(params: TrainModelParams, dp_opts: DpOptions, has_test: bool) -> dict[str, Decimal]:
    eps = Decimal(dp_opts.epsilon)
    metric = eps * METRIC_SHARE if has_test else Decimal(0)
    count = eps * COUNT_SHARE if params.family == "binomial" else Decimal(0)
    return {"count": count, "params": eps - metric - count, "metric": metric}


def dp_measurements(
    params: TrainModelParams, *, has_test: bool, noisy_rows: float
) -> list[_Measurement]:
    """Every measurement a DP run builds, each at its sensitivity for max_rows_per_entity rows.

    ``noisy_rows`` is the DP training-row count the binomial model's regulariser uses
    (the count measurement itself does not depend on it). The sum of the maps at the
    bound is dp.epsilon: the privacy-map tests evaluate exactly these.
    """
    dp_opts = params.dp
    assert dp_opts is not None
    m = dp_opts.max_rows_per_entity
    shares = _shares(params, dp_opts, has_test)
    p = len(params.features) + 1
    out: list[_Measurement] = []

    def add(name: str, d_in: float, eps: Decimal) -> None:
        meas, scale = _laplace(d_in, _float_eps(eps))
        out.append(_Measurement(name, meas, d_in, float(eps), scale))

    if params.family == "binomial":
        reg = float(Decimal(dp_opts.l2)) * max(noisy_rows, 1.0)
        add("count", float(m), shares["count"])
        add("params", math.sqrt(p) * m / reg, shares["params"])
        if has_test:
            add("metric", 2.0 * m, shares["metric"])
    else:
        q = p + 1
        add("params", m * (q * q + q) / 2.0, shares["params"])
        if has_test:
            add("metric", 5.0 * m, shares["metric"])
    return out


def _scaled(x: np.ndarray, bounds: Sequence[tuple[float, float]]) -> np.ndarray:
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    scaled: np.ndarray = (np.clip(x, lo, hi) - mid) / half
    return scaled


def release_dp(
    rows: Prepared, params: TrainModelParams
) -> tuple[list[Coefficient], dict[str, str], DpReport]:
    """The randomised part of a DP run on prepared rows (see the module docstring)."""
    dp_opts = params.dp
    assert dp_opts is not None
    assert rows.is_test is not None
    is_test = rows.is_test
    has_test = Decimal(params.test_fraction) > 0
    bounds = {
        name: (_glm.parse_signed(lo), _glm.parse_signed(hi))
        for name, (lo, hi) in dp_opts.bounds.items()
    }
    fb = [bounds[f] for f in params.features]
    mids = np.array([(lo + hi) / 2 for lo, hi in fb])
    halves = np.array([(hi - lo) / 2 for lo, hi in fb])
    xs = _scaled(rows.x, fb)
    p = len(params.features) + 1
    l2 = float(Decimal(dp_opts.l2))
    train, test = ~is_test, is_test
    metrics: dict[str, str] = {}
    if params.family == "binomial":
        count = dp_measurements(params, has_test=has_test, noisy_rows=1.0)[0]
        noisy_rows = float(count([float(np.sum(train))])[0])
        ms = dp_measurements(params, has_test=has_test, noisy_rows=noisy_rows)
        reg = l2 * max(noisy_rows, 1.0)
        z = np.column_stack([np.ones(len(xs)), xs]) / math.sqrt(p)
        n_train = int(np.sum(train))
        theta = (
            _glm.fit_logistic_l2(z[train], rows.y[train], l2=reg / n_train)
            if n_train
            else np.zeros(p)
        )
        noisy = ms[1](theta)
        if has_test:
            correct = float(np.sum(((z[test] @ noisy) >= 0) == (rows.y[test] == 1)))
            c, t = ms[2]([correct, float(np.sum(test))])
            metrics["accuracy"] = _dec(min(max(c / max(t, 1.0), 0.0), 1.0), 4)
        beta = noisy[1:] / (math.sqrt(p) * halves)
        intercept = noisy[0] / math.sqrt(p) - float(np.sum(beta * mids))
        main = ms[1]
        clipping = (
            "features clamped to the bounds and scaled to [-1, 1]; rows with the intercept "
            "divided by sqrt(p); theta minimises sum loss + (l2 * max(noisy rows, 1) / 2) "
            "||theta||^2; L1 sensitivity sqrt(p) * m / (l2 * max(noisy rows, 1))"
        )
    else:
        lo_y, hi_y = bounds[params.target]
        mid_y, half_y = (lo_y + hi_y) / 2, (hi_y - lo_y) / 2
        ys = _scaled(rows.y[:, None], [bounds[params.target]])[:, 0]
        z = np.column_stack([np.ones(len(xs)), xs, ys])
        q = p + 1
        upper = np.triu_indices(q)
        gram = z[train].T @ z[train]
        ms = dp_measurements(params, has_test=has_test, noisy_rows=1.0)
        noisy_gram = np.zeros((q, q))
        noisy_gram[upper] = ms[0](gram[upper])
        noisy_gram = noisy_gram + np.triu(noisy_gram, 1).T
        noisy_rows = float(noisy_gram[0, 0])
        xtx, xty = noisy_gram[:p, :p], noisy_gram[:p, p]
        w, v = np.linalg.eigh(xtx)
        ridge = l2 * max(noisy_rows, 1.0)
        xtx_pd = (v * np.maximum(w, 0.0)) @ v.T + ridge * np.eye(p)
        b = np.linalg.solve(xtx_pd, xty)
        if has_test:
            pred = np.clip(z[test][:, :p] @ b, -1.0, 1.0)
            sse = float(np.sum((pred - ys[test]) ** 2))
            s, t = ms[1]([sse, float(np.sum(test))])
            metrics["rmse"] = _dec(half_y * math.sqrt(max(s, 0.0) / max(t, 1.0)), 4)
        beta = half_y * b[1:] / halves
        intercept = mid_y + half_y * b[0] - float(np.sum(beta * mids))
        main = ms[0]
        clipping = (
            "features and target clamped to the bounds and scaled to [-1, 1]; Laplace noise "
            "on the upper triangle of sum z z^T, z = (1, x, y), L1 sensitivity "
            "m * (q^2 + q) / 2; noisy Gram matrix projected to PSD plus ridge "
            "l2 * max(noisy rows, 1)"
        )
    coefs = [Coefficient(name=INTERCEPT, estimate=_dec(intercept), std_error=None)]
    coefs += [
        Coefficient(name=f, estimate=_dec(b_j), std_error=None)
        for f, b_j in zip(params.features, beta, strict=True)
    ]
    shares = _shares(params, dp_opts, has_test)
    report = DpReport(
        epsilon=_dec(Decimal(dp_opts.epsilon)),
        count_epsilon=_dec(shares["count"]),
        params_epsilon=_dec(shares["params"]),
        metric_epsilon=_dec(shares["metric"]),
        mechanism="laplace",
        max_rows_per_entity=dp_opts.max_rows_per_entity,
        l1_sensitivity=_dec(main.d_in),
        scale=_dec(main.scale),
        l2=dp_opts.l2,
        noisy_rows_train=_dec(round(noisy_rows)),
        clipping=clipping,
    )
    return coefs, metrics, report


def run(
    inputs: Sequence[pa.Table], params: TrainModelParams, privacy: PrivacyContext
) -> TrainModelOutput | Released:
    fraction = _check_params(params)
    if params.dp is not None and Decimal(params.dp.epsilon) > privacy.cost.epsilon:
        raise PolicyDenied(
            f"train-model: dp.epsilon {params.dp.epsilon} exceeds the charged budget "
            f"{privacy.cost.epsilon}",
            rule="dp-budget",
        )
    rows = prepare(inputs, params, privacy)
    if params.dp is None:
        return _run_exact(rows, params, fraction, privacy)
    coefs, metrics, report = release_dp(rows, params)
    return TrainModelOutput(
        family=params.family,
        link=LINKS[params.family],
        layout=params.layout,
        target=params.target,
        coefficients=tuple(coefs),
        converged=None,
        iterations=None,
        rows_train=None,
        rows_test=None,
        inputs=tuple(
            InputUse(input=i, rows_used=None, columns=tuple(rows.used[i]))
            for i in range(len(inputs))
        ),
        metrics=metrics,
        dp=report,
    )


def _cost(params: TrainModelParams) -> PrivacyCost:
    if params.dp is not None:
        return PrivacyCost(epsilon=Decimal(params.dp.epsilon))
    return PrivacyCost()


def _columns(params: TrainModelParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    where: Literal["each", "one"] = "one" if params.layout == "join" else "each"
    return (
        *(
            ()
            if params.id_column is None or params.layout != "join"
            else (ColumnUse(params.id_column, "key", "id_column"),)
        ),
        ColumnUse(params.target, "number", "target", where),
        *(ColumnUse(f, "number", "feature", where) for f in params.features),
    )


COMPUTATION = Computation(
    id="train-model",
    version="2.2.0",
    summary=(
        "A generalised linear model (logistic, linear or Poisson regression) trained on the "
        "joined or stacked rows of several parties: coefficients and held-out metrics, with "
        "entity-level differential privacy (logistic: output perturbation; linear: noisy "
        "sufficient statistics) or exactly from an owner-pinned shape under influence bounds."
    ),
    privacy_class="model",
    release="all-parties",
    input_names=("party-a", "party-b"),
    params=TrainModelParams,
    output=TrainModelOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _glm),
    cost_fn=_cost,
    variadic=True,
    isolating=(
        "family",
        "layout",
        "id_column",
        "target",
        "features",
        "intercept",
        "test_fraction",
        "seed",
    ),
    selectors=True,
)
