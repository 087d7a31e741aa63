"""DP audits of the join computations (tests/dp_audit.py): neighbours by one entity of EITHER
input, the other input fixed; and mutants whose noise is a quarter of what their privacy map
claims, which the same audits must catch (so an audit that cannot fail is caught too).

Each audit runs the whole computation (truncation, per-key values, OpenDP measurements,
post-processing) and projects its release onto one number whose privacy loss between the two
neighbours is the share of epsilon that number's measurement was charged. The neighbour is
the worst case for that number: the removed entity's value sits at a bound. The estimate is a
lower confidence bound (false alarm 1e-6), so a passing audit did not catch a violation at
this sample size; it proves nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations import _join_privacy as jp
from tests.dp_audit import audit

REG = default_registry()
RUNS = 1500
IDS = list(range(30))


def release(
    computation: str,
    inputs: list[pa.Table],
    params: dict[str, Any],
    project: Callable[[Any], float],
    *,
    entity: tuple[str | None, str | None] = ("id", "id"),
) -> Callable[[], float]:
    """One fresh run of the computation, projected onto the audited number."""
    c = REG.get(computation)
    parsed = c.parse_params(params)
    privacy = PrivacyContext(k=(5, 5), entity_columns=entity, cost=c.cost(parsed))
    return lambda: project(c.run(inputs, parsed, privacy))


@pytest.fixture(autouse=True)
def few_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bootstrap behind intervals is post-processing and no audited number reads it."""
    monkeypatch.setattr(jp, "DRAWS", 20)


@pytest.fixture
def lying_maps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every measurement adds a quarter of its calibrated noise while its privacy map (and
    the scale it reports) stay those of the honest one: a mis-calibration no map check sees."""
    honest = jp._calibrate

    class Lying:
        def __init__(self, meas: Any, weak: Any) -> None:
            self.meas, self.weak = meas, weak

        def map(self, d_in: int) -> Any:
            return self.meas.map(d_in)

        def __call__(self, data: Any) -> Any:
            return self.weak(data)

    def calibrate(make: Callable[[float], Any], d_in: int, epsilon: float) -> tuple[Any, float]:
        meas, scale = honest(make, d_in, epsilon)
        return Lying(meas, make(scale / 4)), scale

    jp._measurement.cache_clear()
    jp._map.cache_clear()
    monkeypatch.setattr(jp, "_calibrate", calibrate)
    yield
    jp._measurement.cache_clear()
    jp._map.cache_clear()


# --- the cases: (D, D') by one entity of a, then of b, and the number audited ---------------

ONE_A = pa.table({"id": IDS})
ONE_B = pa.table({"id": IDS, "v": [10.0] * 30})


def overlap_case(side: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    params = {"dp": {"epsilon": "1"}}
    smaller = [ONE_A.slice(1), ONE_B] if side == 0 else [ONE_A, ONE_B.slice(1)]

    def project(out: Any) -> float:
        return float(out.overlap)

    return (
        release("intersection-overlap", [ONE_A, ONE_B], params, project),
        release("intersection-overlap", smaller, params, project),
        0.5,
    )


def isum_case(side: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    params = {"value": "v", "value_bounds": ["0", "10"], "dp": {"epsilon": "1"}}
    smaller = [ONE_A.slice(1), ONE_B] if side == 0 else [ONE_A, ONE_B.slice(1)]

    def project(out: Any) -> float:
        return float(out.sum)

    return (
        release("intersection-sum", [ONE_A, ONE_B], params, project),
        release("intersection-sum", smaller, params, project),
        1 / 3,
    )


def correlation_case(side: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    a = pa.table({"id": IDS, "x": [float(i % 5) for i in IDS]})
    b = pa.table({"id": IDS, "y": [float(i % 3) for i in IDS]})
    params = {"x": "x", "y": "y", "x_bounds": ["0", "4"], "y_bounds": ["0", "2"]}
    params["dp"] = {"epsilon": "1"}
    smaller = [a.slice(1), b] if side == 0 else [a, b.slice(1)]

    def project(out: Any) -> float:
        return float(out.n)

    return (
        release("correlation", [a, b], params, project),
        release("correlation", smaller, params, project),
        1 / 6,
    )


def lift_case(side: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    exposure = pa.table({"id": IDS, "group": ["test"] * 15 + ["control"] * 15})
    conversions = pa.table({"id": IDS[:8] + IDS[15:20]})
    # Without a's entity 0 (a converter of the test arm): its key leaves the test arm.
    # Without b's entity 0: the key stays in the test arm but no longer converts.
    smaller = [exposure.slice(1), conversions] if side == 0 else [exposure, conversions.slice(1)]
    params = {"dp": {"epsilon": "1"}}

    def project(out: Any) -> float:
        # converted minus not converted in the test arm: moves by 2 when a key changes cell
        return float(2 * out.test.conversions - out.test.n)

    return (
        release("lift", [exposure, conversions], params, project),
        release("lift", smaller, params, project),
        1.0,
    )


def association_case(side: int) -> tuple[Callable[[], float], Callable[[], float], float]:
    signal = pa.table({"id": IDS, "s": [i % 2 for i in IDS]})
    outcome = pa.table({"id": IDS, "o": [(i // 2) % 2 for i in IDS]})
    params = {"signal": "s", "signal_type": "binary", "outcome": "o", "dp": {"epsilon": "1"}}
    smaller = [signal.slice(1), outcome] if side == 0 else [signal, outcome.slice(1)]

    def project(out: Any) -> float:
        return float(out.n)

    # n = the four noisy cells added: their histogram was charged all of epsilon.
    return (
        release("association-test", [signal, outcome], params, project),
        release("association-test", smaller, params, project),
        1.0,
    )


CASES = {
    "intersection-overlap": overlap_case,
    "intersection-sum": isum_case,
    "correlation": correlation_case,
    "lift": lift_case,
    "association-test": association_case,
}


@pytest.mark.parametrize("side", [0, 1], ids=["entity of a", "entity of b"])
@pytest.mark.parametrize("computation", sorted(CASES))
def test_a_release_is_epsilon_dp_for_an_entity_of_either_input(computation: str, side: int) -> None:
    on_d, on_neighbour, claimed = CASES[computation](side)
    result = audit(on_d, on_neighbour, runs=RUNS)
    assert result.epsilon_lower <= claimed, result


@pytest.mark.parametrize("computation", sorted(CASES))
@pytest.mark.usefixtures("lying_maps")
def test_a_quarter_of_the_noise_is_caught(computation: str) -> None:
    on_d, on_neighbour, claimed = CASES[computation](1)
    result = audit(on_d, on_neighbour, runs=RUNS)
    assert result.epsilon_lower > claimed, result


# --- the contribution bound: an entity with three keys ---------------------------------------

PEOPLE = pa.table({"id": IDS, "person": [f"p{i // 3}" for i in IDS]})


def three_keys() -> tuple[Callable[[], float], Callable[[], float]]:
    """Selector entity p0 holds keys 0, 1, 2 (bound: 3 keys); its neighbour lacks p0."""
    params = {
        "value": "v",
        "value_bounds": ["0", "10"],
        "dp": {"epsilon": "1", "max_keys_per_entity": 3},
    }
    entity = ("person", "id")

    def project(out: Any) -> float:
        return float(out.sum)

    return (
        release("intersection-sum", [PEOPLE, ONE_B], params, project, entity=entity),
        release("intersection-sum", [PEOPLE.slice(3), ONE_B], params, project, entity=entity),
    )


def test_an_entity_with_several_keys_is_within_its_bound() -> None:
    result = audit(*three_keys(), runs=RUNS)
    assert result.epsilon_lower <= 1 / 3, result


def test_noise_sized_for_one_key_when_an_entity_has_three_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jp._measurement.cache_clear()
    monkeypatch.setattr(jp, "contributions", lambda *a, **k: 1)
    try:
        result = audit(*three_keys(), runs=RUNS)
    finally:
        jp._measurement.cache_clear()
    assert result.epsilon_lower > 1 / 3, result
