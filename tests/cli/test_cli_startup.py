"""`sealroom version` and `--help` load typer and the standard library only (bench/bench_cli.py
measures the time); constants repeated to keep it so stay equal to their sources."""

from __future__ import annotations

import json
import subprocess
import sys

from sealroom.attestation import pins
from sealroom.cli import common, protocols, services
from sealroom.client.http import DEFAULT_URL
from sealroom.crypto.keystore import HOME_ENV
from sealroom.protocols.channel import DEFAULT_TIMEOUT

# (typer itself loads pydantic for its parameter coercion.)
HEAVY = ("sealroom.client", "sealroom.crypto", "sealroom.statements", "sealroom.computations")
HEAVY += ("pyarrow", "numpy", "cryptography", "httpx", "sqlalchemy", "duckdb")


def test_repeated_constants_match_their_sources() -> None:
    assert common.DEFAULT_URL == DEFAULT_URL
    assert services.HOME_ENV == HOME_ENV
    assert services.DEFAULT_MAX_EVIDENCE_AGE == pins.DEFAULT_MAX_EVIDENCE_AGE
    assert protocols.DEFAULT_TIMEOUT == DEFAULT_TIMEOUT


def _loaded_by(args: list[str]) -> set[str]:
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
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_simple_commands_import_nothing_heavy() -> None:
    for args in (["version"], ["version", "--json"], ["--help"], ["status", "--json"]):
        loaded = _loaded_by(args)
        heavy = sorted(m for m in loaded for h in HEAVY if m == h or m.startswith(h + "."))
        assert heavy == [], (args, heavy)
