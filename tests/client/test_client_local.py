"""The owner's dataset index: where each dataset's data is, with no secret, and old entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealroom.client.local import DatasetIndex, LocalDataset
from sealroom.errors import InvalidInput


def test_sources_are_recorded_by_locator(tmp_path: Path) -> None:
    index = DatasetIndex(tmp_path)
    pg = {"kind": "postgresql", "conninfo": "user=reader host=db dbname=crm", "table": "notes"}
    index.record(LocalDataset(dataset="sha256:a", path=None, title="t", published_at=1, locator=pg))
    index.record(LocalDataset(dataset="sha256:b", path=None, title="stdin", published_at=2))
    f = tmp_path / "data.csv"
    file_loc = {"kind": "file", "path": str(f)}
    index.record(
        LocalDataset(dataset="sha256:c", path=f, title="f", published_at=3, locator=file_loc)
    )
    assert index.get("sha256:a") == LocalDataset(
        dataset="sha256:a", path=None, title="t", published_at=1, locator=pg
    )
    got_b = index.get("sha256:b")
    assert got_b is not None
    assert got_b.locator is None
    assert got_b.path is None
    raw = json.loads(index.path.read_text())["datasets"]
    assert raw["sha256:c"]["path"] == str(f.resolve())  # still readable by older clients
    assert (index.path.stat().st_mode & 0o777) == 0o600


def test_entries_written_before_locators_still_read(tmp_path: Path) -> None:
    (tmp_path / "datasets.json").write_text(
        json.dumps(
            {
                "version": 1,
                "datasets": {
                    "sha256:a": {"path": "/data/a.jsonl", "title": "a", "published_at": 1}
                },
            }
        )
    )
    entry = DatasetIndex(tmp_path).get("sha256:a")
    assert entry is not None
    assert entry.path == Path("/data/a.jsonl")
    assert entry.locator is None


def test_a_malformed_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "datasets.json").write_text(
        json.dumps(
            {
                "version": 1,
                "datasets": {"sha256:a": {"source": {"kind": 1}, "title": "a", "published_at": 1}},
            }
        )
    )
    with pytest.raises(InvalidInput, match="entry sha256:a is malformed"):
        DatasetIndex(tmp_path).get("sha256:a")
