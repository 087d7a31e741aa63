"""train-model: a generalised linear model on the joined or stacked data of several parties.

Privacy contract (class ``model``, released to every party):

* **Inputs.** ``layout="join"``: vertically split data; every input holds
  ``id_column`` and some of the columns, rows are matched on the id (inner join;
  an id that occurs more than once in an input is dropped, so one duplicated row
  cannot multiply others). ``layout="stack"``: horizontally split data; every
  input holds every column and the rows are concatenated. A row with a missing,
  non-finite or out-of-range value (|x| > 1e100; a binomial target not 0/1, a
  poisson target < 0) is dropped, so one bad row never turns a fit into an error.
* **Threshold.** Every input must contribute at least its ``k`` distinct
  entities (``entity_columns[i]``, rows when None) to the rows used, and the
  training rows must number at least 5 per parameter; otherwise the run is
  refused (:class:`PolicyDenied`) before anything is fitted.
* **Columns.** The target and features may not be ``never_output`` or
  ``join_only`` columns of the input that holds them (the model would be a
  function of them); ``id_column`` is used to join only and never output.
* **Released.** Coefficients (12 significant digits), standard errors (non-DP
  only), held-out metrics on a test split drawn deterministically from ``seed``
  (numpy PCG64 permutation of the rows, sorted by id for ``join``, in input
  order for ``stack``), row counts (train, test, per input), whether IRLS
  converged. Never a row, a prediction or a residual. Provenance: the inputs by
  position and the columns used; the code digest is in the receipt.
* **DP option** (``dp``; binomial only): output perturbation of L2-regularised
  logistic regression (Chaudhuri, Monteleoni & Sarwate 2011). Features are
  clamped to the declared ``bounds`` and scaled to [-1, 1]; with the intercept
  column each row is divided by sqrt(p), so ||x||_2 <= 1 and the logistic loss
  is 1-Lipschitz. The minimiser of (1/n) sum loss + (l2/2)||theta||^2 then has
  L2 sensitivity 2 / (n * l2) under replace-one neighbours (n, the number of
  rows used, is public: bounded DP), hence L1 sensitivity sqrt(p) * 2 / (n * l2).
  The parameter vector gets opendp's vector Laplace mechanism calibrated to that
  L1 sensitivity. With a test split, 1/4 of epsilon buys a Laplace-noised count
  of correctly classified test rows (sensitivity 1), released as accuracy; no
  other metric and no standard error is released. The coefficients are mapped
  back to the original feature units (post-processing). Cost: ``dp.epsilon`` on
  every input, delta 0; the run refuses to spend more than the charged cost.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _glm
from sealroom.computations._glm import Family, SignedDecimal, signed_decimal
from sealroom.computations.base import Computation, PrivacyContext, PrivacyCost
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import DecimalStr

__all__ = [
    "COMPUTATION",
    "Coefficient",
    "DpOptions",
    "DpReport",
    "InputUse",
    "TrainModelOutput",
    "TrainModelParams",
    "design_rows",
    "run",
]

MAX_FEATURES = 50
MIN_ROWS_PER_PARAMETER = 5
MAX_ABS_VALUE = 1e100
METRIC_EPSILON_SHARE = Decimal("0.25")
INTERCEPT = "(intercept)"
LINKS: dict[str, str] = {"binomial": "logit", "gaussian": "identity", "poisson": "log"}

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DpOptions(_Model):
    epsilon: DecimalStr
    bounds: dict[ColumnName, tuple[SignedDecimal, SignedDecimal]]
    l2: DecimalStr = "0.1"


class TrainModelParams(_Model):
    family: Family = "binomial"
    layout: Literal["join", "stack"]
    id_column: ColumnName | None = None
    target: ColumnName
    features: Annotated[tuple[ColumnName, ...], Field(min_length=1, max_length=MAX_FEATURES)]
    intercept: bool = True
    test_fraction: DecimalStr = "0.25"
    seed: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    max_iter: Annotated[int, Field(ge=1, le=1000)] = 100
    dp: DpOptions | None = None


class Coefficient(_Model):
    name: ColumnName
    estimate: SignedDecimal
    std_error: DecimalStr | None


class InputUse(_Model):
    input: Annotated[int, Field(ge=0)]
    rows_used: Annotated[int, Field(ge=0)]
    columns: tuple[ColumnName, ...]


class DpReport(_Model):
    epsilon: DecimalStr
    params_epsilon: DecimalStr
    metric_epsilon: DecimalStr
    mechanism: Literal["laplace"]
    l1_sensitivity: DecimalStr
    scale: DecimalStr
    l2: DecimalStr
    clipping: Annotated[str, Field(min_length=1, max_length=1000)]


class TrainModelOutput(_Model):
    family: Family
    link: Literal["logit", "identity", "log"]
    layout: Literal["join", "stack"]
    target: ColumnName
    coefficients: tuple[Coefficient, ...]
    converged: bool
    iterations: Annotated[int, Field(ge=0)]
    rows_train: Annotated[int, Field(ge=0)]
    rows_test: Annotated[int, Field(ge=0)]
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
        if params.family != "binomial":
            raise InvalidInput("train-model dp training is available for family 'binomial' only")
        if Decimal(params.dp.epsilon) <= 0 or Decimal(params.dp.l2) <= 0:
            raise InvalidInput("train-model dp needs epsilon > 0 and l2 > 0")
        missing = [f for f in params.features if f not in params.dp.bounds]
        if missing:
            raise InvalidInput(f"train-model dp needs bounds for feature {missing[0]!r}")
        for name, (lo, hi) in params.dp.bounds.items():
            if Decimal(lo) >= Decimal(hi):
                raise InvalidInput(f"train-model dp bounds for {name!r} need lower < upper")
    return fraction


def _owner(inputs: Sequence[pa.Table], column: str, params: TrainModelParams) -> int:
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
    return holders[0]


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


def _unique_ids(table: pa.Table, id_column: str, index: int) -> pa.Table:
    if id_column not in table.column_names:
        raise InvalidInput(f"train-model: input {index} has no id column {id_column!r}")
    table = table.filter(pc.is_valid(table.column(id_column)))
    counts = pc.value_counts(table.column(id_column))
    once = pc.filter(counts.field("values"), pc.equal(counts.field("counts"), 1))
    return table.filter(pc.is_in(table.column(id_column), value_set=once))


def design_rows(
    inputs: Sequence[pa.Table], params: TrainModelParams, privacy: PrivacyContext
) -> tuple[pa.Table, dict[int, list[str]]]:
    """The rows the model sees (before dropping bad values): target, features and entity keys.

    Column ``__input`` holds the source input (stack) and ``__entity_<i>`` the entity key
    of input i. Exposed for the tests, which rebuild the same rows for statsmodels.
    """
    names = [params.target, *params.features]
    used: dict[int, list[str]] = {i: [] for i in range(len(inputs))}
    for name in names:
        owner = _owner(inputs, name, params)
        holders = [owner] if params.layout == "join" else list(range(len(inputs)))
        _check_rules(name, holders, privacy)
        for i in holders:
            used[i].append(name)

    def entity(i: int, t: pa.Table) -> pa.ChunkedArray | pa.Array:
        col = privacy.entity_columns[i]
        if col is None:
            return pa.array(np.arange(t.num_rows, dtype=np.int64))
        if col not in t.column_names:
            raise InvalidInput(f"train-model: input {i} has no entity column {col!r}")
        return t.column(col)

    if params.layout == "stack":
        parts = []
        for i, t in enumerate(inputs):
            cols: dict[str, object] = {n: t.column(n) for n in names}
            cols["__input"] = pa.array(np.full(t.num_rows, i, dtype=np.int64))
            cols["__entity"] = pc.cast(entity(i, t), pa.string())
            parts.append(pa.table(cols))
        return pa.concat_tables(parts, promote_options="permissive"), used
    id_column = params.id_column
    assert id_column is not None
    joined: pa.Table | None = None
    for i, t in enumerate(inputs):
        t = _unique_ids(t, id_column, i)
        cols = {id_column: t.column(id_column), f"__entity_{i}": entity(i, t)}
        cols.update({n: t.column(n) for n in used[i]})
        part = pa.table(cols)
        if (
            joined is not None
            and joined.schema.field(id_column).type != part.schema.field(id_column).type
        ):
            raise InvalidInput(f"train-model: id column {id_column!r} has different types")
        joined = part if joined is None else joined.join(part, keys=id_column, join_type="inner")
    assert joined is not None
    return joined.sort_by(id_column), used


def _valid_rows(family: Family, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ok = np.all(np.isfinite(x), axis=1) & np.isfinite(y)
    ok &= np.all(np.abs(np.nan_to_num(x)) <= MAX_ABS_VALUE, axis=1)
    ok &= np.abs(np.nan_to_num(y)) <= MAX_ABS_VALUE
    if family == "binomial":
        ok &= (y == 0) | (y == 1)
    elif family == "poisson":
        ok &= y >= 0
    mask: np.ndarray = ok
    return mask


def _entities(table: pa.Table, mask: np.ndarray, column: str) -> int:
    values = table.column(column).filter(pa.array(mask))
    return int(pc.count_distinct(values, mode="only_valid").as_py())


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


def _laplace_vector(
    values: np.ndarray, *, l1_sensitivity: float, epsilon: float
) -> tuple[np.ndarray, float]:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    metric = dp.l1_distance(T=float)
    scale = dp.binary_search_param(
        lambda s: dp.m.make_laplace(domain, metric, scale=s),
        d_in=l1_sensitivity,
        d_out=epsilon,
    )
    meas = dp.m.make_laplace(domain, metric, scale=scale)
    if meas.map(l1_sensitivity) > epsilon:  # type: ignore[no-untyped-call]
        raise PolicyDenied("train-model: the DP mechanism would exceed its epsilon")
    return np.asarray(meas([float(v) for v in values]), dtype=np.float64), float(scale)


def _laplace_count(count: int, *, epsilon: float) -> int:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    domain, metric = dp.atom_domain(T=int), dp.absolute_distance(T=int)
    scale = dp.binary_search_param(
        lambda s: dp.m.make_laplace(domain, metric, scale=s), d_in=1, d_out=epsilon
    )
    return int(dp.m.make_laplace(domain, metric, scale=scale)(count))


def _fit_dp(
    params: TrainModelParams,
    dp_opts: DpOptions,
    x_raw: np.ndarray,
    y: np.ndarray,
    x_test_raw: np.ndarray,
    y_test: np.ndarray,
    privacy: PrivacyContext,
) -> tuple[list[Coefficient], dict[str, str], DpReport]:
    epsilon = Decimal(dp_opts.epsilon)
    if epsilon > privacy.cost.epsilon:
        raise PolicyDenied(
            f"train-model: dp.epsilon {dp_opts.epsilon} exceeds the charged budget "
            f"{privacy.cost.epsilon}"
        )
    metric_eps = epsilon * METRIC_EPSILON_SHARE if y_test.size else Decimal(0)
    params_eps = epsilon - metric_eps
    lo = np.array([_glm.parse_signed(dp_opts.bounds[f][0]) for f in params.features])
    hi = np.array([_glm.parse_signed(dp_opts.bounds[f][1]) for f in params.features])
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    p = len(params.features) + 1
    root = math.sqrt(p)

    def scaled(x: np.ndarray) -> np.ndarray:
        z = (np.clip(x, lo, hi) - mid) / half
        return np.column_stack([np.ones(len(x)), z]) / root

    n = len(y)
    l2 = float(Decimal(dp_opts.l2))
    theta = _glm.fit_logistic_l2(scaled(x_raw), y, l2=l2)
    l1 = root * 2.0 / (n * l2)
    noisy, scale = _laplace_vector(theta, l1_sensitivity=l1, epsilon=float(params_eps))
    beta = noisy[1:] / (root * half)
    intercept = noisy[0] / root - float(np.sum(beta * mid))
    coefs = [Coefficient(name=INTERCEPT, estimate=_dec(intercept), std_error=None)]
    coefs += [
        Coefficient(name=f, estimate=_dec(b), std_error=None)
        for f, b in zip(params.features, beta, strict=True)
    ]
    metrics: dict[str, str] = {}
    if y_test.size:
        pred = (scaled(x_test_raw) @ noisy) >= 0
        correct = int(np.sum(pred == (y_test == 1)))
        noisy_correct = _laplace_count(correct, epsilon=float(metric_eps))
        metrics["accuracy"] = _dec(min(max(noisy_correct / y_test.size, 0.0), 1.0), 4)
    report = DpReport(
        epsilon=_dec(epsilon),
        params_epsilon=_dec(params_eps),
        metric_epsilon=_dec(metric_eps),
        mechanism="laplace",
        l1_sensitivity=_dec(l1),
        scale=_dec(scale),
        l2=dp_opts.l2,
        clipping=(
            "features clamped to the declared bounds and scaled to [-1, 1]; rows with the "
            "intercept divided by sqrt(p) so ||x||_2 <= 1; L2 sensitivity 2/(n*l2) of the "
            "regularised logistic minimiser (replace-one, n public), L1 = sqrt(p) times that"
            + (
                "; accuracy is a Laplace-noised count of correct test rows / test rows"
                if y_test.size
                else ""
            )
        ),
    )
    return coefs, metrics, report


def run(
    inputs: Sequence[pa.Table], params: TrainModelParams, privacy: PrivacyContext
) -> TrainModelOutput:
    fraction = _check_params(params)
    if params.dp is not None and Decimal(params.dp.epsilon) > privacy.cost.epsilon:
        raise PolicyDenied(
            f"train-model: dp.epsilon {params.dp.epsilon} exceeds the charged budget "
            f"{privacy.cost.epsilon}"
        )
    rows, used = design_rows(inputs, params, privacy)
    y_all = _numeric(rows.column(params.target), params.target)
    x_all = np.column_stack([_numeric(rows.column(f), f) for f in params.features])
    mask = _valid_rows(params.family, x_all, y_all)
    n = int(np.sum(mask))
    for i in range(len(inputs)):
        if params.layout == "join":
            count = _entities(rows, mask, f"__entity_{i}")
        else:
            in_i = mask & (np.asarray(rows.column("__input").to_numpy()) == i)
            count = _entities(rows, in_i, "__entity")
        if count < privacy.k[i]:
            raise PolicyDenied(
                f"train-model: input {i} contributes fewer than its k={privacy.k[i]} "
                "distinct entities to the rows used"
            )
    x_used, y_used = x_all[mask], y_all[mask]
    order = np.random.default_rng(params.seed).permutation(n)
    n_test = int(Decimal(n) * fraction)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    x_train, y_train = x_used[train_idx], y_used[train_idx]
    x_test, y_test = x_used[test_idx], y_used[test_idx]
    p = len(params.features) + (1 if params.intercept or params.dp is not None else 0)
    if len(y_train) < MIN_ROWS_PER_PARAMETER * p:
        raise PolicyDenied(
            f"train-model: {len(y_train)} training rows for {p} parameters; at least "
            f"{MIN_ROWS_PER_PARAMETER} per parameter are required"
        )
    report: DpReport | None = None
    if params.dp is not None:
        coefs, metrics, report = _fit_dp(
            params, params.dp, x_train, y_train, x_test, y_test, privacy
        )
        converged, iterations = True, 0
    else:

        def design(x: np.ndarray) -> np.ndarray:
            return np.column_stack([np.ones(len(x)), x]) if params.intercept else x

        fit = _glm.fit_glm(design(x_train), y_train, family=params.family, max_iter=params.max_iter)
        names = ([INTERCEPT] if params.intercept else []) + list(params.features)
        coefs = [
            Coefficient(
                name=name,
                estimate=_dec(b),
                std_error=_dec(se) if fit.converged else None,
            )
            for name, b, se in zip(names, fit.params, fit.std_errors, strict=True)
        ]
        mu = _glm.inverse_link(params.family, design(x_test) @ fit.params)
        metrics = _metrics(params.family, y_test, mu) if fit.converged else {}
        converged, iterations = fit.converged, fit.iterations
    if params.layout == "join":
        per_input = [n] * len(inputs)
    else:
        src = np.asarray(rows.column("__input").to_numpy())[mask]
        per_input = [int(np.sum(src == i)) for i in range(len(inputs))]
    return TrainModelOutput(
        family=params.family,
        link=LINKS[params.family],
        layout=params.layout,
        target=params.target,
        coefficients=tuple(coefs),
        converged=converged,
        iterations=iterations,
        rows_train=len(y_train),
        rows_test=len(y_test),
        inputs=tuple(
            InputUse(input=i, rows_used=per_input[i], columns=tuple(used[i]))
            for i in range(len(inputs))
        ),
        metrics=metrics,
        dp=report,
    )


def _cost(params: TrainModelParams) -> PrivacyCost:
    if params.dp is not None:
        return PrivacyCost(epsilon=Decimal(params.dp.epsilon))
    return PrivacyCost()


COMPUTATION = Computation(
    id="train-model",
    version="1.1.0",
    summary=(
        "A generalised linear model (logistic, linear or Poisson regression) trained on the "
        "joined or stacked rows of several parties: coefficients, standard errors and "
        "held-out metrics, optionally with differential privacy (output perturbation)."
    ),
    privacy_class="model",
    release="all-parties",
    input_names=("party-a", "party-b"),
    params=TrainModelParams,
    output=TrainModelOutput,
    run_fn=run,
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
