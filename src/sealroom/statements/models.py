"""The signed statements of the sealroom protocol (see ARCHITECTURE.md, "Statements").

Every statement names who must sign it; :meth:`Envelope.open` enforces that.
Dataset ids, request ids and the like are statement digests, never
coordinator-assigned numbers, so no party has to trust the coordinator's naming.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from sealroom.attestation.evidence import TeeEvidence
from sealroom.crypto.keys import PublicIdentity, b64decode_strict
from sealroom.errors import InvalidInput, SignatureInvalid
from sealroom.statements.canonical import canonical_json
from sealroom.statements.deletion import Deletion
from sealroom.statements.envelope import Statement, require_signer
from sealroom.statements.fields import (
    B64Hash,
    B64KemKey,
    B64Key,
    B64Nonce,
    BoundedObject,
    DecimalStr,
    DigestStr,
    Identifier,
    LongText,
    NonNegInt,
    PartyIdStr,
    Reason,
    ShortText,
    SignedDecimalStr,
    UnixTime,
)

__all__ = [
    "ACCOUNT_PATTERN",
    "MAX_AMOUNT",
    "STATEMENT_TYPES",
    "Accept",
    "AccountStr",
    "Approval",
    "BudgetCharge",
    "Column",
    "CommitmentRef",
    "ComputationRef",
    "ComputationRequest",
    "DatasetAttestation",
    "DatasetProfile",
    "EnclaveEvidence",
    "EnclaveKeyDocument",
    "InputDecision",
    "InputRef",
    "Keyword",
    "Liveness",
    "ModelWeights",
    "Offer",
    "OutputRef",
    "Policy",
    "Posting",
    "PrivacyCharge",
    "ProtocolParticipant",
    "ProtocolReceipt",
    "Receipt",
    "StreamDigest",
    "TimeRange",
    "TrainedModel",
    "Transfer",
    "output_commitment",
]


# 2**53 - 1: amounts stay exact in every JSON reader (and the strict parser's safe range), and
# a sum of 130 postings fits in 64 bits.
MAX_AMOUNT = (1 << 53) - 1


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- DatasetAttestation -------------------------------------------------------------------


Term = Annotated[str, Field(min_length=1, max_length=100)]


class Keyword(_Part):
    term: Term
    # Only the counts the owner chose to disclose; ``None`` means "present, count withheld".
    count: NonNegInt | None


class Column(_Part):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    type: Annotated[str, Field(min_length=1, max_length=200)]


class TimeRange(_Part):
    start: UnixTime
    end: UnixTime

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end < self.start:
            raise ValueError("time_range.end is before time_range.start")
        return self


class CommitmentRef(_Part):
    """A dataset commitment: RFC 9162 root over fixed-size chunks of canonical Arrow IPC bytes."""

    format: Literal["arrow-ipc-stream/v1"]
    root: B64Hash
    length: NonNegInt
    rows: NonNegInt
    chunk_size: Annotated[int, Field(ge=1024, le=64 << 20)]


class DatasetProfile(_Part):
    """The card others see besides keywords: volume and focus, computed by the owner's client."""

    projects: NonNegInt | None
    active_days: NonNegInt | None
    primary_focus: Term | None
    expertise: Annotated[tuple[Term, ...], Field(max_length=20)]


class DatasetAttestation(Statement):
    TYPE: ClassVar[str] = "sealroom.dataset-attestation"
    VERSION: ClassVar[int] = 1

    owner: PartyIdStr
    title: ShortText
    description: LongText
    keywords: Annotated[tuple[Keyword, ...], Field(max_length=500)]
    topics: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=100)], ...], Field(max_length=100)
    ]
    schema_: Annotated[tuple[Column, ...], Field(max_length=1000, alias="schema")]
    row_count: NonNegInt
    time_range: TimeRange | None
    profile: DatasetProfile
    commitment: CommitmentRef
    policy: DigestStr | None
    created_at: UnixTime

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @model_validator(mode="after")
    def _rows_match(self) -> DatasetAttestation:
        if self.commitment.rows != self.row_count:
            raise ValueError("row_count differs from commitment.rows")
        terms = [k.term for k in self.keywords]
        if len(set(terms)) != len(terms):
            raise ValueError("keywords contain a duplicate term")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.owner, signer, role="owner")


# --- Policy ---------------------------------------------------------------------------------


class Policy(Statement):
    """An owner's policy. The rules are opaque here; the policy engine gives them meaning."""

    TYPE: ClassVar[str] = "sealroom.policy"
    VERSION: ClassVar[int] = 1

    owner: PartyIdStr
    name: ShortText
    rules: BoundedObject
    created_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.owner, signer, role="owner")


# --- ComputationRequest -------------------------------------------------------------------


class ComputationRef(_Part):
    id: Identifier
    version: Annotated[str, Field(pattern=r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$")]
    code_digest: DigestStr


class ComputationRequest(Statement):
    TYPE: ClassVar[str] = "sealroom.computation-request"
    VERSION: ClassVar[int] = 1

    requester: PartyIdStr
    computation: ComputationRef
    parameters: BoundedObject
    inputs: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=64)]
    recipients: Annotated[tuple[PartyIdStr, ...], Field(min_length=1, max_length=64)]
    # 16 random bytes so two identical requests are two requests.
    nonce: B64Nonce
    created_at: UnixTime
    expires_at: UnixTime
    # A room-level Policy composed with every input's own policy (strictest wins).
    # The enclave refuses a job whose room policy is missing or not this one.
    room_policy: DigestStr | None = None
    # Negotiated terms: the digests of the requester's Accept statements of owners' Offers.
    # Absent (not null) when there are none, so requests made before terms keep their bytes.
    terms: Annotated[tuple[DigestStr, ...], Field(max_length=64)] = ()
    # The most the requester agrees to be charged (minor units): a price above it is never
    # escrowed, and anyone holding the request can check the escrow against it.
    max_price: Annotated[int, Field(ge=0, le=MAX_AMOUNT)] | None = None

    @model_serializer(mode="wrap")
    def _omit_marketplace_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("terms"):
            data.pop("terms", None)
        if data.get("max_price") is None:
            data.pop("max_price", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ComputationRequest:
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError("inputs contain a duplicate dataset")
        if len(set(self.recipients)) != len(self.recipients):
            raise ValueError("recipients contain a duplicate party")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        if len(set(self.terms)) != len(self.terms):
            raise ValueError("terms contain a duplicate acceptance")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.requester, signer, role="requester")


# --- Approval -------------------------------------------------------------------------------


class Approval(Statement):
    """An owner's decision on one request for one of its datasets."""

    TYPE: ClassVar[str] = "sealroom.approval"
    VERSION: ClassVar[int] = 1

    request: DigestStr
    dataset: DigestStr
    approver: PartyIdStr
    decision: Literal["approve", "reject"]
    # "manual": a person decided. "policy": the owner's policy decided, attributed to it.
    mode: Literal["manual", "policy"]
    policy: DigestStr | None
    reason: Reason
    conditions: Annotated[tuple[Annotated[str, Field(max_length=500)], ...], Field(max_length=32)]
    created_at: UnixTime

    @model_validator(mode="after")
    def _policy_named(self) -> Approval:
        if self.mode == "policy" and self.policy is None:
            raise ValueError("an automatic approval must name the policy that made it")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.approver, signer, role="approver")


# --- EnclaveEvidence -----------------------------------------------------------------------


class EnclaveKeyDocument(_Part):
    """The enclave's public keys; its canonical bytes are what the TEE report binds."""

    purpose: Literal["sealroom-enclave-keys"]
    signing_key: B64Key
    sealing_key: B64Key
    # The X-Wing key owners seal inputs to (suite 2). Absent in documents made
    # before it existed, and then absent from their canonical bytes too, so
    # old evidence keeps its report_data and digests.
    kem_key: B64KemKey | None = None
    tee: Literal["tdx", "simulated"]
    created_at: UnixTime
    # The region the deployment declares this enclave runs in (rooms pin one). Bound into
    # the TEE report with the keys, so it cannot be changed after attestation; it is the
    # operator's declaration, not a location the hardware measures. Absent when undeclared.
    region: Identifier | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_kem_key(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("kem_key") is None:
            data.pop("kem_key", None)
        if data.get("region") is None:
            data.pop("region", None)
        return data

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def identity(self) -> PublicIdentity:
        try:
            return PublicIdentity(
                signing_key=b64decode_strict(self.signing_key, what="signing_key", size=32),
                sealing_key=b64decode_strict(self.sealing_key, what="sealing_key", size=32),
                kem_key=(
                    None
                    if self.kem_key is None
                    else b64decode_strict(self.kem_key, what="kem_key", size=1216)
                ),
            )
        except InvalidInput as exc:  # pragma: no cover - validated on construction
            raise ValueError(exc.detail) from None


class EnclaveEvidence(Statement):
    """The enclave's keys bound to TEE evidence; signed by the enclave key itself."""

    TYPE: ClassVar[str] = "sealroom.enclave-evidence"
    VERSION: ClassVar[int] = 1
    MAX_PAYLOAD: ClassVar[int] = 12 << 20

    keys: EnclaveKeyDocument
    # Repeated at the top so that nobody can miss a simulation.
    tee: Literal["tdx", "simulated"]
    simulated: bool
    evidence: dict[str, Any]
    created_at: UnixTime

    @model_validator(mode="after")
    def _labels_agree(self) -> EnclaveEvidence:
        parsed = self.tee_evidence()
        if parsed.simulated != self.simulated:
            raise ValueError("simulated flag differs from the evidence's own")
        if self.keys.tee != self.tee or parsed.tee != self.tee:
            raise ValueError("tee kind differs between keys, evidence and statement")
        return self

    def tee_evidence(self) -> TeeEvidence:
        try:
            return TeeEvidence.from_dict(self.evidence)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None

    def check_signer(self, signer: PublicIdentity) -> None:
        if signer != self.keys.identity():
            raise SignatureInvalid("enclave evidence must be signed by the enclave key it names")


# --- Receipt --------------------------------------------------------------------------------


class InputRef(_Part):
    dataset: DigestStr
    commitment_root: B64Hash


class PrivacyCharge(_Part):
    dataset: DigestStr
    epsilon: DecimalStr
    delta: DecimalStr


_Reason = Annotated[str, Field(min_length=1, max_length=1000)]
_ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class InputDecision(_Part):
    """The enclave's policy decision on one input, with the reasons and what it enforced.

    Everything here derives from the (public) policies and the request, never
    from data, so it is safe in a public receipt. ``room_policy``: the room
    policy composed with the dataset's (strictest wins), if any.
    """

    dataset: DigestStr
    policy: DigestStr | None
    room_policy: DigestStr | None
    decision: Literal["allow"]
    automatic: bool
    reasons: Annotated[tuple[_Reason, ...], Field(min_length=1, max_length=32)]
    k: Annotated[int, Field(ge=1, le=1_000_000)]
    entity_column: _ColumnName | None
    never_output: Annotated[tuple[_ColumnName, ...], Field(max_length=1000)]
    join_only: Annotated[tuple[_ColumnName, ...], Field(max_length=1000)]
    max_output_rows: Annotated[int, Field(ge=1)] | None
    epsilon: DecimalStr
    delta: DecimalStr


class Receipt(Statement):
    """What the enclave did, signed by the enclave key named in ``evidence``."""

    TYPE: ClassVar[str] = "sealroom.receipt"
    VERSION: ClassVar[int] = 1

    request: DigestStr
    approvals: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=64)]
    inputs: Annotated[tuple[InputRef, ...], Field(min_length=1, max_length=64)]
    computation: ComputationRef
    policies: Annotated[tuple[DigestStr, ...], Field(max_length=64)]
    privacy_spent: Annotated[tuple[PrivacyCharge, ...], Field(max_length=64)]
    # One per input, in the request's order: the decision record the enclave enforced.
    decisions: Annotated[tuple[InputDecision, ...], Field(min_length=1, max_length=64)]
    outputs: Annotated[tuple[OutputRef, ...], Field(min_length=1, max_length=64)]
    evidence: DigestStr
    tee: Literal["tdx", "simulated"]
    simulated: bool
    issued_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        # The receipt names its enclave by evidence digest; the verifier checks the key
        # against that evidence. Here we only know a signer exists.
        return None


class OutputRef(_Part):
    """One released output: its recipient and a salted commitment to the plaintext.

    The commitment is salted (see :func:`output_commitment`) because receipts are
    public and results can be low-entropy: an unsalted hash of "yes" is a "yes".
    """

    recipient: PartyIdStr
    commitment: DigestStr


_OUTPUT_DOMAIN = b"sealroom-output-v1:"
OUTPUT_SALT_SIZE = 32


def output_commitment(salt: bytes, body: bytes) -> str:
    if len(salt) != OUTPUT_SALT_SIZE:
        raise InvalidInput(f"output salt must be {OUTPUT_SALT_SIZE} bytes")
    return "sha256:" + hashlib.sha256(_OUTPUT_DOMAIN + salt + body).hexdigest()


Receipt.model_rebuild()


# --- BudgetCharge ---------------------------------------------------------------------------


class BudgetCharge(Statement):
    """One request's charge on one dataset's privacy budget, signed by the enclave that ran it.

    The charges of a dataset form a hash chain (``prev`` is the digest of the
    dataset's previous charge, ``seq`` its position, both ``None``/0 for the
    first), so a log holding them is the deployment's one ledger for that
    dataset: the coordinator appends a charge only while ``prev`` is the
    dataset's head, and at most one per (request, dataset). Amounts are exact
    decimal strings. ``requester`` feeds per-requester caps, which are best
    effort (identities are free); totals bind.
    """

    TYPE: ClassVar[str] = "sealroom.budget-charge"
    VERSION: ClassVar[int] = 1

    dataset: DigestStr
    request: DigestStr
    requester: PartyIdStr
    epsilon: DecimalStr
    delta: DecimalStr
    bits: DecimalStr
    seq: NonNegInt
    prev: DigestStr | None
    enclave: PartyIdStr
    evidence: DigestStr
    charged_at: UnixTime

    @model_validator(mode="after")
    def _chained(self) -> BudgetCharge:
        if (self.seq == 0) != (self.prev is None):
            raise ValueError("the first charge (seq 0) and only it has no prev")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.enclave, signer, role="enclave")


# --- Protocols run between parties ---------------------------------------------------------

SessionStr = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class ProtocolParticipant(_Part):
    """One party of a protocol run: its role and the datasets it brought (if any)."""

    role: Identifier
    party: PartyIdStr
    inputs: Annotated[tuple[DigestStr, ...], Field(max_length=64)]


class StreamDigest(_Part):
    """SHA-256 over every message one role sent another, in order (see protocols.channel)."""

    sender: Identifier
    recipient: Identifier
    digest: DigestStr


def _check_participants(participants: tuple[ProtocolParticipant, ...]) -> None:
    if len({p.role for p in participants}) != len(participants):
        raise ValueError("participants contain a duplicate role")
    if len({p.party for p in participants}) != len(participants):
        raise ValueError("participants contain a duplicate party")


class ProtocolReceipt(Statement):
    """One participant's signed account of a protocol run it took part in.

    There is no enclave to sign for everyone, so every participant signs its
    own receipt over the same run description, plus the digests of the message
    streams it saw and a salted commitment to what it learned. A run is
    verified as the set of all participants' receipts
    (:func:`sealroom.protocols.receipts.verify_run`): same description, and for
    every stream, sender and recipient report the same digest.
    """

    TYPE: ClassVar[str] = "sealroom.protocol-receipt"
    VERSION: ClassVar[int] = 1

    protocol: Identifier
    protocol_version: Annotated[int, Field(ge=1, le=999)]
    session: SessionStr
    request: DigestStr | None
    code_digest: DigestStr
    parameters: BoundedObject
    participants: Annotated[tuple[ProtocolParticipant, ...], Field(min_length=2, max_length=200)]
    role: Identifier
    transcript: Annotated[tuple[StreamDigest, ...], Field(min_length=1, max_length=400)]
    output: OutputRef
    issued_at: UnixTime

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolReceipt:
        _check_participants(self.participants)
        if self.role not in {p.role for p in self.participants}:
            raise ValueError("role is not one of the participants")
        for s in self.transcript:
            if self.role not in (s.sender, s.recipient):
                raise ValueError("transcript lists a stream the signer was not part of")
        if self.output.recipient != self.signer_party:
            raise ValueError("output must be committed to the signer")
        return self

    @property
    def signer_party(self) -> str:
        return next(p.party for p in self.participants if p.role == self.role)

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.signer_party, signer, role=f"participant {self.role}")


class ModelWeights(_Part):
    """A linear model: weights per feature and an intercept, as exact decimal strings."""

    family: Literal["linear", "logistic"]
    features: Annotated[tuple[_ColumnName, ...], Field(min_length=1, max_length=10_000)]
    weights: Annotated[tuple[SignedDecimalStr, ...], Field(min_length=1, max_length=10_000)]
    intercept: SignedDecimalStr

    @model_validator(mode="after")
    def _sizes(self) -> ModelWeights:
        if len(self.weights) != len(self.features):
            raise ValueError("one weight per feature")
        return self


class TrainedModel(Statement):
    """A model trained by a protocol run, with its provenance; signed by the trainer.

    Its digest is the model's id, so it can be evaluated and rated later; the
    participants' :class:`ProtocolReceipt` s commit to this digest.
    """

    TYPE: ClassVar[str] = "sealroom.trained-model"
    VERSION: ClassVar[int] = 1

    trainer: PartyIdStr
    method: Literal["secagg-fedavg", "ckks-gradient-descent"]
    session: SessionStr
    code_digest: DigestStr
    participants: Annotated[tuple[ProtocolParticipant, ...], Field(min_length=2, max_length=200)]
    rounds: Annotated[int, Field(ge=1, le=100_000)]
    model: ModelWeights
    training: BoundedObject
    issued_at: UnixTime

    @model_validator(mode="after")
    def _consistent(self) -> TrainedModel:
        _check_participants(self.participants)
        if self.trainer not in {p.party for p in self.participants}:
            raise ValueError("the trainer must be a participant")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.trainer, signer, role="trainer")


# --- Credit transfers -----------------------------------------------------------------------

# Ledger accounts: a party's, a request's escrow, the platform's fee income, the rewards
# pool, and issuance (the one account that may go negative: every credit in existence was
# granted out of it, so all balances always sum to zero).
ACCOUNT_PATTERN = r"^(party:sr1[a-z2-7]{52}|escrow:sha256:[0-9a-f]{64}|platform|rewards|issuance)$"
AccountStr = Annotated[str, Field(pattern=ACCOUNT_PATTERN)]
TransferKind = Literal["grant", "transfer", "escrow", "settle", "refund", "reward", "bonus"]


class Posting(_Part):
    """One leg of a transfer: ``amount`` minor units into (positive) or out of ``account``."""

    account: AccountStr
    amount: Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]


class Transfer(Statement):
    """One balanced credit transfer, signed by the coordinator's ledger key.

    The transfers form one hash chain (``seq`` from 0, ``prev`` the previous
    transfer's digest), so a reader holding them can tell a missing one and
    recompute every balance from the log alone
    (:func:`sealroom.wire.credits.recompute_balances`). ``key`` is the
    idempotency key: one transfer per key, ever. ``cause`` names the statement
    that justifies it (the request escrowed, the receipt settled, ...).
    """

    TYPE: ClassVar[str] = "sealroom.credit-transfer"
    VERSION: ClassVar[int] = 1

    ledger: PartyIdStr
    seq: NonNegInt
    prev: DigestStr | None
    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,159}$")]
    kind: TransferKind
    cause: DigestStr | None
    postings: Annotated[tuple[Posting, ...], Field(min_length=2, max_length=130)]
    memo: Annotated[str, Field(max_length=500)]
    created_at: UnixTime

    @model_validator(mode="after")
    def _balanced(self) -> Transfer:
        if (self.seq == 0) != (self.prev is None):
            raise ValueError("the first transfer (seq 0) and only it has no prev")
        accounts = [p.account for p in self.postings]
        if len(set(accounts)) != len(accounts):
            raise ValueError("a transfer posts to each account at most once")
        if any(p.amount == 0 for p in self.postings):
            raise ValueError("a posting moves a non-zero amount")
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError("the postings of a transfer must sum to zero")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.ledger, signer, role="ledger")


class Offer(Statement):
    """An owner's negotiated terms for one dataset: a price that replaces the schedule's for
    that input, and a usage bonus paid on top per receipt; for one requester or anyone."""

    TYPE: ClassVar[str] = "sealroom.offer"
    VERSION: ClassVar[int] = 1

    owner: PartyIdStr
    dataset: DigestStr
    requester: PartyIdStr | None
    computation: Identifier
    price: Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
    usage_bonus: Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
    nonce: B64Nonce
    created_at: UnixTime
    expires_at: UnixTime

    @model_validator(mode="after")
    def _dates(self) -> Offer:
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.owner, signer, role="owner")


class Accept(Statement):
    """A requester's acceptance of an Offer; a request names it in ``terms``."""

    TYPE: ClassVar[str] = "sealroom.accept"
    VERSION: ClassVar[int] = 1

    offer: DigestStr
    requester: PartyIdStr
    created_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.requester, signer, role="requester")


class Liveness(Statement):
    """An owner's answer to the coordinator's liveness challenge for one reward period: its
    client is up and its datasets are available. Earns base rewards (docs/marketplace.md)."""

    TYPE: ClassVar[str] = "sealroom.liveness"
    VERSION: ClassVar[int] = 1

    owner: PartyIdStr
    datasets: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=500)]
    period: NonNegInt
    challenge: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{86}==$")]
    created_at: UnixTime

    @model_validator(mode="after")
    def _distinct(self) -> Liveness:
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError("datasets contain a duplicate")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.owner, signer, role="owner")


STATEMENT_TYPES: dict[str, type[Statement]] = {
    cls.TYPE: cls
    for cls in (
        DatasetAttestation,
        Policy,
        ComputationRequest,
        Approval,
        EnclaveEvidence,
        Receipt,
        ProtocolReceipt,
        TrainedModel,
        BudgetCharge,
        Transfer,
        Offer,
        Accept,
        Liveness,
        Deletion,
    )
}
