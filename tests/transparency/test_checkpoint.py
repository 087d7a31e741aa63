from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto.merkle import EMPTY_ROOT, leaf_hash
from sealroom.errors import InvalidInput, ProofInvalid, SignatureInvalid
from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    key_id_for,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_note,
)

# --- Known answers from golang.org/x/mod/sumdb/note (note_test.go, BSD-3-Clause) -----------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngo"
    "tpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)

# From google/trillian-examples formats/log tests (Apache-2.0): a key pair in Go's formats.
LOG_SKEY = "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ"
LOG_VKEY = "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs"

# A real checkpoint of the Go checksum database (same source), signed by sum.golang.org,
# whose key name differs from the checkpoint origin.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPR"
    "YfvimWEPWL+o3GeoWwOoAw=\n"
)
WITNESS_SIGS = (
    "\u2014 monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRaU2"
    "NbvAnaepM6Y+8ww=\n"
    "\u2014 bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x/M"
    "ggS1mDR6t3/9rQw=\n"
)


def test_go_signer_key_signs_the_known_note() -> None:
    signer = NoteSigner.from_signer_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier.vkey == PETER_VKEY
    assert sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize(("skey", "vkey"), [(PETER_SKEY, PETER_VKEY), (LOG_SKEY, LOG_VKEY)])
def test_key_id_and_vkey_derivation_match_go(skey: str, vkey: str) -> None:
    signer = NoteSigner.from_signer_key(skey)
    assert signer.verifier.vkey == vkey
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    name, hex_id, _ = vkey.split("+", 2)
    assert key_id_for(name, b"\x01" + signer.verifier.public_key) == int(hex_id, 16)


def test_open_known_note_ignores_unknown_signers() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = open_note(note, [peter])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [("PeterNeumann", 0xC74F20A3)]
    both = open_note(note.encode(), [peter, enoch])
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    only_enoch = open_note(note, [enoch])
    assert [s.name for s in only_enoch.signatures] == ["EnochRoot"]


def test_real_sumdb_checkpoint_opens() -> None:
    verifier = NoteVerifier.from_vkey(SUMDB_VKEY)
    cp = open_checkpoint(SUMDB_NOTE, verifier, origin="go.sum database tree")
    assert cp.origin == "go.sum database tree"
    assert cp.size == 6476701
    assert cp.root_hash == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert cp.extensions == ()
    # Witness cosignatures from keys we do not know are ignored, as the spec requires.
    assert open_checkpoint(SUMDB_NOTE + WITNESS_SIGS, verifier, origin=cp.origin) == cp
    # By default the origin must equal the key name.
    with pytest.raises(ProofInvalid, match="expected 'sum.golang.org'"):
        open_checkpoint(SUMDB_NOTE, verifier)
    with pytest.raises(ProofInvalid, match="origin"):
        open_checkpoint(SUMDB_NOTE, verifier, origin="Go rocks but I might have the wrong ID")


def test_real_sumdb_checkpoint_any_change_fails() -> None:
    verifier = NoteVerifier.from_vkey(SUMDB_VKEY)
    tampered = SUMDB_NOTE.replace("6476701", "6476702")
    with pytest.raises(SignatureInvalid, match="signature does not verify"):
        open_checkpoint(tampered, verifier, origin="go.sum database tree")


# --- vkey strictness ------------------------------------------------------------------


def test_every_mangled_vkey_is_rejected() -> None:
    """Port of Go's TestNewVerifier: every proper substring and every +1 byte fails."""
    NoteVerifier.from_vkey(PETER_VKEY)
    raw = PETER_VKEY
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(InvalidInput):
                    NoteVerifier.from_vkey(raw[i:j])
    for i in range(len(raw)):
        mangled = raw[:i] + chr(ord(raw[i]) + 1) + raw[i + 1 :]
        with pytest.raises(InvalidInput):
            NoteVerifier.from_vkey(mangled)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # wrong key length, with an adjusted key id (from Go's tests)
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "canonical"),
        # unknown algorithm, with an adjusted key id (from Go's tests)
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "algorithm"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "space"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3", "look like"),
    ],
)
def test_bad_vkeys(vkey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        NoteVerifier.from_vkey(vkey)


def test_vkey_with_a_wrong_length_key_and_matching_id_is_rejected() -> None:
    key = b"\x01" + bytes(range(33))
    vkey = f"PeterNeumann+{key_id_for('PeterNeumann', key):08x}+{base64.b64encode(key).decode()}"
    with pytest.raises(InvalidInput, match="32 bytes"):
        NoteVerifier.from_vkey(vkey)


def test_mangled_signer_keys_are_rejected_without_echoing_the_secret() -> None:
    for i in range(len(PETER_SKEY)):
        mangled = PETER_SKEY[:i] + chr(ord(PETER_SKEY[i]) + 1) + PETER_SKEY[i + 1 :]
        with pytest.raises(InvalidInput) as info:
            NoteSigner.from_signer_key(mangled)
        assert "AYEKFALV" not in str(info.value)
    signer = NoteSigner.from_signer_key(PETER_SKEY)
    assert "AYEKFALV" not in repr(signer)
    assert repr(signer) == "NoteSigner('PeterNeumann+c74f20a3')"


# --- note strictness ------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        TEXT,  # no signatures
        TEXT + "\n",  # blank line but no signatures
        TEXT + "\n" + PETER_SIG[:-1],  # last signature line lacks its newline
        "\x01" + TEXT + "\n" + PETER_SIG,  # control character
        TEXT.replace("\n", "\r\n") + "\r\n" + PETER_SIG,  # CRLF
        TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC"
        "2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",  # space in the key name
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",  # trailing garbage
        TEXT + "\n" + PETER_SIG + "\n",  # trailing blank line
        TEXT + "\n" + PETER_SIG.replace("\u2014", "-"),  # hyphen, not EM DASH
        TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014"),  # no space after the dash
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # unpadded base64
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "PeterNeumann  "),  # double space
        TEXT + "\n" + "\u2014 PeterNeumann x08g\n",  # too short to hold a signature
        TEXT + "\n" + PETER_SIG * 101,  # too many signatures
    ],
)
def test_malformed_notes_are_rejected(message: str) -> None:
    with pytest.raises(InvalidInput, match="malformed note"):
        open_note(message, [NoteVerifier.from_vkey(PETER_VKEY)])


def test_invalid_utf8_is_rejected() -> None:
    raw = ("\xff" + TEXT + "\n" + PETER_SIG).encode("utf-8").replace(b"\xc3\xbf", b"\xff")
    with pytest.raises(InvalidInput, match="UTF-8"):
        open_note(raw, [NoteVerifier.from_vkey(PETER_VKEY)])
    with pytest.raises(InvalidInput, match="UTF-8"):
        open_note("\udcff" + TEXT + "\n" + PETER_SIG, [NoteVerifier.from_vkey(PETER_VKEY)])


def test_bad_signature_from_a_known_key_rejects_the_whole_note() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    longer = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureInvalid, match="PeterNeumann"):
        open_note(TEXT + "\n" + longer, [peter])
    # Even next to a valid one.
    forged = PETER_SIG.replace("x08go/ZJ", "x08go/ZK")
    with pytest.raises(SignatureInvalid):
        open_note(TEXT + "\n" + PETER_SIG + forged, [peter])


def test_note_from_an_unknown_key_only_is_rejected() -> None:
    enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
    with pytest.raises(SignatureInvalid, match="no signature from a trusted key"):
        open_note(TEXT + "\n" + PETER_SIG, [enoch])
    with pytest.raises(InvalidInput, match="at least one trusted verifier"):
        open_note(TEXT + "\n" + PETER_SIG, [])


def test_same_name_other_key_is_ignored_not_trusted() -> None:
    real = NoteSigner.from_seed("example.com/log", b"\x01" * 32)
    impostor = NoteSigner.from_seed("example.com/log", b"\x02" * 32)
    note = sign_checkpoint(Checkpoint("example.com/log", 1, leaf_hash(b"a")), impostor)
    with pytest.raises(SignatureInvalid, match="no signature from a trusted key"):
        open_checkpoint(note, real.verifier)


def test_ambiguous_verifiers_are_refused() -> None:
    a = NoteVerifier.from_vkey(PETER_VKEY)
    assert open_note(TEXT + "\n" + PETER_SIG, [a, a]).text == TEXT
    other = NoteSigner.from_seed("PeterNeumann", b"\x07" * 32).verifier
    fake = NoteVerifier.__new__(NoteVerifier)
    object.__setattr__(fake, "name", other.name)
    object.__setattr__(fake, "public_key", other.public_key)
    object.__setattr__(fake, "key_id", a.key_id)  # a forced key-id collision
    with pytest.raises(InvalidInput, match="ambiguous"):
        open_note(TEXT + "\n" + PETER_SIG, [a, fake])


def test_split_note_returns_unverified_parts() -> None:
    text, sigs = split_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert text == TEXT
    assert [(s.name, s.key_id) for s in sigs] == [
        ("PeterNeumann", 0xC74F20A3),
        ("EnochRoot", 0xAF0CFE78),
    ]
    assert "".join(s.line() for s in sigs) == PETER_SIG + ENOCH_SIG


def test_sign_note_rejects_bad_text() -> None:
    signer = NoteSigner.from_seed("a", b"\x01" * 32)
    for bad in ["", "no newline", "tab\there\n", "\udcff\n"]:
        with pytest.raises(InvalidInput):
            sign_note(bad, [signer])
    with pytest.raises(InvalidInput, match="at least one signer"):
        sign_note("ok\n", [])
    # Signing twice with one key gives one line.
    assert sign_note("ok\n", [signer, signer]).count("\u2014") == 1


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u3000b", "tab\t"])
def test_key_names_follow_the_spec(name: str) -> None:
    with pytest.raises(InvalidInput):
        NoteSigner.from_seed(name, b"\x01" * 32)


# --- checkpoints ----------------------------------------------------------------------

SIGNER = NoteSigner.from_seed("sealroom.example/log", bytes(range(32)))
ROOT = leaf_hash(b"root")
ROOT64 = base64.b64encode(ROOT).decode()


def test_checkpoint_body_format() -> None:
    cp = Checkpoint("sealroom.example/log", 42, ROOT)
    assert cp.body() == f"sealroom.example/log\n42\n{ROOT64}\n"
    cp2 = Checkpoint("o", 0, EMPTY_ROOT, ("ext one", "ext two"))
    assert cp2.body() == "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next two\n"
    assert Checkpoint.from_body(cp2.body()) == cp2


def test_c2sp_example_checkpoint_body_parses() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.from_body(body)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.body() == body


def test_sign_and_open_checkpoint() -> None:
    cp = Checkpoint("sealroom.example/log", 7, ROOT)
    note = sign_checkpoint(cp, SIGNER)
    assert note.startswith(cp.body() + "\n\u2014 sealroom.example/log ")
    assert open_checkpoint(note, SIGNER.verifier) == cp
    assert open_checkpoint(note.encode(), NoteVerifier.from_vkey(SIGNER.verifier.vkey)) == cp
    witness = NoteSigner.from_seed("witness.example", b"\x09" * 32)
    cosigned = sign_checkpoint(cp, SIGNER, witness)
    assert open_checkpoint(cosigned, SIGNER.verifier) == cp
    assert open_checkpoint(cosigned, witness.verifier, origin=cp.origin) == cp


def test_wrong_key_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint("sealroom.example/log", 7, ROOT), SIGNER)
    other = NoteSigner.from_seed("sealroom.example/other", b"\x05" * 32)
    with pytest.raises(SignatureInvalid):
        open_checkpoint(note, other.verifier)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("o\n1\n", "fewer than three lines"),
        ("\n1\n" + ROOT64 + "\n", "empty origin"),
        ("o\n01\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n+1\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n-0\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n 1\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n1 \n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n\uff11\n" + ROOT64 + "\n", "canonical decimal"),  # FULLWIDTH DIGIT ONE
        ("o\n1_0\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n18446744073709551616\n" + ROOT64 + "\n", "canonical decimal"),  # 2**64
        ("o\n\n" + ROOT64 + "\n", "canonical decimal"),
        ("o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n", "32 bytes"),
        ("o\n1\n" + base64.b64encode(ROOT + b"\x00").decode() + "\n", "32 bytes"),
        ("o\n1\n" + ROOT64.rstrip("=") + "\n", "base64"),
        ("o\n1\n" + ROOT64[:-2] + "B=" + "\n", "canonical"),
        ("o\n1\n" + ROOT64 + " \n", "base64"),
        ("o\n1\n" + ROOT64 + "\n\next\n", "empty extension"),
        ("o\n1\n" + ROOT64, "newline"),
    ],
)
def test_malformed_checkpoint_bodies(body: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Checkpoint.from_body(body)


def test_max_size_is_accepted() -> None:
    cp = Checkpoint.from_body("o\n18446744073709551615\n" + ROOT64 + "\n")
    assert cp.size == 2**64 - 1


def test_checkpoint_signed_over_a_malformed_body_is_rejected_after_the_signature() -> None:
    note = sign_note("o\n01\n" + ROOT64 + "\n", [NoteSigner.from_seed("o", b"\x01" * 32)])
    with pytest.raises(InvalidInput, match="canonical decimal"):
        open_checkpoint(note, NoteSigner.from_seed("o", b"\x01" * 32).verifier)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root_hash": ROOT},
        {"origin": "a\nb", "size": 1, "root_hash": ROOT},
        {"origin": "o", "size": -1, "root_hash": ROOT},
        {"origin": "o", "size": 2**64, "root_hash": ROOT},
        {"origin": "o", "size": True, "root_hash": ROOT},
        {"origin": "o", "size": 1, "root_hash": ROOT[:31]},
        {"origin": "o", "size": 1, "root_hash": "x" * 32},
        {"origin": "o", "size": 1, "root_hash": ROOT, "extensions": ("",)},
        {"origin": "o", "size": 1, "root_hash": ROOT, "extensions": ("a\nb",)},
        {"origin": "o", "size": 1, "root_hash": ROOT, "extensions": ["list"]},
    ],
)
def test_checkpoint_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


line_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(lambda s: "\n" not in s)


@settings(max_examples=50, deadline=None)
@given(
    line_text,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(line_text, max_size=3),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, exts: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(exts))
    note = sign_checkpoint(cp, SIGNER)
    assert open_checkpoint(note, SIGNER.verifier, origin=origin) == cp


_NOTE = sign_checkpoint(Checkpoint("sealroom.example/log", 12345, ROOT), SIGNER)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_NOTE) - 1), st.characters(blacklist_categories=("Cs",)))
def test_any_changed_character_is_rejected(position: int, char: str) -> None:
    mutated = _NOTE[:position] + char + _NOTE[position + 1 :]
    if mutated == _NOTE:
        return
    with pytest.raises((InvalidInput, SignatureInvalid, ProofInvalid)):
        open_checkpoint(mutated, SIGNER.verifier)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=10))
def test_trailing_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises((InvalidInput, SignatureInvalid)):
        open_checkpoint(_NOTE + garbage, SIGNER.verifier)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, len(_NOTE) - 1))
def test_truncated_note_is_rejected(length: int) -> None:
    with pytest.raises((InvalidInput, SignatureInvalid)):
        open_checkpoint(_NOTE[:length], SIGNER.verifier)
