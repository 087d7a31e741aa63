"""The computation library (see ARCHITECTURE.md, "A computation")."""

from sealroom.computations.base import (
    DEFAULT_K,
    Computation,
    PrivacyClass,
    PrivacyContext,
    Release,
    code_digest_of,
)
from sealroom.computations.registry import Registry, default_registry

__all__ = [
    "DEFAULT_K",
    "Computation",
    "PrivacyClass",
    "PrivacyContext",
    "Registry",
    "Release",
    "code_digest_of",
    "default_registry",
]
