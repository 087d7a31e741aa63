"""`sealroom serve` and `sealroom enclave` as real processes: admission is configured, or
nothing is admitted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sealroom.attestation.simulated import SimulationRoot
from sealroom.cli.exits import ExitCode
from sealroom.cli.services import load_simulation_root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[tuple[str, Path]]:
    """``sealroom serve`` on a free port until the block ends: its URL and its log."""
    port = _free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", "serve", "--port", str(port),
             "--db", f"sqlite:///{tmp_path / f'c{port}.db'}", *args],
            stdout=out, stderr=subprocess.STDOUT, env=_env(),
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield url, log
        finally:
            proc.terminate()
            proc.wait(10)


def enclave_once(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "enclave", "--url", url, "--once",
         "--wait-for-coordinator", "30", *args],
        capture_output=True, text=True, env=_env(), timeout=120, check=False,
    )  # fmt: skip


def test_a_coordinator_without_admission_says_so_and_admits_nothing(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, log):
        done = enclave_once(url)
        assert done.returncode == ExitCode.POLICY_DENIED, done.stderr
        assert "admits no enclave" in done.stderr
        assert "[policy_denied]" in done.stderr
        assert httpx.get(f"{url}/v1/enclaves").json()["enclaves"] == []
    assert "no enclave admission policy" in log.read_text()


def test_the_pinned_simulation_root_is_admitted_and_no_other(tmp_path: Path) -> None:
    seed = tmp_path / "root.seed"
    root = load_simulation_root(seed)  # created 0600, as `sealroom enclave` creates it
    assert seed.stat().st_mode & 0o777 == 0o600
    assert load_simulation_root(seed).public_key == root.public_key
    with serving(tmp_path, "--simulation-root", root.public_key.hex()) as (url, _):
        done = enclave_once(url, "--simulation-root-seed", str(seed), "--json")
        assert done.returncode == 0, done.stderr
        assert root.public_key.hex() in done.stderr
        assert '"outcome": "idle"' in done.stdout
        other = tmp_path / "other.seed"
        other.write_text(SimulationRoot.generate().private_bytes().hex())
        refused = enclave_once(url, "--simulation-root-seed", str(other))
        assert refused.returncode == ExitCode.POLICY_DENIED
        assert "enclave admission refused: rule enclave" in refused.stderr
        listed = httpx.get(f"{url}/v1/enclaves").json()["enclaves"]
        assert len(listed) == 1
