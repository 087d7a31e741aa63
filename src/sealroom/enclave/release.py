"""Commit-then-reveal: a result becomes readable only after its budget charges are logged.

Storing a release together with its charges (:mod:`sealroom.coordinator.ledger`)
binds an honest coordinator. A dishonest one could instead keep the sealed
result the enclave posts, hand it to the requester, and never log the charges:
the spend would vanish from the ledger and the next run would find the budget
untouched. So the enclave posts nothing a recipient can open until the
charges are proved in the log:

1. **Commit.** The enclave seals each recipient's result as before (HPKE to
   the recipient, purpose ``result``) and wraps it under a release key
   ``K_r = HKDF-SHA256(enclave sealing key, request || recipient)``
   (:mod:`sealroom.crypto.release`: AES-256-GCM bound to the request and
   recipient). It posts the wrapped results, the receipt and the charges
   (``POST /v1/jobs/{rid}/complete``); the coordinator stores them together.
2. **Prove.** The enclave reads each charged dataset's ledger through
   :class:`~sealroom.enclave.charges.LoggedBudgetLedger`: a checkpoint signed
   by the pinned log key and consistent with the last one this enclave
   trusted, every charge's inclusion proof, and the chain still holding every
   head this enclave saw. Every dataset the receipt spends on must hold a
   charge for this request with the receipt's (epsilon, delta).
3. **Reveal.** Only then it seals each ``K_r`` to its recipient (purpose
   ``release-key``) and posts the keys (``POST /v1/jobs/{rid}/release``). The
   recipient opens ``K_r``, unwraps, and opens its result.

A coordinator that drops or withholds a charge therefore holds only wrapped
ciphertext under keys that never leave the enclave (a requester colluding
with it gets nothing decryptable), and it cannot later retract a charge the
enclave saw without forking the log, which the enclave's trust file, clients
and witnesses detect. ``K_r`` is derived, not stored: any worker of the
deployment (they share the keys) derives the same key, so a worker that
stopped between steps 1 and 3 leaves the reveal to the next
(``GET /v1/jobs/releases``), never a result that cannot be released.

What this does not stop: a coordinator can refuse to serve the release to the
recipient (availability, not confidentiality or accounting), and a worker on
a local, unlogged ledger (tests only) has no log to prove against and reveals
at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sealroom.crypto.keys import Identity, PartyId, PublicIdentity
from sealroom.crypto.release import RELEASE_PURPOSE, derive_release_key, wrap
from sealroom.crypto.sealing import SealContext, seal
from sealroom.enclave.charges import LoggedBudgetLedger
from sealroom.enclave.ledger import BudgetLedger
from sealroom.errors import ProofInvalid, SignatureInvalid
from sealroom.statements import Receipt, Signed

__all__ = ["RELEASE_PURPOSE", "prove_charged", "release_keys", "wrap_outputs"]


def _secret(identity: Identity) -> bytes:
    # The sealing key is the one secret every worker of a deployment shares and that stays
    # inside the enclave; HKDF with its own label keeps the release keys independent of it.
    return identity.private_bytes()[1]


def _digest_bytes(request: str) -> bytes:
    return bytes.fromhex(request.removeprefix("sha256:"))


def wrap_outputs(
    identity: Identity, request: str, sealed: Mapping[PartyId, bytes]
) -> dict[PartyId, bytes]:
    """Step 1: each recipient's sealed result under its release key."""
    return {
        r: wrap(
            s,
            derive_release_key(_secret(identity), request=request, recipient=r),
            request=request,
            recipient=r,
        )
        for r, s in sealed.items()
    }


def prove_charged(ledger: BudgetLedger, receipt: Signed[Receipt]) -> None:
    """Step 2: raise unless every dataset the receipt spends on holds this request's charge in
    the proved ledger (a no-op on a local ledger, which has no log)."""
    if not isinstance(ledger, LoggedBudgetLedger):
        return
    rec = receipt.statement
    for spent in rec.privacy_spent:
        chain = ledger.read(spent.dataset)
        mine = [c for c in chain.charges if c.statement.request == rec.request]
        if not mine:
            raise ProofInvalid(
                f"the log does not hold the charge of {rec.request} on {spent.dataset}: "
                "the result's key stays in the enclave"
            )
        charge = mine[0].statement
        if (charge.epsilon, charge.delta) != (spent.epsilon, spent.delta):
            raise ProofInvalid(
                f"the logged charge of {rec.request} on {spent.dataset} differs from the receipt"
            )


def release_keys(
    identity: Identity,
    receipt: Signed[Receipt],
    recipient_keys: Callable[[PartyId], PublicIdentity],
) -> dict[PartyId, bytes]:
    """Step 3: each recipient's release key sealed to it (call only after
    :func:`prove_charged`). ``recipient_keys`` may come from the coordinator: a party id is
    the hash of its keys, and a key that does not match is refused."""
    if receipt.envelope.signer.party_id != identity.party_id:
        raise SignatureInvalid("the receipt is not this enclave's: it releases nothing for it")
    request = receipt.statement.request
    out: dict[PartyId, bytes] = {}
    for o in receipt.statement.outputs:
        recipient = PartyId(o.recipient)
        keys = recipient_keys(recipient)
        if keys.party_id != recipient:
            raise SignatureInvalid(f"the keys served for {recipient} do not match its id")
        key = derive_release_key(_secret(identity), request=request, recipient=recipient)
        out[recipient] = seal(
            key,
            keys,
            SealContext(
                request_digest=_digest_bytes(request), recipient=recipient, purpose=RELEASE_PURPOSE
            ),
        )
    return out
