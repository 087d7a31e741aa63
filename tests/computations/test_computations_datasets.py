from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

from tests.computations.scenario_data import DATA

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_datasets.py"
SIZES = {
    "amiller.jsonl": (1500, 2500),
    "cloudmolty.jsonl": (800, 1500),
    "newbiemolty.jsonl": (500, 500),
}


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_datasets", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shipped_files_equal_generator_output() -> None:
    built = _tool().build_all()
    assert set(built) == set(SIZES)
    for name, content in built.items():
        assert (DATA / name).read_bytes() == content, f"{name} drifted: run tools/make_datasets.py"


def test_shipped_files_parse_and_have_stated_sizes() -> None:
    for name, (lo, hi) in SIZES.items():
        raw = (DATA / name).read_bytes()
        assert len(raw) < 1_500_000
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
        assert lo <= len(rows) <= hi
        stamps = [datetime.fromisoformat(r["ts"]) for r in rows]
        assert stamps == sorted(stamps)
        assert (stamps[-1] - stamps[0]).days >= 60
        for r in rows:
            assert set(r) <= {"ts", "project", "text", "tags"}
            assert r["ts"].endswith("Z")
            assert r["project"]
            assert r["text"]
        # varied text, not a handful of canned lines
        assert len({r["text"] for r in rows}) > 0.8 * len(rows)
