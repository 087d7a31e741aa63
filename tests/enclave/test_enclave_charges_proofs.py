"""The enclave's checks on the ledger the coordinator shows it: key, consistency, inclusion,
chain, limits. The coordinator here is the real service in-process, on each backend; the
attacks rewrite what it answers."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.ledger import append_charges
from sealroom.enclave.charges import LedgerTrust, LoggedBudgetLedger
from sealroom.errors import AlreadyReleased, PolicyDenied, ProofInvalid, VerificationFailed
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from sealroom.storage.engine import write_transaction
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.wire import ConsistencyProofView, LedgerView, LogKey
from tests.coordinator.coord_helpers import World, make_world
from tests.helpers import T0

RULES = PolicyRules.parse(
    {"allow": [{"id": "x"}], "dp": {"epsilon_per_requester": "2", "epsilon_total": "2"}}
)


@dataclasses.dataclass
class Source:
    """The coordinator's ledger reads in-process; ``rewrite`` changes each answer."""

    w: World
    rewrite: object = None
    stale: LedgerView | None = None

    def ledger(self, dataset: str, /) -> LedgerView:
        if self.stale is not None:
            return self.stale
        view = self.w.c.ledgers.view(dataset, caller=self.w.enclave.public.party_id)
        if callable(self.rewrite):
            out: LedgerView = self.rewrite(view)
            return out
        return view

    def log_key(self) -> LogKey:
        return self.w.c.log.key()

    def log_consistency(self, first: int, second: int, /) -> ConsistencyProofView:
        return self.w.c.log.consistency(first, second)


@pytest.fixture
def w(engine: Engine, keystore: CoordinatorKeystore) -> World:
    world = make_world(engine, keystore)
    world.register_enclave()
    return world


def _ledger(w: World, tmp_path: Path, source: Source, **kw: str) -> LoggedBudgetLedger:
    return LoggedBudgetLedger(source=source, keys=w.enclave, trust=LedgerTrust(tmp_path), **kw)


def _charge(ledger: LoggedBudgetLedger, w: World, rid: str, epsilon: str = "1") -> None:
    """Charge ``rid`` as the enclave would and store it as the coordinator would."""
    c = ledger.charge(
        dataset=w.dataset,
        requester=w.requester.party_id,
        cost=PrivacyCost(epsilon=Decimal(epsilon)),
        request=rid,
        now=T0 + 50,
        rules=RULES,
    )
    assert c.statement is not None
    with write_transaction(w.c.state.engine) as conn:
        append_charges(
            w.c.state,
            conn,
            [c.statement.envelope],
            request=rid,
            inputs=[w.dataset],
            caller=w.enclave.public.party_id,
            now=T0 + 50,
        )


def test_charges_chain_and_the_totals_bind(w: World, tmp_path: Path) -> None:
    ledger = _ledger(w, tmp_path, Source(w))
    first, second = w.request((w.dataset,), nonce=1), w.request((w.dataset,), nonce=2)
    _charge(ledger, w, first)
    _charge(ledger, w, second)
    chain = ledger.read(w.dataset)
    assert [c.statement.seq for c in chain.charges] == [0, 1]
    assert chain.charges[1].statement.prev == chain.charges[0].digest
    with pytest.raises(PolicyDenied, match="epsilon budget 2 has 0 left"):
        _charge(ledger, w, w.request((w.dataset,), nonce=3))
    with pytest.raises(AlreadyReleased):
        _charge(ledger, w, first)
    # A fresh enclave (no trust file) sees the same spend.
    fresh = _ledger(w, tmp_path / "fresh", Source(w))
    with pytest.raises(PolicyDenied):
        _charge(fresh, w, w.request((w.dataset,), nonce=4))


def test_a_pinned_log_key_refuses_another_log(w: World, tmp_path: Path) -> None:
    other = NoteSigner.from_seed("sealroom.test/log", b"\x07" * 32).verifier.vkey
    ledger = _ledger(w, tmp_path, Source(w), log_key=other)
    with pytest.raises(VerificationFailed):
        ledger.read(w.dataset)


def test_a_stale_view_after_a_newer_one_is_a_rollback(w: World, tmp_path: Path) -> None:
    """A coordinator that answers an old ledger (fewer charges) after the enclave saw a newer
    checkpoint is caught, even for a dataset whose head this enclave never cached."""
    source = Source(w)
    ledger = _ledger(w, tmp_path, source)
    old = w.c.ledgers.view(w.dataset, caller=w.enclave.public.party_id)
    _charge(ledger, w, w.request((w.dataset,), nonce=1))
    ledger.read(w.dataset)
    source.stale = old
    with pytest.raises(ProofInvalid, match="rollback"):
        ledger.read(w.dataset)


def test_a_charge_not_in_the_log_is_refused(w: World, tmp_path: Path) -> None:
    source = Source(w)
    ledger = _ledger(w, tmp_path, source)
    _charge(ledger, w, w.request((w.dataset,), nonce=1))

    def forge_proof(view: LedgerView) -> LedgerView:
        item = view.charges[0]
        zeros = tuple(bytes(32) for _ in item.inclusion) or (bytes(32),)
        return view.model_copy(update={"charges": (item.model_copy(update={"inclusion": zeros}),)})

    source.rewrite = forge_proof
    with pytest.raises(ProofInvalid):
        _ledger(w, tmp_path / "fresh", source).read(w.dataset)
