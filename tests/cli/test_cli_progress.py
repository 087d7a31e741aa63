"""Progress on long steps: drawn on stderr only when stderr is a terminal (a real pty here) and
neither --json nor --no-progress is given; stdout is the same with or without it.

The commands under test run as real processes (a pty is a process's stderr); the steps that
only set their scene up (publish, request, approve, reject) run in-process."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sealroom.cli.main import app
from tests.cli.test_cli_protocols import _env, _party_id, _write_csv
from tests.client.client_world import TOPICS_A, TOPICS_B, write_jsonl
from tests.services import coordinator

CLI = (sys.executable, "-m", "sealroom.cli")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _tty_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TERM": "xterm-256color", "COLUMNS": "120"}


def _start(
    args: list[str], env: dict[str, str], *, tty: bool
) -> tuple[subprocess.Popen[bytes], list[bytes], threading.Thread | None]:
    """Start a CLI process with stderr on a pty (read by a thread) or a pipe."""
    if not tty:
        proc = subprocess.Popen(
            [*CLI, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        return proc, [], None
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *args],
        env=_tty_env(env),
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def pump() -> None:
        try:
            while data := os.read(master, 65536):
                chunks.append(data)
        except OSError:  # EIO once the process has closed the pty
            pass
        finally:
            os.close(master)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return proc, chunks, reader


def _finish(
    started: tuple[subprocess.Popen[bytes], list[bytes], threading.Thread | None],
    timeout: float = 240,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr with terminal control sequences removed)."""
    proc, chunks, reader = started
    out, err = proc.communicate(timeout=timeout)
    if reader is not None:
        reader.join(timeout=30)
        err = b"".join(chunks)
    return proc.returncode, out.decode(), ANSI.sub("", (err or b"").decode(errors="replace"))


def _run(args: list[str], env: dict[str, str], *, tty: bool) -> tuple[int, str, str]:
    return _finish(_start(args, env, tty=tty))


def _setup(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A scene-setting step, in-process (its output is not what the test checks): its JSON."""
    done = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert done.exit_code == 0, done.output
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_status_wait_shows_progress_only_at_a_terminal(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        a = _setup(["dataset", "publish", str(write_jsonl(tmp_path / "a.jsonl", TOPICS_A))], alice)
        b = _setup(["dataset", "publish", str(write_jsonl(tmp_path / "b.jsonl", TOPICS_B))], bob)
        ask = ["request", "topic-overlap", "--dataset", a["dataset"], "--dataset", b["dataset"]]
        req = _setup(ask, bob)["request"]
        _setup(["reject", req, "--reason", "not now"], alice)
        wait = ["status", req, "--wait", "--timeout", "30"]

        code, out, err = _run(wait, bob, tty=True)
        assert code == 4, err  # rejected
        assert f"request {req}" in err
        assert "rejected" in err
        assert "... rejected" not in err  # the live line, not the plain one
        piped = _run(wait, bob, tty=False)
        assert piped[0] == 4
        assert piped[1] == out  # stdout is the same with or without a terminal
        assert f"request {req}" not in piped[2]
        assert "... rejected" in piped[2]

        quiet = _run([*wait, "--no-progress"], bob, tty=True)
        assert quiet[0] == 4
        assert quiet[1] == out
        assert f"request {req}" not in quiet[2]
        assert "rejected" not in quiet[2]

        as_json = _run([*wait, "--json"], bob, tty=True)
        json_piped = _run([*wait, "--json"], bob, tty=False)
        assert as_json[0] == json_piped[0] == 4
        assert as_json[1] == json_piped[1]
        assert json.loads(as_json[1])["status"] == "rejected"
        assert f"request {req}" not in as_json[2]


def test_psi_shows_its_traffic_at_a_terminal_and_json_stays_clean(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a.csv", ["email"], [[f"u{i}@example.org"] for i in range(0, 300)])
    _write_csv(tmp_path / "b.csv", ["email"], [[f"u{i}@example.org"] for i in range(200, 450)])
    with coordinator(tmp_path) as url:
        ea, eb = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        bob, alice = _party_id(tmp_path, "bob"), _party_id(tmp_path, "alice")
        common = ["--column", "email", "--timeout", "60"]
        starter = _start(
            ["psi", "--with", bob, "--data", str(tmp_path / "a.csv"), *common], ea, tty=True
        )
        joiner = _start(
            [
                "psi",
                "--join",
                "--with",
                alice,
                "--data",
                str(tmp_path / "b.csv"),
                *common,
                "--json",
            ],
            eb,
            tty=True,
        )
        code, out, err = _finish(starter)
        jcode, jout, jerr = _finish(joiner)
        assert code == 0, err
        assert jcode == 0, jerr
        # the person at a terminal sees the run's traffic on stderr, not on stdout
        assert "private set intersection" in err
        assert re.search(r"\d+ messages, \d+\.\d\d MiB exchanged", err), err
        assert "messages" not in out
        assert "intersection_size: 100" in out
        # --json at a terminal: one JSON document on stdout, no progress on stderr
        assert json.loads(jout)["learned"]["intersection_size"] == 100
        assert "private set intersection" not in jerr
        assert "exchanged" not in jerr


def test_result_shows_its_verification_steps_at_a_terminal(tmp_path: Path) -> None:
    from tests.services import registered_enclave

    with coordinator(tmp_path) as url:
        alice, bob = _env(tmp_path, url, "alice"), _env(tmp_path, url, "bob")
        a_file, b_file = (
            write_jsonl(tmp_path / "a.jsonl", TOPICS_A),
            write_jsonl(tmp_path / "b.jsonl", TOPICS_B),
        )
        a = _setup(["dataset", "publish", str(a_file)], alice)
        b = _setup(["dataset", "publish", str(b_file)], bob)
        ask = ["request", "topic-overlap", "--dataset", a["dataset"], "--dataset", b["dataset"]]
        rid = _setup(ask, bob)["request"]
        worker = registered_enclave(url)
        for env in (alice, bob):
            _setup(["approve", rid, "--allow-simulated"], env)
        assert worker.step().outcome == "completed"

        fetch = ["result", rid, "--allow-simulated", "--out"]
        code, out, err = _run([*fetch, str(tmp_path / "tty")], bob, tty=True)
        assert code == 0, err
        assert f"result of {rid}" in err
        assert "verified: " in err
        assert "checks passed" in err
        piped = _run([*fetch, str(tmp_path / "pipe")], bob, tty=False)
        assert piped[0] == 0
        assert f"result of {rid}" not in piped[2]
        # stdout is the same but for the directory it names
        assert piped[1].replace("pipe", "DIR") == out.replace("tty", "DIR")
        as_json = _run([*fetch, str(tmp_path / "j"), "--json"], bob, tty=True)
        assert as_json[0] == 0
        assert json.loads(as_json[1])["verified"] is True
        assert f"result of {rid}" not in as_json[2]
