"""Budget ledger benchmark: a charge with log proof against a plain ledger write.

    python -m bench.bench_ledger [--prior N] [--repeat R] [--quick | --smoke]

Both sides charge one (request, dataset) on a dataset that already holds ``N`` charges,
on SQLite files with the same durability (WAL, synchronous=FULL), in this process:

* baseline: :meth:`SqlBudgetLedger.charge` -- one enclave-local transaction (lock the
  dataset, read its charges, check the limits, insert);
* logged: what the deployment's ledger does for the same charge, minus HTTP: the
  coordinator reads the dataset's chain with an inclusion proof per charge
  (:meth:`Ledgers.view`), the enclave checks the checkpoint signature, its consistency with
  the one it trusted, every proof and the chain links, checks the limits and signs a
  ``BudgetCharge`` (:meth:`LoggedBudgetLedger.charge`), and the coordinator appends it on
  the head in one write transaction: log leaf, signed checkpoint, chain row
  (:func:`append_charges`).

The ratio is logged / baseline; it grows with ``N`` (one inclusion proof per earlier charge).
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bench._harness import Ratio, median_seconds
from sealroom.attestation.pins import EnclavePin
from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.computations import default_registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.ledger import append_charges
from sealroom.coordinator.service import Coordinator
from sealroom.crypto.keys import Identity
from sealroom.enclave.charges import LedgerTrust, LoggedBudgetLedger
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from sealroom.statements import ComputationRef, ComputationRequest, sign_statement
from sealroom.storage.engine import create_engine, write_transaction
from sealroom.storage.migrate import upgrade
from sealroom.storage.schema import requests
from sealroom.wire import ConsistencyProofView, LedgerView, LogKey

DATASET = "sha256:" + "d" * 64
RULES = PolicyRules.parse(
    {"allow": [{"id": "x"}], "dp": {"epsilon_per_requester": "1000000", "epsilon_total": "1000000"}}
)
COST = PrivacyCost(epsilon=Decimal("0.1"))
NOW = 1_800_000_000


class InProcessSource:
    """The coordinator's ledger reads, called directly (what the SDK client does over HTTP)."""

    def __init__(self, coordinator: Coordinator, keys: EnclaveKeys) -> None:
        self._c = coordinator
        self._party = keys.public.party_id

    def ledger(self, dataset: str, /) -> LedgerView:
        return self._c.ledgers.view(dataset, caller=self._party)

    def log_key(self) -> LogKey:
        return self._c.log.key()

    def log_consistency(self, first: int, second: int, /) -> ConsistencyProofView:
        return self._c.log.consistency(first, second)


class LoggedBench:
    """A coordinator on SQLite with an enclave registered, and requests to charge."""

    def __init__(self, directory: Path) -> None:
        engine = create_engine(f"sqlite:///{directory / 'coordinator.db'}")
        upgrade(engine)
        root = SimulationRoot.generate()
        self.c = Coordinator.open(
            engine=engine,
            registry=default_registry(),
            keystore=CoordinatorKeystore(directory=directory / "coordinator-keys"),
            # The deployment admits its own simulated enclave (what `serve --simulation-root` does).
            admission=AdmissionPolicy(pin=EnclavePin(simulation_root=root.public_key)),
        )
        self.keys = EnclaveKeys.create_at_time(SimulatedEnclave(root), tee="simulated", now=NOW)
        env = self.keys.evidence.envelope
        self.c.jobs.register_enclave(env, caller=env.signer.party_id, now=NOW)
        self.requester = Identity.generate()
        self.ledger = LoggedBudgetLedger(
            source=InProcessSource(self.c, self.keys),
            keys=self.keys,
            trust=LedgerTrust(directory / "enclave"),
        )
        self._n = 0

    def new_request(self) -> str:
        """A logged request row to charge (setup: the same for every charge, not measured)."""
        self._n += 1
        req = ComputationRequest(
            requester=self.requester.party_id,
            computation=ComputationRef(id="x", version="1.0.0", code_digest=DATASET),
            parameters={},
            inputs=(DATASET,),
            recipients=(self.requester.party_id,),
            nonce=base64.b64encode(self._n.to_bytes(16, "big")).decode(),
            created_at=NOW,
            expires_at=NOW + 3600,
        )
        signed = sign_statement(req, self.requester)
        with write_transaction(self.c.state.engine) as conn:
            self.c.state.store(conn, signed.envelope, now=NOW)
            conn.execute(
                requests.insert().values(
                    request=signed.digest,
                    requester=req.requester,
                    computation_id="x",
                    computation_version="1.0.0",
                    status="running",
                    precheck="[]",
                    created_at=NOW,
                    expires_at=NOW + 3600,
                    registered_at=NOW,
                )
            )
        return signed.digest

    def charge(self, request: str) -> None:
        charge = self.ledger.charge(
            dataset=DATASET,
            requester=self.requester.party_id,
            cost=COST,
            request=request,
            now=NOW,
            rules=RULES,
        )
        assert charge.statement is not None
        with write_transaction(self.c.state.engine) as conn:
            append_charges(
                self.c.state,
                conn,
                [charge.statement.envelope],
                request=request,
                inputs=[DATASET],
                caller=self.keys.public.party_id,
                now=NOW,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", type=int, default=1000, help="charges already on the dataset")
    parser.add_argument("--repeat", type=int, default=31, help="samples per median")
    parser.add_argument("--quick", action="store_true", help="100 prior charges")
    parser.add_argument("--smoke", action="store_true", help="once, at tiny sizes (CI)")
    args = parser.parse_args(argv)
    prior = 100 if args.quick else args.prior
    if args.smoke:
        prior, args.repeat = 3, 1

    with tempfile.TemporaryDirectory(prefix="sealroom-bench-") as tmp:
        root = Path(tmp)
        plain = SqlBudgetLedger.in_directory(root / "plain")
        logged = LoggedBench(root)
        t0 = time.perf_counter()
        for i in range(prior):
            plain.charge(
                dataset=DATASET,
                requester="r",
                cost=COST,
                request=f"sha256:{i:064x}",
                now=NOW,
                rules=RULES,
            )
            logged.charge(logged.new_request())
        print(f"prior charges on the dataset: {prior} (setup {time.perf_counter() - t0:.1f} s)")

        counter = iter(range(prior, prior + 10 * (args.repeat + 10)))
        pending = [logged.new_request() for _ in range(args.repeat + 1)]

        def plain_charge() -> None:
            plain.charge(
                dataset=DATASET,
                requester="r",
                cost=COST,
                request=f"sha256:{next(counter):064x}",
                now=NOW,
                rules=RULES,
            )

        def logged_charge() -> None:
            logged.charge(pending.pop())

        plain_s = median_seconds(plain_charge, repeat=args.repeat, warmup=0)
        logged_s = median_seconds(logged_charge, repeat=args.repeat, warmup=0)
        plain.close()
        print(f"plain ledger write (SqlBudgetLedger.charge): {plain_s * 1e3:.2f} ms")
        print(
            f"charge with log proof (proved read + sign + append on the head): "
            f"{logged_s * 1e3:.2f} ms"
        )
        print("  " + Ratio("logged charge time vs plain ledger write", logged_s, plain_s).line())


if __name__ == "__main__":
    main()
