"""The benchmarks cannot rot unseen: CI runs each once (``python -m bench --smoke``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.__main__ as runner

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_every_benchmark_is_in_the_smoke_run() -> None:
    modules = {f"bench.{p.stem}" for p in BENCH.glob("bench_*.py")}
    assert modules == set(runner.BENCHES)
    for module in modules:
        source = (BENCH / f"{module.removeprefix('bench.')}.py").read_text()
        assert '"--smoke"' in source, f"{module} takes no --smoke"


def test_the_smoke_run_fails_when_a_benchmark_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # json.tool refuses --smoke (exit 2), as a broken benchmark would fail.
    monkeypatch.setattr(runner, "BENCHES", {"json.tool": ([], [])})
    assert runner.main(["--smoke"]) == 1
    out = capsys.readouterr().out
    assert "FAILED json.tool (exit 2)" in out
    assert "smoke: 1 of 1 benchmarks FAILED" in out
