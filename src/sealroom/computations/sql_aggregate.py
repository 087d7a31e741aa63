"""sql-aggregate: the requester's aggregate SQL over the inputs, under every owner's analysis rules.

Privacy contract, against the adversary of docs/privacy.md (it controls every input but
the protected one, the SQL and every parameter, any number of identities, timing and
the coordinator). Class ``aggregate``, released to the requester only.

Admission (both modes, the same code at the coordinator's pre-check, on the attested
schemas, and here, on the tables): the SQL must be a sentence of the allow-list grammar
of :mod:`sealroom.policy.sql_rules` (AWS Clean Rooms' aggregation analysis rule is the
model) under the SQL rules of EVERY input it reads: aggregates of one plain allowed
column (no CASE, IF, FILTER, COALESCE, NULLIF, arithmetic or value bins inside an
aggregate; no MIN, MAX, MEDIAN or quantiles), identity columns only in JOIN conditions
and COUNT, dimension columns only in GROUP BY and in WHERE compared with literals, INNER
joins on join columns, at most 20 output columns. The policy's entity column is an
identity column whatever the rules say. ``join_only`` columns may appear in JOIN only;
``never_output`` columns may be joined on, filtered on and counted. Every refusal is
PolicyDenied naming its rule.

DP mode (``dp`` given; the policy default ``dp: required``): only COUNT(*), COUNT(col),
SUM(col) and AVG(col); every summed column has public bounds in ``dp.bounds``
(``{"a.col": [lower, upper]}``: request parameters, since clamping to any public bounds
is sound and the requester picks the trade-off); every input declares an entity column
and, with several inputs, the JOIN equalities connect all their entity columns, so each
joined row belongs to one entity of every input (rules ``dp-aggregations``,
``dp-bounds``, ``dp-entity-join``). The engine reads the joined, filtered rows, keeps at
most ``max_rows_per_entity`` rows per group for each entity in at most
``max_groups_per_entity`` groups (truncation, so a requester's table that repeats an id
cannot weight one person), and releases every group's statistics through one OpenDP
measurement (:mod:`sealroom.policy.dp_groups`): a noisy row count (which, with GROUP BY,
decides by DP partition selection which groups appear), a noisy clamped sum per summed
column and a noisy count of non-null values per averaged or counted column; each
distinct measured statistic gets an equal share of ``epsilon`` (rounded down, reported);
AVG is sum over count (post-processing); ORDER BY and LIMIT are post-processing. The
release is (epsilon, delta)-DP for each input's entities; (epsilon, delta) is charged on
every input read.

Exact mode (no ``dp``): only the SQL text the owner pinned (``sql`` is the isolating
parameter; policies pin it) with the partner data the owner pinned (``selectors``: a
join to the requester's own table would otherwise choose whose rows are summed).
Thresholds count the protected party's distinct entities behind EACH number: an output
row is released only if, for every input read, the group and each aggregate (the rows
where its column is not null) stand on at least that input's ``k`` distinct entities.
Footprints (:class:`~sealroom.computations.base.Released`): per input, the entity sets
behind every released row and aggregate, for the enclave's difference checks.

Utility at epsilon = 1 (the demo's pinned query, COUNT(*) and AVG(mdvis) by health on
PlanCentral's 6,730 records, bounds [0, 30], delta 1e-6, 300 runs): counts within 0.25%
/ 2.6% / 0.4% (p95; excellent 4,107, fair 351, good 2,230 records), means within 4% /
17% / 5%; the poor group (42 records, withheld in exact mode at k = 50) appears in 74% of
runs with a noisy mean.

Residual leakage. DP mode: (epsilon, delta) per input per run. Exact mode: the pinned
query's aggregates over at least k entities of each input, exactly; which groups have
at least k (group presence); the output's order. No suppressed-group count is released.

Robustness: columns are the only operands, so no single row can make the query fail
(SUM of integers is HUGEINT, decimal inputs are read as DOUBLE, comparisons are typed);
any remaining run-time error gives one fixed refusal whose text does not depend on the
data. Output values are JSON-safe: integers within +/-(2^53-1) as numbers, larger ones
and every non-integer number as a decimal string rounded half-even to 12 significant
digits (NaN and infinities as null), dates and times as ISO 8601 strings.

DuckDB runs in process with a fresh in-memory connection per run: external access
disabled, no extension autoload or autoinstall, one thread (a deterministic result),
a memory limit, and the configuration locked before the query runs.
"""

from __future__ import annotations

import datetime as dt
import math
import string
import sys
from collections.abc import Hashable, Sequence
from decimal import Decimal
from typing import Annotated, Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations.base import (
    ZERO_COST,
    Computation,
    Footprint,
    PrivacyContext,
    PrivacyCost,
    Released,
    SchemaText,
    schema_text,
)
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy import dp_groups, sql_rules
from sealroom.policy.sql_rules import (
    DP_RULES,
    ENTITY_COLUMN,
    MAX_SQL_LENGTH,
    Admitted,
    SqlAnalysisRules,
    admit_dp,
    analyze,
)
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "COMPUTATION",
    "DEFAULT_MAX_ROWS",
    "PRECISION",
    "SqlAggregateOutput",
    "SqlAggregateParams",
    "SqlDpParams",
    "dp_mechanism",
    "input_names",
    "run",
]

DEFAULT_MAX_ROWS = 10_000
SIGNIFICANT_DIGITS = 12
PRECISION = (
    "integers within +/-(2^53-1) exact; other numbers as decimal strings rounded half-even "
    f"to {SIGNIFICANT_DIGITS} significant digits; NaN and infinities as null"
)
MEMORY_LIMIT = "1GB"
MAX_INPUTS = len(string.ascii_lowercase)
_SAFE_INT = 2**53 - 1
RUNTIME_REFUSAL = (
    "sql-aggregate: the query failed while running; the reason is not reported because it "
    "could depend on the data"
)

# Refusals DuckDB raises before reading any row: safe to report, they depend on schema only.
_BIND_ERRORS: tuple[type[Exception], ...] = (
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ParserException,
)

Cell = int | str | bool | None
Num = Annotated[str, Field(min_length=1, max_length=80)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class SqlDpParams(BaseModel):
    """DP SQL: the budget, public bounds per summed column (``"a.col": [lower, upper]``) and
    each entity's contribution bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: Num
    delta: Num = "0"
    bounds: Annotated[
        dict[Annotated[str, Field(max_length=300)], tuple[Num, Num]], Field(max_length=20)
    ] = Field(default_factory=dict)
    max_rows_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1
    max_groups_per_entity: Annotated[int, Field(ge=1, le=1000)] = 1


class SqlAggregateParams(_Model):
    sql: Annotated[str, Field(min_length=1, max_length=MAX_SQL_LENGTH)]
    """One SELECT over the inputs a, b, ...; admitted only within every owner's SQL rules
    (aggregations, columns, joins, filters)."""
    dp: SqlDpParams | None = None
    """Differential privacy: epsilon (and delta), bounds per aggregated column and the contribution
    bounds; the policy's DP budget is charged."""


class SqlDpInfo(_Model):
    """What a DP release spent and how."""

    epsilon: str
    delta: str
    epsilon_per_statistic: str
    statistics: tuple[str, ...]
    noise_scales: tuple[str, ...]
    threshold: int | None
    max_rows_per_entity: int
    max_groups_per_entity: int
    mechanisms: tuple[str, ...]


class SqlAggregateOutput(_Model):
    columns: Annotated[tuple[Annotated[str, Field(max_length=200)], ...], Field(max_length=1000)]
    types: Annotated[tuple[Annotated[str, Field(max_length=200)], ...], Field(max_length=1000)]
    rows: Annotated[tuple[tuple[Cell, ...], ...], Field(max_length=1_000_000)]
    truncated: bool
    rules_checked: tuple[str, ...]
    precision: str
    dp: SqlDpInfo | None


def input_names(n: int) -> tuple[str, ...]:
    """Table names of ``n`` inputs in request order: a, b, c, ..."""
    if not 1 <= n <= MAX_INPUTS:
        raise InvalidInput(f"sql-aggregate takes 1 to {MAX_INPUTS} inputs, got {n}")
    return tuple(string.ascii_lowercase[:n])


def _rules(privacy: PrivacyContext, i: int) -> SqlAnalysisRules | None:
    raw = privacy.analysis[i]
    if raw is None:
        return None
    rules = SqlAnalysisRules.parse(raw)
    entity = privacy.entity_columns[i]
    if entity is not None and entity not in rules.identity_columns:
        rules = rules.model_copy(update={"identity_columns": (*rules.identity_columns, entity)})
    return rules


def _check_column_rules(admitted: Admitted, names: Sequence[str], privacy: PrivacyContext) -> None:
    index = {name: i for i, name in enumerate(names)}
    for use in sorted(admitted.uses, key=lambda u: (u.input, u.column, u.role)):
        i = index[use.input]
        label = f"{use.input}.{use.column}"
        if use.column in privacy.join_only[i] and use.role != "join":
            raise PolicyDenied(
                f"rule join-only: {label} may be used as a join key only", rule="join-only"
            )
        if use.column in privacy.never_output[i]:
            counted = use.role == "aggregate" and use.function in ("count", "count_distinct")
            if use.role == "dimension" or (use.role == "aggregate" and not counted):
                raise PolicyDenied(
                    f"rule never-output: {label} is never output; it may only be joined on, "
                    "filtered on or counted",
                    rule="never-output",
                )


def _bounds(params: SqlDpParams) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for key, (lo_text, hi_text) in params.bounds.items():
        try:
            lo, hi = float(Decimal(lo_text)), float(Decimal(hi_text))
        except ArithmeticError:
            raise InvalidInput(f"dp.bounds[{key}] must be two decimal strings") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and max(-lo, hi) <= 1e15):
            raise InvalidInput(f"dp.bounds[{key}] must be finite with lower < upper")
        out[key] = (lo, hi)
    return out


def _admit(
    params: SqlAggregateParams, schemas: Sequence[SchemaText], privacy: PrivacyContext
) -> Admitted:
    """The one admission of a request: grammar, column rules and, in DP mode, DP rules."""
    names = input_names(len(schemas))
    admitted = analyze(
        params.sql,
        inputs={
            name: (schema, _rules(privacy, i))
            for i, (name, schema) in enumerate(zip(names, schemas, strict=True))
        },
        max_output_rows=privacy.max_output_rows or DEFAULT_MAX_ROWS,
    )
    _check_column_rules(admitted, names, privacy)
    if params.dp is not None:
        admit_dp(
            admitted,
            entity_columns=dict(zip(names, privacy.entity_columns, strict=True)),
            bounds=_bounds(params.dp),
        )
        if len(admitted.dimensions) > 0 and Decimal(params.dp.delta) <= 0:
            raise InvalidInput(
                "dp.delta must be positive with GROUP BY: which groups appear is decided by DP "
                "partition selection"
            )
    return admitted


def _prepare(table: pa.Table, entity: str | None, name: str) -> pa.Table:
    """The input as DuckDB reads it: decimals as DOUBLE, plus the hidden entity column."""
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.float64()))
    if entity is None:
        hidden: pa.Array | pa.ChunkedArray = pa.array(range(table.num_rows), type=pa.int64())
    else:
        if entity not in table.column_names:
            raise InvalidInput(f"input {name} has no entity column {entity!r}")
        hidden = table.column(entity)
    return table.append_column(ENTITY_COLUMN, hidden)


def _query(
    inputs: Sequence[pa.Table], privacy: PrivacyContext, admitted: Admitted, sql: str
) -> tuple[pa.Table, list[str]]:
    """Run ``sql`` on the inputs it reads: its result and its DuckDB column types."""
    index = {name: i for i, name in enumerate(input_names(len(inputs)))}
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "threads": 1,
            "memory_limit": MEMORY_LIMIT,
        },
    )
    try:
        for name in admitted.tables:
            i = index[name]
            con.register(name, _prepare(inputs[i], privacy.entity_columns[i], name))
        con.execute("SET lock_configuration = true")
        try:
            relation = con.sql(sql)
            return relation.to_arrow_table(), [str(t) for t in relation.types]
        except _BIND_ERRORS as exc:
            first = str(exc).splitlines()[0][:300]
            raise InvalidInput(f"sql-aggregate: the query does not bind: {first}") from None
        except duckdb.Error:
            raise InvalidInput(RUNTIME_REFUSAL) from None
    finally:
        con.close()


def _number_text(value: float | Decimal) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return canonical_decimal(Decimal(format(value, f".{SIGNIFICANT_DIGITS}g")))


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal) and value.as_tuple().exponent == 0:
        value = int(value)  # a HUGEINT sum
    if isinstance(value, int):
        return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
    if isinstance(value, float | Decimal):
        return _number_text(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise InvalidInput(f"sql-aggregate cannot output a value of type {type(value).__name__}")


def _checked(admitted: Admitted, privacy: PrivacyContext, *, dp: bool = False) -> tuple[str, ...]:
    checked = [*admitted.rules_checked, "join-only", "never-output"]
    if dp:
        return (*checked, *DP_RULES)
    index = {name: i for i, name in enumerate(input_names(len(privacy.k)))}
    for name in admitted.tables:
        i = index[name]
        entity = privacy.entity_columns[i]
        counted = f"distinct {entity}" if entity is not None else "rows"
        checked.append(
            f"entity-threshold: {name} k={privacy.k[i]} ({counted}) behind every aggregate"
        )
    return tuple(checked)


def _run_exact(inputs: Sequence[pa.Table], privacy: PrivacyContext, admitted: Admitted) -> Released:
    result, types = _query(inputs, privacy, admitted, admitted.sql)
    width = len(admitted.output_names)
    index = {name: i for i, name in enumerate(input_names(len(inputs)))}
    cap = privacy.max_output_rows or DEFAULT_MAX_ROWS
    limit = min(admitted.limit or cap, cap)
    thresholds = [privacy.k[index[t]] for t, _ in admitted.hidden]
    released: list[tuple[Cell, ...]] = []
    cells: list[list[frozenset[Hashable]]] = [[] for _ in inputs]
    passing = 0
    for row in zip(*(c.to_pylist() for c in result.columns), strict=True):
        behind = [frozenset(v for v in lst or () if v is not None) for lst in row[width:]]
        if any(len(s) < k for s, k in zip(behind, thresholds, strict=True)):
            continue
        passing += 1
        if len(released) >= limit:
            continue
        released.append(tuple(_cell(v) for v in row[:width]))
        for (t, _), s in zip(admitted.hidden, behind, strict=True):
            if s not in cells[index[t]]:
                cells[index[t]].append(s)
    output = SqlAggregateOutput(
        columns=admitted.output_names,
        types=tuple(types[:width]),
        rows=tuple(released),
        # Cut by the policy's row cap (not by the requester's own LIMIT).
        truncated=admitted.limit is None and passing > cap,
        rules_checked=_checked(admitted, privacy),
        precision=PRECISION,
        dp=None,
    )
    return Released(output=output, footprint=Footprint(cells=tuple(tuple(c) for c in cells)))


# --- DP mode ------------------------------------------------------------------------


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Dictionary codes of a column (-1 for null) and the values by code."""
    whole = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(whole)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(), dtype=np.int64)
    return codes, encoded.dictionary.to_pylist()


def _sort_key(row: Sequence[Cell]) -> tuple[tuple[bool, str, Any], ...]:
    return tuple((v is not None, type(v).__name__, v if v is not None else 0) for v in row)


def dp_mechanism(
    inputs: Sequence[pa.Table], params: SqlAggregateParams, privacy: PrivacyContext
) -> dp_groups.Mechanism[SqlAggregateOutput]:
    """The DP release of ``params`` on ``inputs``, as a mechanism to run (see
    :class:`~sealroom.policy.dp_groups.Mechanism`)."""
    if params.dp is None:
        raise InvalidInput("sql-aggregate: this request has no dp parameters")
    dp_params = params.dp
    admitted = _admit(params, [schema_text(t.schema) for t in inputs], privacy)
    epsilon, delta = Decimal(dp_params.epsilon), Decimal(dp_params.delta)
    if epsilon > privacy.cost.epsilon or delta > privacy.cost.delta:
        raise PolicyDenied(
            f"sql-aggregate: dp (epsilon {dp_params.epsilon}, delta {dp_params.delta}) exceeds "
            f"the budget charged for this run ({privacy.cost.epsilon}, {privacy.cost.delta})",
            rule="dp-budget",
        )
    bounds = _bounds(dp_params)
    rows, row_types = _query(inputs, privacy, admitted, admitted.rows_sql)
    if rows.num_rows > dp_groups.MAX_ROWS:
        raise InvalidInput(f"sql-aggregate: DP takes at most {dp_groups.MAX_ROWS} rows")
    # Identifiers: the first input's entity, which the entity join makes every input's
    # (rows without an identified entity are left out, as in aggregate-stats).
    ident, _ = _codes(rows.column("__sealroom_id"))
    labels = [f"__g{i}" for i in range(len(admitted.dimensions))]
    dims = [_codes(rows.column(f"__sealroom_d{i}")) for i in range(len(admitted.dimensions))]
    gid = np.zeros(rows.num_rows, dtype=np.int64)
    for codes, values in dims:
        gid = gid * (len(values) + 1) + (codes + 1)
    _, gid = np.unique(gid, return_inverse=True)
    named = ident >= 0
    # The measured quantities: the row count, and per aggregated column its non-null count
    # (COUNT(col), AVG) and its clamped sum (SUM, AVG); each aggregate reads one or two.
    measured: dict[str, dp_groups.Statistic] = {"count": dp_groups.Statistic("__count", "count")}
    sources: dict[str, tuple[str, tuple[float, float] | None]] = {}  # name -> column, bounds

    def need(kind: str, j: int) -> str:
        agg = admitted.aggregates[j]
        label = f"{kind} {agg.input}.{agg.column}"
        if label not in measured:
            name = f"__m{len(measured)}"
            if kind == "count":
                measured[label] = dp_groups.Statistic(name, "count", name)
                sources[name] = (f"__sealroom_v{j}", None)
            else:
                lohi = bounds[f"{agg.input}.{agg.column}"]
                measured[label] = dp_groups.Statistic(
                    name, "sum", name, dp_groups.integer_bounds(lohi)
                )
                sources[name] = (f"__sealroom_v{j}", lohi)
        return measured[label].name

    reads: list[tuple[str, ...]] = []
    for j, agg in enumerate(admitted.aggregates):
        if agg.column is None:
            reads.append(("__count",))
        elif agg.function == "avg":
            reads.append((need("sum", j), need("count", j)))
        else:
            reads.append((need(agg.function, j),))
    stats = list(measured.values())
    shown = {stat.name: label for label, stat in measured.items()}
    schema: dict[str, pl.DataType] = {name: pl.String() for name in labels}
    for name, (_, lohi) in sources.items():
        schema[name] = pl.Float64() if lohi is None else pl.Int64()
    contributions = dp_groups.Bounds(dp_params.max_rows_per_entity, dp_params.max_groups_per_entity)
    plan = dp_groups.plan(
        schema=schema,
        labels=labels,
        statistics=stats,
        bounds=contributions,
        epsilon=epsilon,
        delta=delta,
    )

    # Labels as their codes' text (null last), so OpenDP sees strings whatever the type.
    label_text = [
        pl.Series([*(str(i) for i in range(len(values))), None], dtype=pl.String)
        for _, values in dims
    ]

    def frame() -> pl.DataFrame:
        kept = np.flatnonzero(named)[dp_groups.truncate(ident[named], gid[named], contributions)]
        take = pa.array(kept)
        series = [
            by_code.gather(np.where(codes[kept] < 0, len(by_code) - 1, codes[kept])).alias(name)
            for name, (codes, _), by_code in zip(labels, dims, label_text, strict=True)
        ]
        for name, (source, lohi) in sources.items():
            raw = rows.column(source).take(take)
            if lohi is None:  # a count of non-null cells: 1.0 where present
                present = pc.is_valid(raw).to_pylist()
                series.append(pl.Series(name, [1.0 if p else None for p in present], pl.Float64))
            else:
                values = pc.cast(raw, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
                quantized = dp_groups.quantize(np.asarray(values, dtype=np.float64), lohi)
                series.append(pl.Series(name, quantized, pl.Int64))
        return pl.DataFrame(series, schema=schema)

    steps = {name: dp_groups.step_for(lohi) for name, (_, lohi) in sources.items() if lohi}
    names = [s.name for s in stats]
    info = SqlDpInfo(
        epsilon=dp_params.epsilon,
        delta=canonical_decimal(plan.delta),
        epsilon_per_statistic=canonical_decimal(plan.epsilon_each),
        statistics=tuple(shown[n] for n in names),
        noise_scales=tuple(_number_text(plan.scales[n] * steps.get(n, 1.0)) or "0" for n in names),
        threshold=plan.threshold,
        max_rows_per_entity=dp_params.max_rows_per_entity,
        max_groups_per_entity=dp_params.max_groups_per_entity,
        mechanisms=(
            "counts: OpenDP integer Laplace; with GROUP BY, a group is released only if its "
            "noisy row count reaches the threshold (DP partition selection)",
            "sums: values clamped to dp.bounds and rounded to a power-of-two step, OpenDP "
            "integer Laplace on the integer sum",
            "AVG: noisy sum / noisy count, clamped to the bounds (post-processing)",
        ),
    )
    types = tuple(
        row_types[1 + i]
        if kind == "dimension"
        else ("BIGINT" if admitted.aggregates[i].function == "count" else "DOUBLE")
        for kind, i in admitted.outputs
    )
    cap = privacy.max_output_rows or DEFAULT_MAX_ROWS
    limit = min(admitted.limit or cap, cap)
    dimension_at = [i for i, (kind, _) in enumerate(admitted.outputs) if kind == "dimension"]

    def value(record: dict[str, Any], j: int) -> Cell:
        agg, read = admitted.aggregates[j], reads[j]
        if agg.function == "count":
            return max(int(record[read[0]]), 0)
        total = int(record[read[0]]) * steps[read[0]]
        if agg.function == "sum":
            return _cell(total)
        lo, hi = bounds[f"{agg.input}.{agg.column}"]
        return _cell(min(max(total / max(int(record[read[1]]), 1), lo), hi))

    def release() -> SqlAggregateOutput:
        out = plan.release(frame()).frame
        released: list[tuple[Cell, ...]] = []
        for record in out.iter_rows(named=True):
            row: list[Cell] = []
            for kind, i in admitted.outputs:
                if kind == "dimension":
                    label = record[labels[i]]
                    row.append(None if label is None else _cell(dims[i][1][int(label)]))
                else:
                    row.append(value(record, i))
            released.append(tuple(row))
        # Post-processing: by the group labels, then the requester's ORDER BY (stable sorts).
        released.sort(key=lambda r: _sort_key([r[i] for i in dimension_at]))
        for i, desc in reversed(admitted.order):
            released.sort(key=lambda r, i=i: _sort_key([r[i]]), reverse=desc)  # type: ignore[misc]
        return SqlAggregateOutput(
            columns=admitted.output_names,
            types=types,
            rows=tuple(released[:limit]),
            truncated=admitted.limit is None and len(released) > cap,
            rules_checked=_checked(admitted, privacy, dp=True),
            precision=PRECISION,
            dp=info,
        )

    return dp_groups.Mechanism(plan=plan, release=release)


def run(
    inputs: Sequence[pa.Table], params: SqlAggregateParams, privacy: PrivacyContext
) -> SqlAggregateOutput | Released:
    if params.dp is not None:
        return dp_mechanism(inputs, params, privacy).release()
    return _run_exact(
        inputs, privacy, _admit(params, [schema_text(t.schema) for t in inputs], privacy)
    )


def _cost(params: SqlAggregateParams) -> PrivacyCost:
    if params.dp is None:
        return ZERO_COST
    return PrivacyCost(epsilon=Decimal(params.dp.epsilon), delta=Decimal(params.dp.delta))


def _admit_fn(
    params: SqlAggregateParams, schemas: Sequence[SchemaText], privacy: PrivacyContext
) -> None:
    _admit(params, schemas, privacy)


COMPUTATION = Computation(
    id="sql-aggregate",
    version="2.2.0",
    summary=(
        "The requester's aggregate SQL (DuckDB dialect, an allow-list grammar) over 1..26 "
        "inputs named a, b, c, ...: entity-level DP (COUNT, SUM, AVG; groups by partition "
        "selection), or the owner's pinned SQL exactly, with k entities of every input behind "
        "every aggregate."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("a",),
    params=SqlAggregateParams,
    output=SqlAggregateOutput,
    run_fn=run,
    modules=(sys.modules[__name__], sql_rules, dp_groups),
    cost_fn=_cost,
    variadic=True,
    isolating=("sql",),
    selectors=True,
    admit_fn=_admit_fn,
)
