"""Parties and data for the SDK and CLI integration tests (the services are in tests.services)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore

TOPICS_A = ["remote attestation", "reproducible builds", "tls in tee", "kms secrets"]
TOPICS_B = ["remote attestation", "kms secrets", "gpu drivers", "kernel tuning"]


def now() -> int:
    return int(time.time())


def party(tmp_path: Path, name: str) -> tuple[Path, Identity]:
    home = tmp_path / name
    return home, Keystore.create(home, name=name, unencrypted=True)


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
