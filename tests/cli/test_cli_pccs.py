"""``--pccs-url`` / ``$SEALROOM_PCCS_URL``: where an owner's live enclave checks get collateral."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from tests.services import coordinator

runner = CliRunner()


@pytest.mark.parametrize("command", ["inbox", "approve", "watch", "ui", "mcp"])
def test_every_command_that_checks_evidence_live_takes_a_pccs(command: str) -> None:
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.stdout
    assert "--pccs-url" in res.stdout
    assert "SEALROOM_PCCS_URL" in res.stdout


def test_a_malformed_pccs_url_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {"SEALROOM_HOME": str(tmp_path / "alice"), "SEALROOM_URL": url}
        res = runner.invoke(app, ["init", "--unencrypted-keystore", "--name", "alice"], env=env)
        assert res.exit_code == 0, res.stdout + res.stderr
        bad = runner.invoke(app, ["inbox", "--pccs-url", "pccs.example", "--json"], env=env)
        assert bad.exit_code == ExitCode.ERROR
        assert "PCCS URL must be an http(s) URL" in bad.stdout + bad.stderr
        from_env = runner.invoke(app, ["inbox", "--json"], env={**env, "SEALROOM_PCCS_URL": "x"})
        assert from_env.exit_code == ExitCode.ERROR
        assert "PCCS URL" in from_env.stdout + from_env.stderr
        # A well-formed PCCS is asked only when evidence is checked: an empty inbox is fine.
        good = runner.invoke(app, ["inbox", "--pccs-url", "http://127.0.0.1:9", "--json"], env=env)
        assert good.exit_code == ExitCode.OK, good.stdout + good.stderr
        assert json.loads(good.stdout)["items"] == []
