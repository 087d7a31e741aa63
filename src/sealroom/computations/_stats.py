"""Shared pieces of the statistical computations: robust column access, numbers, column rules.

Number format (every statistical computation): a real-valued statistic leaves
the enclave as a canonical **signed decimal string** (statements carry no
floats), rounded half-even to :data:`SIG_DIGITS` significant digits and to at
most :data:`MAX_PLACES` decimal places, without exponent or trailing zeros
("-0.123456789012", "1520.5", "0"). A statistic that is undefined for the data
(a constant variable, a zero denominator) is ``null``, never an error.

Robustness (one row cannot change the response): a numeric cell is *usable*
when it is a finite number (or a string that parses as one) with absolute value
at most :data:`MAX_ABS`; a row whose needed cell is not usable, or whose key is
null, is treated exactly as if it were absent (it is not counted anywhere, not
even as "dropped"), so an overflowing, unparseable or non-finite cell gives the
same response as the dataset without that row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from scipy import stats

from sealroom.computations.base import PrivacyContext
from sealroom.errors import InvalidInput

__all__ = [
    "MAX_ABS",
    "MAX_PLACES",
    "SIG_DIGITS",
    "Agg",
    "ColumnName",
    "Confidence",
    "Floats",
    "Model",
    "Num",
    "ParamsModel",
    "Rate",
    "check_use",
    "column",
    "confidence_value",
    "distinct",
    "entities",
    "fisher_ci",
    "flags",
    "keys",
    "num",
    "numbers",
    "p_text",
    "parse_num",
    "per_key",
    "t_mean_ci",
]

SIG_DIGITS = 12
MAX_PLACES = 30
MAX_ABS = 1e15

Floats = npt.NDArray[np.float64]
Agg = Literal["mean", "sum", "count", "max", "min"]

_SIGNED_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$")


def _signed_decimal(text: str) -> str:
    """Canonical signed decimal: no exponent, no leading or trailing zeros, no "-0"."""
    if len(text) > 80 or not _SIGNED_RE.match(text) or text == "-0":
        raise ValueError("must be a canonical decimal string like '-0.5'")
    return text


Num = Annotated[str, AfterValidator(_signed_decimal)]
"""A statistic as a canonical signed decimal string (see the module docstring)."""


def _rate(text: str) -> str:
    value = Decimal(_signed_decimal(text))
    if not 0 < value < 1:
        raise ValueError("must be a decimal strictly between 0 and 1")
    return text


Rate = Annotated[str, AfterValidator(_rate)]
Confidence = Rate
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class Model(BaseModel):
    """Output models: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ParamsModel(BaseModel):
    """Parameter models: closed and immutable; not strict, so JSON arrays validate as tuples."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def num(value: float | None) -> str | None:
    """``value`` as a :data:`Num`; None for None, NaN or infinity (an undefined statistic)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return "0"
    d = Decimal(value)  # exact binary value
    place = max(d.adjusted() - SIG_DIGITS + 1, -MAX_PLACES)
    r = d.quantize(Decimal(1).scaleb(place), rounding=ROUND_HALF_EVEN, context=Context(prec=400))
    s = format(r, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def parse_num(text: str, *, what: str) -> float:
    """A decimal-string parameter as a float, refusing non-finite or out-of-range values."""
    try:
        value = float(Decimal(text))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{what} must be a decimal string") from None
    if not math.isfinite(value) or abs(value) > MAX_ABS:
        raise InvalidInput(f"{what} must be finite and at most {MAX_ABS:g} in absolute value")
    return value


def p_text(p: float) -> str:
    """A p-value for a sentence: "p < 0.001" or three decimals."""
    if not math.isfinite(p):
        return "p undefined"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def confidence_value(text: str) -> float:
    return parse_num(text, what="confidence")


def check_use(
    privacy: PrivacyContext, index: int, name: str, *, input_name: str, role: str
) -> None:
    """Refuse a column the owner's policy forbids for ``role``.

    ``role == "join"`` (matching rows on it) is allowed for ``join_only`` and
    ``never_output`` columns, since neither the column nor a statistic of it
    leaves; any other role (a value, group, signal or outcome) puts a
    statistic or a label of the column in the output and is refused.
    """
    if role == "join":
        return
    if name in privacy.join_only[index]:
        raise InvalidInput(
            f"input {input_name!r} column {name!r} is join-only in its owner's policy: "
            f"it cannot be used as the {role}"
        )
    if name in privacy.never_output[index]:
        raise InvalidInput(
            f"input {input_name!r} column {name!r} is never-output in its owner's policy: "
            f"it cannot be used as the {role}"
        )


def column(table: pa.Table, name: str, *, input_name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        names = ", ".join(table.column_names) or "none"
        raise InvalidInput(f"input {input_name!r} has no column {name!r} (columns: {names})")
    return table.column(name)


def _usable(x: float) -> bool:
    return math.isfinite(x) and abs(x) <= MAX_ABS


def _to_float(v: object) -> float:
    """One cell as a float, or NaN when it is not a usable number (never raises)."""
    try:
        if v is None:
            return math.nan
        if isinstance(v, bool):
            x = 1.0 if v else 0.0
        elif isinstance(v, int):
            x = float(v) if abs(v) <= MAX_ABS else math.nan
        elif isinstance(v, (float, Decimal)):
            x = float(v)
        elif isinstance(v, str):
            t = v.strip()
            if len(t) > 100:
                return math.nan
            x = float(t)
        else:
            return math.nan
    except (ValueError, OverflowError, InvalidOperation, TypeError):
        return math.nan
    return x if _usable(x) else math.nan


def numbers(table: pa.Table, name: str, *, input_name: str) -> Floats:
    """A numeric (or numeric-string) column as float64 with NaN for every unusable cell."""
    col = column(table, name, input_name=input_name)
    t = col.type
    if not (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_null(t)
    ):
        raise InvalidInput(f"input {input_name!r} column {name!r} is {t}, not numeric")
    if pa.types.is_floating(t):
        arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64).copy()
        with np.errstate(invalid="ignore"):
            arr[~(np.isfinite(arr) & (np.abs(arr) <= MAX_ABS))] = math.nan
        return arr
    return np.fromiter((_to_float(v) for v in col.to_pylist()), dtype=np.float64, count=len(col))


_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


def flags(table: pa.Table, name: str, *, input_name: str) -> Floats:
    """A 0/1 column (bool, 0/1 numbers, "true"/"false"/"yes"/"no"...) with NaN for anything else."""
    col = column(table, name, input_name=input_name)
    out = np.full(len(col), math.nan)
    for i, v in enumerate(col.to_pylist()):
        if isinstance(v, str):
            t = v.strip().lower()
            out[i] = 1.0 if t in _TRUE else 0.0 if t in _FALSE else math.nan
        else:
            x = _to_float(v)
            out[i] = x if x in (0.0, 1.0) else math.nan
    return out


def _key(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, str):
        t = v.strip()
        return t or None
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def keys(table: pa.Table, name: str, *, input_name: str) -> list[str | None]:
    """Identifier cells as strings (integers and integral floats as their digits; else None).

    Integer and string identifiers therefore match across parties ("17" == 17).
    """
    col = column(table, name, input_name=input_name)
    t = col.type
    if pa.types.is_nested(t) or pa.types.is_dictionary(t):
        raise InvalidInput(f"input {input_name!r} column {name!r} is {t}, not an identifier")
    return [_key(v) for v in col.to_pylist()]


def entities(
    table: pa.Table, privacy: PrivacyContext, index: int, *, input_name: str
) -> list[Hashable | None]:
    """Per row, the entity it belongs to: the policy's entity column, or the row itself.

    Values of declared entity columns are compared across inputs ("id", value),
    so the same customer in two inputs counts once (the stricter reading);
    rows of inputs without an entity column are distinct ("row", input, i).
    A null entity is None: not an identified entity, it never counts towards k
    (as in :func:`sealroom.policy.suppression.entity_counts`).
    """
    name = privacy.entity_columns[index]
    if name is None:
        return [("row", index, i) for i in range(table.num_rows)]
    values = keys(table, name, input_name=input_name)
    return [None if v is None else ("id", v) for v in values]


def distinct(values: Iterable[Hashable | None]) -> int:
    """How many distinct non-null entities."""
    return len({v for v in values if v is not None})


def per_key(
    key_values: Sequence[str | None], values: Floats | None, agg: Agg
) -> tuple[dict[str, float], dict[str, list[int]]]:
    """Aggregate usable rows per key: the value per key and the row indices that made it.

    ``values`` may be None for ``count``. Rows with a null key or an unusable
    value are skipped, as if absent.
    """
    rows: dict[str, list[int]] = {}
    for i, k in enumerate(key_values):
        if k is None:
            continue
        if agg != "count" and (values is None or math.isnan(values[i])):
            continue
        rows.setdefault(k, []).append(i)
    out: dict[str, float] = {}
    fn: Callable[[Iterable[float]], float]
    if agg == "count":
        return {k: float(len(r)) for k, r in rows.items()}, rows
    assert values is not None
    if agg == "sum":
        fn = math.fsum
    elif agg == "mean":

        def fn(xs: Iterable[float]) -> float:
            lst = list(xs)
            return math.fsum(lst) / len(lst)
    elif agg == "max":
        fn = max
    else:
        fn = min
    for k, r in rows.items():
        out[k] = float(fn(values[i] for i in r))
    return out, rows


def fisher_ci(
    r: float, n: int, confidence: float, *, se_factor: float = 1.0
) -> tuple[float, float]:
    """Fisher z interval for a correlation; NaN when n < 4 or r is undefined."""
    if n < 4 or not math.isfinite(r):
        return math.nan, math.nan
    r = min(1.0, max(-1.0, r))
    if abs(r) == 1.0:
        return r, r
    z = math.atanh(r)
    half = float(stats.norm.ppf((1 + confidence) / 2)) * math.sqrt(se_factor / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def t_mean_ci(values: Floats, confidence: float) -> tuple[float, float]:
    """Student-t interval for a mean; NaN with fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    m = float(np.mean(values))
    se = float(np.std(values, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    return m - half, m + half
