"""The demo's rooms act against a real coordinator and enclave (the full demo runs in CI)."""

from __future__ import annotations

from pathlib import Path

from sealroom.client import Party
from sealroom.demo import ROOM_PARTIES, _act_rooms
from tests.services import coordinator, running_enclave


def test_demo_rooms_act(tmp_path: Path) -> None:
    lines: list[str] = []
    with coordinator(tmp_path) as url, running_enclave(url):
        parties = {
            n: Party.create(home=tmp_path / n, name=n, url=url, unencrypted=True)
            for n in ROOM_PARTIES
        }
        try:
            code = _act_rooms(parties, tmp_path / "data", tmp_path / "out", lines.append, 60)
        finally:
            for p in parties.values():
                p.close()
    text = "\n".join(lines)
    assert code == 0, text
    assert "the run is withdrawn" in text
    assert "[consent_missing]" in text
    assert "[dual_approval_required]" in text
    assert "the run is completed" in text
    assert (tmp_path / "out" / "room-overlap" / "bundle.json").is_file()
