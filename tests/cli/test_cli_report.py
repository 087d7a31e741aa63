"""``report``: the one JSON document, or the human lines and table, never both."""

from __future__ import annotations

import json

import pytest

from sealroom.cli.common import report


def test_report_prints_only_the_json_document_with_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report(True, {"b": 1, "a": [2]}, "a line", rows=[["x"]], header=["h"])
    out = capsys.readouterr().out
    assert json.loads(out) == {"a": [2], "b": 1}
    assert out == json.dumps({"a": [2], "b": 1}, indent=2, sort_keys=True) + "\n"


def test_report_prints_its_lines_then_the_aligned_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report(False, {"a": 1}, "first", "second", rows=[["ab", "1"], ["c", "22"]], header=["k", "v"])
    assert capsys.readouterr().out == "first\nsecond\nk   v\nab  1\nc   22\n"


def test_report_says_none_for_an_empty_table_and_nothing_without_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report(False, {}, "only", rows=[], header=["k"])
    assert capsys.readouterr().out == "only\n(none)\n"
    report(False, {}, "just this")
    assert capsys.readouterr().out == "just this\n"
