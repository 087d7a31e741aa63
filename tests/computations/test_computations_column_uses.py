"""Every computation names the columns a request uses, so a missing one is refused before any upload."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sealroom.computations import default_registry
from sealroom.computations.column_uses import ColumnUse, check_column_uses
from sealroom.errors import InvalidInput

NUMS = (("id", "int64"), ("x", "double"), ("y", "string"), ("flag", "bool"), ("text", "string"))


def test_a_missing_column_is_named_with_its_parameter_and_the_columns_there_are() -> None:
    uses = [ColumnUse("key", "key", "key_b", 1)]
    with pytest.raises(InvalidInput) as e:
        check_column_uses("c", uses, [NUMS, (("id", "int64"),)], ("a", "b"))
    assert (
        str(e.value.detail) == "c: input 'b' has no column 'key' (named as key_b; its columns: id)"
    )


@pytest.mark.parametrize(
    ("need", "type_text", "fits"),
    [
        ("text", "string", True),
        ("text", "large_string", True),
        ("text", "int64", False),
        ("numeric", "double", True),
        ("numeric", "string", True),  # numeric strings are parsed per cell
        ("numeric", "decimal128(10, 2)", True),
        ("numeric", "timestamp[us]", False),
        ("number", "string", False),
        ("number", "bool", True),
        ("number", "uint8", True),
        ("key", "list<item: string>", False),
        ("key", "struct<a: int64>", False),
        ("key", "timestamp[us, tz=UTC]", True),
        ("key", "null", True),
    ],
)
def test_kinds_are_as_loose_as_the_computations_that_read_them(
    need: Any, type_text: str, fits: bool
) -> None:
    schema = ((("c", type_text),),)
    uses = [ColumnUse("c", need, "p", 0)]
    if fits:
        check_column_uses("x", uses, schema, ("a",))
    else:
        with pytest.raises(InvalidInput, match=re.escape(f"column 'c' is {type_text}")):
            check_column_uses("x", uses, schema, ("a",))


def test_one_means_exactly_one_input() -> None:
    uses = [ColumnUse("x", "number", "feature", "one")]
    check_column_uses("m", uses, [NUMS, (("id", "int64"),)], ("a", "b"))
    with pytest.raises(InvalidInput, match="no input has column 'x'"):
        check_column_uses("m", uses, [(("id", "int64"),)] * 2, ("a", "b"))
    with pytest.raises(InvalidInput, match="inputs \\['a', 'b'\\]; it must come from exactly one"):
        check_column_uses("m", uses, [NUMS, NUMS], ("a", "b"))


# Parameters naming a column no input has ("nope"), per computation that reads columns.
MISSING: dict[str, dict[str, Any]] = {
    "aggregate-stats": {"value": "nope"},
    "association-test": {"signal": "x", "signal_bounds": ["0", "1"], "outcome": "nope"},
    "correlation": {"x": "nope", "y": "x", "x_bounds": ["0", "1"], "y_bounds": ["0", "1"]},
    "gap-analysis": {"text_column": "nope"},
    "intersection-overlap": {"key_b": "nope"},
    "intersection-sum": {"value": "nope", "value_bounds": ["0", "1"]},
    "lift": {"group": "nope"},
    "pattern-search": {"query": "error", "text_column": "nope"},
    "topic-overlap": {"text_column": "nope"},
    "train-model": {"layout": "stack", "target": "x", "features": ["nope"]},
}


def test_every_computation_that_reads_columns_declares_them() -> None:
    declared = {c.id for c in default_registry() if c.columns_fn is not None}
    assert declared == set(MISSING)


@pytest.mark.parametrize("cid", sorted(MISSING))
def test_every_computation_names_a_missing_column_on_the_attested_schemas(cid: str) -> None:
    c = default_registry().get(cid)
    params = c.parse_params(MISSING[cid])
    schemas = [NUMS] * len(c.input_names)
    with pytest.raises(InvalidInput, match="column 'nope'"):
        c.check_columns(params, schemas)
