from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared test vectors (../shared/vectors); tests skip when they are absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"shared test vectors not found at {VECTORS}")
    return VECTORS
