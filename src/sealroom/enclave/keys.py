"""The enclave's own keys, created inside the TEE and published with evidence binding them.

The private keys never leave this object; what leaves is an
:class:`~sealroom.statements.EnclaveEvidence` statement that a client must
verify before sealing anything to :attr:`EnclaveKeys.public`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealroom.attestation.evidence import EvidenceProvider
from sealroom.crypto.keys import KEM_SEED_SIZE, KEY_SIZE, Identity, PublicIdentity
from sealroom.errors import InvalidInput, VerificationFailed
from sealroom.statements import EnclaveEvidence, EnclaveKeyDocument, Signed, sign_statement
from sealroom.statements.envelope import signer_keys

__all__ = ["MIN_DEPLOYMENT_SECRET", "EnclaveKeys", "deployment_identity"]

MIN_DEPLOYMENT_SECRET = 32
_KDF_SALT = b"sealroom-deployment-v1"


def deployment_identity(secret: bytes) -> Identity:
    """The enclave keys every worker of one deployment shares, derived from its secret.

    Owners seal inputs to these keys, so any worker of the deployment can run
    any job, and a job a dead worker left is finished by another. The secret
    is a dstack KMS app key (the same for every instance of the measured app)
    or, in simulation, a file only the deployment's operator holds. HKDF-SHA256
    with one label per key, so the two keys are independent.
    """
    if len(secret) < MIN_DEPLOYMENT_SECRET:
        raise InvalidInput(f"a deployment secret must be at least {MIN_DEPLOYMENT_SECRET} bytes")

    def derive(label: bytes, length: int = KEY_SIZE) -> bytes:
        kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_KDF_SALT, info=label)
        return kdf.derive(secret)

    return Identity.from_private_bytes(
        derive(b"sealroom enclave signing key"),
        derive(b"sealroom enclave sealing key"),
        derive(b"sealroom enclave x-wing seed", KEM_SEED_SIZE),
    )


class EnclaveKeys:
    __slots__ = ("_evidence", "_identity")

    def __init__(self, identity: Identity, evidence: Signed[EnclaveEvidence]) -> None:
        self._identity = identity
        self._evidence = evidence

    @classmethod
    def create_at_time(
        cls,
        provider: EvidenceProvider,
        *,
        tee: str,
        now: int,
        identity: Identity | None = None,
        region: str | None = None,
    ) -> EnclaveKeys:
        """Fresh keys (or the deployment's ``identity``) bound to this TEE by ``provider``.

        The keys include an X-Wing key, so owners seal inputs with suite 2 and
        the report binds it: nobody can strip it on the way to an owner.
        """
        return cls._attest(
            identity or Identity.generate(), provider, tee=tee, now=now, region=region
        )

    def reattest_at_time(self, provider: EvidenceProvider, *, now: int) -> EnclaveKeys:
        """The same keys with fresh evidence dated ``now`` (owners refuse stale evidence)."""
        keys = self._evidence.statement.keys
        return self._attest(self._identity, provider, tee=keys.tee, now=now, region=keys.region)

    def with_evidence(self, evidence: Signed[EnclaveEvidence]) -> EnclaveKeys:
        """These keys under earlier ``evidence`` of the same keys (a job sealed to it names it)."""
        mine, theirs = self._evidence.statement.keys, evidence.statement.keys
        if (theirs.signing_key, theirs.sealing_key, theirs.kem_key) != (
            mine.signing_key,
            mine.sealing_key,
            mine.kem_key,
        ):
            raise VerificationFailed("the evidence binds other keys than this enclave's")
        return EnclaveKeys(self._identity, evidence)

    @classmethod
    def _attest(
        cls,
        identity: Identity,
        provider: EvidenceProvider,
        *,
        tee: str,
        now: int,
        region: str | None = None,
    ) -> EnclaveKeys:
        document = EnclaveKeyDocument.model_validate(
            {
                "purpose": "sealroom-enclave-keys",
                **signer_keys(identity.public),
                "tee": tee,
                "created_at": now,
                **({"region": region} if region is not None else {}),
            }
        )
        evidence = provider.attest(document.canonical_bytes())
        statement = EnclaveEvidence(
            keys=document,
            tee=evidence.tee,
            simulated=evidence.simulated,
            evidence=evidence.to_dict(),
            created_at=now,
        )
        return cls(identity, sign_statement(statement, identity))

    @property
    def public(self) -> PublicIdentity:
        return self._identity.public

    @property
    def identity(self) -> Identity:
        """For code inside the enclave boundary only: signing receipts, opening sealed inputs."""
        return self._identity

    @property
    def evidence(self) -> Signed[EnclaveEvidence]:
        return self._evidence
