"""Shared setup for SDK/CLI integration tests: a real coordinator in a thread, parties, data.

Imported by basename (``from client_world import ...``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore

TOPICS_A = ["remote attestation", "reproducible builds", "tls in tee", "kms secrets"]
TOPICS_B = ["remote attestation", "kms secrets", "gpu drivers", "kernel tuning"]


def now() -> int:
    return int(time.time())


@contextmanager
def coordinator(tmp_path: Path) -> Iterator[str]:
    """The real app (SQLite in ``tmp_path``) served by uvicorn on 127.0.0.1; yields its URL."""
    app_mod = pytest.importorskip("sealroom.api.app", reason="the coordinator app is not built yet")
    from sealroom.api.testing import run_in_thread
    from sealroom.computations import default_registry

    app = app_mod.create_app(
        db_url=f"sqlite:///{tmp_path / 'coordinator.db'}", registry=default_registry()
    )
    with run_in_thread(app) as url:
        yield url


def party(tmp_path: Path, name: str) -> tuple[Path, Identity]:
    home = tmp_path / name
    return home, Keystore.create(home, name=name)


def write_jsonl(path: Path, topics: list[str], rows: int = 60) -> Path:
    with path.open("w") as fh:
        for i in range(rows):
            topic = topics[i % len(topics)]
            fh.write(json.dumps({"ts": 1_700_000_000 + i * 3600, "text": f"worked on {topic}"}))
            fh.write("\n")
    return path


AUTO_POLICY = {
    "allow": [{"id": "topic-overlap"}, {"id": "gap-analysis"}],
    "auto_approve": [{"id": "topic-overlap"}],
    "k": 3,
}
