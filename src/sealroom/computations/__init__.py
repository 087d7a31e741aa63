"""The computation library (see ARCHITECTURE.md, "A computation")."""

from sealroom.computations.base import (
    DEFAULT_K,
    ZERO_COST,
    Computation,
    PrivacyClass,
    PrivacyContext,
    PrivacyCost,
    Release,
    code_digest_of,
)
from sealroom.computations.registry import Registry, default_registry

__all__ = [
    "DEFAULT_K",
    "ZERO_COST",
    "Computation",
    "PrivacyClass",
    "PrivacyContext",
    "PrivacyCost",
    "Registry",
    "Release",
    "code_digest_of",
    "default_registry",
]
