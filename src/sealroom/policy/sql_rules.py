"""SQL analysis rules: which requester SQL an owner admits on a dataset, and the analyser.

An owner declares, per dataset, what a query may do with each column
(:class:`SqlAnalysisRules`, carried in the policy as ``PolicyRules.sql``). The
analyser (:func:`analyze`) parses the requester's SQL (DuckDB dialect, with
``sqlglot``) and admits it only if it satisfies the rules of EVERY input it
reads; otherwise it raises :class:`~sealroom.errors.PolicyDenied` naming the
rule broken ("rule <name>: ..."). It also rewrites the admitted query so that no
single row can change success into failure (TRY_CAST only, NULL-safe division,
arithmetic in DOUBLE) and adds the per-input distinct-entity counts the engine
needs to enforce the threshold k itself.

Rules (the names used in refusals):

* ``single-select``: exactly one plain SELECT statement; no DDL/DML, PRAGMA,
  ATTACH, COPY, SET, UNION/INTERSECT/EXCEPT, CTEs or subqueries.
* ``declared-tables``: only the computation's input names as tables, each at most
  once; no table functions (read_csv, read_parquet, ...), no schemas/catalogs
  (system tables).
* ``sql-rules-declared``: every input read declares SQL analysis rules.
* ``known-columns``: every column exists in exactly one table read (or is qualified).
* ``allowed-functions``: only the aggregations an input allows (``aggregations``)
  and a fixed list of total scalar functions; no window functions.
* ``aggregate-columns``: columns inside an aggregation are in ``aggregate_columns``.
* ``dimension-columns``: GROUP BY items are plain columns in ``dimension_columns``;
  no ROLLUP / CUBE / GROUPING SETS (they release totals over suppressed groups).
* ``filter-columns``: columns in WHERE (and outside aggregations in HAVING) are in
  ``filter_columns`` (HAVING: group-by columns).
* ``join-columns``: JOIN ... ON equalities (or USING) between join columns of
  different inputs only; no CROSS/NATURAL/LATERAL joins.
* ``no-identity-literals``: an identity column is never compared with a literal
  (=, <>, <, IN, LIKE, BETWEEN, ...), which blocks the differencing pair "the same
  query excluding one entity by its identifier".
* ``no-row-level-output``: every output column is an aggregate or a GROUP BY
  column; no ``SELECT *``; no DISTINCT rows.
* ``no-cast``: CAST and ``::`` are refused (TRY_CAST is allowed).
* ``typed-comparisons``: no comparison between a text and a number/time operand
  (an implicit cast that a single row could make fail).
* ``output-limit``: LIMIT (if any) is a constant in [1, max_output_rows]; no OFFSET.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import pyarrow as pa
import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import parse_object

__all__ = [
    "AGGREGATIONS",
    "ENTITY_COLUMN",
    "MAX_SQL_LENGTH",
    "RULES",
    "Admitted",
    "AggregationName",
    "ColumnUse",
    "SqlAnalysisRules",
    "analyze",
    "entity_count_column",
]

AggregationName = Literal[
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "variance",
    "median",
    "quantile",
]
"""Aggregations an owner may allow. ``count`` covers COUNT(*) and COUNT(col);
``stddev``/``variance`` cover the sample and population forms; ``quantile`` covers
QUANTILE_CONT / QUANTILE_DISC with a constant fraction."""

AGGREGATIONS: tuple[AggregationName, ...] = (
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "variance",
    "median",
    "quantile",
)

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
Columns = Annotated[tuple[ColumnName, ...], Field(max_length=1000)]


class SqlAnalysisRules(BaseModel):
    """What requester SQL may do with one dataset's columns (fail closed: empty allows nothing).

    ``aggregations``: the aggregation functions allowed (default: count, sum, avg).
    ``aggregate_columns``: columns usable inside an aggregation.
    ``dimension_columns``: columns usable in GROUP BY (and so output per group).
    ``filter_columns``: columns usable in WHERE predicates.
    ``join_columns``: columns usable as equality join keys with another input.
    ``identity_columns``: columns identifying an entity; never compared with a literal
    (the engine adds the policy's entity column to these).
    The output threshold is the policy's ``k`` in distinct entities, enforced by the engine.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    aggregations: Annotated[tuple[AggregationName, ...], Field(max_length=len(AGGREGATIONS))] = (
        "count",
        "sum",
        "avg",
    )
    aggregate_columns: Columns = ()
    dimension_columns: Columns = ()
    filter_columns: Columns = ()
    join_columns: Columns = ()
    identity_columns: Columns = ()

    @classmethod
    def parse(cls, rules: Mapping[str, object]) -> SqlAnalysisRules:
        """Validate a JSON object of SQL rules (as found in a policy), or raise InvalidInput."""
        return parse_object(cls, dict(rules), what="sql analysis rules")


# ---------------------------------------------------------------------------
# The analyser
# ---------------------------------------------------------------------------

RULES: tuple[str, ...] = (
    "single-select",
    "declared-tables",
    "sql-rules-declared",
    "known-columns",
    "allowed-functions",
    "aggregate-columns",
    "identity-aggregates",
    "dimension-columns",
    "filter-columns",
    "join-columns",
    "no-identity-literals",
    "no-row-level-output",
    "no-cast",
    "typed-comparisons",
    "output-limit",
)
"""Every rule an admitted query was checked against, in the order they are reported."""

MAX_SQL_LENGTH = 20_000
ENTITY_COLUMN = "__sealroom_entity"
"""The hidden column the engine appends to every input: the policy's entity column (or a row
number), counted per output group to enforce k. Never visible to the requester's SQL."""
_RESERVED_PREFIX = "__sealroom"

Role = Literal["aggregate", "dimension", "filter", "join"]


def entity_count_column(input_name: str) -> str:
    """Name of the hidden output column holding the distinct entities of ``input_name``."""
    return f"{_RESERVED_PREFIX}_k_{input_name}"


def _alias(input_name: str) -> str:
    return f"{_RESERVED_PREFIX}_t_{input_name}"


@dataclass(frozen=True, slots=True)
class ColumnUse:
    """One way the admitted query uses one input column (for never-output / join-only checks)."""

    input: str
    column: str
    role: Role
    function: AggregationName | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A query that satisfies the rules of every input it reads, rewritten for execution.

    ``sql`` reads each input ``x`` as table ``x`` with the hidden column
    :data:`ENTITY_COLUMN`; its result has the requester's columns (``output_names``:
    the alias, the column name, or the expression as written) followed by
    one distinct-entity count per input in ``tables`` (named by
    :func:`entity_count_column`). It carries no LIMIT: the engine applies ``limit``
    after suppressing small groups.
    """

    sql: str
    tables: tuple[str, ...]
    output_names: tuple[str, ...]
    limit: int | None
    uses: frozenset[ColumnUse]
    rules_checked: tuple[str, ...] = RULES


def _deny(rule: str, detail: str) -> PolicyDenied:
    return PolicyDenied(f"rule {rule}: {detail}")


_SELECT_ARGS = frozenset(
    {"expressions", "from_", "joins", "where", "group", "having", "order", "limit"}
)
_SELECT_ARG_WORDS = {
    "with_": "WITH (common table expressions)",
    "distinct": "SELECT DISTINCT",
    "offset": "OFFSET",
    "qualify": "QUALIFY",
    "windows": "WINDOW",
    "sample": "USING SAMPLE",
    "laterals": "LATERAL",
    "pivots": "PIVOT",
    "into": "SELECT INTO",
    "exclude": "EXCLUDE",
}

_AGGREGATES: dict[type[exp.Expression], AggregationName] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
    exp.Stddev: "stddev",
    exp.StddevSamp: "stddev",
    exp.StddevPop: "stddev",
    exp.Variance: "variance",
    exp.VariancePop: "variance",
    exp.Median: "median",
    exp.Quantile: "quantile",
    exp.PercentileCont: "quantile",
    exp.PercentileDisc: "quantile",
}
# Comparisons whose operands must not pair an identity column with a constant.
_COMPARISONS: tuple[type[exp.Expression], ...] = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Glob,
    exp.RegexpLike,
    exp.SimilarTo,
)
_ARITHMETIC: tuple[type[exp.Expression], ...] = (
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
)
_LOGIC: tuple[type[exp.Expression], ...] = (exp.And, exp.Or, exp.Not, exp.Paren)
# Total scalar functions: none of them can fail on a value once arithmetic is in DOUBLE.
_SCALARS: tuple[type[exp.Expression], ...] = (
    exp.Coalesce,
    exp.Nullif,
    exp.Case,
    exp.If,
    exp.Abs,
    exp.Round,
    exp.Lower,
    exp.Upper,
)
_TRY_CAST_TARGETS: dict[str, str] = {
    "DOUBLE": "number",
    "FLOAT": "number",
    "BIGINT": "number",
    "INT": "number",
    "SMALLINT": "number",
    "TEXT": "text",
    "VARCHAR": "text",
    "DATE": "time",
    "TIMESTAMP": "time",
    "TIMESTAMPNTZ": "time",
    "BOOLEAN": "bool",
}


def _arrow_family(t: pa.DataType) -> str | None:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_temporal(t):
        return "time"
    if pa.types.is_boolean(t):
        return "bool"
    return None


def _args(node: exp.Expression) -> Iterator[tuple[str, object]]:
    """The set arguments of ``node`` (flags like ``big_int`` included)."""
    for key, value in node.args.items():
        if value is None or value is False or value == []:
            continue
        yield key, value


class _Analyzer:
    """One analysis: scope, resolved columns and uses, filled while checking."""

    def __init__(
        self,
        inputs: Mapping[str, tuple[pa.Schema, SqlAnalysisRules | None]],
        max_output_rows: int | None,
    ) -> None:
        self.inputs = inputs
        self.max_output_rows = max_output_rows
        self.scope: dict[str, str] = {}  # alias (lowercase) -> input name
        self.tables: list[str] = []
        self.rules: dict[str, SqlAnalysisRules] = {}
        self.resolved: dict[int, tuple[str, str]] = {}
        self.uses: set[ColumnUse] = set()
        self.group: set[tuple[str, str]] = set()
        self.output_aliases: set[str] = set()

    # -- tables ------------------------------------------------------------
    def table(self, node: exp.Expression, where: str) -> None:
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            raise _deny(
                "declared-tables",
                f"{where} must name an input table; table functions and subqueries "
                f"are not allowed (got {node.sql(dialect='duckdb')[:80]})",
            )
        extra = [k for k, _ in _args(node) if k not in ("this", "alias")]
        if node.args.get("db") is not None or node.args.get("catalog") is not None:
            raise _deny(
                "declared-tables",
                f"{node.sql(dialect='duckdb')} names a schema or catalog; only the inputs "
                f"({', '.join(self.inputs)}) may be read",
            )
        if extra:
            raise _deny("declared-tables", f"table modifier {extra[0]} is not allowed")
        name = node.this.this.lower()
        if name not in self.inputs:
            raise _deny(
                "declared-tables",
                f"unknown table {node.this.this!r}; the inputs are {', '.join(self.inputs)}",
            )
        if name in self.tables:
            raise _deny("declared-tables", f"input {name} is read more than once")
        alias = node.args.get("alias")
        alias_name = name
        if alias is not None:
            if not isinstance(alias, exp.TableAlias) or alias.args.get("columns"):
                raise _deny("declared-tables", "a table alias may not rename columns")
            alias_name = alias.name.lower()
            if alias_name.startswith(_RESERVED_PREFIX):
                raise _deny("declared-tables", f"alias {alias.name!r} is reserved")
        if alias_name in self.scope:
            raise _deny("declared-tables", f"table name or alias {alias_name!r} is used twice")
        rules = self.inputs[name][1]
        if rules is None:
            raise _deny("sql-rules-declared", f"input {name} declares no SQL analysis rules")
        self.rules[name] = rules
        self.scope[alias_name] = name
        self.tables.append(name)

    # -- columns -----------------------------------------------------------
    def resolve(self, col: exp.Column) -> tuple[str, str]:
        if col.args.get("db") is not None or col.args.get("catalog") is not None:
            raise _deny("declared-tables", f"{col.sql(dialect='duckdb')} names a schema")
        if not isinstance(col.this, exp.Identifier):
            raise _deny("no-row-level-output", "SELECT * and table.* are not allowed")
        name = col.this.this
        qualifier = col.args.get("table")
        if qualifier is not None:
            alias = qualifier.name.lower()
            if alias not in self.scope:
                raise _deny("known-columns", f"{col.sql(dialect='duckdb')}: unknown table {alias}")
            candidates = [self.scope[alias]]
        else:
            candidates = list(self.scope.values())
        found: list[tuple[str, str]] = []
        for table in candidates:
            names = self.inputs[table][0].names
            exact = [n for n in names if n == name]
            folded = exact or [n for n in names if n.lower() == name.lower()]
            if len(folded) > 1:
                raise _deny("known-columns", f"column {name!r} of {table} is ambiguous")
            found.extend((table, n) for n in folded)
        if not found:
            raise _deny("known-columns", f"unknown column {col.sql(dialect='duckdb')}")
        if len(found) > 1:
            raise _deny(
                "known-columns",
                f"column {name!r} is in {' and '.join(t for t, _ in found)}; qualify it",
            )
        self.resolved[id(col)] = found[0]
        return found[0]

    def family(self, node: exp.Expression) -> str | None:
        """The type family of an expression ("any" for NULL; None when unknown)."""
        if isinstance(node, exp.Null):
            return "any"
        if isinstance(node, exp.Column):
            table, name = self.resolve(node)
            return _arrow_family(self.inputs[table][0].field(name).type)
        if isinstance(node, exp.Literal):
            return "text" if node.is_string else "number"
        if isinstance(node, (exp.Boolean, *_COMPARISONS, *_LOGIC[:3])):
            return "bool"
        if isinstance(node, exp.TryCast):
            return _TRY_CAST_TARGETS.get(node.args["to"].this.name)
        if isinstance(node, (*_ARITHMETIC, exp.Neg, exp.Abs, exp.Round)):
            return "number"
        if isinstance(node, (exp.Count, exp.Sum, exp.Avg, exp.Stddev, exp.StddevSamp)):
            return "number"
        if isinstance(node, (exp.StddevPop, exp.Variance, exp.VariancePop)):
            return "number"
        if isinstance(node, (exp.Lower, exp.Upper)):
            return "text"
        if isinstance(node, (exp.Paren, exp.Min, exp.Max, exp.Median, exp.Alias)):
            return self.family(node.this)
        if isinstance(node, (exp.Quantile, exp.PercentileCont, exp.PercentileDisc)):
            return self.family(node.this)
        branches: list[exp.Expression] = []
        if isinstance(node, (exp.Coalesce, exp.Nullif)):
            branches = [node.this, *node.expressions]
            if isinstance(node, exp.Nullif):
                branches.append(node.expression)
        elif isinstance(node, exp.Case):
            branches = [i.args["true"] for i in node.args.get("ifs") or []]
            if node.args.get("default") is not None:
                branches.append(node.args["default"])
        elif isinstance(node, exp.If):
            branches = [node.args["true"]]
            if node.args.get("false") is not None:
                branches.append(node.args["false"])
        if branches:
            return self.common_family(branches, what=node.key.upper())
        return None

    def common_family(self, operands: list[exp.Expression], *, what: str) -> str | None:
        families = {self.family(o) for o in operands} - {"any"}
        if None in families:
            return None
        if len(families) > 1:
            time_text = families == {"time", "text"}
            literal_text = all(
                isinstance(o, exp.Literal) or self.family(o) != "text" for o in operands
            )
            if not (time_text and literal_text):
                raise _deny(
                    "typed-comparisons",
                    f"{what} mixes {' and '.join(sorted(f for f in families if f))} operands; "
                    "convert explicitly with TRY_CAST",
                )
            return "time"
        return families.pop() if families else "any"

    # -- checks ------------------------------------------------------------
    def identity_literals(self, tree: exp.Expression) -> None:
        for node in tree.find_all(*_COMPARISONS):
            operands = [c for c in node.iter_expressions() if isinstance(c, exp.Expression)]
            if isinstance(node, exp.In):
                if node.args.get("query") is not None or node.args.get("unnest") is not None:
                    continue  # refused as a subquery later
                operands = [node.this, *node.expressions]
            for i, operand in enumerate(operands):
                idents = [
                    self.resolve(c)
                    for c in operand.find_all(exp.Column)
                    if isinstance(c.this, exp.Identifier) and self.is_identity(c)
                ]
                if not idents:
                    continue
                others = operands[:i] + operands[i + 1 :]
                if any(not any(True for _ in o.find_all(exp.Column)) for o in others):
                    table, column = idents[0]
                    raise _deny(
                        "no-identity-literals",
                        f"{table}.{column} compared with a literal "
                        f"({node.sql(dialect='duckdb')[:120]})",
                    )

    def is_identity(self, col: exp.Column) -> bool:
        try:
            table, name = self.resolve(col)
        except PolicyDenied:
            return False  # reported by the main walk with its own rule
        return name in self.rules[table].identity_columns

    def use(self, table: str, column: str, role: Role, fn: AggregationName | None = None) -> None:
        self.uses.add(ColumnUse(input=table, column=column, role=role, function=fn))

    def expr(self, node: exp.Expression, ctx: str, agg: AggregationName | None = None) -> None:
        """Check one expression in a context: output, having, order, where, filter."""
        if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)):
            return
        if isinstance(node, exp.Column):
            self.column(node, ctx, agg)
            return
        if isinstance(node, exp.Star):
            raise _deny("no-row-level-output", "SELECT * is not allowed")
        if isinstance(node, (exp.Subquery, exp.Select, exp.Exists, exp.Union)):
            raise _deny("single-select", "subqueries are not allowed")
        if isinstance(node, exp.Window):
            raise _deny(
                "allowed-functions",
                "window functions are not allowed (they release row-level values or totals)",
            )
        if isinstance(node, exp.TryCast):
            self.try_cast(node, ctx, agg)
            return
        if isinstance(node, exp.Cast):
            raise _deny("no-cast", f"use TRY_CAST instead of {node.sql(dialect='duckdb')[:80]}")
        if isinstance(node, exp.Filter):
            self.filtered_aggregate(node, ctx, agg)
            return
        if type(node) in _AGGREGATES:
            self.aggregate(node, ctx, agg)
            return
        if isinstance(node, exp.Alias):
            if ctx != "output" or node.parent is None or not isinstance(node.parent, exp.Select):
                raise _deny("single-select", "aliases are allowed on output columns only")
            self.expr(node.this, ctx, agg)
            return
        if isinstance(node, (*_COMPARISONS, exp.Is)):
            self.comparison(node, ctx, agg)
            return
        if isinstance(node, _LOGIC + _ARITHMETIC + (exp.Neg,) + _SCALARS):
            self.scalar(node, ctx, agg)
            return
        if isinstance(node, exp.Anonymous):
            name = str(node.name).upper()
        elif isinstance(node, exp.Func):
            name = node.sql_name()
        else:
            name = node.key.upper()
        raise _deny("allowed-functions", f"{name} is not allowed")

    def column(self, node: exp.Column, ctx: str, agg: AggregationName | None) -> None:
        if (
            ctx == "order"
            and node.args.get("table") is None
            and isinstance(node.this, exp.Identifier)
            and node.this.this.lower() in self.output_aliases
        ):
            return  # an output column named in ORDER BY
        table, name = self.resolve(node)
        rules = self.rules[table]
        label = f"{table}.{name}"
        if agg is not None:
            if name in rules.identity_columns and agg not in ("count", "count_distinct"):
                raise _deny(
                    "identity-aggregates",
                    f"identity column {label} may only be counted, not in {agg.upper()}",
                )
            if name not in rules.aggregate_columns and name not in rules.identity_columns:
                raise _deny(
                    "aggregate-columns", f"{label} may not be aggregated (in {agg.upper()})"
                )
            self.use(table, name, "aggregate", agg)
            return
        if ctx in ("where", "filter"):
            if name not in rules.filter_columns:
                raise _deny(
                    "filter-columns", f"{label} may not be used in a WHERE/FILTER predicate"
                )
            self.use(table, name, "filter")
            return
        if (table, name) in self.group:
            return
        if ctx == "having":
            raise _deny(
                "filter-columns",
                f"HAVING may use aggregates and GROUP BY columns only, not {label}",
            )
        raise _deny(
            "no-row-level-output",
            f"{label} is neither aggregated nor a GROUP BY column",
        )

    def try_cast(self, node: exp.TryCast, ctx: str, agg: AggregationName | None) -> None:
        extra = [k for k, _ in _args(node) if k not in ("this", "to", "safe", "_type")]
        target = node.args["to"]
        name = target.this.name if isinstance(target, exp.DataType) else "?"
        if extra or name not in _TRY_CAST_TARGETS or target.expressions:
            raise _deny(
                "allowed-functions",
                f"TRY_CAST to {target.sql(dialect='duckdb')} is not allowed "
                f"(targets: DOUBLE, BIGINT, INTEGER, VARCHAR, DATE, TIMESTAMP, BOOLEAN)",
            )
        self.expr(node.this, ctx, agg)

    def aggregate(self, node: exp.Expression, ctx: str, agg: AggregationName | None) -> None:
        fn = _AGGREGATES[type(node)]
        if agg is not None:
            raise _deny("allowed-functions", "nested aggregations are not allowed")
        if ctx in ("where", "filter"):
            raise _deny("allowed-functions", "aggregations are not allowed in WHERE")
        arg = node.this
        if fn == "count" and isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1 or any(k != "expressions" for k, _ in _args(arg)):
                raise _deny("allowed-functions", "COUNT(DISTINCT ...) takes one column")
            fn, arg = "count_distinct", arg.expressions[0]
        elif isinstance(arg, exp.Distinct):
            raise _deny("allowed-functions", f"DISTINCT is allowed in COUNT only, not {fn.upper()}")
        allowed_args = {"this", "big_int"}
        if fn == "quantile":
            q = node.args.get("quantile") or node.args.get("expression")
            if not (isinstance(q, exp.Literal) and not q.is_string and 0 <= float(q.this) <= 1):
                raise _deny("allowed-functions", "a quantile needs a constant fraction in [0, 1]")
            allowed_args |= {"quantile", "expression"}
        extra = [k for k, _ in _args(node) if k not in allowed_args]
        if extra:
            raise _deny("allowed-functions", f"{fn.upper()} does not take {extra[0]}")
        if isinstance(arg, exp.Star):
            if fn != "count":
                raise _deny("allowed-functions", f"{fn.upper()}(*) is not allowed")
        else:
            self.expr(arg, ctx, fn)
        # The inputs whose values are aggregated must allow the function (all, for COUNT(*)).
        read = {self.resolved[id(c)][0] for c in arg.find_all(exp.Column) if id(c) in self.resolved}
        for table in self.tables:
            if (not read or table in read) and fn not in self.rules[table].aggregations:
                raise _deny("allowed-functions", f"input {table} does not allow {fn.upper()}")

    def filtered_aggregate(self, node: exp.Filter, ctx: str, agg: AggregationName | None) -> None:
        inner, where = node.this, node.expression
        if type(inner) not in _AGGREGATES or not isinstance(where, exp.Where):
            raise _deny("allowed-functions", "FILTER applies to an aggregation only")
        self.aggregate(inner, ctx, agg)
        self.expr(where.this, "filter")

    def comparison(self, node: exp.Expression, ctx: str, agg: AggregationName | None) -> None:
        if isinstance(node, exp.In):
            if any(k in ("query", "unnest", "field") for k, _ in _args(node)):
                raise _deny("single-select", "IN takes a list of values, not a subquery")
            operands = [node.this, *node.expressions]
        elif isinstance(node, exp.Is):
            if not isinstance(node.expression, (exp.Null, exp.Boolean)):
                raise _deny("allowed-functions", "IS compares with NULL, TRUE or FALSE only")
            operands = [node.this]
        else:
            extra = [k for k, _ in _args(node) if k not in ("this", "expression", "low", "high")]
            if extra:
                raise _deny("allowed-functions", f"{node.key.upper()} does not take {extra[0]}")
            operands = [c for c in node.iter_expressions() if isinstance(c, exp.Expression)]
        for operand in operands:
            self.expr(operand, ctx, agg)
        if isinstance(node, (exp.Like, exp.ILike, exp.Glob, exp.RegexpLike, exp.SimilarTo)):
            operands.append(exp.Literal.string(""))  # pattern matching is on text
        if (
            not isinstance(node, exp.Is)
            and self.common_family(operands, what=node.key.upper()) is None
        ):
            raise _deny(
                "typed-comparisons",
                f"cannot tell the operand types of {node.sql(dialect='duckdb')[:80]}; use TRY_CAST",
            )

    def scalar(self, node: exp.Expression, ctx: str, agg: AggregationName | None) -> None:
        if isinstance(node, exp.Round):
            decimals = node.args.get("decimals")
            if decimals is not None and not (isinstance(decimals, exp.Literal) and decimals.is_int):
                raise _deny("allowed-functions", "ROUND takes a constant number of decimals")
            extra = [k for k, _ in _args(node) if k not in ("this", "decimals")]
        elif isinstance(node, exp.Coalesce):
            extra = [k for k, _ in _args(node) if k not in ("this", "expressions")]
        elif isinstance(node, exp.Case):
            extra = [k for k, _ in _args(node) if k not in ("ifs", "default")]
        elif isinstance(node, exp.If):
            extra = [k for k, _ in _args(node) if k not in ("this", "true", "false")]
        else:
            extra = [k for k, _ in _args(node) if k not in ("this", "expression")]
        if extra:
            raise _deny("allowed-functions", f"{node.key.upper()} does not take {extra[0]}")
        for child in node.iter_expressions():
            self.expr(child, ctx, agg)
        if isinstance(node, (exp.Coalesce, exp.Nullif, exp.Case, exp.If)):
            self.family(node)  # refuses mixed branch types

    def join(self, node: exp.Join) -> None:
        extra = [k for k, _ in _args(node) if k not in ("this", "on", "side", "kind")]
        kind = (node.args.get("kind") or "").upper()
        if extra or kind not in ("", "INNER", "OUTER"):
            what = kind or (extra[0] if extra else "")
            raise _deny(
                "join-columns",
                f"{what.upper()} joins are not allowed; join with ON equalities of join columns",
            )
        self.table(node.this, "JOIN")
        joined = self.tables[-1]
        on = node.args.get("on")
        if on is None:
            raise _deny("join-columns", f"the join of {joined} needs ON equalities of join columns")
        equalities: list[exp.Expression] = []
        stack = [on]
        while stack:
            part = stack.pop()
            if isinstance(part, exp.Paren):
                stack.append(part.this)
            elif isinstance(part, exp.And):
                stack.extend([part.this, part.expression])
            else:
                equalities.append(part)
        touches_joined = False
        for eq in equalities:
            if not (
                isinstance(eq, exp.EQ)
                and isinstance(eq.this, exp.Column)
                and isinstance(eq.expression, exp.Column)
            ):
                raise _deny(
                    "join-columns",
                    f"join conditions are equalities of two columns, not "
                    f"{eq.sql(dialect='duckdb')[:80]}",
                )
            (t1, c1), (t2, c2) = self.resolve(eq.this), self.resolve(eq.expression)
            if t1 == t2:
                raise _deny("join-columns", f"{t1}.{c1} = {t2}.{c2} does not join two inputs")
            for t, c in ((t1, c1), (t2, c2)):
                if c not in self.rules[t].join_columns:
                    raise _deny("join-columns", f"{t}.{c} is not a join column")
                self.use(t, c, "join")
            touches_joined = touches_joined or joined in (t1, t2)
        if not touches_joined:
            raise _deny("join-columns", f"the ON clause of the join does not involve {joined}")

    def group_by(self, group: exp.Group) -> None:
        extra = [k for k, _ in _args(group) if k != "expressions"]
        if extra or any(
            isinstance(e, (exp.Rollup, exp.Cube, exp.GroupingSets)) for e in group.expressions
        ):
            raise _deny(
                "dimension-columns",
                "ROLLUP, CUBE, GROUPING SETS and GROUP BY ALL are not allowed "
                "(totals over suppressed groups would let them be rebuilt)",
            )
        for item in group.expressions:
            if not isinstance(item, exp.Column):
                raise _deny(
                    "dimension-columns",
                    f"GROUP BY takes plain dimension columns, not {item.sql(dialect='duckdb')[:80]}",
                )
            table, name = self.resolve(item)
            if name not in self.rules[table].dimension_columns:
                raise _deny("dimension-columns", f"{table}.{name} is not a dimension column")
            self.group.add((table, name))
            self.use(table, name, "dimension")

    def limit(self, node: exp.Expression | None) -> int | None:
        if node is None:
            return None
        value = node.args.get("expression")
        extra = [k for k, _ in _args(node) if k != "expression"]
        if extra or not (isinstance(value, exp.Literal) and value.is_int):
            raise _deny("output-limit", "LIMIT takes a constant row count")
        n = int(value.this)
        cap = self.max_output_rows
        if n < 1 or (cap is not None and n > cap):
            raise _deny("output-limit", f"LIMIT {n} is outside 1..{cap if cap else 'no cap'}")
        return n


def analyze(
    sql: str,
    *,
    inputs: Mapping[str, tuple[pa.Schema, SqlAnalysisRules | None]],
    max_output_rows: int | None = None,
) -> Admitted:
    """Admit ``sql`` if it satisfies every rule of every input it reads, or raise PolicyDenied.

    ``inputs`` maps each input name (the table name in SQL) to its schema and its
    owner's rules. The result is rewritten for execution (see :class:`Admitted`).
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise InvalidInput(f"the SQL is {len(sql)} characters; the limit is {MAX_SQL_LENGTH}")
    for name, (schema, _) in inputs.items():
        reserved = [n for n in schema.names if n.lower().startswith(_RESERVED_PREFIX)]
        if reserved:
            raise InvalidInput(f"input {name} has a reserved column name {reserved[0]!r}")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except SqlglotError as exc:
        raise InvalidInput(f"the SQL does not parse as DuckDB: {str(exc)[:300]}") from None
    if len(statements) != 1:
        raise _deny("single-select", f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        raise _deny("single-select", f"only SELECT is allowed, not {tree.key.upper()}")
    for key, _ in _args(tree):
        if key not in _SELECT_ARGS:
            word = _SELECT_ARG_WORDS.get(key, key.upper())
            rule = "no-row-level-output" if key == "distinct" else "single-select"
            if key == "offset":
                rule = "output-limit"
            raise _deny(rule, f"{word} is not allowed")
    a = _Analyzer(inputs, max_output_rows)
    from_ = tree.args.get("from_")
    if from_ is None:
        raise _deny("declared-tables", "the query reads no input (FROM is missing)")
    a.table(from_.this, "FROM")
    for join in tree.args.get("joins") or []:
        a.join(join)
    if next(tree.find_all(exp.Subquery, exp.Union, exp.Exists), None) is not None:
        raise _deny("single-select", "subqueries are not allowed")
    a.identity_literals(tree)
    group = tree.args.get("group")
    if group is not None:
        a.group_by(group)
    outputs = tree.expressions
    for item in outputs:
        if isinstance(item, exp.Alias):
            if item.alias.lower().startswith(_RESERVED_PREFIX):
                raise _deny("no-row-level-output", f"output name {item.alias!r} is reserved")
            a.output_aliases.add(item.alias.lower())
        a.expr(item, "output")
    has_aggregate = any(any(True for _ in item.find_all(*_AGGREGATES)) for item in outputs)
    if group is None and not has_aggregate:
        raise _deny("no-row-level-output", "the query neither aggregates nor groups")
    where = tree.args.get("where")
    if where is not None:
        a.expr(where.this, "where")
    having = tree.args.get("having")
    if having is not None:
        a.expr(having.this, "having")
    order = tree.args.get("order")
    order_items: list[exp.Expression] = []
    if order is not None:
        for ordered in order.expressions:
            item = ordered.this
            if isinstance(item, exp.Literal) and item.is_int:
                if not 1 <= int(item.this) <= len(outputs):
                    raise _deny("no-row-level-output", f"ORDER BY {item.this} is not an output")
            else:
                a.expr(item, "order")
            order_items.append(ordered)
    limit = a.limit(tree.args.get("limit"))
    names: list[str] = []
    for item in list(outputs):
        if isinstance(item, exp.Alias):
            names.append(item.alias)
            continue
        name = item.name if isinstance(item, exp.Column) else item.sql(dialect="duckdb")
        names.append(name[:200])
        alias = exp.Alias(alias=exp.to_identifier(name[:200], quoted=True))
        item.replace(alias)
        alias.set("this", item)
    return Admitted(
        sql=_rewrite(tree, a, order_items),
        tables=tuple(a.tables),
        output_names=tuple(names),
        limit=limit,
        uses=frozenset(a.uses),
    )


def _as_double(node: exp.Expression) -> exp.Expression:
    return exp.TryCast(this=node, to=exp.DataType.build("DOUBLE"))


def _rewrite(tree: exp.Select, a: _Analyzer, order_items: list[exp.Expression]) -> str:
    """Qualify every column, make arithmetic total, add entity counts and a stable order."""
    for col in list(tree.find_all(exp.Column)):
        target = a.resolved.get(id(col))
        if target is not None:
            col.replace(exp.column(target[1], table=_alias(target[0]), quoted=True))
    for table in list(tree.find_all(exp.Table)):
        name = table.this.this.lower()
        table.replace(
            exp.Table(
                this=exp.to_identifier(name, quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(_alias(name), quoted=True)),
            )
        )
    # Arithmetic in DOUBLE (no overflow) and division by NULLIF(x, 0) (no division by zero):
    # no single value can make the query fail.
    for node in list(tree.find_all(*_ARITHMETIC, exp.Neg, exp.Abs, exp.Round)):
        node.set("this", _as_double(node.this))
        if isinstance(node, (exp.Div, exp.IntDiv, exp.Mod)):
            node.set(
                "expression",
                exp.Nullif(this=_as_double(node.expression), expression=exp.Literal.number(0)),
            )
        elif isinstance(node, _ARITHMETIC):
            node.set("expression", _as_double(node.expression))
    for name in a.tables:
        count = exp.Count(
            this=exp.Distinct(
                expressions=[exp.column(ENTITY_COLUMN, table=_alias(name), quoted=True)]
            )
        )
        tree.append(
            "expressions",
            exp.alias_(count, entity_count_column(name), quoted=True),
        )
    width = len(tree.expressions) - len(a.tables)
    stable = [exp.Ordered(this=exp.Literal.number(i)) for i in range(1, width + 1)]
    tree.set("order", exp.Order(expressions=[*order_items, *stable]))
    tree.set("limit", None)
    return tree.sql(dialect="duckdb")
