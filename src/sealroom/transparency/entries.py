"""What a log leaf holds: a public statement in clear, or a salted commitment to a private one.

The log must prove that a request, an approval or a receipt was published, without publishing
it: those statements name requesters, inputs, parameters (full SQL) and recipients, which the
API shows only to the parties of a request. So for a private statement the leaf entry is

    {"commitment": "sha256:<hex>", "type": "sealroom.log-commitment", "version": 1}

(canonical JSON) with ``commitment = SHA-256("sealroom-log-commitment-v1:" || salt ||
statement)``, a fresh 32-byte salt per statement and the statement's canonical bytes. The
salt makes it hiding (a guessable statement cannot be confirmed by hashing guesses);
SHA-256 makes it binding. Whoever holds the statement and the salt (its parties, and the
proof bundles they carry) recomputes the leaf and checks inclusion offline, as for a clear
one. The entry says nothing of the statement's type, so an outsider cannot even tell a
request from a receipt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sealroom.crypto.merkle import leaf_hash
from sealroom.errors import InvalidInput, StatementFormatError

__all__ = [
    "COMMITMENT_ENTRY_TYPE",
    "SALT_SIZE",
    "CommittedEntry",
    "check_opening",
    "commitment_entry",
    "committed_entry",
    "entry_leaf_hash",
    "parse_committed_entry",
    "statement_commitment",
]

SALT_SIZE = 32
COMMITMENT_ENTRY_TYPE = "sealroom.log-commitment"
_DOMAIN = b"sealroom-log-commitment-v1:"
_COMMITMENT_RE = re.compile(r"sha256:[0-9a-f]{64}")  # fullmatch only: "$" would allow "\n"
_PREFIX = b'{"commitment":"sha256:'
_SUFFIX = b'","type":"' + COMMITMENT_ENTRY_TYPE.encode() + b'","version":1}'


@dataclass(frozen=True, slots=True)
class CommittedEntry:
    """A leaf that commits to a private statement: only the commitment is public."""

    commitment: str


def statement_commitment(salt: bytes, statement: bytes) -> str:
    """``sha256:<hex>`` of the domain tag, the salt and the statement's canonical bytes."""
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise InvalidInput(f"a log commitment salt must be {SALT_SIZE} bytes")
    return "sha256:" + hashlib.sha256(_DOMAIN + salt + statement).hexdigest()


def commitment_entry(commitment: str) -> bytes:
    """The leaf entry (canonical JSON) for ``commitment``."""
    if not _COMMITMENT_RE.fullmatch(commitment):
        raise InvalidInput("a log commitment must be sha256:<64 hex digits>")
    return _PREFIX + commitment.removeprefix("sha256:").encode() + _SUFFIX


def committed_entry(statement: bytes, salt: bytes | None) -> bytes:
    """The leaf entry of ``statement``: itself in clear without a salt, else its commitment."""
    if salt is None:
        return statement
    return commitment_entry(statement_commitment(salt, statement))


def entry_leaf_hash(statement: bytes, salt: bytes | None) -> bytes:
    """The RFC 9162 leaf hash of ``statement`` as logged (in clear, or committed with ``salt``)."""
    return leaf_hash(committed_entry(statement, salt))


def parse_committed_entry(entry: bytes) -> CommittedEntry | None:
    """The commitment if ``entry`` is a commitment leaf, else None (a statement in clear).

    Exact bytes, not a JSON parse: the entry is canonical, so anything else is not one.
    """
    if not (entry.startswith(_PREFIX) and entry.endswith(_SUFFIX)):
        return None
    hex_part = entry[len(_PREFIX) : len(entry) - len(_SUFFIX)]
    commitment = "sha256:" + hex_part.decode("ascii", errors="replace")
    if not _COMMITMENT_RE.fullmatch(commitment):
        return None
    return CommittedEntry(commitment=commitment)


def check_opening(entry: bytes, statement: bytes, salt: bytes) -> None:
    """Raise unless ``entry`` is the commitment leaf of ``statement`` under ``salt``."""
    parsed = parse_committed_entry(entry)
    if parsed is None or not hmac.compare_digest(
        parsed.commitment.encode(), statement_commitment(salt, statement).encode()
    ):
        raise StatementFormatError("the log entry is not the commitment to this statement")
