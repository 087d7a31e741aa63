"""`sealroom app-compose`, `sealroom measurements`, `sealroom probe` and `serve --prepare`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sealroom.attestation.app_compose import AppCompose, mr_config_id_v1
from sealroom.cli.deploy import enclave_app_compose
from sealroom.cli.main import app
from sealroom.verification.trust import parse_measurements
from tests.services import coordinator

IMAGE = "ghcr.io/example/sealroom@sha256:" + "cd" * 32
MR = {"mrtd": "aa" * 48, "rtmr0": "bb" * 48, "rtmr1": "cc" * 48, "rtmr2": "dd" * 48}


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def compose_file(tmp_path: Path) -> Path:
    path = tmp_path / "app-compose.json"
    code, out, err = _invoke("app-compose", "--image", IMAGE, "--out", str(path))
    assert code == 0, err
    assert out == ""
    assert path.read_bytes() == enclave_app_compose(IMAGE)
    return path


def test_measurements_writes_what_verifiers_load(compose_file: Path, tmp_path: Path) -> None:
    mr = tmp_path / "mr.json"
    mr.write_text(json.dumps({k: "0x" + v.upper() for k, v in MR.items()}))
    code, out, err = _invoke("measurements", str(compose_file), "--os-measurements", str(mr))
    assert code == 0, err
    digest = AppCompose.parse(compose_file.read_bytes()).compose_hash
    doc = json.loads(out)
    assert doc == {
        "compose_hash": [digest.hex()],
        "mr_config_id": [mr_config_id_v1(digest).hex(), "00" * 48],
        **{k: [v] for k, v in MR.items()},
    }
    policy = parse_measurements(out.encode())
    assert policy.measurements.compose_hash == {digest.hex()}
    assert f"compose hash {digest.hex()}" in err
    assert "RTMR3 event compose-hash" in err
    assert "app-id: assigned by the KMS" in err
    assert "no --os-measurements" not in err


def test_measurements_without_os_values_says_nothing_will_verify(compose_file: Path) -> None:
    code, out, err = _invoke("measurements", str(compose_file), "--config-id", "v1")
    assert code == 0, err
    assert set(json.loads(out)) == {"compose_hash", "mr_config_id"}
    assert len(json.loads(out)["mr_config_id"]) == 1
    assert "verifiers accept no evidence (fail closed)" in err


def test_measurements_merges_a_previous_release_and_writes_0600(
    compose_file: Path, tmp_path: Path
) -> None:
    previous = tmp_path / "allowlist.json"
    old = {"compose_hash": ["11" * 32], "mrtd": ["22" * 48], "accepted_tcb_statuses": ["UpToDate"]}
    previous.write_text(json.dumps(old))
    code, _, err = _invoke(
        "measurements", str(compose_file), "--merge", str(previous), "--out", str(previous)
    )
    assert code == 0, err
    merged = json.loads(previous.read_text())
    digest = AppCompose.parse(compose_file.read_bytes()).compose_hash.hex()
    assert merged["compose_hash"] == ["11" * 32, digest]
    assert merged["mrtd"] == ["22" * 48]
    assert merged["accepted_tcb_statuses"] == ["UpToDate"]
    assert stat.S_IMODE(previous.stat().st_mode) == 0o600
    parse_measurements(previous.read_bytes())


def test_measurements_refuses_tags_unless_told_it_is_unsafe(tmp_path: Path) -> None:
    doc = {
        "manifest_version": 2,
        "name": "x",
        "runner": "docker-compose",
        "docker_compose_file": "services:\n  a:\n    image: sealroom:latest\n",
    }
    path = tmp_path / "tagged.json"
    path.write_text(json.dumps(doc, indent=2))
    code, out, err = _invoke("measurements", str(path))
    assert code == 1
    assert out == ""
    assert "'sealroom:latest' is not named by digest" in err
    code, out, err = _invoke("measurements", str(path), "--unsafe-allow-tags")
    assert code == 0, err
    assert "UNSAFE: images named by tag are not pinned: sealroom:latest" in err
    assert "not in dstack's normalized form" in err  # indented: the SDK would hash otherwise


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"mrtd": "aa"}', "rtmr0 must be a hex string"),
        (json.dumps({**MR, "rtmr1": "ab"}), "rtmr1"),
    ],
)
def test_bad_os_measurements_are_refused(
    compose_file: Path, tmp_path: Path, content: str, message: str
) -> None:
    mr = tmp_path / "mr.json"
    mr.write_text(content)
    code, out, err = _invoke("measurements", str(compose_file), "--os-measurements", str(mr))
    assert code == 1
    assert out == ""
    assert message in err


def test_measurements_of_a_missing_or_bad_file(tmp_path: Path) -> None:
    code, _, err = _invoke("measurements", str(tmp_path / "absent.json"))
    assert code == 1
    assert "cannot read app compose" in err
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    code, _, err = _invoke("measurements", str(tmp_path / "bad.json"))
    assert code == 1
    assert "missing 'manifest_version'" in err


def test_probe_and_prepare_against_a_real_coordinator(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, out, err = _invoke("serve", "--prepare", "--db", db)
    assert code == 0, err
    vkey = out.strip()
    assert vkey.startswith("sealroom.local/log+")
    with coordinator(tmp_path, db_url=db) as url:
        # The coordinator serving this database signs with the key --prepare printed.
        assert httpx.get(f"{url}/v1/log/key").json()["verifier_key"] == vkey
        code, out, err = _invoke("probe", f"{url}/readyz")
        assert code == 0, err
        assert out == f"{url}/readyz: 200\n"
        code, _, err = _invoke("probe", f"{url}/no-such-path")
        assert code == 1
        assert "404" in err
    code, _, err = _invoke("probe", f"{url}/healthz", "--timeout", "1")
    assert code == 1
    assert "ConnectError" in err


def test_prepare_refuses_another_origin_for_the_same_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert _invoke("serve", "--prepare", "--db", db)[0] == 0
    code, _, err = _invoke("serve", "--prepare", "--db", db, "--log-origin", "other.test/log")
    assert code == 1
    assert "a log cannot change its origin" in err


def test_probe_of_a_bad_url_and_prepare_of_an_unreachable_database(tmp_path: Path) -> None:
    code, _, err = _invoke("probe", "not a url")
    assert code == 1
    assert err.startswith("not a url: ")
    code, _, err = _invoke("serve", "--prepare", "--db", "postgresql+psycopg://u@127.0.0.1:1/x")
    assert code == 1
    assert "database: OperationalError [backend_unavailable]" in err


def test_the_console_script_probes_without_loading_the_cli(tmp_path: Path) -> None:
    """Healthchecks run every few seconds: `sealroom probe` must not import the whole CLI."""
    code = (
        "import sys\n"
        "from sealroom.cli import entry\n"
        "sys.argv = ['sealroom', 'probe', 'http://127.0.0.1:1/healthz', '--timeout', '1']\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'sealroom.cli.main' in sys.modules, 'opendp' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["1", "False", "False"], done.stderr
    assert "http://127.0.0.1:1/healthz: ConnectError" in done.stderr
