"""``sealroom init`` encrypts by default; ``sealroom keys`` exports, encrypts and shows pins.

Everything runs without a terminal, as in CI: a passphrase comes from the
environment or a file, and without one the commands say so instead of
prompting or silently writing keys in the clear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.client.local import pin_log_key
from sealroom.crypto.keys import Identity, b64decode_strict, b64encode, party_id_for
from sealroom.crypto.keystore import Keystore

runner = CliRunner()
PASS = "a long enough passphrase"
# The runner's environment must not inherit a passphrase from the machine's.
NO_SECRETS = {"SEALROOM_PASSPHRASE": None, "SEALROOM_PASSPHRASE_FILE": None}


def _run(*args: str, **env: str | None) -> Any:
    return runner.invoke(app, list(args), env={**NO_SECRETS, **env})


def _legacy(home: Path, name: str) -> Identity:
    identity = Identity.generate(post_quantum=False)
    seed, secret = identity.private_bytes()
    home.mkdir(mode=0o700, parents=True)
    path = Keystore.path(home)
    path.write_text(
        json.dumps(
            {
                "type": "sealroom-keystore",
                "version": 1,
                "name": name,
                "party_id": identity.party_id,
                "signing_seed": b64encode(seed),
                "sealing_secret": b64encode(secret),
            }
        )
    )
    path.chmod(0o600)
    return identity


def test_init_encrypts_with_the_passphrase_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "h"
    res = _run("init", "--name", "ann", "--home", str(home), "--json", SEALROOM_PASSPHRASE=PASS)
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["protection"] == "argon2id-aes256gcm"
    assert done["post_quantum"] is True
    assert "signing_seed" not in Keystore.path(home).read_text()
    assert Keystore.load(home, passphrase=PASS).party_id == done["party"]


def test_init_without_a_passphrase_or_terminal_refuses_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "h"
    res = _run("init", "--name", "ann", "--home", str(home))
    assert res.exit_code == 1
    assert "--unencrypted-keystore" in res.output
    assert not home.exists()


def test_init_unencrypted_only_by_name_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "h"
    res = _run("init", "--unencrypted-keystore", "--name", "ann", "--home", str(home))
    assert res.exit_code == 0, res.output
    assert "UNENCRYPTED keystore" in res.output
    assert Keystore.load_entry(home).protection == "unencrypted"


def test_passphrase_file(tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASS + "\n")
    secret.chmod(0o644)
    home = tmp_path / "h"
    res = _run("init", "--name", "ann", "--home", str(home), "--passphrase-file", str(secret))
    assert res.exit_code == 1
    assert "accessible by group or others" in res.output
    assert not home.exists()
    secret.chmod(0o600)
    res = _run("init", "--name", "ann", "--home", str(home), "--passphrase-file", str(secret))
    assert res.exit_code == 0, res.output
    Keystore.load(home, passphrase=PASS)  # the trailing newline is not part of it


def test_export_public_needs_no_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert (
        _run("init", "--name", "ann", "--home", str(home), SEALROOM_PASSPHRASE=PASS).exit_code == 0
    )
    res = _run("keys", "export-public", "--home", str(home))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["type"] == "sealroom-public-identity"
    assert doc["name"] == "ann"
    assert doc["post_quantum"] is True
    public = Keystore.load(home, passphrase=PASS).public
    assert doc["kem_key"] == b64encode(public.kem_key or b"")
    # Anyone can check that the document's keys are the ones its party id names.
    assert doc["party_id"] == party_id_for(
        b64decode_strict(doc["signing_key"], what="s"),
        b64decode_strict(doc["sealing_key"], what="x"),
        b64decode_strict(doc["kem_key"], what="k"),
    )


def test_legacy_keystore_warns_then_encrypts_in_place(tmp_path: Path) -> None:
    home = tmp_path / "w"
    legacy = _legacy(home, "witness.example/w1")
    res = _run("witness", "key", "--home", str(home))
    assert res.exit_code == 0, res.output
    vkey = res.stdout.strip()
    assert "sealroom keys encrypt" in res.stderr
    res = _run("keys", "encrypt", "--home", str(home), "--json", SEALROOM_PASSPHRASE=PASS)
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert (done["was"], done["protection"]) == ("legacy-plaintext", "argon2id-aes256gcm")
    assert done["party"] == legacy.party_id
    # Now the key needs the passphrase; the wrong one is a specific error and changes nothing.
    before = Keystore.path(home).read_bytes()
    locked = _run("witness", "key", "--home", str(home))
    assert locked.exit_code == 1
    assert "[keystore_locked]" in locked.stderr
    wrong = _run("witness", "key", "--home", str(home), SEALROOM_PASSPHRASE="nope")
    assert wrong.exit_code == 1
    assert "[wrong_passphrase]" in wrong.stderr
    assert Keystore.path(home).read_bytes() == before
    again = _run("witness", "key", "--home", str(home), SEALROOM_PASSPHRASE=PASS)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == vkey
    assert "sealroom keys encrypt" not in again.stderr


def test_change_passphrase_needs_the_old_one(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert _run("init", "--name", "a", "--home", str(home), SEALROOM_PASSPHRASE=PASS).exit_code == 0
    old = tmp_path / "old"
    old.write_text("wrong\n")
    old.chmod(0o600)
    before = Keystore.path(home).read_bytes()
    res = _run(
        "keys", "encrypt", "--home", str(home), "--old-passphrase-file", str(old),
        SEALROOM_PASSPHRASE="new passphrase",
    )  # fmt: skip
    assert res.exit_code == 1
    assert "[wrong_passphrase]" in res.stderr
    assert Keystore.path(home).read_bytes() == before
    old.write_text(PASS + "\n")
    res = _run(
        "keys", "encrypt", "--home", str(home), "--old-passphrase-file", str(old),
        SEALROOM_PASSPHRASE="new passphrase",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    Keystore.load(home, passphrase="new passphrase")


def test_log_key_prints_the_pinned_key_offline(tmp_path: Path) -> None:
    home = tmp_path / "h"
    url = "http://127.0.0.1:9"
    res = _run("keys", "log-key", "--url", url, "--home", str(home))
    assert res.exit_code == 1
    assert "checkpoint show" in res.stderr
    key = "log.example+1234abcd+AQIDBA=="
    pin_log_key(home, url, key)
    res = _run("keys", "log-key", "--url", url, "--home", str(home), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"url": url, "log_key": key}


@pytest.mark.skipif(os.name != "posix", reason="a process without a terminal")
def test_a_real_process_without_a_terminal_never_prompts(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_PASSPHRASE")}
    cmd = [sys.executable, "-m", "sealroom.cli", "init", "--name", "ann", "--home", str(home)]
    done = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert "--unencrypted-keystore" in done.stderr
    assert not home.exists()
