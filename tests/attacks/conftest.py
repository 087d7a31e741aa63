"""One coordinator and one enclave for every attack module (each test uses fresh parties)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.attack_world import Folder, World, attack_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with attack_world(tmp_path_factory.mktemp("attacks")) as w:
        yield w


@pytest.fixture
def files(tmp_path: Path) -> Folder:
    return Folder(tmp_path)
