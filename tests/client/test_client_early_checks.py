"""A request naming a column an input lacks is refused when it is made, before any owner acts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sealroom.client import Party
from sealroom.errors import InvalidInput

POLICY = {"allow": [{"id": "correlation"}], "k": 3}


def _csv(path: Path, column: str) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", column])
        w.writerows([i, i % 7] for i in range(40))
    return path


def test_a_missing_column_is_named_at_request_time_and_nothing_is_stored(
    tmp_path: Path, coordinator_url: str
) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=coordinator_url, unencrypted=True
        ) as alice,
        Party.create(
            home=tmp_path / "bob", name="bob", url=coordinator_url, unencrypted=True
        ) as bob,
    ):
        a = alice.publish(_csv(tmp_path / "a.csv", "x"), title="a", policy=POLICY)
        b = bob.publish(_csv(tmp_path / "b.csv", "y"), title="b", policy=POLICY)
        params = {"x": "x", "y": "spend", "x_bounds": ["0", "10"], "y_bounds": ["0", "10"]}
        with pytest.raises(InvalidInput) as e:
            bob.request("correlation", [a.dataset, b.dataset], params)
        assert "input 'b' has no column 'spend' (named as y; its columns: id, y)" in str(
            e.value.detail
        )
        assert bob.requests() == ()
        assert alice.inbox() == ()
        # The same request naming the right column is accepted (and waits for the owners).
        fine = bob.request("correlation", [a.dataset, b.dataset], {**params, "y": "y"})
        assert fine.status in {"pending", "rejected"}
        assert "column" not in fine.status_reason
