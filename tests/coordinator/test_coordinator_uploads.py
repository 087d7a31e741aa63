"""Chunked, resumable uploads of sealed inputs, against each database backend."""

from __future__ import annotations

import hashlib
import os

import pytest

from sealroom.crypto.sealing import SealContext, seal, seal_stream
from sealroom.errors import Conflict, InvalidInput, NotFound
from sealroom.statements import SealedHash, sealed_digest, sign_statement
from sealroom.wire.uploads import MIN_PART_SIZE, StartUploadBody
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, approval, identity

PART = MIN_PART_SIZE


def _approved(w: World) -> tuple[str, str]:
    evidence = w.register_enclave()
    rid = w.request((w.dataset,))
    a = sign_statement(approval(w.owner, rid, w.dataset), w.owner)
    w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)
    return rid, evidence


def _sealed(w: World, rid: str, size: int = 3 * PART + 1000, *, purpose: str = "input") -> bytes:
    context = SealContext(
        request_digest=bytes.fromhex(rid.removeprefix("sha256:")),
        recipient=w.enclave.public.party_id,
        purpose=purpose,
    )
    return b"".join(seal_stream(os.urandom(size), w.enclave.public, context))


def _parts(sealed: bytes) -> list[bytes]:
    return [sealed[i : i + PART] for i in range(0, len(sealed), PART)]


def _body(w: World, rid: str, sealed: bytes, evidence: str) -> StartUploadBody:
    leaves_context = SealContext(
        request_digest=bytes.fromhex(rid.removeprefix("sha256:")),
        recipient=w.enclave.public.party_id,
        purpose="input-leaves",
    )
    return StartUploadBody(
        enclave=evidence,
        size=len(sealed),
        part_size=PART,
        parts=tuple("sha256:" + hashlib.sha256(p).hexdigest() for p in _parts(sealed)),
        leaves=seal(bytes(32), w.enclave.public, leaves_context),
    )


def test_upload_in_parts_resumes_and_completes(w: World) -> None:
    rid, evidence = _approved(w)
    sealed = _sealed(w, rid)
    parts = _parts(sealed)
    body = _body(w, rid, sealed, evidence)
    owner = w.owner.party_id
    view = w.c.uploads.start(rid, w.dataset, body, caller=owner, now=T0 + 21)
    assert (view.parts, view.received, view.complete) == (len(parts), (), False)
    # Out of order and one part twice: fine, the slots are fixed by the declared digests.
    w.c.uploads.put_part(view.upload, 2, parts[2], caller=owner, now=T0 + 22)
    w.c.uploads.put_part(view.upload, 0, parts[0], caller=owner, now=T0 + 22)
    again = w.c.uploads.put_part(view.upload, 0, parts[0], caller=owner, now=T0 + 22)
    assert again.received == (0, 2)
    # The client died; it starts the same upload again and learns what is held.
    resumed = w.c.uploads.start(rid, w.dataset, body, caller=owner, now=T0 + 23)
    assert (resumed.upload, resumed.received) == (view.upload, (0, 2))
    with pytest.raises(Conflict, match="2 of 4 parts are missing: 1, 3"):
        w.c.uploads.complete(view.upload, caller=owner, now=T0 + 24)
    assert w.c.requests.get(rid, caller=owner, now=T0 + 24).status == "pending"
    for i in (1, 3):
        w.c.uploads.put_part(view.upload, i, parts[i], caller=owner, now=T0 + 25)
    done = w.c.uploads.complete(view.upload, caller=owner, now=T0 + 26)
    assert done.status == "approved"
    with pytest.raises(Conflict, match="already complete"):
        w.c.uploads.put_part(view.upload, 1, parts[1], caller=owner, now=T0 + 27)
    # The enclave that claims the job learns the parts and reads them back in order.
    enclave = w.enclave.public.party_id
    job = w.c.jobs.claim(caller=enclave, now=T0 + 40)
    assert job is not None
    (inp,) = job.inputs
    assert (inp.size, inp.parts, inp.leaves) == (len(sealed), len(parts), body.leaves)
    got = b"".join(
        w.c.uploads.job_part(rid, w.dataset, i, caller=enclave, now=T0 + 41)
        for i in range(inp.parts)
    )
    assert got == sealed
    with pytest.raises(NotFound):
        w.c.uploads.job_part(rid, w.dataset, len(parts), caller=enclave, now=T0 + 41)
    with pytest.raises(NotFound):  # only the enclave that claimed the job reads its parts
        w.c.uploads.job_part(rid, w.dataset, 0, caller=w.owner.party_id, now=T0 + 41)


def test_wrong_parts_are_refused_and_lose_nothing(w: World) -> None:
    rid, evidence = _approved(w)
    sealed = _sealed(w, rid)
    parts = _parts(sealed)
    owner = w.owner.party_id
    view = w.c.uploads.start(rid, w.dataset, _body(w, rid, sealed, evidence), caller=owner, now=T0)
    w.c.uploads.put_part(view.upload, 0, parts[0], caller=owner, now=T0 + 1)
    with pytest.raises(InvalidInput, match="part 1 does not match the SHA-256"):  # reordered
        w.c.uploads.put_part(view.upload, 1, parts[2], caller=owner, now=T0 + 1)
    with pytest.raises(InvalidInput, match="part 2 does not match"):  # duplicated into a slot
        w.c.uploads.put_part(view.upload, 2, parts[1], caller=owner, now=T0 + 1)
    with pytest.raises(InvalidInput, match=r"part 3 must be \d+ bytes, got"):  # truncated last part
        w.c.uploads.put_part(view.upload, 3, parts[3][:-1], caller=owner, now=T0 + 1)
    with pytest.raises(InvalidInput, match="out of range"):  # an extra part
        w.c.uploads.put_part(view.upload, 4, parts[3], caller=owner, now=T0 + 1)
    # A part of another upload (same request, same owner, sealed again) is refused too.
    other = _parts(_sealed(w, rid))
    with pytest.raises(InvalidInput, match="part 1 does not match"):
        w.c.uploads.put_part(view.upload, 1, other[1], caller=owner, now=T0 + 1)
    assert w.c.uploads.get(view.upload, caller=owner, now=T0 + 2).received == (0,)
    # Someone else cannot see or feed the upload.
    mallory = identity("mallory")
    with pytest.raises(NotFound):
        w.c.uploads.put_part(view.upload, 1, parts[1], caller=mallory.party_id, now=T0 + 2)


def test_part_zero_must_be_sealed_for_this_request_and_purpose(w: World) -> None:
    rid, evidence = _approved(w)
    owner = w.owner.party_id
    for sealed, message in (
        (_sealed(w, "sha256:" + "ab" * 32), "names another request"),
        (_sealed(w, rid, purpose="result"), 'not sealed for purpose "input"'),
        (b"\x00" * (2 * PART), "does not start with a sealed header"),
    ):
        view = w.c.uploads.start(
            rid, w.dataset, _body(w, rid, sealed, evidence), caller=owner, now=T0
        )
        with pytest.raises(InvalidInput, match=message):
            w.c.uploads.put_part(view.upload, 0, _parts(sealed)[0], caller=owner, now=T0 + 1)


def test_a_new_shape_replaces_an_unfinished_upload_never_a_finished_one(w: World) -> None:
    rid, evidence = _approved(w)
    owner = w.owner.party_id
    first = _sealed(w, rid)
    v1 = w.c.uploads.start(rid, w.dataset, _body(w, rid, first, evidence), caller=owner, now=T0)
    w.c.uploads.put_part(v1.upload, 0, _parts(first)[0], caller=owner, now=T0)
    second = _sealed(w, rid, size=PART)
    body2 = _body(w, rid, second, evidence)
    v2 = w.c.uploads.start(rid, w.dataset, body2, caller=owner, now=T0 + 1)
    assert v2.upload != v1.upload
    assert v2.received == ()
    with pytest.raises(NotFound):
        w.c.uploads.get(v1.upload, caller=owner, now=T0 + 1)
    for i, p in enumerate(_parts(second)):
        w.c.uploads.put_part(v2.upload, i, p, caller=owner, now=T0 + 2)
    w.c.uploads.complete(v2.upload, caller=owner, now=T0 + 3)
    with pytest.raises(Conflict, match="uploads are closed"):
        w.c.uploads.start(rid, w.dataset, _body(w, rid, first, evidence), caller=owner, now=T0)
    # The replaced upload's parts were erased, and the erasure names the one part it held.
    (erased,) = w.c.deletions.view(rid, caller=owner).erasures
    assert (erased.kind, erased.subject) == ("sealed-input", w.dataset)
    assert (erased.sealed, erased.size) == (sealed_digest(_parts(first)[0]), PART)
    assert "replaced" in erased.reason


def test_shape_is_checked_before_anything_is_stored(w: World) -> None:
    rid, evidence = _approved(w)
    owner = w.owner.party_id
    sealed = _sealed(w, rid)
    body = _body(w, rid, sealed, evidence)
    short = body.model_copy(update={"parts": body.parts[:-1]})
    with pytest.raises(InvalidInput, match="make 4 parts, but 3 part digests"):
        w.c.uploads.start(rid, w.dataset, short, caller=owner, now=T0)
    unapproved = w.request((w.dataset,), nonce=2)
    with pytest.raises(Conflict, match="approve the input"):
        w.c.uploads.start(unapproved, w.dataset, body, caller=owner, now=T0)
    with pytest.raises(NotFound):
        w.c.uploads.start(rid, w.dataset, body, caller=identity("eve").party_id, now=T0)


def test_parts_go_when_the_request_ends(w: World) -> None:
    rid, evidence = _approved(w)
    owner = w.owner.party_id
    sealed = _sealed(w, rid)
    view = w.c.uploads.start(rid, w.dataset, _body(w, rid, sealed, evidence), caller=owner, now=T0)
    w.c.uploads.put_part(view.upload, 0, _parts(sealed)[0], caller=owner, now=T0)
    w.c.requests.withdraw(rid, "changed my mind", caller=w.requester.party_id, now=T0 + 1)
    with pytest.raises(NotFound):
        w.c.uploads.get(view.upload, caller=owner, now=T0 + 2)
    (erased,) = w.c.deletions.view(rid, caller=owner).erasures
    assert (erased.sealed, erased.size) == (sealed_digest(_parts(sealed)[0]), PART)


def test_a_completed_upload_is_erased_under_the_whole_blobs_digest(w: World) -> None:
    """The erasure names a chunked input as SHA-256 over its parts in order and their total
    size: the name the same ciphertext would have uploaded whole, and the enclave's."""
    rid, evidence = _approved(w)
    owner = w.owner.party_id
    sealed = _sealed(w, rid)
    view = w.c.uploads.start(rid, w.dataset, _body(w, rid, sealed, evidence), caller=owner, now=T0)
    parts = _parts(sealed)
    for i in reversed(range(len(parts))):  # stored in any order, hashed in part order
        w.c.uploads.put_part(view.upload, i, parts[i], caller=owner, now=T0)
    w.c.uploads.complete(view.upload, caller=owner, now=T0 + 1)
    w.c.requests.withdraw(rid, "changed my mind", caller=w.requester.party_id, now=T0 + 2)
    (erased,) = w.c.deletions.view(rid, caller=owner).erasures
    assert (erased.kind, erased.subject) == ("sealed-input", w.dataset)
    assert (erased.sealed, erased.size) == (sealed_digest(sealed), len(sealed))
    assert SealedHash(*parts).digest() == erased.sealed
    assert erased.sealed != SealedHash(*reversed(parts)).digest()
    assert erased.reason == "the request ended (withdrawn)"
