from __future__ import annotations

import base64
import hashlib
import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
import wasmtime

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.quality_score import QualityScoreOutput, bits_per_run
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.privacy import PrivacyCost
from tests.computations.mqp_data import frame
from tests.computations.wasm_modules import constant, mean, module

QUALITY = default_registry().get("quality-score")
GRADE = 4  # spector's columns: id, GPA, TUCE, PSI, GRADE
FAST = {"wall_ms": 100}


def algorithm(source: str, expected: str = "0.5") -> pa.Table:
    return pa.table({"module": [source], "expected": [expected]})


def spector() -> pa.Table:
    return pa.Table.from_pandas(frame("spector"), preserve_index=False)


def charged(k: tuple[int, int] = (1, 5), bits: str = "100", **kw: object) -> PrivacyContext:
    return PrivacyContext(k=k, cost=PrivacyCost(bits=Decimal(bits)), **kw)  # type: ignore[arg-type]


def score(
    source: str,
    sample: pa.Table | None = None,
    *,
    expected: str = "0.5",
    privacy: PrivacyContext | None = None,
    **params: object,
) -> QualityScoreOutput:
    tables = [algorithm(source, expected), sample if sample is not None else spector()]
    out = QUALITY.run(tables, QUALITY.parse_params({**FAST, **params}), privacy or charged())
    assert isinstance(out, QualityScoreOutput)
    return out


def test_declaration() -> None:
    assert QUALITY.version == "2.1.0"
    assert QUALITY.release == "requester"
    assert QUALITY.input_names == ("algorithm", "sample")
    cost = QUALITY.cost(QUALITY.parse_params({}))
    assert not cost.is_dp
    assert cost.bits == bits_per_run(QUALITY.parse_params({}))
    # Every limit of what one run releases is the seller's to pin.
    assert set(QUALITY.isolating) == {
        "precision",
        "score_min",
        "score_max",
        "fuel",
        "memory_mb",
        "wall_ms",
    }


def test_a_mean_of_the_grades_is_the_rounded_score() -> None:
    src = mean(GRADE)
    out = score(src, expected="0.3")
    truth = float(np.mean(frame("spector")["GRADE"]))  # 11 / 32 = 0.34375
    assert (out.status, out.score, out.met) == ("ok", "0.34", True)
    assert out.score == f"{round(truth, 2):.2f}"
    assert (out.expected, out.precision, out.score_range) == ("0.3", "0.01", ("0", "1"))
    assert out.algorithm_digest == "sha256:" + hashlib.sha256(src.encode()).hexdigest()
    assert out.isolation.startswith("wasmtime ")
    assert score(src, expected="0.35").met is False


def test_a_binary_module_in_base64_runs_like_its_text() -> None:
    binary = base64.b64encode(bytes(wasmtime.wat2wasm(mean(GRADE)))).decode()
    assert score(binary, precision=3).score == "0.344"


def test_missing_values_and_strings_reach_the_module_as_documented() -> None:
    sample = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "s": ["a", None, "héllo"],
            "b": [True, None, False],
        }
    )
    ctx = charged(k=(1, 3))
    assert (
        score(mean(0), sample, privacy=ctx, score_max="10").score == "2"
    )  # NaN for the missing int is skipped
    assert score(mean(2), sample, privacy=ctx).score == "0.5"
    # the string column: entries (offset, len), len -1 when missing; sum of lengths / 10
    lengths = module("""
    (local.set $p (i32.load offset=28 (local.get $table)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (local.set $acc (f64.add (local.get $acc) (f64.convert_i32_s
        (i32.load offset=4 (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 3)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (f64.div (local.get $acc) (f64.const 10))""")
    assert (
        score(lengths, sample, privacy=ctx).score == "0.6"
    )  # 1 + (-1 for missing) + 6 bytes of UTF-8


def test_bits_are_log2_of_the_distinct_outputs() -> None:
    params = QUALITY.parse_params({})
    assert bits_per_run(params) == Decimal("6.672426")  # 101 scores and "failed"
    assert (
        Decimal(math.log2(102))
        <= bits_per_run(params)
        < Decimal(math.log2(102)) + Decimal("0.000002")
    )
    wide = QUALITY.parse_params({"precision": 3, "score_min": "-2", "score_max": "2"})
    assert bits_per_run(wide) > Decimal(math.log2(4002))
    with pytest.raises(InvalidInput, match="multiples of 0.01"):
        bits_per_run(QUALITY.parse_params({"score_min": "0.005"}))
    with pytest.raises(InvalidInput, match="below score_max"):
        bits_per_run(QUALITY.parse_params({"score_min": "1", "score_max": "1"}))
    with pytest.raises(InvalidInput, match="outputs"):
        bits_per_run(QUALITY.parse_params({"precision": 3, "score_max": "100000"}))
    with pytest.raises(InvalidInput, match="precision"):
        QUALITY.parse_params({"precision": 4})


def test_a_run_refuses_unless_its_bits_were_charged() -> None:
    with pytest.raises(PolicyDenied, match="bits") as err:
        score(constant(0.5), privacy=charged(bits="6.6"))
    assert err.value.rule == "bits-budget"
    assert score(constant(0.5), privacy=charged(bits="6.672426")).score == "0.5"


def test_withheld_columns_are_not_given_to_the_module() -> None:
    count_cols = module("(f64.convert_i32_s (local.get $cols))")
    assert score(count_cols, precision=0, score_max="10").score == "5"
    ctx = charged(never_output=(frozenset(), frozenset({"PSI"})))
    out = score(count_cols, privacy=ctx, precision=0, score_max="10")
    assert (out.score, out.withheld_columns) == ("4", ("PSI",))
    ctx = charged(join_only=(frozenset(), frozenset({"id", "GPA"})))
    assert score(count_cols, privacy=ctx, precision=0, score_max="10").score == "3"


def test_sample_below_k_distinct_entities_is_refused() -> None:
    sample = spector().append_column("school", pa.array([i % 4 for i in range(32)]))
    ctx = charged(entity_columns=(None, "school"))
    with pytest.raises(PolicyDenied, match="fewer than its k=5") as err:
        score(constant(0.5), sample, privacy=ctx)
    assert err.value.rule == "k-threshold"


def test_malformed_algorithm_input() -> None:
    params = QUALITY.parse_params(FAST)
    two_rows = pa.table({"module": ["a", "b"], "expected": ["1", "1"]})
    with pytest.raises(InvalidInput, match="exactly one row"):
        QUALITY.run([two_rows, spector()], params, charged())
    with pytest.raises(InvalidInput, match="no column 'expected'"):
        QUALITY.run([pa.table({"module": ["x"]}), spector()], params, charged())
    with pytest.raises(InvalidInput, match="decimal"):
        QUALITY.run([algorithm(constant(1), "high"), spector()], params, charged())
    with pytest.raises(InvalidInput, match="does not parse"):
        score("(module (func")
    with pytest.raises(InvalidInput, match="neither WebAssembly text nor base64"):
        score("def score(t): return 1")
    with pytest.raises(InvalidInput, match="not valid WebAssembly"):
        score(base64.b64encode(b"\0asm\x01\0\0\0garbage").decode())
    with pytest.raises(InvalidInput, match=r"export score\(i32, i32, i32\) -> f64"):
        score(
            '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)))'
        )
    with pytest.raises(InvalidInput, match="32-bit 'memory'"):
        score("(module)")


def test_the_readme_example_module_scores_the_mean_of_the_first_column() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```wat\n(.*?)```", readme, re.S)
    assert block, "the README shows a quality-score module"
    sample = pa.table({"x": [0.25, 0.5, 0.75, 1.0, 0.0]})
    assert score(block.group(1), sample, privacy=charged(k=(1, 1))).score == "0.5"


def test_a_column_type_the_module_cannot_take_is_refused_by_name() -> None:
    sample = spector().append_column("tags", pa.array([["a"]] * 32, pa.list_(pa.string())))
    with pytest.raises(InvalidInput, match="column 'tags'"):
        score(constant(0.5), sample)
    dates = spector().append_column("day", pa.array([0] * 32, pa.date32()))
    assert (
        score(module("(f64.convert_i32_s (local.get $cols))"), dates, score_max="10").score == "6"
    )
