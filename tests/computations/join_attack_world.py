"""The attacker's side of the join computations: runs, guessing games, exact jobs in an enclave.

A DP release bounds any attacker's guess: between two inputs that differ by one entity, a
test that decides which one it saw is right with probability at most e^eps / (1 + e^eps)
(:func:`guess_bound`). The attack tests play such games many times and compare the
attacker's hit rate with that bound, and run exact releases through a real enclave job
(policy, footprint, release history) where the attack is a second, pinned request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from sealroom.computations import PrivacyContext, default_registry
from sealroom.crypto.commit import commit_table
from sealroom.crypto.keys import Identity, b64encode
from sealroom.enclave.runner import JobMaterials, JobOutput, execute_job
from sealroom.enclave.state import EnclaveState
from sealroom.statements import sign_statement
from tests.enclave.enclave_world import CHUNK, NOW, WORLD, attest, seal_input, sign_policy
from tests.helpers import approval, request

REGISTRY = default_registry()


def run(
    computation: str,
    inputs: Sequence[pa.Table],
    params: Mapping[str, Any],
    *,
    k: tuple[int, int] = (10, 10),
    entity: tuple[str | None, str | None] = ("id", "id"),
) -> Any:
    """The computation on ``inputs`` as the enclave would run it (the policy allowed it)."""
    c = REGISTRY.get(computation)
    parsed = c.parse_params(dict(params))
    privacy = PrivacyContext(k=k, entity_columns=entity, cost=c.cost(parsed))
    return c.run(list(inputs), parsed, privacy)


def guess_bound(epsilon: float) -> float:
    """The best hit rate of any test between two neighbours of an epsilon-DP release."""
    return math.exp(epsilon) / (1 + math.exp(epsilon))


def hit_rate(world: Callable[[bool], Any], guess: Callable[[Any], bool], *, trials: int) -> float:
    """How often ``guess`` names the world a release came from, half the trials in each."""
    hits = 0
    for i in range(trials):
        truth = i % 2 == 0
        hits += guess(world(truth)) == truth
    return hits / trials


def slack(trials: int) -> float:
    """Five standard deviations of a hit rate over ``trials`` (at most sqrt(0.25 / n)): a
    rate at or below the bound exceeds bound + slack with probability below 3e-7."""
    return 5 * math.sqrt(0.25 / trials)


# --- exact releases through the enclave ----------------------------------------------------


def content_root(table: pa.Table) -> str:
    """The commitment root a policy pins a partner's data by (as in the attestation)."""
    return b64encode(commit_table(table, chunk_size=CHUNK).root)


def exact_rules(
    computation: str,
    params: Mapping[str, Any],
    partners: Sequence[pa.Table],
    *,
    k: int,
    entity_column: str,
) -> dict[str, Any]:
    """An owner's policy that allows exactly this shape with these partner tables."""
    c = REGISTRY.get(computation)
    given = c.parse_params(dict(params)).model_dump(mode="json")
    return {
        "allow": [
            {
                "id": computation,
                "dp": "off",
                "pinned": {
                    "params": {name: given[name] for name in c.isolating},
                    "partners": [content_root(t) for t in partners],
                },
            }
        ],
        "auto_approve": [{"id": computation}],
        "k": k,
        "entity_column": entity_column,
    }


def exact_job(
    state: EnclaveState,
    computation: str,
    *,
    owner_table: pa.Table,
    owner_rules: Mapping[str, Any],
    partner_table: pa.Table,
    params: Mapping[str, Any],
    owner_index: int,
    tag: int,
) -> JobOutput:
    """One exact job: alice's protected table (with her policy) joined to bob's (no policy,
    approved by hand), requested by carol; alice's table at ``owner_index``."""
    w = WORLD
    c = REGISTRY.get(computation)
    policy = sign_policy(w.alice, owner_rules)
    atts_by_owner: list[tuple[Identity, Any, pa.Table]] = [
        (w.alice, attest(w.alice, owner_table, policy.digest), owner_table),
        (w.bob, attest(w.bob, partner_table, None), partner_table),
    ]
    if owner_index == 1:
        atts_by_owner.reverse()
    atts = [a for _, a, _ in atts_by_owner]
    req = sign_statement(
        request(
            w.carol,
            tuple(a.digest for a in atts),
            computation=c.ref(),
            parameters=dict(params),
            recipients=(w.carol.party_id, w.alice.party_id, w.bob.party_id),
            nonce=b64encode(tag.to_bytes(16, "big")),
        ),
        w.carol,
    )
    approvals = []
    for who, att, _ in atts_by_owner:
        mode: dict[str, Any] = {"mode": "policy", "policy": policy.digest} if who is w.alice else {}
        approvals.append(sign_statement(approval(who, req.digest, att.digest, **mode), who))
    materials = JobMaterials(
        request=req.envelope,
        approvals=tuple(a.envelope for a in approvals),
        attestations=tuple(a.envelope for a in atts),
        policies=(policy.envelope,),
        sealed_inputs={a.digest: seal_input(t, req.digest) for _, a, t in atts_by_owner},
        room_policy=None,
    )
    return execute_job(
        materials,
        keys=w.enclave,
        registry=REGISTRY,
        ledger=state.ledger,
        history=state.history,
        now=NOW,
    )
