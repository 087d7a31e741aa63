"""Commit-then-reveal against a coordinator that keeps a result but drops its charge.

The enclave posts its results wrapped under release keys and posts the keys only after it
proved the request's charges are in the log (sealroom.enclave.release). Here a hostile
coordinator (the real one behind a wrapper that stands for what a hostile operator controls)
keeps everything the enclave posts and never logs the charge: the requester, its
accomplice, gets nothing it can decrypt, and the budget stays as the log says.
A worker that stopped between completing and releasing leaves the reveal to another worker
of the deployment (a real ``sealroom enclave --once`` process).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import PartyId
from sealroom.crypto.release import MAGIC, RELEASE_PURPOSE, is_wrapped
from sealroom.crypto.sealing import SealContext, open_sealed
from sealroom.enclave.state import EnclaveState
from sealroom.errors import DecryptionFailed, InvalidInput, NotFound
from sealroom.statements import BudgetCharge, Envelope
from tests.enclave.charges_world import (
    ask,
    deployment_keys,
    dp_rules,
    in_process_worker,
    party,
    publish_pair,
    run_once,
    write_secret,
)
from tests.services import coordinator


class KeepingCoordinator:
    """The real coordinator behind a hostile operator: it keeps every completion the enclave
    posts; with ``drop_completion`` it never stores it (so no charge is logged), and with
    ``drop_releases`` it swallows the release keys (standing for a worker that stopped
    before releasing)."""

    def __init__(self, inner: Client, *, drop_completion: bool, drop_releases: bool) -> None:
        self.inner = inner
        self.drop_completion = drop_completion
        self.drop_releases = drop_releases
        self.kept: list[tuple[str, dict[PartyId, bytes], tuple[Envelope, ...]]] = []
        self.releases: list[tuple[str, dict[PartyId, bytes]]] = []

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
        /,
    ) -> object:
        self.kept.append((request, dict(outputs), tuple(charges)))
        if self.drop_completion:
            return None  # "stored": the enclave cannot tell from the answer
        return self.inner.complete_job(request, receipt, outputs, charges)

    def release_job(self, request: str, keys: Mapping[PartyId, bytes], /) -> object:
        self.releases.append((request, dict(keys)))
        if self.drop_releases:
            return None
        return self.inner.release_job(request, keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _result_context(request: str, recipient: str, purpose: str = "result") -> SealContext:
    return SealContext(
        request_digest=bytes.fromhex(request.removeprefix("sha256:")),
        recipient=PartyId(recipient),
        purpose=purpose,
    )


def test_a_coordinator_that_drops_the_charge_gets_nothing_decryptable(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        keys = deployment_keys(write_secret(tmp_path / "deployment.secret"))
        hostile = KeepingCoordinator(
            Client(base_url=url, identity=keys.identity), drop_completion=True, drop_releases=False
        )
        events: list[str] = []
        state = EnclaveState.create_temporary()
        try:
            worker = in_process_worker(url, keys, state, source=hostile, on_event=events.append)  # type: ignore[arg-type]
            pair = publish_pair(owner, tmp_path, dp_rules("10"))
            rid = ask(requester, owner, pair)
            assert worker.step().outcome == "completed"
        finally:
            state.close()

        # The coordinator kept the results and the signed charges, and logged none of them.
        [(kept_rid, outputs, charges)] = hostile.kept
        assert kept_rid == rid
        assert len(charges) == len(pair)
        enclave = Client(base_url=url, identity=keys.identity)
        assert all(enclave.ledger(ds).charges == () for ds in pair)
        # The enclave did not find its charges in the log: no key left it.
        assert hostile.releases == []
        assert any(e.startswith(f"withheld {rid}") for e in events), events
        # The requester, the coordinator's accomplice, holds the kept bytes and its own keys:
        # the bytes are wrapped under a key that never left the enclave, not sealed to it.
        mine = outputs[PartyId(requester.identity.party_id)]
        assert is_wrapped(mine)
        assert mine.startswith(MAGIC)
        with pytest.raises(DecryptionFailed):
            open_sealed(mine, requester.identity, _result_context(rid, requester.identity.party_id))
        with pytest.raises(DecryptionFailed):
            open_sealed(
                mine[len(MAGIC) + 12 :],
                requester.identity,
                _result_context(rid, requester.identity.party_id),
            )
        # And the budget is untouched, as the log says: nothing was spent, nothing was released.
        assert [c.envelope.open(BudgetCharge) for c in enclave.ledger(pair[0]).charges] == []


def test_a_release_left_by_a_stopped_worker_is_finished_by_another(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        secret = write_secret(tmp_path / "deployment.secret")
        keys = deployment_keys(secret)
        stopped = KeepingCoordinator(
            Client(base_url=url, identity=keys.identity), drop_completion=False, drop_releases=True
        )
        state = EnclaveState.create_temporary()
        try:
            worker = in_process_worker(url, keys, state, source=stopped)  # type: ignore[arg-type]
            pair = publish_pair(owner, tmp_path, dp_rules("10"))
            rid = ask(requester, owner, pair)
            assert worker.step().outcome == "completed"
        finally:
            state.close()
        assert [r for r, _ in stopped.releases] == [rid]  # proved, then "stopped" before posting

        # Completed, charged, logged: but nothing opens without the key.
        assert flows.status(requester.client, rid).status == "completed"
        served = requester.client.result(rid)
        assert served.release_key is None
        assert is_wrapped(served.sealed)
        with pytest.raises(NotFound, match="released this result's key"):
            flows.fetch_result(
                requester.client,
                requester.identity,
                rid,
                tmp_path / "early",
                home=requester.home,
                allow_simulated=True,
                release_wait=0.5,
            )
        # Others cannot post keys for a job they did not run.
        with pytest.raises(NotFound):
            requester.client.release_job(rid, {PartyId(requester.identity.party_id): b"x" * 80})
        # The enclave itself must name exactly the job's recipients.
        with pytest.raises(InvalidInput, match="one release key per recipient"):
            Client(base_url=url, identity=keys.identity).release_job(
                rid, {PartyId(owner.identity.party_id): b"x" * 80}
            )
        pending = Client(base_url=url, identity=keys.identity).pending_releases().releases
        assert [p.request for p in pending] == [rid]

        # Another worker of the deployment (a real process, fresh state) finds it idle and
        # releases it after its own proof.
        out = run_once(url, secret=secret, state=tmp_path / "state-2")
        assert out["outcome"] == "idle", out
        assert Client(base_url=url, identity=keys.identity).pending_releases().releases == ()
        fetched = flows.fetch_result(
            requester.client,
            requester.identity,
            rid,
            tmp_path / "result",
            home=requester.home,
            allow_simulated=True,
        )
        assert fetched.report.failures == ()
        # The key is sealed to the recipient under its own purpose.
        served = requester.client.result(rid)
        assert served.release_key is not None
        open_sealed(
            served.release_key,
            requester.identity,
            _result_context(rid, requester.identity.party_id, RELEASE_PURPOSE),
        )
