from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from tests.verification.scenario import build_job

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's first command, as a real process."""
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "demo", "--dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERIFIED: all 13 checks passed (SIMULATED TEE)" in proc.stdout
    assert "-> rejected, as it must be" in proc.stdout
    assert "SIMULATED ENCLAVE" in proc.stdout
    return out


def test_demo_writes_keystores_bundle_and_result(demo_dir: Path) -> None:
    assert (demo_dir / "amiller" / "keystore.json").exists() or any(
        (demo_dir / "amiller").iterdir()
    )
    result = json.loads((demo_dir / "result.json").read_text())
    assert result["type"] == "sealroom.released-output"


def test_demo_refuses_a_non_empty_directory(demo_dir: Path) -> None:
    res = runner.invoke(app, ["demo", "--dir", str(demo_dir)])
    assert res.exit_code == 2
    assert "is not empty" in res.output


def test_verify_requires_explicit_simulation(demo_dir: Path) -> None:
    res = runner.invoke(app, ["verify", str(demo_dir / "bundle.json")])
    assert res.exit_code == 1
    assert "FAIL  TEE evidence" in res.output
    assert "--allow-simulated" in res.output
    assert "NOT VERIFIED: 1 of 12 checks failed." in res.output


def test_verify_passes_with_simulation_allowed_and_result(demo_dir: Path) -> None:
    res = runner.invoke(
        app,
        [
            "verify",
            str(demo_dir / "bundle.json"),
            "--allow-simulated",
            "--result",
            str(demo_dir / "result.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "VERIFIED (simulated TEE): all 13 checks passed." in res.output
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
