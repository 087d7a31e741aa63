"""Keystores encrypted at rest: argon2id + AES-256-GCM, the header bound as associated data.

The attacker reads (or copies) the file: it must learn nothing but the public
keys. It may also edit the file (weaken the KDF, swap in another party's
public block, flip ciphertext bits): every edit must be refused, and a wrong
passphrase or a failure mid-write must leave the file exactly as it was.
"""

from __future__ import annotations

import json
import os
import stat
import traceback
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from sealroom.crypto import keystore as ks
from sealroom.crypto.keys import Identity, b64encode
from sealroom.crypto.keystore import DEFAULT_KDF, KdfParams, Keystore
from sealroom.errors import KeystoreError, KeystoreLocked, WrongPassphrase

pytestmark = pytest.mark.skipif(os.name != "posix", reason="keystore permissions are POSIX")

# Cheap parameters keep these tests fast; one test checks the default is RFC 9106's.
FAST = KdfParams(iterations=1, lanes=1, memory_kib=8)
PASS = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _create(home: Path, identity: Identity | None = None, passphrase: str = PASS) -> Identity:
    identity = identity or Identity.generate()
    ks._create(home, name="Clinic A", identity=identity, passphrase=passphrase, kdf=FAST)
    return identity


def _doc(home: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Keystore.path(home).read_text())
    return doc


def _write(home: Path, doc: dict[str, Any]) -> None:
    Keystore.path(home).write_text(json.dumps(doc))


def _secret_texts(identity: Identity) -> list[str]:
    seed, secret = identity.private_bytes()
    kem_seed = identity.kem_seed()
    raw = [seed, secret] + ([kem_seed] if kem_seed else [])
    return [b64encode(r) for r in raw] + [r.hex() for r in raw]


def test_round_trip_and_nothing_secret_in_the_file(home: Path) -> None:
    identity = _create(home)
    text = Keystore.path(home).read_text()
    for secret in (*_secret_texts(identity), PASS):
        assert secret not in text
    assert stat.S_IMODE(Keystore.path(home).stat().st_mode) == 0o600
    entry = Keystore.load_entry(home, passphrase=PASS)
    assert entry.protection == "argon2id-aes256gcm"
    assert entry.party_id == identity.party_id
    assert entry.identity.private_bytes() == identity.private_bytes()
    assert entry.identity.kem_seed() == identity.kem_seed()
    assert entry.identity.public.post_quantum


def test_default_kdf_is_rfc_9106_second_recommendation(home: Path) -> None:
    assert (DEFAULT_KDF.iterations, DEFAULT_KDF.lanes, DEFAULT_KDF.memory_kib) == (3, 4, 65536)
    Keystore.create(home, name="a", passphrase=PASS)
    kdf = _doc(home)["kdf"]
    assert kdf["algorithm"] == "argon2id"
    assert (kdf["iterations"], kdf["lanes"], kdf["memory_kib"]) == (3, 4, 65536)
    assert Keystore.load(home, passphrase=PASS).public.post_quantum


def test_public_part_needs_no_passphrase(home: Path) -> None:
    identity = _create(home)
    entry = Keystore.load_public(home)
    assert entry.public == identity.public
    assert entry.party_id == identity.party_id
    assert entry.protection == "argon2id-aes256gcm"


def test_no_passphrase_is_a_specific_error_and_a_prompt_is_only_asked_when_needed(
    home: Path, tmp_path: Path
) -> None:
    _create(home)
    with pytest.raises(KeystoreLocked, match="encrypted"):
        Keystore.load(home)
    asked: list[int] = []

    def prompt() -> str:
        asked.append(1)
        return PASS

    assert Keystore.load(home, passphrase=prompt).public.post_quantum
    assert asked == [1]
    plain = tmp_path / "plain"
    Keystore.create(plain, name="p", unencrypted=True)
    Keystore.load(plain, passphrase=prompt)
    assert asked == [1]  # an unencrypted keystore never prompts


def test_wrong_passphrase_is_refused_and_changes_nothing(home: Path) -> None:
    _create(home)
    before = Keystore.path(home).read_bytes()
    with pytest.raises(WrongPassphrase) as info:
        Keystore.load(home, passphrase="not it")
    assert "not it" not in str(info.value)
    with pytest.raises(WrongPassphrase):
        Keystore.encrypt(home, passphrase="new", old_passphrase="not it", kdf=FAST)
    assert Keystore.path(home).read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["identity.json"]


def test_passphrases_are_compared_after_unicode_normalisation(home: Path) -> None:
    composed = unicodedata.normalize("NFC", "pässphrase")
    decomposed = unicodedata.normalize("NFD", "pässphrase")
    assert composed != decomposed
    identity = _create(home, passphrase=composed)
    assert Keystore.load(home, passphrase=decomposed).party_id == identity.party_id


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d["kdf"].update(iterations=2), id="weakened-or-changed-kdf"),
        pytest.param(lambda d: d["kdf"].update(salt=b64encode(b"\x00" * 16)), id="salt"),
        pytest.param(lambda d: d.update(nonce=b64encode(b"\x00" * 12)), id="nonce"),
        pytest.param(
            lambda d: d.update(ciphertext=d["ciphertext"][:-8] + "AAAAAAA="), id="ciphertext"
        ),
    ],
)
def test_edits_to_the_encrypted_file_are_refused(home: Path, edit: Any) -> None:
    _create(home)
    doc = _doc(home)
    edit(doc)
    _write(home, doc)
    with pytest.raises(KeystoreError, match="does not open|corrupt"):
        Keystore.load(home, passphrase=PASS)


def test_another_partys_public_block_cannot_be_swapped_in(home: Path, tmp_path: Path) -> None:
    # A consistent public block and party id from another keystore: the clear part would
    # then name someone else. The associated data binds both to the ciphertext.
    _create(home)
    other = tmp_path / "other"
    _create(other)
    doc = _doc(home)
    theirs = _doc(other)
    doc["public"], doc["party_id"] = theirs["public"], theirs["party_id"]
    _write(home, doc)
    with pytest.raises(WrongPassphrase):
        Keystore.load(home, passphrase=PASS)


def test_public_block_inconsistent_with_party_id(home: Path) -> None:
    _create(home)
    doc = _doc(home)
    doc["public"]["sealing_key"] = b64encode(Identity.generate().public.sealing_key)
    _write(home, doc)
    with pytest.raises(KeystoreError, match="party id does not match"):
        Keystore.load_public(home)


def test_hostile_kdf_parameters_are_refused_before_deriving(home: Path) -> None:
    _create(home)
    doc = _doc(home)
    doc["kdf"]["memory_kib"] = 1 << 30  # a terabyte
    _write(home, doc)
    with pytest.raises(KeystoreError, match="memory_kib"):
        Keystore.load(home, passphrase=PASS)


def test_create_needs_a_passphrase_or_an_explicit_choice(home: Path) -> None:
    with pytest.raises(KeystoreError, match="unencrypted"):
        Keystore.create(home, name="a")
    with pytest.raises(KeystoreError, match="not both"):
        Keystore.create(home, name="a", passphrase=PASS, unencrypted=True)
    with pytest.raises(KeystoreError, match="non-empty"):
        Keystore.create(home, name="a", passphrase="")
    assert not Keystore.path(home).exists()


def test_encrypting_a_legacy_plaintext_keystore_keeps_the_identity(home: Path) -> None:
    legacy = Identity.generate(post_quantum=False)
    seed, secret = legacy.private_bytes()
    home.mkdir(mode=0o700)
    Keystore.path(home).write_text(
        json.dumps(
            {
                "type": "sealroom-keystore",
                "version": 1,
                "name": "old",
                "party_id": legacy.party_id,
                "signing_seed": b64encode(seed),
                "sealing_secret": b64encode(secret),
            }
        )
    )
    Keystore.path(home).chmod(0o600)
    assert Keystore.load_entry(home).protection == "legacy-plaintext"
    entry = Keystore.encrypt(home, passphrase=PASS, kdf=FAST)
    assert entry.party_id == legacy.party_id
    text = Keystore.path(home).read_text()
    for secret_text in _secret_texts(legacy):
        assert secret_text not in text
    loaded = Keystore.load_entry(home, passphrase=PASS)
    assert loaded.protection == "argon2id-aes256gcm"
    assert loaded.name == "old"
    assert loaded.identity.private_bytes() == legacy.private_bytes()
    assert not loaded.identity.public.post_quantum  # the id names X25519 only; it stays so


def test_changing_the_passphrase(home: Path) -> None:
    identity = _create(home)
    Keystore.encrypt(home, passphrase="new words", old_passphrase=PASS, kdf=FAST)
    assert Keystore.load(home, passphrase="new words").party_id == identity.party_id
    with pytest.raises(WrongPassphrase):
        Keystore.load(home, passphrase=PASS)


def test_a_failed_write_leaves_the_old_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(home)
    before = Keystore.path(home).read_bytes()

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ks.os, "replace", fail)
    with pytest.raises(KeystoreError, match="No space left"):
        Keystore.encrypt(home, passphrase="new words", old_passphrase=PASS, kdf=FAST)
    assert Keystore.path(home).read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["identity.json"]


def test_rename_needs_no_passphrase_and_keeps_the_keys(home: Path) -> None:
    identity = _create(home)
    Keystore.rename(home, name="Clinic B")
    entry = Keystore.load_entry(home, passphrase=PASS)
    assert entry.name == "Clinic B"
    assert entry.identity.private_bytes() == identity.private_bytes()


def test_errors_never_carry_secrets_or_the_passphrase(home: Path) -> None:
    identity = _create(home)
    for attempt in ("wrong", None):
        with pytest.raises(KeystoreError) as info:
            Keystore.load(home, passphrase=attempt)
        rendered = "".join(traceback.format_exception(info.value)) + info.value.diagnostics()
        for secret in (*_secret_texts(identity), PASS):
            assert secret not in rendered
