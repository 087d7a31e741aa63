"""The demo's rooms act against a real coordinator and enclave (the full demo runs in CI)."""

from __future__ import annotations

from pathlib import Path

from sealroom.client import Party
from sealroom.demo import ROOM_PARTIES, _act_rooms
from tests.services import SIMULATION_ROOT, coordinator, running_enclave


def test_demo_rooms_act(tmp_path: Path) -> None:
    lines: list[str] = []
    with coordinator(tmp_path) as url, running_enclave(url):
        parties = {
            n: Party.create(home=tmp_path / n, name=n, url=url, unencrypted=True)
            for n in ROOM_PARTIES
        }
        try:
            code = _act_rooms(
                parties,
                tmp_path / "data",
                tmp_path / "out",
                lines.append,
                60,
                root=SIMULATION_ROOT.public_key,
            )
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
    assert "reads the one-page summary of snapshot" in text
    assert (tmp_path / "out" / "room-summary.html").is_file()
    assert "both learned |A ∩ B| = 1500" in text
    assert "co-signed receipts are in the log" in text
    assert "verify-pack: all" in text
    assert "REFUSED at" in text
    assert (tmp_path / "out" / "room-audit-pack" / "manifest.json").is_file()
