"""SQL analysis rules: the allow-list grammar of requester SQL, and what an owner admits.

An owner declares, per dataset, what a query may do with each column
(:class:`SqlAnalysisRules`, carried in the policy as ``PolicyRules.sql``). The analyser
(:func:`analyze`) parses the requester's SQL (DuckDB dialect, with ``sqlglot``) and
admits only queries of this shape, modelled on AWS Clean Rooms' aggregation analysis
rule; anything else is refused with :class:`~sealroom.errors.PolicyDenied` naming the
rule broken ("rule <name>: ...")::

    SELECT item [, item ...]           -- each: AGG(column) | AGG(*) | a GROUP BY column
    FROM t [alias] [[INNER] JOIN u [alias] ON t.x = u.y [AND ...]] ...
    [WHERE column OP literal [AND | OR | NOT ...]]
    [GROUP BY column [, column ...]]
    [ORDER BY output [ASC | DESC] [, ...]] [LIMIT n]

An aggregate takes ONE plain column (or ``*`` for COUNT): no expression, CASE, IF,
FILTER, COALESCE, NULLIF, arithmetic, cast or literal inside it, so no aggregate can
select rows by a predicate of its own (the ``CASE WHEN id = ... THEN salary END`` and
``COALESCE(NULLIF(x, x), 'C0042')`` tricks have nowhere to go). There are no scalar
expressions anywhere: a WHERE predicate compares a plain column with literals, so no
expression that contains a column can evaluate to a chosen literal.

Rules (the names used in refusals), in the order they are reported:

* ``single-select``: exactly one plain SELECT of the shape above; no DDL/DML, PRAGMA,
  SET, UNION, CTEs, subqueries, HAVING, QUALIFY, window functions or DISTINCT rows.
* ``declared-tables``: only the computation's input names as tables, each at most once;
  no table functions, schemas or catalogs.
* ``sql-rules-declared``: every input read declares SQL analysis rules.
* ``known-columns``: every column exists in exactly one table read (or is qualified).
* ``allowed-functions``: the aggregation is one the column's owner allows
  (``aggregations``; COUNT(*) needs every input read to allow ``count``).
* ``no-order-statistics``: MIN, MAX, MEDIAN and quantiles are refused: each releases one
  entity's value exactly (the names stay valid in a policy and admit nothing).
* ``aggregate-arguments``: an aggregate takes one plain column or ``*``.
* ``aggregate-columns``: that column is one of its input's ``aggregate_columns``.
* ``identity-columns``: an identity column (and the policy's entity column) appears only
  in JOIN conditions and in COUNT / COUNT(DISTINCT ...): never grouped, filtered,
  summed or output.
* ``dimension-columns``: GROUP BY items are plain ``dimension_columns``; no ROLLUP, CUBE
  or GROUPING SETS (totals over suppressed groups).
* ``filter-columns``: WHERE compares ``dimension_columns`` or ``filter_columns`` with
  literals only (=, <>, <, <=, >, >=, IN, BETWEEN, LIKE, IS [NOT] NULL, with AND, OR,
  NOT).
* ``join-columns``: INNER joins on equalities of ``join_columns`` of two inputs.
* ``no-row-level-output``: every output is one aggregate or one GROUP BY column; no
  ``SELECT *``.
* ``output-columns``: at most :data:`MAX_OUTPUT_COLUMNS` outputs.
* ``output-order``: ORDER BY names outputs (by alias, name or position) only.
* ``typed-comparisons``: a literal has the type family of the column it is compared with
  (a text-number comparison is an implicit cast that one row could make fail).
* ``output-limit``: LIMIT (if any) is a constant in [1, max_output_rows]; no OFFSET.

The engine, not the requester, checks the threshold: :class:`Admitted` carries the
query rewritten to return, next to each output row, the entities of every input behind
the group and behind each aggregate (the rows where its column is not null), so ``k``
is checked on the rows behind EACH aggregate expression, per input. For differential
privacy, :func:`admit_dp` adds the rules of DP SQL and ``Admitted.rows_sql`` returns the
rows the aggregates would read (entity, group columns, aggregated columns).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, TypeAlias

import pyarrow as pa
import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.fields import parse_object

__all__ = [
    "AGGREGATIONS",
    "DP_RULES",
    "ENTITY_COLUMN",
    "MAX_OUTPUT_COLUMNS",
    "MAX_SQL_LENGTH",
    "RULES",
    "Admitted",
    "Aggregate",
    "AggregationName",
    "ColumnUse",
    "SqlAnalysisRules",
    "admit_dp",
    "analyze",
    "hidden_column",
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
"""Aggregations an owner may list. ``count`` covers COUNT(*) and COUNT(col);
``stddev``/``variance`` cover the sample and population forms. ``min``, ``max``,
``median`` and ``quantile`` are accepted in a policy but never admitted
(``no-order-statistics``)."""

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
_ORDER_STATISTICS = frozenset({"min", "max", "median", "quantile"})

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
Columns = Annotated[tuple[ColumnName, ...], Field(max_length=1000)]


class SqlAnalysisRules(BaseModel):
    """What requester SQL may do with one dataset's columns (fail closed: empty allows nothing).

    ``aggregations``: the aggregation functions allowed (default: count, sum, avg).
    ``aggregate_columns``: columns usable inside an aggregation.
    ``dimension_columns``: columns usable in GROUP BY (and so output per group) and in
    WHERE comparisons with literals.
    ``filter_columns``: further columns usable in WHERE comparisons with literals.
    ``join_columns``: columns usable as equality join keys with another input.
    ``identity_columns``: columns identifying an entity: only joined on and counted (the
    engine adds the policy's entity column to these).
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


RULES: tuple[str, ...] = (
    "single-select",
    "declared-tables",
    "sql-rules-declared",
    "known-columns",
    "allowed-functions",
    "no-order-statistics",
    "aggregate-arguments",
    "aggregate-columns",
    "identity-columns",
    "dimension-columns",
    "filter-columns",
    "join-columns",
    "no-row-level-output",
    "output-columns",
    "output-order",
    "typed-comparisons",
    "output-limit",
)
"""Every rule an admitted query was checked against, in the order they are reported."""

DP_RULES: tuple[str, ...] = ("dp-aggregations", "dp-bounds", "dp-entity-join")
"""The further rules of DP SQL (:func:`admit_dp`)."""

MAX_SQL_LENGTH = 20_000
MAX_OUTPUT_COLUMNS = 20
ENTITY_COLUMN = "__sealroom_entity"
"""The hidden column the engine appends to every input: the policy's entity column (or a
row number). Never visible to the requester's SQL."""
_RESERVED_PREFIX = "__sealroom"

Role = Literal["aggregate", "dimension", "filter", "join"]
Schema: TypeAlias = "pa.Schema | Sequence[tuple[str, str]]"
"""An input's columns: an Arrow schema, or (name, Arrow type as text) as attested."""


def hidden_column(input_name: str, aggregate: int | None) -> str:
    """Name of the hidden output column listing ``input_name``'s entities behind the group
    (``aggregate`` None) or behind aggregate number ``aggregate``."""
    which = "group" if aggregate is None else f"agg{aggregate}"
    return f"{_RESERVED_PREFIX}_k_{input_name}_{which}"


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
class Aggregate:
    """One aggregate output: its function, column (None for COUNT(*)) and the column's
    type family (number, text, time, bool; None when unknown)."""

    function: AggregationName
    input: str | None
    column: str | None
    family: str | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """A query that satisfies the rules of every input it reads, rewritten for execution.

    ``sql`` reads each input ``x`` as table ``x`` with the hidden column
    :data:`ENTITY_COLUMN`; its result has the requester's columns (``output_names``)
    followed by the ``hidden`` columns: for each (input, aggregate index or None for the
    group), the list of that input's distinct entities behind it
    (:func:`hidden_column`). It carries no LIMIT: the engine applies ``limit`` after
    suppressing small groups. ``outputs`` says what each output is (``dimension`` i:
    ``dimensions[i]``; ``aggregate`` j: ``aggregates[j]``), ``order`` the requester's
    ORDER BY as (output index, descending). ``rows_sql`` returns one row per joined,
    filtered input row: the first input's entity (``__sealroom_id``), each dimension
    (``__sealroom_d{i}``) and each aggregated column (``__sealroom_v{j}``).
    """

    sql: str
    rows_sql: str
    tables: tuple[str, ...]
    output_names: tuple[str, ...]
    outputs: tuple[tuple[Literal["dimension", "aggregate"], int], ...]
    dimensions: tuple[tuple[str, str], ...]
    aggregates: tuple[Aggregate, ...]
    hidden: tuple[tuple[str, int | None], ...]
    joins: tuple[tuple[tuple[str, str], tuple[str, str]], ...]
    order: tuple[tuple[int, bool], ...]
    limit: int | None
    uses: frozenset[ColumnUse]
    rules_checked: tuple[str, ...] = RULES


def _deny(rule: str, detail: str) -> PolicyDenied:
    return PolicyDenied(f"rule {rule}: {detail}", rule=rule)


_SELECT_ARGS = frozenset({"expressions", "from_", "joins", "where", "group", "order", "limit"})
_SELECT_ARG_WORDS = {
    "with_": "WITH (common table expressions)",
    "distinct": "SELECT DISTINCT",
    "having": "HAVING",
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
_COMPARISONS: tuple[type[exp.Expression], ...] = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
)
_PATTERNS: tuple[type[exp.Expression], ...] = (exp.Like, exp.ILike)


def _family_of_text(type_text: str) -> str | None:
    """The type family of an Arrow type written as text (how an attestation names it)."""
    t = type_text.lower()
    if t.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return "number"
    if t in ("string", "large_string", "utf8", "large_utf8", "string_view"):
        return "text"
    if t.startswith(("date", "timestamp", "time")):
        return "time"
    if t == "bool":
        return "bool"
    return None


def _columns_of(schema: Schema) -> tuple[tuple[str, str], ...]:
    if isinstance(schema, pa.Schema):
        return tuple((f.name, str(f.type)) for f in schema)
    return tuple((str(n), str(t)) for n, t in schema)


def _literal_family(node: exp.Expression) -> str | None:
    """The family of a literal operand; None when ``node`` is not a literal."""
    if isinstance(node, exp.Null):
        return "any"
    if isinstance(node, exp.Boolean):
        return "bool"
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return None if node.this.is_string else "number"
    if isinstance(node, exp.Literal):
        return "text" if node.is_string else "number"
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
        inputs: Mapping[str, tuple[tuple[tuple[str, str], ...], SqlAnalysisRules | None]],
        max_output_rows: int | None,
    ) -> None:
        self.inputs = inputs
        self.max_output_rows = max_output_rows
        self.scope: dict[str, str] = {}  # alias (lowercase) -> input name
        self.tables: list[str] = []
        self.rules: dict[str, SqlAnalysisRules] = {}
        self.resolved: dict[int, tuple[str, str]] = {}
        self.uses: set[ColumnUse] = set()
        self.group: list[tuple[str, str]] = []
        self.aggregates: list[Aggregate] = []
        self.joins: list[tuple[tuple[str, str], tuple[str, str]]] = []

    # -- tables ------------------------------------------------------------
    def table(self, node: exp.Expression, where: str) -> None:
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            raise _deny(
                "declared-tables",
                f"{where} must name an input table; table functions and subqueries "
                f"are not allowed (got {node.sql(dialect='duckdb')[:80]})",
            )
        if node.args.get("db") is not None or node.args.get("catalog") is not None:
            raise _deny(
                "declared-tables",
                f"{node.sql(dialect='duckdb')} names a schema or catalog; only the inputs "
                f"({', '.join(self.inputs)}) may be read",
            )
        extra = [k for k, _ in _args(node) if k not in ("this", "alias")]
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
            names = [n for n, _ in self.inputs[table][0]]
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

    def family(self, table: str, column: str) -> str | None:
        return _family_of_text(dict(self.inputs[table][0])[column])

    def identity(self, table: str, column: str, where: str) -> None:
        if column in self.rules[table].identity_columns:
            raise _deny(
                "identity-columns",
                f"{table}.{column} is an identity column; it may appear only in JOIN "
                f"conditions and in COUNT, not {where}",
            )

    def use(self, table: str, column: str, role: Role, fn: AggregationName | None = None) -> None:
        self.uses.add(ColumnUse(input=table, column=column, role=role, function=fn))

    # -- aggregates --------------------------------------------------------
    def aggregate(self, node: exp.Expression) -> int:
        """Check one aggregate output; its index in :attr:`aggregates`."""
        if isinstance(node, exp.Filter):
            raise _deny(
                "aggregate-arguments",
                "FILTER (WHERE ...) selects rows inside an aggregate; filter with WHERE",
            )
        fn = _AGGREGATES[type(node)]
        if fn in _ORDER_STATISTICS:
            raise _deny(
                "no-order-statistics",
                f"{fn.upper()} releases one entity's value exactly; use AVG, SUM or COUNT "
                "(or the DP percentiles of aggregate-stats)",
            )
        arg = node.this
        if fn == "count" and isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1 or any(k != "expressions" for k, _ in _args(arg)):
                raise _deny("aggregate-arguments", "COUNT(DISTINCT ...) takes one column")
            fn, arg = "count_distinct", arg.expressions[0]
        elif isinstance(arg, exp.Distinct):
            raise _deny(
                "aggregate-arguments", f"DISTINCT is allowed in COUNT only, not {fn.upper()}"
            )
        extra = [k for k, _ in _args(node) if k not in ("this", "big_int")]
        if extra:
            raise _deny("aggregate-arguments", f"{fn.upper()} does not take {extra[0]}")
        if isinstance(arg, exp.Star) and fn == "count":
            for table in self.tables:
                if "count" not in self.rules[table].aggregations:
                    raise _deny("allowed-functions", f"input {table} does not allow COUNT")
            self.aggregates.append(Aggregate(function="count", input=None, column=None))
            return len(self.aggregates) - 1
        if not isinstance(arg, exp.Column):
            raise _deny(
                "aggregate-arguments",
                f"{fn.upper()} takes one plain column, not {arg.sql(dialect='duckdb')[:80]} "
                "(no expressions, CASE, IF, COALESCE, NULLIF or arithmetic inside an aggregate)",
            )
        table, column = self.resolve(arg)
        rules = self.rules[table]
        if fn not in rules.aggregations:
            raise _deny("allowed-functions", f"input {table} does not allow {fn.upper()}")
        if column in rules.identity_columns:
            if fn not in ("count", "count_distinct"):
                raise _deny(
                    "identity-columns",
                    f"{table}.{column} is an identity column; it may only be counted, "
                    f"not in {fn.upper()}",
                )
        elif column not in rules.aggregate_columns:
            raise _deny(
                "aggregate-columns", f"{table}.{column} may not be aggregated (in {fn.upper()})"
            )
        self.use(table, column, "aggregate", fn)
        self.aggregates.append(
            Aggregate(function=fn, input=table, column=column, family=self.family(table, column))
        )
        return len(self.aggregates) - 1

    # -- WHERE -------------------------------------------------------------
    def predicate(self, node: exp.Expression) -> None:
        """A boolean combination of plain columns compared with literals."""
        if isinstance(node, (exp.And, exp.Or)):
            self.predicate(node.this)
            self.predicate(node.expression)
            return
        if isinstance(node, (exp.Not, exp.Paren)):
            self.predicate(node.this)
            return
        if isinstance(node, exp.Is):
            operands, literals = [node.this], [node.expression]
            if not isinstance(node.expression, exp.Null):
                raise _deny("filter-columns", "IS compares with NULL only")
        elif isinstance(node, exp.In):
            if any(k in ("query", "unnest", "field") for k, _ in _args(node)):
                raise _deny("single-select", "IN takes a list of literals, not a subquery")
            operands, literals = [node.this], list(node.expressions)
        elif isinstance(node, exp.Between):
            operands, literals = [node.this], [node.args["low"], node.args["high"]]
        elif isinstance(node, (*_COMPARISONS, *_PATTERNS)):
            extra = [k for k, _ in _args(node) if k not in ("this", "expression")]
            if extra:
                raise _deny("filter-columns", f"{node.key.upper()} does not take {extra[0]}")
            left, right = node.this, node.expression
            if isinstance(left, exp.Column) or isinstance(node, _PATTERNS):
                operands, literals = [left], [right]
            else:
                operands, literals = [right], [left]
        else:
            raise _deny(
                "filter-columns",
                "WHERE compares plain columns with literals only, not "
                f"{node.sql(dialect='duckdb')[:80]}",
            )
        column = operands[0]
        if not isinstance(column, exp.Column):
            raise _deny(
                "filter-columns",
                "WHERE compares a plain column with literals, not "
                f"{column.sql(dialect='duckdb')[:80]}",
            )
        table, name = self.resolve(column)
        self.identity(table, name, "in WHERE")
        rules = self.rules[table]
        if name not in rules.dimension_columns and name not in rules.filter_columns:
            raise _deny("filter-columns", f"{table}.{name} may not be used in WHERE")
        want = self.family(table, name)
        for lit in literals:
            got = _literal_family(lit)
            if got is None:
                raise _deny(
                    "filter-columns",
                    f"{table}.{name} is compared with {lit.sql(dialect='duckdb')[:80]}, not a "
                    "literal",
                )
            if isinstance(node, _PATTERNS) and got != "text":
                raise _deny("typed-comparisons", f"{node.key.upper()} takes a text pattern")
            ok = got == "any" or want == got or (want == "time" and got == "text")
            if not ok:
                raise _deny(
                    "typed-comparisons",
                    f"{table}.{name} ({want or 'unknown type'}) is compared with a {got} literal",
                )
        self.use(table, name, "filter")

    # -- JOIN, GROUP BY, LIMIT --------------------------------------------
    def join(self, node: exp.Join) -> None:
        extra = [k for k, _ in _args(node) if k not in ("this", "on", "kind")]
        kind = str(node.args.get("kind") or "").upper()
        if extra or kind not in ("", "INNER"):
            what = kind or str(node.args.get("side") or (extra[0] if extra else "")).upper()
            raise _deny(
                "join-columns",
                f"{what} joins are not allowed; INNER JOIN with ON equalities of join columns",
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
            left, right = self.resolve(eq.this), self.resolve(eq.expression)
            if left[0] == right[0]:
                raise _deny(
                    "join-columns", f"{left[0]}.{left[1]} = {right[0]}.{right[1]} joins no inputs"
                )
            for t, c in (left, right):
                if c not in self.rules[t].join_columns:
                    raise _deny("join-columns", f"{t}.{c} is not a join column")
                self.use(t, c, "join")
            self.joins.append((left, right))
            touches_joined = touches_joined or joined in (left[0], right[0])
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
            self.identity(table, name, "in GROUP BY")
            if name not in self.rules[table].dimension_columns:
                raise _deny("dimension-columns", f"{table}.{name} is not a dimension column")
            if (table, name) not in self.group:
                self.group.append((table, name))
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


def _select(sql: str) -> exp.Select:
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
            rule = {"distinct": "no-row-level-output", "offset": "output-limit"}.get(
                key, "single-select"
            )
            raise _deny(rule, f"{word} is not allowed")
    if next(tree.find_all(exp.Subquery, exp.Union, exp.Exists), None) is not None:
        raise _deny("single-select", "subqueries are not allowed")
    if next(tree.find_all(exp.Window), None) is not None:
        raise _deny("single-select", "window functions are not allowed")
    return tree


def analyze(
    sql: str,
    *,
    inputs: Mapping[str, tuple[Schema, SqlAnalysisRules | None]],
    max_output_rows: int | None = None,
) -> Admitted:
    """Admit ``sql`` if it satisfies every rule of every input it reads, or raise PolicyDenied.

    ``inputs`` maps each input name (the table name in SQL) to its schema (Arrow, or the
    attested (name, type) pairs: both give the same decision) and its owner's rules.
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise InvalidInput(f"the SQL is {len(sql)} characters; the limit is {MAX_SQL_LENGTH}")
    columns = {name: (_columns_of(schema), rules) for name, (schema, rules) in inputs.items()}
    for input_name, (cols, _) in columns.items():
        reserved = [n for n, _ in cols if n.lower().startswith(_RESERVED_PREFIX)]
        if reserved:
            raise InvalidInput(f"input {input_name} has a reserved column name {reserved[0]!r}")
    tree = _select(sql)
    a = _Analyzer(columns, max_output_rows)
    from_ = tree.args.get("from_")
    if from_ is None:
        raise _deny("declared-tables", "the query reads no input (FROM is missing)")
    a.table(from_.this, "FROM")
    for join in tree.args.get("joins") or []:
        a.join(join)
    group = tree.args.get("group")
    if group is not None:
        a.group_by(group)
    outputs: list[tuple[Literal["dimension", "aggregate"], int]] = []
    names: list[str] = []
    items = list(tree.expressions)
    if len(items) > MAX_OUTPUT_COLUMNS:
        raise _deny(
            "output-columns", f"{len(items)} outputs; at most {MAX_OUTPUT_COLUMNS} are allowed"
        )
    for item in items:
        node: exp.Expression = item
        name: str | None = None
        if isinstance(item, exp.Alias):
            node, name = item.this, item.alias
            if name.lower().startswith(_RESERVED_PREFIX):
                raise _deny("no-row-level-output", f"output name {name!r} is reserved")
        if isinstance(node, exp.Star):
            raise _deny("no-row-level-output", "SELECT * is not allowed")
        if isinstance(node, exp.Column):
            table, column = a.resolve(node)
            a.identity(table, column, "as an output")
            if (table, column) not in a.group:
                raise _deny(
                    "no-row-level-output",
                    f"{table}.{column} is neither aggregated nor a GROUP BY column",
                )
            outputs.append(("dimension", a.group.index((table, column))))
            names.append(name or column)
        elif type(node) in _AGGREGATES or isinstance(node, exp.Filter):
            outputs.append(("aggregate", a.aggregate(node)))
            names.append(name or node.sql(dialect="duckdb")[:200])
        else:
            raise _deny(
                "no-row-level-output",
                "each output is one aggregate or one GROUP BY column, not "
                f"{node.sql(dialect='duckdb')[:80]}",
            )
    if not any(kind == "aggregate" for kind, _ in outputs) and group is None:
        raise _deny("no-row-level-output", "the query neither aggregates nor groups")
    where = tree.args.get("where")
    if where is not None:
        a.predicate(where.this)
    order: list[tuple[int, bool]] = []
    for ordered in (tree.args.get("order") or exp.Order()).expressions:
        order.append((_order_index(ordered.this, names, items), bool(ordered.args.get("desc"))))
    limit = a.limit(tree.args.get("limit"))
    hidden: list[tuple[str, int | None]] = [(t, None) for t in a.tables]
    for j, agg in enumerate(a.aggregates):
        if agg.column is not None:
            hidden.extend((t, j) for t in a.tables)
    return Admitted(
        sql=_exact_sql(tree, a, outputs, names, order, hidden),
        rows_sql=_rows_sql(tree, a),
        tables=tuple(a.tables),
        output_names=tuple(names),
        outputs=tuple(outputs),
        dimensions=tuple(a.group),
        aggregates=tuple(a.aggregates),
        hidden=tuple(hidden),
        joins=tuple(a.joins),
        order=tuple(order),
        limit=limit,
        uses=frozenset(a.uses),
    )


def _order_index(
    node: exp.Expression, names: Sequence[str], items: Sequence[exp.Expression]
) -> int:
    """The output an ORDER BY item names (by position, output name or the same text)."""
    if isinstance(node, exp.Literal) and node.is_int and 1 <= int(node.this) <= len(names):
        return int(node.this) - 1
    if isinstance(node, exp.Column) and node.args.get("table") is None:
        lowered = [n.lower() for n in names]
        if node.name.lower() in lowered:
            return lowered.index(node.name.lower())
    text = node.sql(dialect="duckdb")
    for i, item in enumerate(items):
        bare = item.this if isinstance(item, exp.Alias) else item
        if bare.sql(dialect="duckdb") == text:
            return i
    raise _deny("output-order", f"ORDER BY names outputs only, not {text[:80]}")


def _qualified(tree: exp.Select, a: _Analyzer) -> exp.Select:
    """A copy of ``tree`` with every column and table qualified by a reserved alias."""
    out = tree.copy()
    originals = list(tree.find_all(exp.Column))
    for col, original in zip(list(out.find_all(exp.Column)), originals, strict=True):
        target = a.resolved.get(id(original))
        if target is not None:
            col.replace(exp.column(target[1], table=_alias(target[0]), quoted=True))
    for table in list(out.find_all(exp.Table)):
        name = table.this.this.lower()
        table.replace(
            exp.Table(
                this=exp.to_identifier(name, quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(_alias(name), quoted=True)),
            )
        )
    return out


def _entity(table: str) -> exp.Column:
    return exp.column(ENTITY_COLUMN, table=_alias(table), quoted=True)


def _col(table: str, column: str) -> exp.Column:
    return exp.column(column, table=_alias(table), quoted=True)


def _exact_sql(
    tree: exp.Select,
    a: _Analyzer,
    outputs: Sequence[tuple[Literal["dimension", "aggregate"], int]],
    names: Sequence[str],
    order: Sequence[tuple[int, bool]],
    hidden: Sequence[tuple[str, int | None]],
) -> str:
    """The query with the hidden entity lists, the requester's order then a stable one."""
    q = _qualified(tree, a)
    q.set(
        "expressions",
        [
            exp.alias_(e.this if isinstance(e, exp.Alias) else e, name, quoted=True)
            for e, name in zip(
                q.expressions, [f"{_RESERVED_PREFIX}_o{i}" for i in range(len(names))], strict=True
            )
        ],
    )
    for table, j in hidden:
        entities: exp.Expression = exp.ArrayAgg(this=exp.Distinct(expressions=[_entity(table)]))
        if j is not None:
            agg = a.aggregates[j]
            assert agg.input is not None
            assert agg.column is not None
            entities = exp.Filter(
                this=entities,
                expression=exp.Where(
                    this=exp.Not(
                        this=exp.Is(this=_col(agg.input, agg.column), expression=exp.Null())
                    )
                ),
            )
        q.append("expressions", exp.alias_(entities, hidden_column(table, j), quoted=True))
    keys = [exp.Ordered(this=exp.Literal.number(i + 1), desc=desc) for i, desc in order] + [
        exp.Ordered(this=exp.Literal.number(i + 1)) for i in range(len(names))
    ]
    q.set("order", exp.Order(expressions=keys))
    q.set("limit", None)
    return q.sql(dialect="duckdb")


def _rows_sql(tree: exp.Select, a: _Analyzer) -> str:
    """The joined, filtered rows the aggregates read: the first input's entity, each GROUP BY
    column and each aggregated column."""
    q = _qualified(tree, a)
    select = [exp.alias_(_entity(a.tables[0]), f"{_RESERVED_PREFIX}_id", quoted=True)]
    select += [
        exp.alias_(_col(t, c), f"{_RESERVED_PREFIX}_d{i}", quoted=True)
        for i, (t, c) in enumerate(a.group)
    ]
    select += [
        exp.alias_(_col(agg.input, agg.column), f"{_RESERVED_PREFIX}_v{j}", quoted=True)
        for j, agg in enumerate(a.aggregates)
        if agg.input is not None and agg.column is not None
    ]
    q.set("expressions", select)
    for key in ("group", "order", "limit"):
        q.set(key, None)
    return q.sql(dialect="duckdb")


def admit_dp(
    admitted: Admitted,
    *,
    entity_columns: Mapping[str, str | None],
    bounds: Mapping[str, object],
) -> None:
    """The further rules of DP SQL, or PolicyDenied naming the rule.

    * ``dp-aggregations``: COUNT(*), COUNT(column), SUM(column) and AVG(column) only.
    * ``dp-bounds``: every SUM / AVG column has public bounds, keyed ``input.column``.
    * ``dp-entity-join``: every input read declares an entity column, and with several
      inputs the JOIN equalities connect all their entity columns, so each joined row
      belongs to one entity of every input (the privacy unit of every input at once).
    """
    for agg in admitted.aggregates:
        if agg.function not in ("count", "sum", "avg"):
            raise _deny(
                "dp-aggregations",
                f"DP SQL releases COUNT, SUM and AVG only, not {agg.function.upper()}",
            )
        if agg.function in ("sum", "avg") and agg.family not in ("number", "bool"):
            raise InvalidInput(f"{agg.function.upper()}({agg.input}.{agg.column}) needs a number")
        if agg.function in ("sum", "avg") and f"{agg.input}.{agg.column}" not in bounds:
            raise _deny(
                "dp-bounds",
                f"{agg.function.upper()}({agg.input}.{agg.column}) needs public bounds: "
                f"dp.bounds[{agg.input}.{agg.column!s}] = [lower, upper]",
            )
    missing = [t for t in admitted.tables if entity_columns.get(t) is None]
    if missing:
        raise _deny(
            "dp-entity-join",
            f"input {missing[0]} declares no entity column: DP SQL needs one per input",
        )
    linked = {admitted.tables[0]}
    grew = True
    while grew:
        grew = False
        for (t1, c1), (t2, c2) in admitted.joins:
            if (
                c1 == entity_columns[t1]
                and c2 == entity_columns[t2]
                and (t1 in linked) != (t2 in linked)
            ):
                linked |= {t1, t2}
                grew = True
    stray = [t for t in admitted.tables if t not in linked]
    if stray:
        raise _deny(
            "dp-entity-join",
            f"input {stray[0]} is not joined on its entity column to the others: every "
            "joined row must belong to one entity of each input",
        )
