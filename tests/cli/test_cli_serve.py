"""`sealroom serve` keeps its log key out of its database: a real process, its files on disk."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from sealroom.cli.main import app
from tests.transparency.witness_helpers import free_port


def _serve(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", "serve", *args], stdout=out, stderr=out, env=env
        )


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_")}
    env["SEALROOM_HOME"] = str(tmp_path / "home")
    return env


def test_serve_keeps_the_log_key_in_a_0600_file_beside_an_sqlite_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state" / "coordinator.db"
    port = free_port()
    process = _serve(
        ["--db", f"sqlite:///{db}", "--port", str(port)], tmp_path / "serve.log", _env(tmp_path)
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                key = httpx.get(f"http://127.0.0.1:{port}/v1/log/key", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the coordinator did not start in 60 s"
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
    key_file = tmp_path / "state" / "coordinator.db.keys" / "log-key.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    conn = sqlite3.connect(db)
    try:
        rows = dict(conn.execute("SELECT name, value FROM settings").fetchall())
    finally:
        conn.close()
    # Public keys only (the log's and the credits ledger's); their seeds stay in the keys dir.
    assert set(rows) == {"log_origin", "log_vkey", "ledger_vkey"}
    assert (key_file.parent / "ledger-key.json").stat().st_mode & 0o077 == 0
    assert bytes(rows["log_vkey"]).decode() == key["verifier_key"]


def test_serve_on_postgresql_needs_a_keys_directory(tmp_path: Path) -> None:
    # In-process: only the refusal is checked (the test above runs `serve` as a real process).
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SEALROOM_")}
    done = CliRunner().invoke(
        app,
        ["serve", "--db", "postgresql+psycopg://postgres@127.0.0.1:5432/test",
         "--port", str(free_port())],
        env={**unset, "SEALROOM_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    assert "--keys DIR" in done.stderr
    assert "never kept in the database" in done.stderr
