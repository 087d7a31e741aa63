from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.statements import ReleasedOutput
from tests.verification.scenario import build_job

runner = CliRunner()


BUNDLES = ("overlap-cloudmolty", "overlap-amiller", "gap-newbiemolty")


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's first command, as a real process (it starts its own coordinator and enclave)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_demo_runs_the_whole_scenario(demo_out: tuple[Path, str]) -> None:
    _, stdout = demo_out
    assert "SIMULATED ENCLAVE" in stdout
    assert "the card CloudMolty sees" in stdout
    assert "POST /v1/compute/keyword-overlap" in stdout
    assert stdout.count("the policy approves topic-overlap 1.0.0 automatically") == 2
    assert "approved by hand (manual)" in stdout
    assert stdout.count(" completed") == 2
    assert "CloudMolty and amiller received the same overlap result" in stdout
    assert "NewbieMolty asking for the overlap result gets: not found [not_found]" in stdout
    assert "-> rejected, as it must be" in stdout
    assert "coordinator and enclave stopped" in stdout


def test_demo_results_are_meaningful(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    overlap = ReleasedOutput.from_json((out / "overlap-cloudmolty" / "result.json").read_bytes())
    same = ReleasedOutput.from_json((out / "overlap-amiller" / "result.json").read_bytes())
    assert overlap.body == same.body
    assert overlap.salt != same.salt
    body = json.loads(overlap.body)
    shared = {t["term"] for t in body["shared"]}
    assert "attestation" in shared
    assert body["unique_to_a"]
    assert body["unique_to_b"]
    assert 0 < float(body["jaccard"]) < 1
    gap = json.loads(
        ReleasedOutput.from_json((out / "gap-newbiemolty" / "result.json").read_bytes()).body
    )
    assert gap["gaps"]
    assert gap["recommended"]
    assert {g["level"] for g in gap["gaps"]} == {"intermediate", "advanced"}


def test_demo_refuses_a_non_empty_directory(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    res = runner.invoke(app, ["demo", "--out", str(out)])
    assert res.exit_code == 2
    assert "is not empty" in res.output


@pytest.mark.parametrize("name", BUNDLES)
def test_verify_requires_explicit_simulation(demo_out: tuple[Path, str], name: str) -> None:
    out, _ = demo_out
    res = runner.invoke(app, ["verify", str(out / name / "bundle.json")])
    assert res.exit_code == 1
    assert "FAIL  TEE evidence" in res.output
    assert "--allow-simulated" in res.output


@pytest.mark.parametrize("name", BUNDLES)
def test_verify_passes_on_every_demo_bundle(demo_out: tuple[Path, str], name: str) -> None:
    out, _ = demo_out
    res = runner.invoke(
        app,
        [
            "verify",
            str(out / name / "bundle.json"),
            "--allow-simulated",
            "--result",
            str(out / name / "result.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "VERIFIED (simulated TEE)" in res.output
    assert "SIMULATED ENCLAVE" in res.output


def test_verify_json_report(tmp_path: Path) -> None:
    job = build_job()
    path = tmp_path / "bundle.json"
    path.write_bytes(job.bundle.to_json())
    res = runner.invoke(
        app,
        [
            "verify",
            str(path),
            "--json",
            "--allow-simulated",
            "--log-key",
            job.log_signer.verifier.vkey,
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["verified"] is True
    assert report["simulated"] is True
    assert all(c["passed"] for c in report["checks"])


def test_verify_tampered_bundle_names_the_failure(tmp_path: Path) -> None:
    job = build_job()
    doc = json.loads(job.bundle.to_json())
    doc["log"]["checkpoint"] = doc["log"]["checkpoint"].replace("\n5\n", "\n4\n")
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    res = runner.invoke(app, ["verify", str(path), "--allow-simulated"])
    assert res.exit_code == 1
    assert "FAIL  log checkpoint" in res.output


def test_verify_bad_inputs(tmp_path: Path) -> None:
    res = runner.invoke(app, ["verify", str(tmp_path / "missing.json")])
    assert res.exit_code == 2
    assert "cannot read bundle" in res.output
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00not json")
    res = runner.invoke(app, ["verify", str(garbage)])
    assert res.exit_code == 1
    assert "FAIL  bundle format" in res.output
    bad = tmp_path / "m.json"
    bad.write_text('{"mrtd": "not-a-list"}')
    res = runner.invoke(app, ["verify", str(garbage), "--measurements", str(bad)])
    assert res.exit_code == 2
    assert "measurements.mrtd must be a list of strings" in res.output
    res = runner.invoke(app, ["verify", str(garbage), "--result", str(bad)])
    assert res.exit_code == 2
    assert "output: missing ['body'" in res.output


def test_init_creates_an_identity_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = runner.invoke(app, ["init", "--name", "amiller"], env={"SEALROOM_HOME": str(home)})
    assert res.exit_code == 0, res.output
    assert "party id: sr1" in res.output
    again = runner.invoke(app, ["init", "--name", "amiller", "--home", str(home)])
    assert again.exit_code == 1
    assert "keystore" in again.output
