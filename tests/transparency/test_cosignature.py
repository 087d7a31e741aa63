"""C2SP tlog-cosignature v1 (Ed25519): a real witness's cosignature, the format, negative vectors."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealroom.errors import InvalidInput, ProofInvalid, SignatureInvalid
from sealroom.transparency.checkpoint import (
    KeyId,
    NoteSignature,
    NoteSigner,
    key_id_for,
    open_checkpoint,
    split_note,
)
from sealroom.transparency.cosignature import (
    MAX_TIMESTAMP,
    Cosigner,
    CosignerKey,
    WitnessPolicy,
    add_signature_lines,
    cosignature_message,
    cosignatures,
)
from sealroom.transparency.log import MemoryLogStore, TransparencyLog

# A checkpoint of the arche2025h1 staging CT log (transparency.dev) as served with the
# cosignatures of the public witness network, and the vkey of one of those witnesses,
# remora.n621.de (both as published in the tlog-scales project's tests).
ARCHE_NOTE = (
    "arche2025h1.staging.ct.transparency.dev\n1432088532\n"
    "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n"
    "\u2014 arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6"
    "hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n"
    "\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwh"
    "UkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n"
    "\u2014 transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KY"
    "TzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n"
    "\u2014 witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+"
    "/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n"
    "\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIo"
    "bWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n"
    "\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvV"
    "r+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n"
)
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
# A plain (0x01) note key from transparency-dev/formats' tests: not a cosignature key.
PLAIN_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"

LOG = NoteSigner.from_seed("sealroom.test/log", b"\x11" * 32)
T = 1_790_000_000


def witness(name: str = "witness.test/w1") -> Cosigner:
    return Cosigner.from_seed(name, hashlib.sha256(name.encode()).digest())


def checkpoint_note(entries: int = 5) -> str:
    log = TransparencyLog(MemoryLogStore())
    log.append_many([b"entry %d" % i for i in range(entries)])
    return log.checkpoint(LOG)


def cosigned(note: str, *cosigners: Cosigner, at: int = T) -> str:
    body, _ = split_note(note)
    return add_signature_lines(note, [c.cosign(body, at) for c in cosigners])


# --- interoperability ----------------------------------------------------------------------


def test_a_real_witness_cosignature_verifies() -> None:
    remora = CosignerKey.from_vkey(REMORA_VKEY)
    assert remora.vkey == REMORA_VKEY
    assert f"{remora.key_id:08x}" == "da77ade7"
    (found,) = cosignatures(ARCHE_NOTE, [remora])
    blob = base64.b64decode(
        "2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU"
        "/zZ0WBxtqB0DrAWfBw=="
    )
    assert blob[:4] == bytes.fromhex("da77ade7")
    assert found.timestamp == int.from_bytes(blob[4:12], "big")
    assert WitnessPolicy((remora,), 1).check(ARCHE_NOTE) == (found,)


def test_a_real_cosignature_does_not_verify_on_a_changed_checkpoint() -> None:
    remora = CosignerKey.from_vkey(REMORA_VKEY)
    changed = ARCHE_NOTE.replace("1432088532", "1432088533", 1)
    with pytest.raises(SignatureInvalid, match="remora"):
        cosignatures(changed, [remora])


def test_key_ids_are_derived_with_type_0x04() -> None:
    key = CosignerKey.from_vkey(REMORA_VKEY)
    expected = hashlib.sha256(b"remora.n621.de\n\x04" + key.public_key).digest()[:4]
    assert key.key_id == int.from_bytes(expected, "big")
    assert key.key_id == key_id_for(key.name, b"\x04" + key.public_key)
    assert key.key_id != key_id_for(key.name, b"\x01" + key.public_key)


def test_a_log_key_is_not_a_cosignature_key() -> None:
    with pytest.raises(InvalidInput, match="algorithm 0x01"):
        CosignerKey.from_vkey(PLAIN_VKEY)


# --- the format ----------------------------------------------------------------------------


def test_the_signed_message_is_header_time_and_body() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosignature_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + body.encode()
    )


def test_a_cosignature_is_timestamp_then_signature_over_the_message() -> None:
    w = witness()
    note = checkpoint_note()
    body, _ = split_note(note)
    line = w.cosign(body, T)
    assert line.name == w.key.name
    assert line.key_id == w.key.key_id
    assert line.signature[:8] == T.to_bytes(8, "big")
    public = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"witness.test/w1").digest())
    public.public_key().verify(line.signature[8:], cosignature_message(body, T))
    assert line.line().startswith("\u2014 witness.test/w1 ")
    (found,) = cosignatures(body + "\n" + line.line(), [w.key])
    assert found.timestamp == T


def test_the_log_signature_still_opens_a_cosigned_checkpoint() -> None:
    note = cosigned(checkpoint_note(), witness("a.test/w"), witness("b.test/w"))
    assert open_checkpoint(note, LOG.verifier).size == 5
    assert len(cosignatures(note, [witness("a.test/w").key, witness("b.test/w").key])) == 2


def test_a_cosigner_never_omits_the_timestamp() -> None:
    with pytest.raises(InvalidInput, match="timestamp"):
        witness().cosign(split_note(checkpoint_note())[0], 0)
    with pytest.raises(InvalidInput, match="2\\*\\*63"):
        witness().cosign(split_note(checkpoint_note())[0], MAX_TIMESTAMP + 1)


# --- negative vectors ----------------------------------------------------------------------


def test_every_flipped_bit_of_a_cosignature_is_refused() -> None:
    w = witness()
    note = checkpoint_note()
    body, _ = split_note(note)
    good = w.cosign(body, T)
    for index in range(len(good.signature)):
        for bit in range(8):
            blob = bytearray(good.signature)
            blob[index] ^= 1 << bit
            line = NoteSignature(good.name, good.key_id, bytes(blob)).line()
            with pytest.raises(SignatureInvalid):
                cosignatures(body + "\n" + line, [w.key])


def test_every_flipped_bit_of_the_checkpoint_text_is_refused() -> None:
    w = witness()
    note = cosigned(checkpoint_note(), w)
    body, sigs = split_note(note)
    raw = body.encode()
    for index in range(len(raw) - 1):
        for bit in (0, 1, 2):
            flipped = bytearray(raw)
            flipped[index] ^= 1 << bit
            try:
                text = flipped.decode()
            except UnicodeDecodeError:
                continue
            if "\n\n" in text or not text.endswith("\n"):
                continue
            changed = text + "\n" + "".join(s.line() for s in sigs)
            with pytest.raises((SignatureInvalid, InvalidInput)):
                cosignatures(changed, [w.key])


def test_a_wrong_key_id_is_not_this_witness() -> None:
    w = witness()
    note = checkpoint_note()
    body, _ = split_note(note)
    good = w.cosign(body, T)
    other = NoteSignature(good.name, KeyId(good.key_id ^ 1), good.signature)
    moved = body + "\n" + other.line()
    assert cosignatures(moved, [w.key]) == ()  # ignored, as signed-note requires
    with pytest.raises(ProofInvalid, match="0 of the 1 required"):
        WitnessPolicy((w.key,), 1).check(moved)
    plain = NoteSignature(good.name, key_id_for(good.name, b"\x01" + w.key.public_key), b"x" * 64)
    assert cosignatures(body + "\n" + plain.line(), [w.key]) == ()


def _signed_over(message: bytes, timestamp_bytes: bytes) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"witness.test/w1").digest())
    return timestamp_bytes + key.sign(message)


@pytest.mark.parametrize(
    "build",
    [
        # the time line with a leading zero
        lambda body: _signed_over(b"cosignature/v1\ntime 0%d\n" % T + body, T.to_bytes(8, "big")),
        # the timestamp little-endian in the signature
        lambda body: _signed_over(cosignature_message(body.decode(), T), T.to_bytes(8, "little")),
        # a different time in the message than in the signature
        lambda body: _signed_over(cosignature_message(body.decode(), T + 1), T.to_bytes(8, "big")),
        # no time line at all
        lambda body: _signed_over(b"cosignature/v1\n" + body, T.to_bytes(8, "big")),
        # a timestamp above 2**63 - 1 (signed as such)
        lambda body: _signed_over(
            b"cosignature/v1\ntime %d\n" % (1 << 63) + body, (1 << 63).to_bytes(8, "big")
        ),
        # another header
        lambda body: _signed_over(b"cosignature/v2\ntime %d\n" % T + body, T.to_bytes(8, "big")),
        # the plain note signature of the text, without the cosignature framing
        lambda body: _signed_over(body, T.to_bytes(8, "big")),
    ],
)
def test_wrong_timestamp_encodings_and_framings_are_refused(build: object) -> None:
    w = witness()
    body, _ = split_note(checkpoint_note())
    blob = build(body.encode())  # type: ignore[operator]
    line = NoteSignature(w.key.name, w.key.key_id, blob).line()
    with pytest.raises(SignatureInvalid):
        cosignatures(body + "\n" + line, [w.key])


def test_trailing_garbage_is_refused() -> None:
    w = witness()
    note = checkpoint_note()
    body, _ = split_note(note)
    good = w.cosign(body, T)
    for extra in (b"\x00", b"garbage", good.signature[-8:]):
        line = NoteSignature(good.name, good.key_id, good.signature + extra).line()
        with pytest.raises(SignatureInvalid, match="72"):
            cosignatures(body + "\n" + line, [w.key])
    short = NoteSignature(good.name, good.key_id, good.signature[:-1]).line()
    with pytest.raises(SignatureInvalid, match="72"):
        cosignatures(body + "\n" + short, [w.key])
    with pytest.raises(InvalidInput):  # text after the signature block
        cosignatures(body + "\n" + good.line() + "trailing\n\n", [w.key])
    with pytest.raises(InvalidInput):  # base64 with trailing characters
        cosignatures(body + "\n" + good.line()[:-1] + "AA\n", [w.key])


def test_a_cosignature_moved_to_another_checkpoint_is_refused() -> None:
    w = witness()
    a = cosigned(checkpoint_note(5), w)
    b = checkpoint_note(6)
    moved = b + split_note(a)[1][1].line()
    with pytest.raises(SignatureInvalid):
        cosignatures(moved, [w.key])


# --- m of n ----------------------------------------------------------------------------------


def test_m_of_n_counts_distinct_witnesses() -> None:
    ws = [witness(f"w{i}.test/w") for i in range(3)]
    policy = WitnessPolicy.parse([w.key.vkey for w in ws], 2)
    one = cosigned(checkpoint_note(), ws[0])
    with pytest.raises(ProofInvalid, match="1 of the 2 required"):
        policy.check(one)
    twice = cosigned(one, ws[0], at=T + 5)  # the same witness again does not count twice
    with pytest.raises(ProofInvalid, match="1 of the 2 required"):
        policy.check(twice)
    assert len(policy.check(cosigned(one, ws[2]))) == 2
    stranger = witness("stranger.test/w")
    with pytest.raises(ProofInvalid, match="1 of the 2"):
        policy.check(cosigned(one, stranger))
    assert WitnessPolicy.parse([w.key.vkey for w in ws]).required == 3


@pytest.mark.parametrize(
    ("required", "message"), [(0, "between 1 and 2"), (3, "between 1 and 2"), (True, "integer")]
)
def test_bad_policies_are_refused(required: int, message: str) -> None:
    keys = [witness("a.test/w").key.vkey, witness("b.test/w").key.vkey]
    with pytest.raises(InvalidInput, match=message):
        WitnessPolicy.parse(keys, required)


def test_a_policy_naming_one_key_twice_is_refused() -> None:
    key = witness().key
    with pytest.raises(InvalidInput, match="twice"):
        WitnessPolicy((key, CosignerKey("other.test/w", key.public_key)), 1)
