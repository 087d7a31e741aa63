"""``sealroom.text``: the refused code points are exactly the documented ranges."""

from __future__ import annotations

import pytest

from sealroom.text import LINES_FORBIDDEN, ONE_LINE_FORBIDDEN, printable, text_problem


def _reference(text: str, ranges: tuple[tuple[int, int], ...]) -> int | None:
    """The rule as written: the first character inside any range."""
    for i, ch in enumerate(text):
        if any(lo <= ord(ch) <= hi for lo, hi in ranges):
            return i
    return None


def _codes() -> list[int]:
    """Both sides of every range boundary, and a stride through all of Unicode."""
    edges = {
        c + d
        for lo, hi in (*ONE_LINE_FORBIDDEN, *LINES_FORBIDDEN)
        for c in (lo, hi)
        for d in (-1, 0, 1)
    }
    return sorted({c for c in edges if 0 <= c < 0x110000} | set(range(0, 0x110000, 61)))


@pytest.mark.parametrize(
    ("multiline", "ranges"), [(False, ONE_LINE_FORBIDDEN), (True, LINES_FORBIDDEN)]
)
def test_every_code_point_is_judged_as_the_ranges_say(
    multiline: bool, ranges: tuple[tuple[int, int], ...]
) -> None:
    for code in _codes():
        text = "ok " + chr(code) + " \u202e"  # a later bidi override must not hide an earlier hit
        found = text_problem(text, multiline=multiline)
        at = _reference(text, ranges)
        assert found is not None, hex(code)  # the trailing override is always refused
        assert f"at position {at}" in found, (hex(code), found)
        assert f"U+{ord(text[at]):04X}" in found


def test_clean_text_has_no_problem() -> None:
    assert text_problem("Quarterly notes: naïve café, 日本語", multiline=False) is None
    assert text_problem("two\nlines\tand a tab, emoji 👩‍💻", multiline=True) is None
    assert text_problem("two\nlines", multiline=False) is not None


def test_printable_escapes_exactly_the_one_line_refusals() -> None:
    assert printable("a\u202eb\nc\u00e9") == "a\\u202eb\\u000ac\u00e9"
    assert printable("plain") == "plain"
