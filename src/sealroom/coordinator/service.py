"""The coordinator: one service per resource over one database and one log key.

Each resource service (:mod:`.parties`, :mod:`.datasets`, :mod:`.requests`
with :mod:`.approvals`, :mod:`.rooms`, :mod:`.jobs` (enclaves admitted by :mod:`.admission`), :mod:`.log`, :mod:`.relay`, :mod:`.market`) takes typed arguments (wire bodies,
envelopes, ids), the caller (a verified party id, or none for public reads)
and ``now``, and returns wire models; what they share lives in :mod:`.state`.
This module only builds them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from sealroom.computations.registry import Registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.approvals import Approvals
from sealroom.coordinator.credits import CreditLedger, Credits, LedgerPayments, ledger_identity
from sealroom.coordinator.datasets import Datasets
from sealroom.coordinator.deletions import Deletions
from sealroom.coordinator.jobs import Jobs
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.ledger import Ledgers
from sealroom.coordinator.log import Log
from sealroom.coordinator.market import Market
from sealroom.coordinator.parties import Parties
from sealroom.coordinator.payments import Payments
from sealroom.coordinator.protocol_runs import ProtocolRuns
from sealroom.coordinator.relay import Relay
from sealroom.coordinator.requests import Requests
from sealroom.coordinator.rooms import Rooms
from sealroom.coordinator.state import DEFAULT_LEASE_SECONDS, DbNonceStore, State
from sealroom.coordinator.uploads import Uploads
from sealroom.coordinator.witnessing import WitnessEndpoint, Witnessing
from sealroom.storage.notify import Signals
from sealroom.wire.credits import PriceSchedule

__all__ = ["Coordinator"]


@dataclass(frozen=True, slots=True)
class Coordinator:
    """The resource services of one coordinator (see the module docstring)."""

    state: State
    nonces: DbNonceStore
    parties: Parties
    datasets: Datasets
    requests: Requests
    approvals: Approvals
    uploads: Uploads
    jobs: Jobs
    deletions: Deletions
    ledgers: Ledgers
    log: Log
    relay: Relay
    protocol_runs: ProtocolRuns
    credits: Credits
    market: Market
    rooms: Rooms

    @classmethod
    def open(
        cls,
        *,
        engine: Engine,
        registry: Registry,
        keystore: CoordinatorKeystore,
        log_origin: str = "sealroom.local/log",
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        witnesses: Sequence[WitnessEndpoint] = (),
        admission: AdmissionPolicy | None = None,
        pricing: PriceSchedule | None = None,
        payments: Payments | None = None,
    ) -> Coordinator:
        """The services over ``engine`` (already migrated); the log key is created once, in
        ``keystore`` (never in the database).

        ``witnesses``: the log submits its checkpoints to these for cosigning (C2SP
        tlog-witness) and serves them cosigned. ``admission``: which enclaves may
        register (None: none; see :mod:`.admission`). ``pricing``: the published price
        schedule (None: computations are free; the credits ledger still runs).
        ``payments``: what the marketplace charges through (None: the credits ledger,
        :class:`~.credits.LedgerPayments`).
        """
        admission = admission or AdmissionPolicy()
        signer = keystore.log_signer(engine, log_origin)
        ledger = CreditLedger(
            identity=ledger_identity(keystore, engine),
            pricing=pricing if pricing is not None else PriceSchedule.disabled(),
        )
        state = State(
            engine=engine,
            registry=registry,
            signer=signer,
            witnessing=Witnessing(engine, witnesses) if witnesses else None,
            credits=ledger,
        )
        market = Market(
            state,
            payments=payments if payments is not None else LedgerPayments(state, ledger),
            arbiter=keystore.arbiter(),
        )
        return cls(
            state=state,
            nonces=DbNonceStore(engine),
            parties=Parties(state),
            datasets=Datasets(state),
            requests=Requests(state),
            approvals=Approvals(state, admission=admission),
            uploads=Uploads(state, admission=admission),
            jobs=Jobs(
                state,
                admission=admission,
                lease_seconds=lease_seconds,
                on_complete=(market.on_completed,),
            ),
            deletions=Deletions(state),
            ledgers=Ledgers(state),
            log=Log(engine, state.signer, state.witnessing),
            relay=Relay(engine=engine, signals=Signals(engine)),
            protocol_runs=ProtocolRuns(state),
            credits=Credits(state, ledger),
            market=market,
            rooms=Rooms(state),
        )
