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

Speed: columns are converted with vectorised Arrow / numpy kernels where the
result is provably the same as the per-cell Python rule (integers, floats,
booleans, ASCII-or-not strings trimmed of exactly Python's whitespace); other
types take the per-cell path. Identifiers are dictionary-encoded into integer
codes (:func:`encode`) so joins, per-key aggregation and distinct-entity counts
run in numpy; per-key sums stay ``math.fsum`` (exactly rounded) so a result
does not depend on row order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from scipy import stats

from sealroom.computations.base import PrivacyContext
from sealroom.errors import InvalidInput
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "MAX_ABS",
    "MAX_PLACES",
    "SIG_DIGITS",
    "Agg",
    "Bools",
    "Codes",
    "ColumnName",
    "Confidence",
    "Floats",
    "KeySpace",
    "Model",
    "Num",
    "ParamsModel",
    "Rate",
    "check_use",
    "column",
    "confidence_value",
    "count_distinct",
    "distinct",
    "encode",
    "encode_keys",
    "encode_values",
    "entities",
    "entity_codes",
    "fisher_ci",
    "flags",
    "group_values",
    "key_array",
    "keys",
    "member",
    "num",
    "numbers",
    "p_text",
    "parse_num",
    "per_key",
    "string_order",
    "t_mean_ci",
]

SIG_DIGITS = 12
MAX_PLACES = 340
MAX_ABS = 1e15

Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int64]
"""Integer codes of identifiers in one code space; -1 for a null identifier."""
Bools = npt.NDArray[np.bool_]
Agg = Literal["mean", "sum", "count", "max", "min"]

_SIGNED_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$")


def _signed_decimal(text: str) -> str:
    """Canonical signed decimal: no exponent, no leading or trailing zeros, no "-0"."""
    if len(text) > 400 or not _SIGNED_RE.match(text) or text == "-0":
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
    """Parameter models: closed and immutable; not strict, so JSON arrays validate as tuples.
    A field's docstring is its description (``computations --json``, OpenAPI)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def num(value: float | None) -> str | None:
    """``value`` as a :data:`Num`; None for None, NaN or infinity (an undefined statistic)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return "0"
    d = Decimal(value)  # exact binary value
    place = max(d.adjusted() - SIG_DIGITS + 1, -MAX_PLACES)
    r = d.quantize(Decimal(1).scaleb(place), rounding=ROUND_HALF_EVEN, context=Context(prec=400))
    return canonical_decimal(r)


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
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        # Same as _to_float per cell: an integer with |v| <= MAX_ABS < 2**53 converts
        # exactly, and one beyond it has a float64 image beyond it too (rounding is monotone).
        raw = pc.fill_null(pc.cast(col, pa.float64(), safe=False), math.nan)
        arr = np.array(raw.to_numpy(), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            arr[~(np.isfinite(arr) & (np.abs(arr) <= MAX_ABS))] = math.nan
        return arr
    if pa.types.is_null(t):
        return np.full(len(col), math.nan)
    return np.fromiter((_to_float(v) for v in col.to_pylist()), dtype=np.float64, count=len(col))


_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


def flags(table: pa.Table, name: str, *, input_name: str) -> Floats:
    """A 0/1 column (bool, 0/1 numbers, "true"/"false"/"yes"/"no"...) with NaN for anything else."""
    col = column(table, name, input_name=input_name)
    t = col.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        xs = numbers(table, name, input_name=input_name)
        result: Floats = np.where((xs == 0.0) | (xs == 1.0), xs, math.nan)
        return result
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


# Exactly the characters for which str.isspace() is true, i.e. what str.strip() removes.
_PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def key_array(table: pa.Table, name: str, *, input_name: str) -> pa.Array:
    """Identifier cells as a string array (integers and integral floats as their digits; else null).

    Integer and string identifiers therefore match across parties ("17" == 17).
    The same values as :func:`keys`, computed by Arrow kernels for integer,
    floating and string columns.
    """
    col = column(table, name, input_name=input_name)
    t = col.type
    if pa.types.is_nested(t) or pa.types.is_dictionary(t):
        raise InvalidInput(f"input {input_name!r} column {name!r} is {t}, not an identifier")
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        trimmed = pc.cast(pc.utf8_trim(arr, characters=_PY_WHITESPACE), pa.string())
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_floating(t):
        x = np.asarray(pc.fill_null(pc.cast(arr, pa.float64(), safe=False), math.nan).to_numpy())
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(x) & (np.floor(x) == x) & (np.abs(x) < 2.0**63)
        out = pc.cast(pa.array(np.where(integral, x, 0).astype(np.int64)), pa.string())
        if bool(np.all(integral | ~np.isfinite(x))):
            return pc.if_else(pa.array(integral), out, pa.scalar(None, pa.string()))
    return _per_distinct(arr)


def _per_distinct(arr: pa.Array) -> pa.Array:
    """The per-cell rule applied once per distinct value (a key depends on the value only)."""
    try:
        encoded = pc.dictionary_encode(arr)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([_key(v) for v in arr.to_pylist()], type=pa.string())
    labels = pa.array([_key(v) for v in encoded.dictionary.to_pylist()], type=pa.string())
    return labels.take(encoded.indices)


def keys(table: pa.Table, name: str, *, input_name: str) -> list[str | None]:
    """Identifier cells as strings (integers and integral floats as their digits; else None).

    Integer and string identifiers therefore match across parties ("17" == 17).
    """
    values: list[str | None] = key_array(table, name, input_name=input_name).to_pylist()
    return values


def encode(arrays: Sequence[pa.Array]) -> tuple[list[Codes], pa.Array]:
    """Codes of several key arrays in one space (-1 for null) and the keys by code."""
    if not arrays:
        return [], pa.array([], pa.string())
    joined = pa.concat_arrays([a.cast(pa.string()) for a in arrays])
    encoded = pc.dictionary_encode(joined)
    return _split_codes(encoded.indices, [len(a) for a in arrays]), encoded.dictionary


def _split_codes(indices: pa.Array, lengths: Sequence[int]) -> list[Codes]:
    codes = np.asarray(pc.fill_null(indices, -1).to_numpy(), dtype=np.int64)
    out: list[Codes] = []
    start = 0
    for n in lengths:
        out.append(codes[start : start + n])
        start += n
    return out


_POW10 = np.array([10**e for e in range(20)], dtype=np.uint64)


def _str_order_of_ints(values: npt.NDArray[np.int64]) -> Codes:
    """The permutation that sorts distinct integers by their decimal strings, as
    ``sorted(map(str, values))`` would.

    "-" sorts before every digit, so negatives come first; within a sign, the
    digit strings compare lexicographically: by the digits padded on the right
    with zeros to 19 places (|int64| has at most 19 digits, and the padded
    number stays below 10**19 < 2**64), then the shorter (a prefix) first.
    """
    if values.size and int(values.min()) >= 0 and int(values.max()) < 10**17:
        # The common case (non-negative ids of at most 17 digits) in a few passes: the
        # keys are distinct, so the argsort is the same permutation as the general path's.
        mag = values.astype(np.int64, copy=False).view(np.uint64)
        ndig = np.searchsorted(_POW10, mag, side="right")
        np.maximum(ndig, 1, out=ndig)
        key = mag * _POW10[19 - ndig]
        key += ndig.astype(np.uint64)
        fast: Codes = np.argsort(key)
        return fast
    negative = values < 0
    magnitude = np.where(negative, -(values + 1), values).astype(np.uint64)
    magnitude += negative.astype(np.uint64)  # |int64 min| = 2**63 fits in uint64
    digits = np.searchsorted(_POW10, magnitude, side="right")  # 0 has one digit
    digits = np.maximum(digits, 1)
    padded = magnitude * _POW10[19 - digits]
    parts = []
    for side in (np.flatnonzero(negative), np.flatnonzero(~negative)):
        if not side.size:
            continue
        if int(digits[side].max()) <= 17:
            # Padded values of different strings differ by at least 10**2, so adding the
            # digit count (<= 17) breaks prefix ties without reordering anything else.
            parts.append(side[np.argsort(padded[side] + digits[side].astype(np.uint64))])
        else:
            parts.append(side[np.lexsort((digits[side], padded[side]))])
    order: Codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return order


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The identifiers behind a code space: integers when every key column is an integer
    column (equal integers are equal decimal strings), else canonical strings."""

    size: int
    ints: npt.NDArray[np.int64] | None
    strings: pa.Array | None

    def in_str_order(self, codes: Codes) -> Codes:
        """``codes`` reordered so that their keys are in Python's str order (code points)."""
        if len(codes) == 0:
            return codes
        if self.ints is not None:
            result: Codes = codes[_str_order_of_ints(self.ints[codes])]
            return result
        assert self.strings is not None
        # UTF-8 byte order is code point order, which is how Python compares str.
        order = np.asarray(pc.sort_indices(self.strings.take(pa.array(codes))).to_numpy())
        result = codes[order]
        return result


_INT_KEYS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())


def _dense_int_codes(joined: pa.Array) -> tuple[Codes, npt.NDArray[np.int64]] | None:
    """Codes of null-free integers in a narrow range by a lookup table (no hashing): code =
    rank of the value among the distinct values. None when the table would be too large."""
    if len(joined) == 0 or joined.null_count:
        return None
    values = np.asarray(joined.to_numpy(), dtype=np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo >= 4 * len(values) + 1024:
        return None
    offsets = values - lo
    present = np.zeros(hi - lo + 1, dtype=np.bool_)
    present[offsets] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    codes: Codes = rank[offsets]
    ints: npt.NDArray[np.int64] = np.flatnonzero(present).astype(np.int64) + lo
    return codes, ints


def encode_keys(columns: Sequence[tuple[pa.Table, str, str]]) -> tuple[list[Codes], KeySpace]:
    """Identifier columns ``(table, column, input_name)`` coded in one space (-1 for null).

    Two cells get the same code exactly when :func:`keys` gives them the same string.
    """
    cols = [column(t, name, input_name=input_name) for t, name, input_name in columns]
    if cols and all(c.type in _INT_KEYS for c in cols):
        chunks = [chunk for c in cols for chunk in pc.cast(c, pa.int64()).chunks]
        joined = pa.concat_arrays(chunks) if chunks else pa.array([], pa.int64())
        dense = _dense_int_codes(joined)
        if dense is not None:
            codes, ints = dense
            out: list[Codes] = []
            start = 0
            for c in cols:
                out.append(codes[start : start + len(c)])
                start += len(c)
            return out, KeySpace(size=len(ints), ints=ints, strings=None)
        encoded = pc.dictionary_encode(joined)
        ints = np.asarray(encoded.dictionary.to_numpy(), dtype=np.int64)
        return _split_codes(encoded.indices, [len(c) for c in cols]), KeySpace(
            size=len(ints), ints=ints, strings=None
        )
    coded, dictionary = encode_values(columns)
    return coded, KeySpace(size=len(dictionary), ints=None, strings=dictionary)


def encode_values(columns: Sequence[tuple[pa.Table, str, str]]) -> tuple[list[Codes], pa.Array]:
    """The same codes as ``encode([key_array(...) ...])`` up to renumbering, and the keys
    by code, converting each distinct value once instead of each cell.

    A key depends on the cell's value only, so each column is dictionary-encoded
    on its raw values, the per-cell rule is applied to the (small) dictionary,
    and the dictionaries are merged by their key strings (values with the same
    key, like 0.0 and -0.0 or 17 and "17", get one code; null keys get -1).
    """
    local: list[Codes] = []
    dicts: list[pa.Array] = []
    for t, name, input_name in columns:
        col = column(t, name, input_name=input_name)
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        try:
            if pa.types.is_nested(arr.type) or pa.types.is_dictionary(arr.type):
                raise pa.ArrowNotImplementedError("not hashed by value")
            enc = pc.dictionary_encode(arr)
            labels = key_array(pa.table({name: enc.dictionary}), name, input_name=input_name)
            indices = enc.indices
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            labels = key_array(t, name, input_name=input_name)
            indices = pa.array(np.arange(len(labels), dtype=np.int64))
        local.append(np.asarray(pc.fill_null(indices, -1).to_numpy(), dtype=np.int64))
        dicts.append(labels)
    if not dicts:
        return [], pa.array([], pa.string())
    merged = pc.dictionary_encode(pa.concat_arrays(dicts))
    to_global = np.asarray(pc.fill_null(merged.indices, -1).to_numpy(), dtype=np.int64)
    out: list[Codes] = []
    offset = 0
    for codes, labels in zip(local, dicts, strict=True):
        mapping = np.append(to_global[offset : offset + len(labels)], -1)
        out.append(mapping[np.where(codes < 0, len(labels), codes)])
        offset += len(labels)
    return out, merged.dictionary


def string_order(dictionary: pa.Array, codes: Codes) -> Codes:
    """``codes`` reordered so that their keys (``dictionary``) are in Python's str order."""
    return KeySpace(size=len(dictionary), ints=None, strings=dictionary).in_str_order(codes)


def member(codes: Codes, chosen: Codes, size: int) -> Bools:
    """Per row, whether its code is one of ``chosen`` (a null code -1 never is)."""
    table = np.zeros(size + 1, dtype=np.bool_)
    table[chosen] = True
    table[size] = False
    result: Bools = table[np.where(codes < 0, size, codes)]
    return result


def count_distinct(codes: Codes) -> int:
    """How many distinct non-negative codes (null entities never count)."""
    present = codes[codes >= 0]
    if present.size == 0:
        return 0
    return int(np.count_nonzero(np.bincount(present)))


def entity_codes(
    table: pa.Table,
    privacy: PrivacyContext,
    index: int,
    *,
    input_name: str,
    key: tuple[str, Codes] | None = None,
) -> Codes:
    """Per row, its entity as an integer code (-1 for a null entity); see :func:`entities`.

    Codes are comparable within one input only: rows of an input without an
    entity column are each their own entity. ``key`` = (column, its codes) reuses
    the codes of a key column when it is also the entity column.
    """
    name = privacy.entity_columns[index]
    if name is None:
        return np.arange(table.num_rows, dtype=np.int64)
    if key is not None and key[0] == name:
        return key[1]
    (codes,), _ = encode_keys([(table, name, input_name)])
    return codes


def group_values(
    codes: Codes, values: Floats | None, agg: Agg, size: int
) -> tuple[Bools, Floats, Bools]:
    """The vectorised :func:`per_key`: per code, whether it has usable rows and its value;
    and per row, whether it was used.

    Rows with a null code or an unusable value are skipped, as if absent. Sums
    are ``math.fsum`` per key (exactly rounded), as in :func:`per_key`.
    """
    used = codes >= 0
    if agg != "count":
        if values is None:
            raise InvalidInput(f"aggregation {agg} needs a value column")
        used &= ~np.isnan(values)
    c = codes[used]
    sizes = np.bincount(c, minlength=size)[:size]
    present: Bools = sizes > 0
    if agg == "count":
        return present, sizes.astype(np.float64), used
    assert values is not None
    v = values[used]
    if len(c) == int(np.count_nonzero(sizes)):
        # One usable row per key (the common case for identifier tables): its value is the
        # key's sum, mean, max and min (fsum of one value is that value).
        out = np.zeros(size)
        out[c] = v
        return present, out, used
    if agg in ("max", "min"):
        out = np.full(size, -math.inf if agg == "max" else math.inf)
        (np.maximum if agg == "max" else np.minimum).at(out, c, v)
        return present, np.where(present, out, 0.0), used
    out = np.zeros(size)
    single = sizes[c] == 1
    out[c[single]] = v[single]
    multi = ~single
    if np.any(multi):
        mc, mv = c[multi], v[multi]
        order = np.argsort(mc, kind="stable")
        mc, mv = mc[order], mv[order]
        starts = np.flatnonzero(np.r_[True, mc[1:] != mc[:-1]])
        ends = np.r_[starts[1:], len(mc)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            total = math.fsum(mv[s:e].tolist())
            out[mc[s]] = total / (e - s) if agg == "mean" else total
    return present, out, used


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
