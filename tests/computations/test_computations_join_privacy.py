"""The join computations' privacy machinery: truncation, contribution bounds, privacy maps.

Every DP join computation is a set of OpenDP measurements calibrated at a contribution
bound d_in per input. These tests pin the bound (from the policy alone), show that the
truncation that enforces it is stable (one entity's rows never change what another keeps),
and evaluate every measurement's privacy map at the bound against the epsilon charged:
exactly, for each computation and each input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations import _join_privacy as jp
from sealroom.errors import InvalidInput, PolicyDenied

REG = default_registry()


def sides(
    a: pa.Table, b: pa.Table, entity: tuple[str | None, str | None] = ("id", "id")
) -> tuple[tuple[jp.Side, jp.Side], Any]:
    privacy = PrivacyContext(k=(1, 1), entity_columns=entity)
    return jp.sides([a, b], privacy, ("id", "id"), ("a", "b"))


# --- truncation ---------------------------------------------------------------------------


def kept_keys(side: jp.Side, codes: np.ndarray, space: Any) -> dict[object, set[str]]:
    """Per entity value, the keys (as strings) its kept rows hold."""
    keys = space.ints if space.ints is not None else space.strings.to_pylist()
    people = side.table.column("person").to_pylist()
    out: dict[object, set[str]] = {}
    for person, code in zip(people, codes.tolist(), strict=True):
        if code >= 0:
            out.setdefault(person, set()).add(str(keys[code]))
    return out


def test_truncation_keeps_each_entitys_first_keys_in_string_order() -> None:
    a = pa.table(
        {
            "id": [10, 9, 100, 11, 9, 7, 8],
            "person": ["p", "p", "p", "p", "p", "q", None],
        }
    )
    (side, _), space = sides(a, pa.table({"id": [1]}), ("person", "id"))
    codes = jp.truncate(side, space, 2)
    # "10" < "100" < "11" < "9": p keeps 10 and 100 (both rows of 9 go); q keeps 7; the
    # row without a person cannot be bounded and goes.
    assert kept_keys(side, codes, space) == {"p": {"10", "100"}, "q": {"7"}}


def test_truncation_of_one_entity_never_depends_on_another() -> None:
    rng = np.random.default_rng(7)
    people = [f"e{i}" for i in rng.integers(0, 12, 80)]
    base = pa.table({"id": rng.integers(0, 30, 80), "person": people})
    (side, _), space = sides(base, pa.table({"id": [0]}), ("person", "id"))
    full = kept_keys(side, jp.truncate(side, space, 3), space)
    for gone in ("e0", "e5", "e11"):
        rest = base.filter(pa.compute.not_equal(base.column("person"), gone))
        (side2, _), space2 = sides(rest, pa.table({"id": [0]}), ("person", "id"))
        without = kept_keys(side2, jp.truncate(side2, space2, 3), space2)
        assert without == {p: k for p, k in full.items() if p != gone}
    assert all(len(keys) <= 3 for keys in full.values())


def test_an_entity_that_is_its_key_keeps_every_row() -> None:
    a = pa.table({"id": [1, 1, 2, None], "person": ["x", "y", "z", "w"]})
    (side, _), space = sides(a, pa.table({"id": [1]}))
    assert (jp.truncate(side, space, 1)[:3] >= 0).all()


# --- contribution bounds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "valued", "labels", "bound"),
    [
        ("id", False, False, 1),  # one key, its own: it appears or disappears
        ("id", True, False, 1),
        ("id", True, True, 2),  # absence is a label: the record moves between cells
        (None, False, False, 1),  # a row: one key, shared or not, membership only
        (None, True, False, 2),  # a row's value may be one of several of its key
        ("person", False, False, 3),  # up to m = 3 keys, each appears or disappears
        ("person", True, False, 6),  # ... or is replaced
        ("person", True, True, 6),
    ],
)
def test_the_contribution_bound_comes_from_the_policy_alone(
    entity: str | None, valued: bool, labels: bool, bound: int
) -> None:
    a = pa.table({"id": [1], "person": ["x"]})
    (side, _), _ = sides(a, a, (entity, entity))
    assert jp.contributions(side, 3, valued=valued, labels=labels) == bound


# --- privacy maps at the bound, per computation -------------------------------------------


@dataclass
class Captured:
    plans: list[jp.DpPlan]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Every DpPlan the computations build during the test."""
    seen = Captured([])

    class Spy(jp.DpPlan):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.plans.append(self)

    monkeypatch.setattr(jp, "DpPlan", Spy)
    return seen


def table(n: int, **cols: Any) -> pa.Table:
    return pa.table({"id": list(range(n)), "person": [f"p{i // 2}" for i in range(n)], **cols})


A = table(40, x=[float(i % 7) for i in range(40)], s=[i % 2 for i in range(40)])
B = table(40, y=[float(i % 5) for i in range(40)], o=[(i // 3) % 2 for i in range(40)])
G = table(40, group=["test" if i % 2 else "control" for i in range(40)])
C = table(30, flag=[i % 3 == 0 for i in range(30)])

CASES: list[tuple[str, list[pa.Table], dict[str, Any], int]] = [
    ("intersection-overlap", [A, B], {}, 3),
    ("intersection-sum", [A, B], {"value": "y", "value_bounds": ["0", "10"]}, 3),
    (
        "correlation",
        [A, B],
        {"x": "x", "y": "y", "x_bounds": ["0", "8"], "y_bounds": ["0", "5"]},
        6,
    ),
    ("lift", [G, C], {"conversion": "flag"}, 1),
    ("association-test", [A, B], {"signal": "s", "signal_type": "binary", "outcome": "o"}, 1),
    (
        "association-test",
        [A, B],
        {"signal": "x", "signal_bounds": ["0", "8"], "outcome": "o"},
        5,
    ),
    (
        "association-test",
        [A, B],
        {
            "signal": "x",
            "signal_bounds": ["0", "8"],
            "outcome": "y",
            "outcome_type": "numeric",
            "outcome_bounds": ["0", "5"],
        },
        6,
    ),
]

# Per case and policy shape: (entity columns, max_keys_per_entity) -> the d_in per input.
SHAPES: list[tuple[tuple[str | None, str | None], int]] = [
    (("id", "id"), 1),
    ((None, None), 1),
    (("person", "id"), 3),
    (("id", "person"), 2),
]


def expected_d_in(
    computation: str, params: Mapping[str, Any], entity: tuple[str | None, str | None], m: int
) -> tuple[int, int]:
    """The contribution bound each computation must calibrate at, written out by hand."""
    out = []
    for i, e in enumerate(entity):
        keys = 1 if e in ("id", None) else m
        if computation == "intersection-overlap":
            per_key = 1
        elif computation == "intersection-sum":
            value_side = 0 if params.get("value_input") == "a" else 1
            per_key = 2 if i == value_side and e != "id" else 1
        elif computation == "lift" and i == 1:
            per_key = 2  # not converting is the absence of a conversions row
        else:
            per_key = 1 if e == "id" else 2
        out.append(keys * per_key)
    return out[0], out[1]


@pytest.mark.parametrize(("computation", "inputs", "params", "n_stats"), CASES)
@pytest.mark.parametrize(("entity", "m"), SHAPES)
@pytest.mark.parametrize("epsilon", ["1", "0.3"])
def test_every_measurement_is_calibrated_at_the_bound_to_the_epsilon_charged(
    captured: Captured,
    computation: str,
    inputs: list[pa.Table],
    params: dict[str, Any],
    n_stats: int,
    entity: tuple[str | None, str | None],
    m: int,
    epsilon: str,
) -> None:
    c = REG.get(computation)
    parsed = c.parse_params({**params, "dp": {"epsilon": epsilon, "max_keys_per_entity": m}})
    charged = c.cost(parsed)
    assert charged.epsilon == Decimal(epsilon)
    privacy = PrivacyContext(k=(5, 5), entity_columns=entity, cost=charged)
    c.run(inputs, parsed, privacy)
    (plan,) = captured.plans
    d_in = expected_d_in(computation, params, entity, m)
    assert plan.contributions == d_in
    assert len(plan.stats) == n_stats
    eps = Decimal(epsilon)
    readers = max(sum(1 for s in plan.stats if i in s.sides) for i in (0, 1))
    share = eps / readers
    # The input with the larger bound spends the whole epsilon (to within float rounding):
    # the noise is not larger than the budget needs.
    assert max(plan.loss(0), plan.loss(1)) >= eps * Decimal("0.999999")
    for i in (0, 1):
        # The loss for each input at its bound: every statistic reading it at most its
        # share, and their sum at most the epsilon charged.
        assert plan.loss(i) <= eps
        for s in plan.stats:
            if i not in s.sides:
                continue
            at_bound = plan.map(s.name, d_in[i])
            assert at_bound <= share
            scale = plan.measurements[s.name][1]
            if s.kind != "sum":
                # Discrete Laplace on counts: the map is d_in / scale, rounded up to a float.
                exact = Decimal(d_in[i]) / Decimal(scale)
                assert exact <= at_bound <= exact * (1 + Decimal("1e-15"))
    # Calibrated at the bound, not above it: one more record than the larger bound
    # would spend more than the share (so the bound is what the noise is sized for).
    top = max(d_in)
    assert all(plan.map(s.name, top + 1) > share for s in plan.stats)


def test_a_plan_refuses_more_epsilon_than_was_charged() -> None:
    c = REG.get("intersection-overlap")
    parsed = c.parse_params({"dp": {"epsilon": "2"}})
    privacy = PrivacyContext(k=(5, 5), cost=c.cost(c.parse_params({"dp": {"epsilon": "1"}})))
    with pytest.raises(PolicyDenied) as info:
        c.run([A, B], parsed, privacy)
    assert info.value.rule == "dp-budget"


@pytest.mark.parametrize("epsilon", ["0", "-1", "101", "NaN"])
def test_an_epsilon_outside_the_range_is_refused(epsilon: str) -> None:
    c = REG.get("intersection-overlap")
    with pytest.raises(InvalidInput):
        c.cost(c.parse_params({"dp": {"epsilon": epsilon}}))


def test_the_same_release_gives_the_same_intervals() -> None:
    c = REG.get("intersection-sum")
    parsed = c.parse_params({"value": "y", "value_bounds": ["0", "10"], "dp": {"epsilon": "1"}})
    privacy = PrivacyContext(k=(5, 5), entity_columns=("id", "id"), cost=c.cost(parsed))
    plan = jp.DpPlan(
        (jp.Stat("n", (0, 1)), jp.Stat("sum", (0, 1), bounds=(0.0, 10.0))),
        params=parsed.dp,  # type: ignore[arg-type]
        privacy=privacy,
        contributions=(1, 1),
        computation="test",
    )
    noisy = plan.release({"n": 30, "sum": [1.0] * 30})
    one, two = plan.replicates(noisy), plan.replicates(noisy)
    assert (one["sum"] == two["sum"]).all()
    assert (one.z == two.z).all()
    # The replicates spread like the noise: Laplace of the calibrated scale around the release.
    scale = plan.measurements["sum"][1]
    assert abs(float(np.std(one["sum"])) - scale * 2**0.5) < 0.15 * scale * 2**0.5
