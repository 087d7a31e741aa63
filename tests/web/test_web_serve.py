"""`sealroom serve` (a real process) serves the public pages next to the API, and its
verifier page pre-fills the deployment's log key and the simulation root it admits."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.cli.test_cli_serve import _env, _serve
from tests.services import SIMULATION_ROOT
from tests.transparency.witness_helpers import free_port


def test_sealroom_serve_serves_the_public_pages(tmp_path: Path) -> None:
    tmp = tmp_path
    port = free_port()
    root = SIMULATION_ROOT.public_key.hex()
    args = ["--db", f"sqlite:///{tmp / 'c.db'}", "--port", str(port), "--simulation-root", root]
    process = _serve(args, tmp / "serve.log", _env(tmp))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp / "serve.log").read_text()
            try:
                home = httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the coordinator did not start in 60 s"
                time.sleep(0.1)
        assert home.status_code == 200
        assert home.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
        vkey = httpx.get(base + "/v1/log/key").json()["verifier_key"]
        verify = httpx.get(base + "/verify").text
        assert f'value="{vkey}"' in verify
        assert f'value="{root}"' in verify
        assert httpx.get(base + "/static/sealroom.css").status_code == 200
        assert httpx.get(base + "/v1/search").status_code == 200  # the API is unchanged
    finally:
        process.terminate()
        process.wait(30)
