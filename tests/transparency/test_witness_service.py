"""``sealroom witness`` as a real process: the tlog-witness HTTP API, restarts, kills."""

from __future__ import annotations

from pathlib import Path

import httpx

from sealroom.transparency.checkpoint import NoteSigner, open_checkpoint
from sealroom.transparency.cosignature import CosignerKey, cosignatures
from sealroom.transparency.witness import AddCheckpoint, origin_hash
from tests.transparency.witness_helpers import (
    LOG_KEY,
    ORIGIN,
    cli,
    entries,
    forks,
    init_witness,
    log_of,
    running_witness,
    spawn_witness,
    submission,
)


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/add-checkpoint", content=body, timeout=10)


def test_the_witness_api_cosigns_and_refuses_with_the_spec_codes(tmp_path: Path) -> None:
    home = tmp_path / "w1"
    vkey = init_witness(home, "witness.test/w1")
    key = CosignerKey.from_vkey(vkey)
    assert cli("witness", "key", "--home", str(home)).stdout.strip() == vkey
    left, right = forks(5, 4, 4)
    with running_witness(home, [LOG_KEY.verifier.vkey]) as w:
        first = submission(left, 0)
        ok = post(w.url, first.encode())
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("text/plain")
        assert ok.text.startswith("\u2014 witness.test/w1 ")
        assert ok.text.endswith("\n")
        assert ok.text.count("\n") == 1
        assert len(cosignatures(first.note + ok.text, [key])) == 1

        stale = post(w.url, AddCheckpoint(0, (), first.note).encode())
        assert stale.status_code == 409
        assert stale.headers["content-type"] == "text/x.tlog.size"
        assert stale.text == "9\n"

        assert post(w.url, submission(right, 9).encode()).status_code == 422  # a fork
        stranger = NoteSigner.from_seed("elsewhere.test/log", b"\x44" * 32)
        other = log_of(entries(2)).checkpoint(stranger)
        assert post(w.url, AddCheckpoint(0, (), other).encode()).status_code == 404
        impostor = log_of(entries(3)).checkpoint(NoteSigner.from_seed(ORIGIN, b"\x55" * 32))
        assert post(w.url, AddCheckpoint(0, (), impostor).encode()).status_code == 403
        assert post(w.url, b"old 01\n\n" + first.note.encode()).status_code == 400
        assert post(w.url, b"x" * (70 << 10)).status_code == 413

        left.append_many(entries(3, b"later"))
        assert post(w.url, submission(left, 9).encode()).status_code == 200

        monitored = httpx.get(f"{w.url}/{origin_hash(ORIGIN)}/checkpoint", timeout=10)
        assert monitored.status_code == 200
        assert open_checkpoint(monitored.text, LOG_KEY.verifier).size == 12
        assert len(cosignatures(monitored.text, [key])) == 1
        assert httpx.get(f"{w.url}/{'0' * 64}/checkpoint", timeout=10).status_code == 404
        assert httpx.get(f"{w.url}/add-checkpoint", timeout=10).status_code == 405


def test_state_survives_sigkill_and_restart(tmp_path: Path) -> None:
    home = tmp_path / "w1"
    init_witness(home, "witness.test/w1")
    log = log_of(entries(7))
    w = spawn_witness(home, [LOG_KEY.verifier.vkey])
    try:
        assert post(w.url, submission(log, 0).encode()).status_code == 200
        log.append_many(entries(4, b"x"))
        assert post(w.url, submission(log, 7).encode()).status_code == 200
    finally:
        w.kill()
    again = spawn_witness(home, [LOG_KEY.verifier.vkey])
    try:
        stale = post(again.url, submission(log, 0).encode())
        assert stale.status_code == 409
        assert stale.text == "11\n"
        # a second witness on the same state is refused while this one runs
        second = cli(
            "witness", "serve", "--home", str(home), "--log", LOG_KEY.verifier.vkey, "--port", "1"
        )
        assert second.returncode == 1
        assert "another witness process" in second.stderr
        log.append(b"one more")
        assert post(again.url, submission(log, 11).encode()).status_code == 200
    finally:
        again.stop()


def test_a_witness_name_must_be_a_note_key_name(tmp_path: Path) -> None:
    done = cli(
        "witness",
        "init",
        "--unencrypted-keystore",
        "--home",
        str(tmp_path / "w"),
        "--name",
        "my witness",
    )
    assert done.returncode == 1
    assert "space" in done.stderr
    assert not (tmp_path / "w").exists()
