from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.errors import InvalidInput
from sealroom.statements.fields import canonical_decimal, decimal_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "0"),
        ("-0", "0"),
        ("-0.000", "0"),
        ("0E-7", "0"),
        ("1E+3", "1000"),
        ("2.50", "2.5"),
        ("-0.0500", "-0.05"),
        ("123.000", "123"),
        ("1.5E-7", "0.00000015"),
    ],
)
def test_canonical_decimal_examples(value: str, text: str) -> None:
    assert canonical_decimal(Decimal(value)) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20))
def test_canonical_decimal_is_exact_and_canonical(value: Decimal) -> None:
    text = canonical_decimal(value)
    assert Decimal(text) == value
    assert "e" not in text.lower()
    assert text != "-0"
    assert not ("." in text and text.endswith(("0", ".")))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_canonical_decimal_refuses_non_finite_values(value: str) -> None:
    with pytest.raises(InvalidInput, match="not a finite number"):
        canonical_decimal(Decimal(value))


def test_decimal_text_rounds_then_spells_canonically() -> None:
    assert decimal_text(0.1) == "0.1"
    assert decimal_text(-1e-30) == "0"
    assert decimal_text(2.0) == "2"
    assert decimal_text(1 / 3, places=4) == "0.3333"
