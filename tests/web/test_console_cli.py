"""``sealroom ui`` as a user runs it: a real process on 127.0.0.1 that prints its launch link."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sealroom.cli.exits import ExitCode, exit_code_for
from sealroom.client import Party
from sealroom.errors import KeystoreError
from tests.services import coordinator


def _other_addresses() -> set[str]:
    """This machine's non-loopback IPv4 addresses (none on a machine without a network)."""
    found = set()
    # TEST-NET-1: connecting a UDP socket picks the outgoing interface and sends nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))
        found.add(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return {a for a in found if not a.startswith("127.") and a != "0.0.0.0"}


def test_sealroom_ui_serves_loopback_behind_its_launch_link(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        Party.create(home=tmp_path / "ann", name="ann", url=url, unencrypted=True).close()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sealroom.cli",
                "ui",
                "--home",
                str(tmp_path / "ann"),
                "--url",
                url,
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert "sealroom console for ann" in proc.stdout.readline()
            link = proc.stdout.readline().strip()
            assert link.startswith("http://127.0.0.1:")
            base, _, token = link.partition("/launch?token=")
            assert len(token) >= 40
            with httpx.Client(base_url=base, timeout=30) as browser:
                for _ in range(100):
                    try:
                        refused = browser.get("/")
                        break
                    except httpx.ConnectError:  # printed just before uvicorn listens
                        time.sleep(0.1)
                assert refused.status_code == 403
                assert browser.get("/launch?token=" + token[:-2]).status_code == 403
                assert browser.get(f"/launch?token={token}").status_code == 303
                page = browser.get("/")
                assert page.status_code == 200
                assert "ann" in page.text
            # Nothing listens on the machine's other addresses.
            port = int(base.rsplit(":", 1)[1])
            for address in _other_addresses():
                with (
                    pytest.raises((ConnectionRefusedError, TimeoutError)),
                    socket.create_connection((address, port), timeout=2),
                ):
                    pass
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    # --json: the link as one JSON line (for agents and scripts).
    with coordinator(tmp_path / "again") as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sealroom.cli",
                "ui",
                "--home",
                str(tmp_path / "ann"),
                "--url",
                url,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            doc = json.loads(proc.stdout.readline())
            assert doc["party"] == "ann"
            assert doc["simulated"] is False
            assert doc["url"].startswith("http://127.0.0.1:")
            assert "/launch?token=" in doc["url"]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    # There is no way to listen on another address.
    usage = subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "ui", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == int(ExitCode.USAGE)


def test_sealroom_ui_without_a_keystore_says_so(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sealroom.cli",
                "ui",
                "--home",
                str(tmp_path / "none"),
                "--url",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == int(exit_code_for(KeystoreError())), done.stderr
    assert "keystore" in done.stderr
    assert "http://" not in done.stdout  # no link printed, nothing served
