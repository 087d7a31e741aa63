"""Schemathesis, with every check, against the live server's own OpenAPI document.

A real uvicorn server (as ``sealroom serve`` runs it) is fuzzed by the schemathesis
CLI twice: unsigned, and with every request signed by a registered party
(``schemathesis_hooks.py``, which also states the few constraints between values
that OpenAPI cannot). Every check must pass: no server errors, responses exactly
as documented (status, content type, schema, headers), schema-valid requests
accepted, schema-invalid ones refused, 405s with ``Allow``, credentials enforced.

Each run has the CLI's phases: the coverage phase (boundary and invalid values of every
parameter and body field, and the methods an operation does not allow, for every operation:
most of the cases), then the fuzzing phase with a fixed number of examples per operation
(a fixed seed, deterministic generation), then the stateful one. The fuzzing budget is
small to keep CI near a minute: every operation is still fuzzed in both runs. To run it longer:
``SEALROOM_FUZZ_EXAMPLES=200 SEALROOM_FUZZ_SEED=7 .venv/bin/python -m pytest
tests/api/test_api_schemathesis.py`` (any seed; failures print their ``curl``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.statements import sign_statement
from tests.api.api_helpers import Client, Clock, test_registry
from tests.api.schemathesis_hooks import FUZZER
from tests.helpers import attestation

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("SEALROOM_FUZZ_EXAMPLES", "4"))
SEED = int(os.environ.get("SEALROOM_FUZZ_SEED", "1"))
MIN_CASES = 1_000  # both runs together; a broken schema or hook would generate far fewer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The live server with the fuzzer registered and one dataset published: (URL, log size)."""
    db = tmp_path_factory.mktemp("schemathesis") / "c.db"
    app = create_app(db_url=f"sqlite:///{db}", registry=test_registry())  # the real clock
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        fuzzer = Client(http, FUZZER, Clock(int(time.time())))
        assert fuzzer.register("schemathesis").status_code == 201
        att = sign_statement(attestation(FUZZER, title="seeded"), FUZZER)
        r = fuzzer.call("POST", "/v1/datasets", {"attestation": att.envelope.to_dict()})
        assert r.status_code == 201, r.text
        yield url, int(http.get("/v1/log/checkpoint").text.splitlines()[1])


def _fuzz(url: str, log_size: int, workdir: Path, *, signed: bool) -> int:
    """Run the schemathesis CLI; return how many cases it generated (fails on any failure)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "SEALROOM_FUZZ_SIGNED": "1" if signed else "0",
        "SEALROOM_FUZZ_LOG_SIZE": str(log_size),
    }
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--generation-deterministic",
        "--workers", "1",
        "--no-color",
    ]  # fmt: skip
    # In a scratch directory: the CLI keeps a cache of what it found in its working directory.
    done = subprocess.run(
        command, env=env, cwd=workdir, capture_output=True, text=True, timeout=600
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-20_000:]
    generated = re.search(r"(\d+) generated", report)
    assert generated is not None, report[-5_000:]
    return int(generated.group(1))


def test_schemathesis_finds_nothing_unsigned_or_signed(
    server: tuple[str, int], tmp_path: Path
) -> None:
    url, log_size = server
    cases = _fuzz(url, log_size, tmp_path, signed=False)
    published = httpx.get(f"{url}/v1/datasets", params={"owner": FUZZER.party_id}).json()
    assert len(published["items"]) == 1  # unsigned, nothing was accepted
    cases += _fuzz(url, log_size, tmp_path, signed=True)
    published = httpx.get(f"{url}/v1/datasets", params={"owner": FUZZER.party_id}).json()
    assert len(published["items"]) > 1  # signed, generated publications reached the registry
    assert cases >= MIN_CASES
