"""`sealroom version`, `whoami` and `--help` load typer and the standard library only (rich for
help), build only the command named, and coerce parameters without pydantic (bench/bench_cli.py
measures the time); constants repeated to keep it so stay equal to their sources; the narrowed
command tree answers exactly as the full one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from sealroom.attestation import pins
from sealroom.cli import common, protocols, services
from sealroom.cli.main import app
from sealroom.client.http import DEFAULT_URL
from sealroom.crypto.keystore import HOME_ENV
from sealroom.protocols.channel import DEFAULT_TIMEOUT

# (typer would load pydantic for its parameter coercion: sealroom.cli.fastparams.)
HEAVY = ("sealroom.client", "sealroom.crypto", "sealroom.statements", "sealroom.computations")
HEAVY += ("pyarrow", "numpy", "cryptography", "httpx", "sqlalchemy", "duckdb", "pydantic")
HEAVY += ("sealroom.wire", "sealroom.protocols", "opendp", "polars", "scipy", "uvicorn")


def test_repeated_constants_match_their_sources() -> None:
    assert common.DEFAULT_URL == DEFAULT_URL
    assert services.HOME_ENV == HOME_ENV
    assert services.DEFAULT_MAX_EVIDENCE_AGE == pins.DEFAULT_MAX_EVIDENCE_AGE
    assert protocols.DEFAULT_TIMEOUT == DEFAULT_TIMEOUT


def _loaded_by(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    probe = (
        "import sys, json\n"
        "from sealroom.cli.main import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_simple_commands_import_nothing_heavy() -> None:
    for args in (["version"], ["version", "--json"], ["--help"], ["status", "--json"]):
        loaded = _loaded_by(args)
        heavy = sorted(m for m in loaded for h in HEAVY if m == h or m.startswith(h + "."))
        assert heavy == [], (args, heavy)
    # typer formats help with rich; a command that prints no help does not load it
    assert "rich" not in _loaded_by(["version", "--json"])


def test_whoami_reads_the_keystore_without_pydantic_or_the_sdk(tmp_path: Path) -> None:
    env = {**os.environ, "SEALROOM_HOME": str(tmp_path)}
    init = [sys.executable, "-m", "sealroom.cli", "init", "--name", "a", "--unencrypted-keystore"]
    subprocess.run(init, check=True, capture_output=True, env=env, timeout=120)
    loaded = _loaded_by(["whoami", "--json"], env)
    assert "sealroom.crypto.keystore" in loaded  # it did run
    allowed = ("sealroom.crypto", "cryptography")  # reading a keystore needs these two
    heavy = sorted(
        m
        for m in loaded
        for h in HEAVY
        if (m == h or m.startswith(h + ".")) and not m.startswith(allowed)
    )
    assert heavy == [], heavy


def _answer(run: typer.core.TyperGroup | typer.Typer, args: list[str]) -> tuple[str, int]:
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            run(args, prog_name="sealroom")  # type: ignore[operator]
        except SystemExit as exc:
            code = int(exc.code or 0)
    return out.getvalue(), code


def _names() -> list[str]:
    full = typer.main.get_command(app)
    assert isinstance(full, typer.core.TyperGroup)
    return sorted(full.commands)


@pytest.fixture
def fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERM", "dumb")


@pytest.mark.usefixtures("fixed_width")
def test_the_narrowed_tree_answers_as_the_full_one() -> None:
    """Every command's help, the root's help, usage errors and an unknown command: the same
    text and exit code from the command built alone as from typer's whole tree."""
    lines = [["--help"], [], ["versio"], ["version", "--bogus"], ["version", "--json", "x"]]
    lines += [[name, "--help"] for name in _names()]
    lines += [["keys", "show", "--help"], ["keys"], ["dataset", "nope"], ["--json", "version"]]
    # The whole tree is built once (building it is most of this test's time) and answers every
    # line, as a click group does; the narrowed one is built anew by each call of ``app``.
    full = typer.main.get_command(app)
    for args in lines:
        assert _answer(app, args) == _answer(full, args), args


def test_the_root_help_lists_every_command() -> None:
    text, code = _answer(app, ["--help"])
    assert code == 0
    for name in _names():
        assert name in text, name
