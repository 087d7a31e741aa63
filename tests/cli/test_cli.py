from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest
from typer.testing import CliRunner

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.statements import Receipt, ReleasedOutput
from sealroom.verification.bundle import ProofBundle
from tests.verification.scenario import build_job

runner = CliRunner()


BUNDLES = (
    "overlap-cloudmolty",
    "overlap-amiller",
    "gap-newbiemolty",
    "lift-course",
    "stats-analyst",
    "stats-dp-analyst",
    "sql-analyst",
)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's first command, as a real process (it starts its own coordinator and enclave).

    It runs once per session: the tests only read what it left. Work stealing may split this
    module's tests across xdist workers, so the workers share one run through a directory
    beside their own temporary ones, under a lock (the first runs the demo, the others wait
    and read it).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's, common to its workers
    shared = base / "demo-shared"
    shared.mkdir(exist_ok=True)
    done = shared / "done.json"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out = shared / f"run-{os.getpid()}"
            proc = subprocess.run(
                [sys.executable, "-m", "sealroom.cli", "demo", "--out", str(out)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            done.write_text(json.dumps({"out": str(out), "stdout": proc.stdout}))
    run = json.loads(done.read_text())
    return Path(run["out"]), run["stdout"]


def test_demo_runs_the_whole_scenario(demo_out: tuple[Path, str]) -> None:
    _, stdout = demo_out
    assert "SIMULATED ENCLAVE" in stdout
    assert "the card CloudMolty sees" in stdout
    assert "POST /v1/compute/keyword-overlap" in stdout
    assert stdout.count("the policy approves topic-overlap 2.2.0 automatically") == 2
    assert "only if at least 5 distinct" in stdout
    assert "approved by hand (manual)" in stdout
    assert stdout.count("... completed") == 6  # two jobs in act one, four in act two
    assert "CloudMolty and amiller received the same overlap result" in stdout
    assert "NewbieMolty asking for the overlap result gets: not found [not_found]" in stdout
    assert "-> rejected, as it must be" in stdout
    # Act five runs through to the arbiter's refund and the audit of every balance.
    assert "pledges 200: Curator 20, Seller 108, Archive 72" in stdout
    assert "the arbiter upholds it and refunds 20" in stdout
    assert "L. audit: all 9 transfers recomputed from the log" in stdout
    assert "coordinator and enclave stopped" in stdout


def test_demo_act_three_matches_the_plaintext(demo_out: tuple[Path, str]) -> None:
    """The no-trust act: every protocol's answer equals the same computation in the clear."""
    _, stdout = demo_out
    overlap = re.search(
        r": (\d+) in common, Jaccard [0-9.]+ \(plaintext check: (\d+) in common\)", stdout
    )
    assert overlap is not None
    assert overlap.group(1) == overlap.group(2)
    assert "both stop with: below threshold" in stdout
    pjc = re.search(
        r"Analyst learns: (\d+) common records, (\d+) visits \(plaintext check: (\d+), (\d+)\)",
        stdout,
    )
    assert pjc is not None
    assert (pjc.group(1), pjc.group(2)) == (pjc.group(3), pjc.group(4))
    fed = re.search(r"pooled rows: largest difference ([0-9.e+-]+)", stdout)
    assert fed is not None
    assert float(fed.group(1)) < 1e-5
    enc = re.search(r"plaintext differs by at most ([0-9.e+-]+)", stdout)
    assert enc is not None
    assert float(enc.group(1)) < 1e-6
    assert stdout.count("every party holds the same verified set") == 4


def test_demo_act_two_shows_the_refusals(demo_out: tuple[Path, str]) -> None:
    _, stdout = demo_out
    act_two = stdout[stdout.index("ACT TWO") :]
    assert "datasets bundled with statsmodels" in act_two
    # The differencing SQL is outside the grammar (an identity column in WHERE): refused at
    # request time on the attested schema, naming the rule; it never reaches an owner.
    assert "refused at once, before any owner was asked" in act_two
    assert "rule identity-columns: a.record is an identity column" in " ".join(act_two.split())
    assert "rejected (never reached an owner or the enclave)" in act_two
    # The repeated DP request is refused by the enclave's ledger at the budget step.
    assert "Analyst asks for the DP statistics again: failed" in act_two
    assert "budget: dataset sha256:" in act_two
    assert "per-requester epsilon budget 1.5 has 0.5 left; this run needs 1" in act_two
    assert (
        "epsilon 1 delta 0.000001 on PlanNorth, epsilon 1 delta 0.000001 on PlanCentral" in act_two
    )
    assert "groups appear only if their noisy count reaches" in act_two
    assert act_two.count("VERIFIED (14 checks, simulated=True)") == 4


def _body(out: Path, name: str) -> Any:
    return json.loads(ReleasedOutput.from_json((out / name / "result.json").read_bytes()).body)


def _receipt(out: Path, name: str) -> Receipt:
    bundle = ProofBundle.from_json((out / name / "bundle.json").read_bytes())
    return bundle.receipt.open(Receipt).statement


def test_demo_lift_matches_statsmodels(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    body = _body(out, "lift-course")
    data = sm.datasets.spector.load_pandas().data
    psi, grade = data["PSI"].to_numpy() == 1, data["GRADE"].to_numpy() == 1
    count = np.array([grade[psi].sum(), grade[~psi].sum()])
    nobs = np.array([psi.sum(), (~psi).sum()])
    z, p = proportions_ztest(count, nobs)
    assert (body["test"]["n"], body["test"]["conversions"]) == (14, 8)
    assert (body["control"]["n"], body["control"]["conversions"]) == (18, 3)
    assert float(body["absolute_lift"]) == pytest.approx(8 / 14 - 3 / 18, rel=1e-9)
    assert float(body["z"]) == pytest.approx(z, rel=1e-9)
    assert float(body["p_value"]) == pytest.approx(p, rel=1e-9)
    receipt = _receipt(out, "lift-course")
    assert [(d.k, d.entity_column, d.automatic) for d in receipt.decisions] == [
        (3, "student", True),
        (3, "student", True),
    ]
    assert all(c.epsilon == "0" for c in receipt.privacy_spent)


def _rand_health() -> tuple[np.ndarray, np.ndarray]:
    rand = sm.datasets.randhie.load_pandas().data
    health = np.select(
        [rand["hlthp"] == 1, rand["hlthf"] == 1, rand["hlthg"] == 1],
        ["poor", "fair", "good"],
        default="excellent",
    )
    return health, rand["mdvis"].to_numpy()


def test_demo_aggregate_stats_match_numpy(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    health, visits = _rand_health()
    body = _body(out, "stats-analyst")
    groups = {g["key"][0]: g["stats"] for g in body["groups"]}
    # poor: 302 records in all, but one plan holds fewer than k = 50 of them.
    assert set(groups) == {"excellent", "fair", "good"}
    assert body["suppressed_groups"] == 1
    for label, s in groups.items():
        v = visits[health == label]
        lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        assert s["rows"] == s["entities"] == len(v)
        assert float(s["mean"]) == pytest.approx(v.mean(), rel=1e-9)
        assert float(s["ci_low"]) == pytest.approx(lo, rel=1e-9)
        assert float(s["ci_high"]) == pytest.approx(hi, rel=1e-9)
        assert float(s["percentiles"][0]["value"]) == pytest.approx(np.percentile(v, 50))
    released = visits[health != "poor"]  # totals over released groups only
    assert body["overall"]["rows"] == len(released)
    assert float(body["overall"]["mean"]) == pytest.approx(released.mean(), rel=1e-9)
    receipt = _receipt(out, "stats-analyst")
    assert {(d.k, d.entity_column) for d in receipt.decisions} == {(50, "record")}
    assert len(receipt.decisions) == 3


def test_demo_dp_stats_charge_the_budget(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    body = _body(out, "stats-dp-analyst")
    assert body["dp"]["epsilon"] == "1"
    assert body["dp"]["delta"] == "0.000001"
    assert body["dp"]["epsilon_per_statistic"] == "0.3333333333333333333333333333"
    assert body["dp"]["statistics"] == ["count", "sum", "p50"]
    # Group presence is DP: poor (about 300 records) clears the threshold; nothing is
    # suppressed, and no exact count, entity count or interval is released.
    assert {g["key"][0] for g in body["groups"]} == {"excellent", "fair", "good", "poor"}
    assert body["suppressed_groups"] is None
    assert all(g["stats"]["entities"] is None for g in body["groups"])
    assert all(g["stats"]["ci_low"] is None for g in body["groups"])
    receipt = _receipt(out, "stats-dp-analyst")
    assert [(c.epsilon, c.delta) for c in receipt.privacy_spent] == [("1", "0.000001")] * 3
    assert {c.dataset for c in receipt.privacy_spent} == {i.dataset for i in receipt.inputs}
    assert all(d.epsilon == "1" for d in receipt.decisions)


def test_demo_sql_matches_the_plaintext_query(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    health, visits = _rand_health()
    n = len(health)
    h, v = health[n // 3 : 2 * n // 3], visits[n // 3 : 2 * n // 3]  # PlanCentral's third
    body = _body(out, "sql-analyst")
    assert body["columns"] == ["health", "records", "mean_visits"]
    expected = [
        (label, int((h == label).sum()), float(v[h == label].mean()))
        for label in sorted(set(h.tolist()))
        if (h == label).sum() >= 50
    ]
    assert [r[0] for r in body["rows"]] == [e[0] for e in expected]
    for row, (_, count, mean) in zip(body["rows"], expected, strict=True):
        assert row[1] == count
        assert float(row[2]) == pytest.approx(mean, rel=1e-9)
    assert "suppressed_groups" not in body  # poor (42 records < k = 50) leaves no trace
    assert "identity-columns" in body["rules_checked"]
    assert (
        "entity-threshold: a k=50 (distinct record) behind every aggregate"
        in (body["rules_checked"])
    )


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
    assert res.exit_code == ExitCode.VERIFICATION_FAILED
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
    assert res.exit_code == ExitCode.VERIFICATION_FAILED
    assert "FAIL  log checkpoint" in res.output


def test_verify_bad_inputs(tmp_path: Path) -> None:
    res = runner.invoke(app, ["verify", str(tmp_path / "missing.json")])
    assert res.exit_code == 2
    assert "cannot read bundle" in res.output
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00not json")
    res = runner.invoke(app, ["verify", str(garbage)])
    assert res.exit_code == ExitCode.VERIFICATION_FAILED
    assert "FAIL  bundle format" in res.output
    huge = tmp_path / "huge.json"
    huge.write_text('{"version": ' + "9" * 5000 + "}")
    res = runner.invoke(app, ["verify", str(huge)])
    assert res.exit_code == ExitCode.VERIFICATION_FAILED, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "FAIL  bundle format" in res.output
    assert "integer of 5000 digits" in res.output
    assert "Traceback" not in res.output
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
    res = runner.invoke(
        app,
        ["init", "--unencrypted-keystore", "--name", "amiller"],
        env={"SEALROOM_HOME": str(home)},
    )
    assert res.exit_code == 0, res.output
    assert "party id: sr1" in res.output
    again = runner.invoke(
        app, ["init", "--unencrypted-keystore", "--name", "amiller", "--home", str(home)]
    )
    assert again.exit_code == 1
    assert "keystore" in again.output
