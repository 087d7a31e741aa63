"""Logs, forks and submissions for the witness tests (in process and over HTTP)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sealroom.transparency.checkpoint import Checkpoint, NoteSigner, split_note
from sealroom.transparency.cosignature import Cosigner
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.transparency.witness import AddCheckpoint

ORIGIN = "sealroom.test/log"
LOG_KEY = NoteSigner.from_seed(ORIGIN, b"\x11" * 32)


def cosigner(name: str = "witness.test/w1") -> Cosigner:
    return Cosigner.from_seed(name, hashlib.sha256(b"witness:" + name.encode()).digest())


def log_of(entries: Sequence[bytes]) -> TransparencyLog:
    log = TransparencyLog(MemoryLogStore())
    if entries:
        log.append_many(list(entries))
    return log


def entries(n: int, tag: bytes = b"e") -> list[bytes]:
    return [tag + b"%d" % i for i in range(n)]


def forks(shared: int, a: int, b: int) -> tuple[TransparencyLog, TransparencyLog]:
    """Two logs, both signed with LOG_KEY, sharing ``shared`` entries then ``a`` and ``b`` others."""
    common = entries(shared, b"shared")
    return log_of(common + entries(a, b"left")), log_of(common + entries(b, b"right"))


def submission(log: TransparencyLog, old: int, signer: NoteSigner = LOG_KEY) -> AddCheckpoint:
    """A checkpoint of ``log`` now, with a consistency proof from ``old`` (the log's own)."""
    note = log.checkpoint(signer)
    size = Checkpoint.from_body(split_note(note)[0]).size
    proof = log.consistency_proof(old, size) if 0 < old < size else []
    return AddCheckpoint(old, tuple(proof), note)


# --- witness processes ---------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``sealroom ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "sealroom.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def init_witness(home: Path, name: str) -> str:
    """A new witness keystore in ``home``; returns the witness's vkey."""
    done = cli(
        "witness", "init", "--unencrypted-keystore", "--home", str(home), "--name", name, "--json"
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["key"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WitnessProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def spawn_witness(home: Path, logs: Sequence[str], *, port: int | None = None) -> WitnessProcess:
    """``sealroom witness serve`` for ``logs`` (vkeys) on a free port, once it answers."""
    port = port or free_port()
    args = ["witness", "serve", "--home", str(home), "--port", str(port)]
    for vkey in logs:
        args += ["--log", vkey]
    log = home.parent / f"{home.name}-{port}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sealroom.cli", *args], stdout=subprocess.DEVNULL, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the witness exited: {log.read_text()}")
        try:
            httpx.get(f"{url}/{'0' * 64}/checkpoint", timeout=1)
            return WitnessProcess(url, process, log)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError("the witness did not start in 30 s") from None
            time.sleep(0.05)


@contextmanager
def running_witness(home: Path, logs: Sequence[str]) -> Iterator[WitnessProcess]:
    witness = spawn_witness(home, logs)
    try:
        yield witness
    finally:
        witness.stop()
