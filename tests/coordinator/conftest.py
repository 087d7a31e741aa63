from __future__ import annotations

import pytest
from sqlalchemy import Engine

from sealroom.coordinator.keys import CoordinatorKeystore
from tests.coordinator.coord_helpers import World, make_world


@pytest.fixture
def w(engine: Engine, keystore: CoordinatorKeystore) -> World:
    """A coordinator on each backend with dataset 0 published ("TEE development logs",
    keywords attestation and kms) and an enclave ready to register."""
    return make_world(engine, keystore)
