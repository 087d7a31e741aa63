"""Proof bundles written by an earlier release verify with the same report, byte changes do not.

See ``tests/vectors/proof_bundles/README.md`` for where the bundles and reports come from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.errors import SealroomError
from sealroom.statements import ReleasedOutput
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, verify_bundle

FIXTURES = Path(__file__).resolve().parent.parent / "vectors" / "proof_bundles"
NAMES = ["overlap-cloudmolty", "stats-dp-analyst", "committed-overlap-cloudmolty"]
UNPINNED = ("simulation root taken from the evidence", "not pinned with --log-key")


def _read(name: str, file: str) -> bytes:
    return (FIXTURES / name / file).read_bytes()


def _result(name: str) -> ReleasedOutput:
    return ReleasedOutput.from_json(_read(name, "result.json"))


def _pinned(name: str) -> dict[str, object]:
    pins = json.loads(_read(name, "pins.json"))
    return {
        "allow_simulated": True,
        "log_key": pins["log_key"],
        "simulation_root": bytes.fromhex(pins["simulation_root"]),
    }


def _verify_files(name: str, bundle: bytes, result: bytes) -> None:
    outputs = [ReleasedOutput.from_json(result)]
    trust = trust_policy(**_pinned(name))  # type: ignore[arg-type]
    verify_bundle(ProofBundle.from_json(bundle), trust=trust, outputs=outputs)


@pytest.mark.parametrize("name", NAMES)
def test_old_bundle_gives_the_same_report(name: str) -> None:
    bundle = ProofBundle.from_json(_read(name, "bundle.json"))
    report = verify_bundle(
        bundle, trust=trust_policy(allow_simulated=True), outputs=[_result(name)]
    )
    assert report.to_dict() == json.loads(_read(name, "report.json"))


@pytest.mark.parametrize("name", NAMES)
def test_cli_prints_the_same_report(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / name)
    args = ["verify", "bundle.json", "--allow-simulated", "--result", "result.json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output == _read(name, "report.txt").decode()
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == json.loads(_read(name, "report.json"))


@pytest.mark.parametrize("name", NAMES)
def test_old_bundle_verifies_under_its_pinned_keys(name: str) -> None:
    bundle = ProofBundle.from_json(_read(name, "bundle.json"))
    trust = trust_policy(**_pinned(name))  # type: ignore[arg-type]
    report = verify_bundle(bundle, trust=trust, outputs=[_result(name)]).to_dict()
    old = json.loads(_read(name, "report.json"))
    assert report["checks"] == old["checks"]
    assert report["warnings"] == [w for w in old["warnings"] if not any(u in w for u in UNPINNED)]
    assert len(report["warnings"]) == len(old["warnings"]) - 2


@pytest.mark.parametrize("name", NAMES)
def test_old_bundle_is_refused_without_allow_simulated(name: str) -> None:
    bundle = ProofBundle.from_json(_read(name, "bundle.json"))
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=trust_policy(), outputs=[_result(name)])
    assert [c.name for c in info.value.report.failures] == ["TEE evidence"]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_one_byte_change_is_rejected(name: str, data: st.DataObject) -> None:
    file = data.draw(st.sampled_from(["bundle.json", "result.json"]), label="file")
    raw = bytearray(_read(name, file))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    files = {"bundle.json": _read(name, "bundle.json"), "result.json": _read(name, "result.json")}
    files[file] = bytes(raw)
    with pytest.raises(SealroomError):
        _verify_files(name, files["bundle.json"], files["result.json"])


@pytest.mark.parametrize("name", NAMES)
def test_a_changed_signature_byte_names_the_receipt(name: str) -> None:
    doc = json.loads(_read(name, "bundle.json"))
    signature = doc["receipt"]["signature"]
    flipped = "B" if signature[0] == "A" else "A"
    doc["receipt"]["signature"] = flipped + signature[1:]
    bundle = ProofBundle.from_json(
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=trust_policy(**_pinned(name)))  # type: ignore[arg-type]
    # The signature is part of the logged envelope, so its log proof no longer matches either.
    failed = [c.name for c in info.value.report.failures]
    assert failed == ["receipt signature", "log inclusion"]
