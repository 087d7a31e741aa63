"""sql-aggregate: the requester's aggregate SQL over the inputs, under every owner's analysis rules.

Privacy contract (class ``aggregate``, released to the requester only):

* Admission: the SQL (DuckDB dialect) is parsed with sqlglot and admitted only if it
  satisfies the SQL analysis rules (``PolicyRules.sql``) of EVERY input it reads
  (:func:`sealroom.policy.sql_rules.analyze`; the rules and their names are listed
  there). An input without SQL rules is never read. Refusals are PolicyDenied naming
  the rule broken. The policy's entity column is an identity column whatever the
  rules say, so it is never compared with a literal (this blocks the differencing
  pair "the same query excluding one entity by identifier") and only ever counted.
* Threshold: the engine, not the requester, adds COUNT(DISTINCT entity) per output
  group for every input read (rows when the input declares no entity column) and
  drops every group with fewer than that input's ``k`` entities. ``suppressed_groups``
  says how many. Outputs never include totals: ROLLUP / CUBE / GROUPING SETS, window
  functions, subqueries and UNION are refused, so a suppressed group cannot be rebuilt
  by subtraction within one release. (Across separate requests, a total and a
  grouped query can still be subtracted; each SQL text is approved by the owners, and
  the DP computations are the tool for repeated-query guarantees.)
* Columns: ``join_only`` columns may appear only in JOIN ... ON; ``never_output``
  columns may be joined on, filtered on and counted (COUNT / COUNT DISTINCT), never
  grouped by nor aggregated into a value (SUM, MIN, ...). Violations are InvalidInput
  naming the rule.
* No DP noise: results are exact aggregates of groups above k.
* Robustness: CAST is refused (TRY_CAST only), arithmetic runs in DOUBLE, every
  division is by NULLIF(x, 0), integer sums are HUGEINT, and decimal inputs are read
  as DOUBLE, so no single row can turn success into failure. Any remaining run-time
  error gives one fixed refusal whose text does not depend on the data.
* Output: ``columns`` / ``types``, ``rows`` (at most the policy's ``max_output_rows``,
  default 10,000, and the query's LIMIT, applied after suppression), ``suppressed_groups``,
  ``truncated`` (rows cut by the policy's cap),
  ``rules_checked``. Values are JSON-safe: integers within +/-(2^53-1) as numbers,
  larger ones and every non-integer number as a decimal string rounded half-even to
  12 significant digits (NaN and infinities as null), dates and times as ISO 8601
  strings.

DuckDB runs in process with a fresh in-memory connection per run: external access
disabled, no extension autoload or autoinstall, one thread (a deterministic result),
a memory limit, and the configuration locked before the query runs.
"""

from __future__ import annotations

import datetime as dt
import math
import string
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput
from sealroom.policy import sql_rules
from sealroom.policy.sql_rules import (
    ENTITY_COLUMN,
    MAX_SQL_LENGTH,
    Admitted,
    SqlAnalysisRules,
    analyze,
)
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "COMPUTATION",
    "DEFAULT_MAX_ROWS",
    "PRECISION",
    "SqlAggregateOutput",
    "SqlAggregateParams",
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SqlAggregateParams(_Model):
    sql: Annotated[str, Field(min_length=1, max_length=MAX_SQL_LENGTH)]


class SqlAggregateOutput(_Model):
    columns: Annotated[tuple[Annotated[str, Field(max_length=200)], ...], Field(max_length=1000)]
    types: Annotated[tuple[Annotated[str, Field(max_length=200)], ...], Field(max_length=1000)]
    rows: Annotated[tuple[tuple[Cell, ...], ...], Field(max_length=1_000_000)]
    suppressed_groups: Annotated[int, Field(ge=0)]
    truncated: bool
    rules_checked: tuple[str, ...]
    precision: str


def input_names(n: int) -> tuple[str, ...]:
    """Table names of ``n`` inputs in request order: a, b, c, ..."""
    if not 1 <= n <= MAX_INPUTS:
        raise InvalidInput(f"sql-aggregate takes 1 to {MAX_INPUTS} inputs, got {n}")
    return tuple(string.ascii_lowercase[:n])


def _rules(privacy: PrivacyContext, i: int, name: str) -> SqlAnalysisRules | None:
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
            raise InvalidInput(f"rule join-only: {label} may be used as a join key only")
        if use.column in privacy.never_output[i]:
            counted = use.role == "aggregate" and use.function in ("count", "count_distinct")
            if use.role == "dimension" or (use.role == "aggregate" and not counted):
                raise InvalidInput(
                    f"rule never-output: {label} is never output; it may only be joined on, "
                    "filtered on or counted"
                )


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


def _connect() -> duckdb.DuckDBPyConnection:
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
    return con


def _number_text(value: float | Decimal) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return canonical_decimal(Decimal(format(value, f".{SIGNIFICANT_DIGITS}g")))


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, bool | str):
        return value
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


def run(
    inputs: Sequence[pa.Table], params: SqlAggregateParams, privacy: PrivacyContext
) -> SqlAggregateOutput:
    names = input_names(len(inputs))
    rules = [_rules(privacy, i, name) for i, name in enumerate(names)]
    cap = privacy.max_output_rows or DEFAULT_MAX_ROWS
    admitted = analyze(
        params.sql,
        inputs={name: (t.schema, r) for name, t, r in zip(names, inputs, rules, strict=True)},
        max_output_rows=cap,
    )
    _check_column_rules(admitted, names, privacy)
    index = {name: i for i, name in enumerate(names)}
    width = len(admitted.output_names)
    con = _connect()
    try:
        for name in admitted.tables:
            i = index[name]
            con.register(name, _prepare(inputs[i], privacy.entity_columns[i], name))
        con.execute("SET lock_configuration = true")
        try:
            cursor = con.execute(admitted.sql)
            description = cursor.description or []
            result = cursor.fetchall()
        except _BIND_ERRORS as exc:
            first = str(exc).splitlines()[0][:300]
            raise InvalidInput(f"sql-aggregate: the query does not bind: {first}") from None
        except duckdb.Error:
            raise InvalidInput(RUNTIME_REFUSAL) from None
    finally:
        con.close()
    thresholds = [privacy.k[index[name]] for name in admitted.tables]
    released: list[tuple[Cell, ...]] = []
    suppressed = 0
    for row in result:
        counts = row[width:]
        if any(int(c) < k for c, k in zip(counts, thresholds, strict=True)):
            suppressed += 1
            continue
        released.append(tuple(_cell(v) for v in row[:width]))
    limit = min(admitted.limit or cap, cap)
    # Cut by the policy's row cap (not by the requester's own LIMIT).
    truncated = admitted.limit is None and len(released) > cap
    checked = [*admitted.rules_checked, "join-only", "never-output"]
    for name in admitted.tables:
        i = index[name]
        entity = privacy.entity_columns[i]
        counted = f"distinct {entity}" if entity is not None else "rows"
        checked.append(f"entity-threshold: {name} k={privacy.k[i]} ({counted})")
    return SqlAggregateOutput(
        columns=admitted.output_names,
        types=tuple(str(d[1]) for d in description[:width]),
        rows=tuple(released[:limit]),
        suppressed_groups=suppressed,
        truncated=truncated,
        rules_checked=tuple(checked),
        precision=PRECISION,
    )


COMPUTATION = Computation(
    id="sql-aggregate",
    version="1.1.0",
    summary=(
        "The requester's aggregate SQL (DuckDB dialect) over 1..26 inputs named a, b, c, ..., "
        "admitted only under every owner's SQL analysis rules; groups with fewer than k "
        "distinct entities of any input are suppressed by the engine."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("a",),
    params=SqlAggregateParams,
    output=SqlAggregateOutput,
    run_fn=run,
    modules=(sys.modules[__name__], sql_rules),
    variadic=True,
    isolating=("sql",),
    selectors=True,
)
