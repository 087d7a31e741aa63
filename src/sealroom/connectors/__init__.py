"""Sources -> Arrow tables, and the local dataset card (see ARCHITECTURE.md, "Publish")."""

from sealroom.connectors.files import DEFAULT_LIMITS, FORMATS, ReadLimits, read_table
from sealroom.connectors.profile import DatasetCard, attestation_fields, profile_table

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "DatasetCard",
    "ReadLimits",
    "attestation_fields",
    "profile_table",
    "read_table",
]
