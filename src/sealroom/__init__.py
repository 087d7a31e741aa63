"""sealroom: learn from datasets you cannot share."""

from __future__ import annotations

__version__ = "0.1.0"
