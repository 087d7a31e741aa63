"""``Deletion``: the enclave's signed account of what it held for one job and when it let go.

The enclave signs one after every job it ran (completed, failed or left to
another run): the request, its evidence, each sealed input it downloaded (the
SHA-256 of the ciphertext, which the coordinator's own deletion record names
too) and, where the enclave recomputed it from the plaintext, the input's
commitment root; the receipt it issued, if any; and when it erased them.

``method`` says what erasure means, and the name is honest about it:
``"released-process-memory"`` is "every reference dropped, the plaintext
left to the allocator inside the TEE's encrypted memory". Python cannot wipe
``bytes``; a reader who needs more (zeroisation, a CVM that is torn down) must
not read it into this statement. A deletion statement names private things
(requests, inputs), so it is logged as a salted commitment
(:mod:`sealroom.statements.visibility`).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sealroom.crypto.keys import PublicIdentity
from sealroom.statements.envelope import Statement, require_signer
from sealroom.statements.fields import B64Hash, DigestStr, PartyIdStr, UnixTime

__all__ = ["Deletion", "HeldInput", "SealedHash", "sealed_digest"]


def sealed_digest(sealed: bytes) -> str:
    """The name both enclave and coordinator give a sealed blob: ``sha256:`` + hex."""
    return SealedHash(sealed).digest()


class SealedHash:
    """The digest and size of a sealed blob fed in pieces (the parts of a chunked upload, in
    order): SHA-256 over the concatenation, so a blob uploaded in parts is named exactly as the
    same bytes uploaded whole. Enclave and coordinator both use it, hashing as parts stream
    (never holding the whole input) and naming the same bytes the same way."""

    __slots__ = ("_hash", "_size")

    def __init__(self, *pieces: bytes) -> None:
        self._hash = hashlib.sha256()
        self._size = 0
        for piece in pieces:
            self.update(piece)

    def update(self, piece: bytes) -> None:
        self._hash.update(piece)
        self._size += len(piece)

    @property
    def size(self) -> int:
        return self._size

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class HeldInput(BaseModel):
    """One input the enclave held: the dataset, the ciphertext's digest and its size, and the
    commitment root only if the enclave recomputed it from the plaintext (else ``None``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dataset: DigestStr
    sealed: DigestStr
    sealed_size: Annotated[int, Field(ge=0, le=2**53 - 1)]
    commitment_root: B64Hash | None


class Deletion(Statement):
    """Signed by the enclave that ran the job (the key its evidence binds)."""

    TYPE: ClassVar[str] = "sealroom.deletion"
    VERSION: ClassVar[int] = 1

    request: DigestStr
    enclave: PartyIdStr
    evidence: DigestStr
    outcome: Literal["completed", "failed", "abandoned"]
    receipt: DigestStr | None
    inputs: Annotated[tuple[HeldInput, ...], Field(max_length=64)]
    outputs_held: Annotated[int, Field(ge=0, le=64)]
    method: Literal["released-process-memory"]
    erased_at: UnixTime

    @model_validator(mode="after")
    def _consistent(self) -> Deletion:
        if len({i.dataset for i in self.inputs}) != len(self.inputs):
            raise ValueError("inputs contain a duplicate dataset")
        if (self.outcome == "completed") != (self.receipt is not None):
            raise ValueError("a receipt is named exactly when the job completed")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.enclave, signer, role="enclave")
