"""The one exception tree of sealroom.

Every error carries a stable ``code`` (for machines, the API error catalog and
logs) and a ``public_message`` that is safe to show to any party: it never
contains secrets, key material or data values. ``diagnostics()`` adds the
detail a user needs to fix the problem; it is written for the party that
caused the error and, like the public message, contains no secrets.

::

    SealroomError
    ├── InvalidInput                 bad input at a boundary (CLI, API, parser, file)
    │   ├── StatementFormatError     a statement or envelope that does not parse strictly
    │   ├── KeystoreError            a missing, corrupt or foreign keystore
    │   ├── BodyTooLarge             an HTTP body over its limit
    │   └── UnsupportedMediaType     an HTTP body of the wrong content type
    ├── AuthenticationFailed         a request signature that is missing, stale, replayed or wrong
    ├── NotFound                     also what a party gets for objects it may not see
    ├── Conflict                     a state change that cannot happen (e.g. a fork)
    │   └── NameTaken                a display name another party holds on the coordinator
    ├── PolicyDenied
    ├── VerificationFailed           a check that must pass did not; fail closed
    │   ├── SignatureInvalid
    │   ├── AttestationInvalid       TEE evidence, measurements, key binding
    │   ├── ProofInvalid             Merkle inclusion / consistency, checkpoints
    │   ├── CommitmentMismatch       data that does not match its commitment
    │   └── DecryptionFailed         sealed data that does not open (tampered,
    │                                truncated, reordered, wrong key or context)
    ├── ProtocolError                a peer or message that breaks a protocol's rules
    └── BackendUnavailable           a database, TEE agent or service cannot be reached
"""

from __future__ import annotations

__all__ = [
    "CATALOG",
    "AlreadyReleased",
    "AttestationInvalid",
    "AuthenticationFailed",
    "BackendUnavailable",
    "BodyTooLarge",
    "CommitmentMismatch",
    "Conflict",
    "ConsentMissing",
    "DecryptionFailed",
    "DualApprovalRequired",
    "IdempotencyMismatch",
    "InsufficientCredits",
    "InvalidInput",
    "KeystoreError",
    "KeystoreLocked",
    "NameTaken",
    "NotFound",
    "PolicyDenied",
    "ProofInvalid",
    "ProtocolError",
    "QueryNotAllowed",
    "RegionMismatch",
    "RoomClosed",
    "SealroomError",
    "SignatureInvalid",
    "StaleLedgerHead",
    "StatementFormatError",
    "UnsupportedMediaType",
    "VerificationFailed",
    "WrongPassphrase",
]


class SealroomError(Exception):
    """Base of every error sealroom raises on purpose."""

    code: str = "internal"
    public_message: str = "sealroom failed"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(detail if detail is not None else self.public_message)

    def diagnostics(self) -> str:
        """A multi-line explanation for the user who hit this error."""
        lines = [f"{self.public_message} [{self.code}]"]
        if self.detail:
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


class InvalidInput(SealroomError):
    code = "invalid_input"
    public_message = "the input is not valid"


class StatementFormatError(InvalidInput):
    code = "statement_format"
    public_message = "the statement is malformed"


class KeystoreError(InvalidInput):
    code = "keystore"
    public_message = "the keystore cannot be used"


class KeystoreLocked(KeystoreError):
    code = "keystore_locked"
    public_message = "the keystore is encrypted and no passphrase was given"


class WrongPassphrase(KeystoreError):
    code = "wrong_passphrase"
    public_message = "the passphrase does not open the keystore"


class BodyTooLarge(InvalidInput):
    code = "body_too_large"
    public_message = "the request body is too large"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"
    public_message = "the content type is not supported here"


class AuthenticationFailed(SealroomError):
    code = "unauthenticated"
    public_message = "the request is not authenticated"


class NotFound(SealroomError):
    code = "not_found"
    public_message = "not found"


class Conflict(SealroomError):
    code = "conflict"
    public_message = "the request conflicts with the current state"


class NameTaken(Conflict):
    """A display name another party holds on this coordinator (names are not identities:
    each is held by one party, and its fingerprint is shown next to it)."""

    code = "name_taken"
    public_message = "the name is taken by another party"


class StaleLedgerHead(Conflict):
    """A budget charge names a previous charge that is no longer its dataset's newest."""

    code = "stale_ledger_head"
    public_message = "another charge on the dataset's budget came first; read the ledger again"


class AlreadyReleased(Conflict):
    """The request was already charged on a dataset's ledger, so it was already released."""

    code = "already_released"
    public_message = "the request was already charged and released"


class InsufficientCredits(Conflict):
    """A transfer would take an account below zero (the ledger never lends)."""

    code = "insufficient_credits"
    public_message = "the account's balance does not cover the transfer"


class IdempotencyMismatch(Conflict):
    """An idempotency key was used again for a different transfer."""

    code = "idempotency_mismatch"
    public_message = "this idempotency key was already used for a different transfer"


class PolicyDenied(SealroomError):
    """A refusal under a named rule.

    ``rule`` is the rule's fixed name (``k-threshold``, ``dp-required``...): safe to
    show anyone, so the enclave passes it on even where the detail, which may
    quote data, is withheld.
    """

    code = "policy_denied"
    public_message = "the policy does not allow this"

    def __init__(self, detail: str | None = None, *, rule: str | None = None) -> None:
        super().__init__(detail)
        self.rule = rule

    def diagnostics(self) -> str:
        text = super().diagnostics()
        return text if self.rule is None else f"{text}\n  rule: {self.rule}"


class QueryNotAllowed(PolicyDenied):
    """A run in a room of a computation that is not among the room's allowed queries."""

    code = "query_not_allowed"
    public_message = "the room does not allow this query"


class ConsentMissing(PolicyDenied):
    """A room run while a member's consent to the current policy snapshot is absent or
    withdrawn: nothing runs on its data."""

    code = "consent_missing"
    public_message = "a member has not consented to the room's policy, or withdrew consent"


class DualApprovalRequired(PolicyDenied):
    """A risky room template needs two distinct approvers of the same party."""

    code = "dual_approval_required"
    public_message = "this run needs two distinct approvers of each data party"


class RegionMismatch(PolicyDenied):
    """A region-pinned room's data may only go to an enclave declaring that region."""

    code = "region_mismatch"
    public_message = "the enclave is not in the room's region"


class RoomClosed(PolicyDenied):
    """The room has expired (or is otherwise closed) and refuses runs."""

    code = "room_closed"
    public_message = "the room is closed"


class VerificationFailed(SealroomError):
    code = "verification_failed"
    public_message = "verification failed"


class SignatureInvalid(VerificationFailed):
    code = "signature_invalid"
    public_message = "a signature did not verify"


class AttestationInvalid(VerificationFailed):
    code = "attestation_invalid"
    public_message = "the TEE evidence did not verify"


class ProofInvalid(VerificationFailed):
    code = "proof_invalid"
    public_message = "a transparency-log proof did not verify"


class CommitmentMismatch(VerificationFailed):
    code = "commitment_mismatch"
    public_message = "the data does not match its commitment"


class DecryptionFailed(VerificationFailed):
    code = "decryption_failed"
    public_message = "sealed data could not be opened"


class ProtocolError(SealroomError):
    code = "protocol_error"
    public_message = "a protocol message broke the protocol"


class BackendUnavailable(SealroomError):
    code = "backend_unavailable"
    public_message = "a backend service is unavailable"


CATALOG: tuple[type[SealroomError], ...] = (
    InvalidInput,
    StatementFormatError,
    KeystoreError,
    KeystoreLocked,
    WrongPassphrase,
    BodyTooLarge,
    UnsupportedMediaType,
    AuthenticationFailed,
    NotFound,
    Conflict,
    NameTaken,
    StaleLedgerHead,
    AlreadyReleased,
    InsufficientCredits,
    IdempotencyMismatch,
    PolicyDenied,
    QueryNotAllowed,
    ConsentMissing,
    DualApprovalRequired,
    RegionMismatch,
    RoomClosed,
    VerificationFailed,
    SignatureInvalid,
    AttestationInvalid,
    ProofInvalid,
    CommitmentMismatch,
    DecryptionFailed,
    ProtocolError,
    BackendUnavailable,
)
"""Every error that crosses the HTTP boundary by its code (the API's catalog, the SDK's map back)."""
