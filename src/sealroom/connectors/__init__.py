"""Sources -> Arrow tables, and the local dataset card (see ARCHITECTURE.md, "Publish")."""

from sealroom.connectors.files import FORMATS, read_stream, read_table
from sealroom.connectors.profile import DatasetCard, attestation_fields, profile_table
from sealroom.connectors.sources import FileSource, Source, StdinSource, from_locator, open_source
from sealroom.connectors.types import DEFAULT_LIMITS, ReadLimits

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "DatasetCard",
    "FileSource",
    "ReadLimits",
    "Source",
    "StdinSource",
    "attestation_fields",
    "from_locator",
    "open_source",
    "profile_table",
    "read_stream",
    "read_table",
]
