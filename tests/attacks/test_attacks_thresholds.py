"""Issue 11, class 4, end to end: thresholds counted on the attacker's side (lift).

On main (0bebc30) lift counted its k on the exposure input, whose policy and entity column
the requester writes: an exposure file with one real id repeated 10 times in the test arm
(rows as entities) passed k = 10, and the test arm's conversions were that person's
purchase bit (6 of 6 right).

Now, under the README's policy the exact lift is refused at the pre-check (``dp-required``);
the DP cells are calibrated on the conversions owner's entities (d_in 2 there, whatever the
requester's exposure policy says), and the total budget binds across identities, so at
most two of the six targets can be probed at all at epsilon 1, each guessed right at most
e / (1 + e) of the time. An owner persuaded to pin the attacker's exposure file for an
exact lift gets a refusal by the enclave (``k-threshold``: the converted cell must hold
the conversions owner's k entities), whether or not the target bought.
"""

from __future__ import annotations

from typing import Any

from tests.attacks.attack_world import Folder, World, auto
from tests.client.analytics_e2e_world import exact_policy

TARGETS = (3, 17, 42, 58, 71, 99)
BUYERS = {i for i in range(300) if i % 3 == 0}  # 3, 42 and 99 bought; 17, 58 and 71 did not
KNOWN_BUYER, FAKE = 0, 10_000


def exposure(t: int) -> list[dict[str, Any]]:
    """The attacker's file: t, a known buyer and an id that buys nothing, ten rows each, in
    the test arm; 200 real ids in control."""
    test = [t] * 10 + [KNOWN_BUYER] * 10 + [FAKE] * 10
    return [{"id": i, "group": "test"} for i in test] + [
        {"id": i, "group": "control"} for i in range(100, 300)
    ]


def purchases() -> list[dict[str, Any]]:
    return [{"id": i, "month": "2024-05"} for i in sorted(BUYERS)]


def test_a_repeated_id_no_longer_reads_a_purchase_bit(world: World, files: Folder) -> None:
    budget = {"epsilon_per_requester": "1", "epsilon_total": "2"}
    shop = world.publish(
        "c4-shop",
        files.csv("purchases", purchases()),
        auto("lift", k=10, entity_column="id", dp=budget),
    )
    # The attacker's exposure policy: rows as entities, k = 10, approved automatically.
    mine_rules = auto("lift", k=10, dp={"epsilon_per_requester": "50", "epsilon_total": "50"})
    probes = []
    for i, t in enumerate(TARGETS):
        name = f"c4-sybil-{i}"  # one identity per target: per-requester limits do not bind
        mine = world.publish(name, files.csv(f"exposure_{t}", exposure(t)), mine_rules)
        assert world.ask(name, "lift", [mine, shop], {}).refused_by("rule dp-required")
        answer = world.ask(name, "lift", [mine, shop], {"dp": {"epsilon": "1"}})
        probes.append(answer)
    released = [a.released for a in probes[:2]]
    for body in released:
        assert body["z"] is None
        (cells,) = body["dp"]["statistics"]
        # Discrete Laplace on each cell at d_in 2 on the conversions side: scale 2 / epsilon,
        # twice the target's whole contribution to a cell.
        assert float(cells["scale"]) == 2.0
        assert body["dp"]["contributions"][1] == 2
    # The shop's total budget is spent after two probes: the other four targets are never
    # probed at all, whichever identity asks.
    for late in probes[2:]:
        assert late.refused_by("rule dp-budget") == "enclave"


def test_a_pinned_exact_lift_on_the_attackers_file_is_refused_by_k_on_conversions(
    world: World, files: Folder
) -> None:
    refusals = set()
    for t in (3, 17):  # one buyer, one not: the refusal is the same
        path = files.csv(f"exposure_{t}", exposure(t))
        rules = exact_policy("lift", {}, [path], k=10, entity_column="id")
        shop = world.publish(f"c4-persuaded-{t}", files.csv(f"purchases_{t}", purchases()), rules)
        mine = world.publish("c4-eve", path, None)
        answer = world.ask("c4-eve", "lift", [mine, shop], {})
        assert answer.refused_by("under rule k-threshold") == "enclave"
        refusals.add(answer.refused)
    assert len(refusals) == 1
