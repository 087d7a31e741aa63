"""The requester's differencing attack on correlation (issue 11, class 1).

It publishes its own column y for ids S, then for S + {t}, and compares the releases: on main
(1.1.0) n and r moved by exactly t's contribution. In DP mode any guess about t from the two
releases is right at most e^eps / (1 + e^eps) of the time (eps = what the two requests cost
on the owner's input); in exact mode the pins and the enclave's difference check refuse the
second release (tests/computations/test_computations_intersection_attacks.py runs that job
for correlation too).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tests.computations.join_attack_world import guess_bound, hit_rate, run, slack

RNG = np.random.default_rng(5)
N = 200
OWNER = pa.table({"id": list(range(N)), "x": np.round(RNG.uniform(0, 100, N), 1)})
S = pa.table({"id": list(range(60)), "y": np.round(RNG.uniform(0, 10, 60), 1)})
PARAMS = {"x": "x", "y": "y", "x_bounds": ["0", "100"], "y_bounds": ["0", "10"]}
TRIALS = 400


def test_dp_releases_for_s_and_s_plus_t_hide_t() -> None:
    t = 150
    plus_t = pa.concat_tables([S, pa.table({"id": [t], "y": [10.0]})])
    dp = {**PARAMS, "dp": {"epsilon": "0.5"}}
    # The worst case for the owner: t's x at the top of its bounds, or t absent.
    top = OWNER.set_column(1, "x", pa.array([100.0] * N))

    def world(holds_t: bool) -> int:
        owner = top if holds_t else top.filter(pa.compute.not_equal(top.column("id"), t))
        first = run("correlation", [owner, S], dp)
        second = run("correlation", [owner, plus_t], dp)
        return int(second.n - first.n)

    rate = hit_rate(world, lambda diff: diff >= 1, trials=TRIALS)
    assert rate <= guess_bound(1.0) + slack(TRIALS)


def test_spearman_is_not_released_in_dp_mode() -> None:
    out = run("correlation", [OWNER, S], {**PARAMS, "dp": {"epsilon": "1"}})
    assert out.spearman is None
