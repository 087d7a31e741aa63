"""RFC 9162 transparency log: proofs, C2SP checkpoints, a durable log and a client monitor.

The SQL store lives in :mod:`sealroom.transparency.sqlstore` and is not imported here, so
verifying clients do not pull in SQLAlchemy.
"""

from __future__ import annotations

from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from sealroom.transparency.log import LogStore, MemoryLogStore, TransparencyLog
from sealroom.transparency.monitor import LogMonitor, advance_checkpoint
from sealroom.transparency.proof import (
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "Checkpoint",
    "LogMonitor",
    "LogStore",
    "MemoryLogStore",
    "NoteSigner",
    "NoteVerifier",
    "TransparencyLog",
    "advance_checkpoint",
    "open_checkpoint",
    "open_note",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
]
