from __future__ import annotations

import hashlib
import statistics

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.quality_score import QualityScoreOutput
from sealroom.errors import InvalidInput, PolicyDenied
from tests.computations.mqp_data import frame

QUALITY = default_registry().get("quality-score")


def algorithm(source: str, expected: str = "0.5") -> pa.Table:
    return pa.table({"source": [source], "expected": [expected]})


def spector() -> pa.Table:
    return pa.Table.from_pandas(frame("spector"), preserve_index=False)


def score(
    source: str,
    sample: pa.Table | None = None,
    *,
    expected: str = "0.5",
    privacy: PrivacyContext | None = None,
    **params: object,
) -> QualityScoreOutput:
    ctx = privacy if privacy is not None else PrivacyContext.uniform(2, k=5)
    tables = [algorithm(source, expected), sample if sample is not None else spector()]
    out = QUALITY.run(tables, QUALITY.parse_params(params), ctx)
    assert isinstance(out, QualityScoreOutput)
    return out


def test_declaration() -> None:
    assert QUALITY.release == "requester"
    assert QUALITY.input_names == ("algorithm", "sample")
    assert QUALITY.cost(QUALITY.parse_params({})).is_zero


def test_a_working_algorithm_gets_a_rounded_score_and_the_digest() -> None:
    src = "def score(table):\n    g = table['GRADE']\n    return sum(g) / len(g)\n"
    out = score(src, expected="0.3")
    truth = float(np.mean(frame("spector")["GRADE"]))  # 11 / 32 = 0.34375
    assert out.status == "ok"
    assert out.failure is None
    assert out.score == f"{round(truth, 2):.2f}" == "0.34"
    assert out.met is True
    assert out.expected == "0.3"
    assert out.precision == "0.01"
    assert out.score_range == ("0", "1")
    assert out.algorithm_digest == "sha256:" + hashlib.sha256(src.encode()).hexdigest()
    assert out.sample_rows == 32
    assert out.sandbox.startswith("best effort, not a VM")
    assert "network namespace" in out.sandbox
    assert score(src, expected="0.35").met is False


def test_stdlib_statistics_on_real_data_matches_numpy() -> None:
    src = (
        "import statistics\n"
        "def score(table):\n"
        "    return abs(statistics.correlation(table['GPA'], table['TUCE']))\n"
    )
    out = score(src, precision=3)
    data = frame("spector")
    truth = abs(np.corrcoef(data["GPA"], data["TUCE"])[0, 1])
    assert out.score == f"{truth:.3f}".rstrip("0")
    assert out.precision == "0.001"


def test_types_reach_the_algorithm_intact() -> None:
    sample = pa.table(
        {
            "i": pa.array([1, 2, None, 4, 5], pa.int32()),
            "f": [0.5, None, 1.5, 2.0, 2.5],
            "b": [True, False, True, None, True],
            "s": ["a", "b,c", '"q"', None, "e"],
        }
    )
    src = (
        "def score(table):\n"
        "    ok = table['i'] == [1, 2, None, 4, 5]\n"
        "    ok = ok and table['f'] == [0.5, None, 1.5, 2.0, 2.5]\n"
        "    ok = ok and table['b'] == [True, False, True, None, True]\n"
        "    ok = ok and table['s'] == ['a', 'b,c', '\"q\"', '', 'e']\n"
        "    return 1 if ok else 0\n"
    )
    assert score(src, sample).score == "1"


def test_precision_limit_stops_a_record_smuggled_in_the_digits() -> None:
    # encode the first three GPAs (e.g. 2.66, 2.89, 3.28) into one float's digits
    src = (
        "def score(table):\n"
        "    digits = ''.join(str(int(round(g * 100))) for g in table['GPA'][:3])\n"
        "    return float('0.' + digits)\n"
    )
    out = score(src)
    gpa = frame("spector")["GPA"][:3]
    smuggled = float("0." + "".join(str(round(g * 100)) for g in gpa))
    assert out.score == f"{smuggled:.2f}"
    assert len(out.score.split(".")[1]) <= 2
    body = out.model_dump_json()
    assert "".join(str(round(g * 100)) for g in gpa)[2:] not in body
    with pytest.raises(InvalidInput, match="precision"):
        QUALITY.parse_params({"precision": 4})


def test_a_score_outside_the_declared_range_is_not_released() -> None:
    out = score("def score(table):\n    return 1.5\n")
    assert (out.status, out.failure, out.score, out.met) == ("failed", "invalid-score", None, None)
    wide = score("def score(table):\n    return -1.5\n", score_min="-2", score_max="2")
    assert wide.score == "-1.5"
    assert wide.score_range == ("-2", "2")


ATTACKS = {
    "network": ("import socket\ndef score(t):\n    return 0.5\n", "refused"),
    "network-lazy": (
        "def score(t):\n    s = __import__('socket').socket()\n"
        "    s.connect(('1.1.1.1', 80))\n    return 0.5\n",
        "refused",
    ),
    "read-outside": (
        "def score(t):\n    return len(open('/etc/hostname').read()) / 1e9\n",
        "refused",
    ),
    "read-inputs": ("def score(t):\n    return len(open('inputs').read()) / 1e9\n", "refused"),
    "fork": ("import os\ndef score(t):\n    os.fork()\n    return 0.1\n", "refused"),
    "system": ("import os\ndef score(t):\n    os.system('id')\n    return 0.1\n", "refused"),
    "subprocess": ("import subprocess\ndef score(t):\n    return 0.1\n", "refused"),
    "ctypes": ("import ctypes\ndef score(t):\n    return 0.1\n", "refused"),
    "write-file": (
        "import os\ndef score(t):\n    os.open('x', os.O_WRONLY | os.O_CREAT)\n    return 0.1\n",
        "refused",
    ),
    "memory-bomb": ("def score(t):\n    x = bytearray(10**11)\n    return 0.1\n", "memory-limit"),
    "list-bomb": ("def score(t):\n    x = [t] * 10**10\n    return 0.1\n", "memory-limit"),
    "huge-output": (
        "import os\ndef score(t):\n    os.write(3, repr(t).encode() * 100)\n    return 0.1\n",
        "output-limit",
    ),
    "forged-report": (
        'import os\ndef score(t):\n    os.write(3, b\'{"score":"0.99"}\\n\')\n    return 0.1\n',
        "crashed",
    ),
    "exception": ("def score(t):\n    raise ValueError(repr(t))\n", "error"),
    "no-function": ("x = 1\n", "no-score-function"),
    "not-a-number": ("def score(t):\n    return repr(t['GPA'])\n", "invalid-score"),
    "nan": ("def score(t):\n    return float('nan')\n", "invalid-score"),
    "bool": ("def score(t):\n    return True\n", "invalid-score"),
    "syntax": ("def score(t) return 1\n", "error"),
    "exit": ("import sys\ndef score(t):\n    sys.exit(3)\n", "error"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_end_in_a_clear_failure_and_leak_nothing(name: str) -> None:
    source, failure = ATTACKS[name]
    out = score(source, memory_mb=256)
    assert out.status == "failed"
    assert out.failure == failure
    assert out.score is None
    assert out.met is None
    body = out.model_dump_json()
    assert "2.66" not in body  # the first GPA
    assert "score(t)" not in body  # the buyer's code


def test_infinite_loop_hits_the_cpu_limit() -> None:
    out = score("def score(t):\n    while True:\n        pass\n", cpu_seconds=1)
    assert (out.status, out.failure) == ("failed", "cpu-limit")
    assert out.limits.cpu_seconds == 1


def test_sleeping_forever_hits_the_wall_clock_limit() -> None:
    out = score("import time\ndef score(t):\n    time.sleep(3600)\n", wall_seconds=1)
    assert (out.status, out.failure) == ("failed", "timeout")


def test_printing_the_data_reaches_no_one() -> None:
    src = (
        "import sys\ndef score(t):\n    print(t)\n    print(t, file=sys.stderr)\n    return 0.25\n"
    )
    out = score(src)
    assert out.score == "0.25"
    assert "2.66" not in out.model_dump_json()


def test_withheld_columns_are_not_given_to_the_algorithm() -> None:
    src = "def score(table):\n    return 1 if 'PSI' in table else 0\n"
    assert score(src).score == "1"
    ctx = PrivacyContext(k=(1, 5), never_output=(frozenset(), frozenset({"PSI"})))
    out = score(src, privacy=ctx)
    assert out.score == "0"
    assert out.withheld_columns == ("PSI",)
    ctx = PrivacyContext(k=(1, 5), join_only=(frozenset(), frozenset({"id"})))
    assert score("def score(t):\n    return 1 if 'id' in t else 0\n", privacy=ctx).score == "0"


def test_sample_below_k_distinct_entities_is_refused() -> None:
    sample = spector().append_column("school", pa.array([i % 4 for i in range(32)]))
    ctx = PrivacyContext(k=(1, 5), entity_columns=(None, "school"))
    with pytest.raises(PolicyDenied, match="fewer than its k=5"):
        score("def score(t):\n    return 0.5\n", sample, privacy=ctx)


def test_malformed_algorithm_input() -> None:
    ctx = PrivacyContext.uniform(2, k=5)
    params = QUALITY.parse_params({})
    two_rows = pa.table({"source": ["a", "b"], "expected": ["1", "1"]})
    with pytest.raises(InvalidInput, match="exactly one row"):
        QUALITY.run([two_rows, spector()], params, ctx)
    with pytest.raises(InvalidInput, match="no column 'expected'"):
        QUALITY.run([pa.table({"source": ["x"]}), spector()], params, ctx)
    with pytest.raises(InvalidInput, match="decimal"):
        QUALITY.run([algorithm("def score(t): return 1", "high"), spector()], params, ctx)


def test_statistics_module_is_the_reference_for_a_mean_score() -> None:
    src = "import statistics\ndef score(t):\n    return statistics.fmean(t['GPA']) / 4\n"
    assert score(src, precision=3).score == f"{statistics.fmean(frame('spector')['GPA']) / 4:.3f}"
