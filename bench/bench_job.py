"""One mediated job end to end against its plaintext floor, measured in the same run.

    python -m bench.bench_job [--scale 4] [--repeat 7] [--smoke]

The job is ``topic-overlap`` on the bundled work logs (amiller.jsonl
and cloudmolty.jsonl, ``--scale`` copies of each). End to end is
:func:`sealroom.enclave.runner.execute_job`: open and check every statement,
decide policy, charge the budget ledger (an SQLite file, as the enclave keeps
it; a repeated request reuses its charge), unseal both inputs, check them
against their commitments, compute, sign the receipt and seal the result to
each recipient. The floor is
the work no mediated design can skip: unseal + verify against the commitment
+ compute. The ratio end-to-end / floor is the cost of the checks, the
receipt and the output sealing; compute alone shows how much of the floor is
the computation itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pyarrow as pa

from bench._harness import Ratio, median_seconds
from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.computations import PrivacyContext, default_registry
from sealroom.connectors import read_table
from sealroom.crypto.commit import DatasetCommitment, commit_table, iter_canonical, read_verified
from sealroom.crypto.keys import Identity, b64decode_strict, b64encode
from sealroom.crypto.sealing import SealContext, open_sealed, seal
from sealroom.enclave.history import FootprintScope, SqlReleaseHistory, StoredRelease
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.runner import JobMaterials, execute_job
from sealroom.enclave.state import EnclaveState
from sealroom.statements import (
    Approval,
    CommitmentRef,
    ComputationRequest,
    DatasetAttestation,
    DatasetProfile,
    Policy,
    sign_statement,
)

NOW = 1_790_000_000
DATASETS = ("amiller.jsonl", "cloudmolty.jsonl")
# The first owner's policy approves automatically; the second owner approves by hand.
MODES = ("policy", "manual")
SMOKE_ROWS = 200


def _load(name: str, scale: int, rows: int | None) -> pa.Table:
    table = read_table(Path(str(resources.files("sealroom") / "data" / name)))
    if rows is not None:
        table = table.slice(0, rows)
    return pa.concat_tables([table] * scale) if scale > 1 else table


def _attest(owner: Identity, table: pa.Table, policy: str | None) -> DatasetAttestation:
    c = commit_table(table)
    return DatasetAttestation.model_validate(
        {
            "owner": owner.party_id,
            "title": "work log",
            "description": "benchmark dataset",
            "keywords": (),
            "topics": (),
            "schema": (),
            "row_count": c.rows,
            "time_range": None,
            "profile": DatasetProfile(
                projects=None, active_days=None, primary_focus=None, expertise=()
            ),
            "commitment": CommitmentRef(
                format="arrow-ipc-stream/v1",
                root=b64encode(c.root),
                length=c.length,
                rows=c.rows,
                chunk_size=c.chunk_size,
            ),
            "policy": policy,
            "created_at": NOW - 1000,
        }
    )


class _EveryRunInFull:
    """The enclave's history without its memory of releases, so each timed run of the same
    job executes in full (the enclave answers a replayed request with its first release)."""

    def __init__(self, inner: SqlReleaseHistory) -> None:
        self._inner = inner

    def check_and_record(self, scopes: Sequence[FootprintScope], *, request: str, now: int) -> None:
        self._inner.check_and_record(scopes, request=request, now=now)

    def released(self, request: str) -> StoredRelease | None:
        return None

    def keep_release(self, request: str, release: StoredRelease, *, now: int) -> StoredRelease:
        return release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=4, help="copies of each dataset")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args()
    rows = SMOKE_ROWS if args.smoke else None
    if args.smoke:
        args.scale, args.repeat = 1, 1

    enclave = EnclaveKeys.create_at_time(
        SimulatedEnclave(SimulationRoot.generate()), tee="simulated", now=NOW - 2000
    )
    registry = default_registry()
    overlap = registry.get("topic-overlap")
    owners = (Identity.generate(), Identity.generate())
    requester = Identity.generate()
    tables = tuple(_load(name, args.scale, rows) for name in DATASETS)
    rules = {"allow": [{"id": overlap.id}], "auto_approve": [{"id": overlap.id}]}
    policy = sign_statement(
        Policy(owner=owners[0].party_id, name="auto", rules=rules, created_at=NOW - 1000),
        owners[0],
    )
    atts = (
        sign_statement(_attest(owners[0], tables[0], policy.digest), owners[0]),
        sign_statement(_attest(owners[1], tables[1], None), owners[1]),
    )
    req = sign_statement(
        ComputationRequest(
            requester=requester.party_id,
            computation=overlap.ref(),
            parameters={},
            inputs=tuple(a.digest for a in atts),
            recipients=(requester.party_id, owners[0].party_id, owners[1].party_id),
            nonce=b64encode(b"\x00" * 16),
            created_at=NOW - 100,
            expires_at=NOW + 3600,
        ),
        requester,
    )
    approvals = tuple(
        sign_statement(
            Approval.model_validate(
                {
                    "request": req.digest,
                    "dataset": att.digest,
                    "approver": owner.party_id,
                    "decision": "approve",
                    "mode": mode,
                    "policy": policy.digest if mode == "policy" else None,
                    "reason": "bench",
                    "conditions": (),
                    "created_at": NOW - 50,
                }
            ),
            owner,
        )
        for owner, att, mode in zip(owners, atts, MODES, strict=True)
    )
    context = SealContext(
        request_digest=bytes.fromhex(req.digest.removeprefix("sha256:")),
        recipient=enclave.public.party_id,
        purpose="input",
    )
    plain = [b"".join(iter_canonical(t)) for t in tables]
    sealed: dict[str, bytes] = {
        a.digest: seal(p, enclave.public, context) for a, p in zip(atts, plain, strict=True)
    }
    materials = JobMaterials(
        request=req.envelope,
        approvals=tuple(a.envelope for a in approvals),
        attestations=tuple(a.envelope for a in atts),
        policies=(policy.envelope,),
        sealed_inputs=sealed,
    )
    commitments = [
        DatasetCommitment(
            root=b64decode_strict(c.root, what="commitment root", size=32),
            length=c.length,
            rows=c.rows,
            chunk_size=c.chunk_size,
        )
        for c in (a.statement.commitment for a in atts)
    ]
    privacy = PrivacyContext(k=(5, 5))
    params = overlap.parse_params({})

    state = EnclaveState.create_temporary()
    history = _EveryRunInFull(state.history)

    def end_to_end() -> None:
        execute_job(
            materials,
            keys=enclave,
            registry=registry,
            ledger=state.ledger,
            history=history,
            now=NOW,
        )

    def floor() -> None:
        inputs = [
            read_verified(open_sealed(sealed[a.digest], enclave.identity, context), c)
            for a, c in zip(atts, commitments, strict=True)
        ]
        overlap.run(inputs, params, privacy)

    def compute() -> None:
        overlap.run(tables, params, privacy)

    r = args.repeat
    t_e2e = median_seconds(end_to_end, repeat=r)
    t_floor = median_seconds(floor, repeat=r)
    t_compute = median_seconds(compute, repeat=r)
    rows = [t.num_rows for t in tables]
    size = sum(len(p) for p in plain)
    print(
        f"job: {overlap.id} on {' + '.join(DATASETS)} x{args.scale} "
        f"({rows[0]} + {rows[1]} records, {size / (1 << 20):.1f} MiB canonical Arrow), "
        f"medians of {r} runs"
    )
    print(f"  compute alone                           {t_compute * 1e3:9.1f} ms")
    print(f"  floor: unseal + verify commitment + run {t_floor * 1e3:9.1f} ms  (baseline)")
    print(f"  end to end: execute_job                 {t_e2e * 1e3:9.1f} ms")
    print(Ratio("end-to-end vs floor", t_e2e, t_floor).line())
    print(Ratio("compute alone vs floor", t_compute, t_floor).line())
    state.close()


if __name__ == "__main__":
    main()
