"""The README's two commands are the project's contract with a fresh machine; keep them true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README must open with a sh code block"
    assert text.index("```sh") < text.index("\n## "), "the commands come before any section"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("sealroom demo")
    assert "pytest" in tests


def test_ci_runs_both_readme_commands_verbatim_demo_first() -> None:
    demo, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert demo in ci
    assert tests in ci
    # The demo runs first, in the fresh venv, before the test extras are installed.
    assert ci.index(demo) < ci.index(tests)


def test_readme_policy_example_is_a_valid_policy() -> None:
    import json

    from sealroom.policy import PolicyRules

    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Policies.*?```json\n(.*?)```", text, re.S)
    assert block, "the Policies section shows a policy file"
    rules = PolicyRules.parse(json.loads(block.group(1)))
    assert rules.k == 10
    assert rules.sql is not None
    assert rules.dp is not None


def test_readme_lists_every_shipped_computation() -> None:
    from sealroom.computations import default_registry

    text = (ROOT / "README.md").read_text()
    for computation in default_registry():
        assert f"| `{computation.id}` |" in text, computation.id


def readme_python() -> str:
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README shows the SDK in a python code block"
    return block.group(1)


def test_readme_python_example_runs_against_a_coordinator_and_an_enclave(
    tmp_path: Path,
    live_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The block as written, pointed at a live coordinator with a simulated enclave."""
    import json

    from sealroom.client.http import DEFAULT_URL
    from sealroom.statements import ReleasedOutput

    code = readme_python()
    assert code.count(f'"{DEFAULT_URL}"') == 1, "the example names the default coordinator once"
    monkeypatch.chdir(tmp_path)
    regions = ("north", "south", "east")
    with (tmp_path / "sales.csv").open("w") as f:
        f.write("customer,region,spend\n")
        for i in range(30):
            f.write(f"c{i},{regions[i % 3]},{10 + i}\n")

    monkeypatch.setenv("SEALROOM_PASSPHRASE", "readme example passphrase")
    exec(compile(code.replace(f'"{DEFAULT_URL}"', repr(live_url)), "README.md", "exec"), {})

    printed = capsys.readouterr().out
    assert "verified by" in printed
    output = ReleasedOutput.from_json((tmp_path / "result" / "result.json").read_bytes())
    body = json.loads(output.body)
    by_region = {row[0]: row[1] for row in body["rows"]}
    assert by_region == {"east": 10, "north": 10, "south": 10}
    assert (tmp_path / "result" / "bundle.json").is_file()
    from sealroom.crypto.keystore import Keystore

    assert Keystore.load_public(tmp_path / "keys" / "shop").protection == "argon2id-aes256gcm"


def readme_owner_quick_start() -> str:
    blocks = re.findall(
        r"```sh\n(# owner quick start\n.*?)```", (ROOT / "README.md").read_text(), re.S
    )
    assert len(blocks) == 1, "the README has one owner quick start block"
    return str(blocks[0])


def test_readme_owner_quick_start_runs_and_serves_a_requester(
    tmp_path: Path, live_url: str
) -> None:
    """The owner's block as written (URL aside) in a shell; an analyst asks, `watch` approves
    by policy and seals, the enclave releases DP statistics the analyst verifies."""
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    from sealroom.client import Party
    from sealroom.client.http import DEFAULT_URL

    script = readme_owner_quick_start()
    assert script.count(DEFAULT_URL) == 1
    with (tmp_path / "visits.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient", "age_band", "cost"])
        w.writerows(
            [f"p{i}", ("18-39", "40-64", "65+")[i % 3], 100 + (i * 37) % 900] for i in range(300)
        )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for var in ("SEALROOM_HOME", "SEALROOM_URL", "SEALROOM_PASSPHRASE", "SEALROOM_PASSPHRASE_FILE"):
        env.pop(var, None)
    log = (tmp_path / "owner.log").open("wb")
    owner = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script.replace(DEFAULT_URL, live_url)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with Party.create(
            home=tmp_path / "analyst", name="analyst", url=live_url, unencrypted=True
        ) as analyst:
            deadline = time.monotonic() + 120
            while not (found := analyst.search("clinic visits").items):
                assert owner.poll() is None, (tmp_path / "owner.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "owner.log").read_text()
                time.sleep(0.5)
            dataset = found[0].dataset.dataset
            sql = "SELECT age_band, COUNT(*) AS n, AVG(cost) AS mean_cost FROM a GROUP BY age_band"
            dp = {"epsilon": "1", "delta": "0.000001", "bounds": {"a.cost": ["0", "1000"]}}
            asked = analyst.request("sql-aggregate", [dataset], {"sql": sql, "dp": dp})
            done = analyst.wait(asked.request, timeout=120)
            assert done.status == "completed", (
                done.status_reason,
                (tmp_path / "owner.log").read_text(),
            )
            result = analyst.result(asked.request, tmp_path / "result", allow_simulated=True)
            assert result.report.checks
            assert {row[0] for row in result.body["rows"]} <= {"18-39", "40-64", "65+"}
            assert (tmp_path / "clinic.pass").stat().st_mode & 0o077 == 0
    finally:
        os.killpg(owner.pid, signal.SIGTERM)
        owner.wait(timeout=30)
        log.close()
