"""Chunked, resumable uploads of sealed inputs (the big-data path of approval).

The coordinator never sees plaintext and cannot check a seal; what it checks is the
shape the owner signed up for: every part must have the size and SHA-256 the owner
declared when it started the upload, so a part can be sent again after a crash, in any
order, but no part can be swapped, duplicated into another slot or taken from another
upload. The enclave does not rely on any of this: the parts are one STREAM ciphertext
(:mod:`sealroom.crypto.sealing`) whose chunk nonces carry the index and the final flag.
Parts live in the database, next to the request they belong to (decisions.md).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import Connection, Row, select, update

from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.approvals import maybe_ready
from sealroom.coordinator.jobs import check_admitted, running_job
from sealroom.coordinator.state import State, erase_upload, request_row, request_view
from sealroom.crypto.keys import PartyId
from sealroom.crypto.sealing import SealedHeader
from sealroom.errors import Conflict, DecryptionFailed, InvalidInput, NotFound
from sealroom.statements.canonical import canonical_json
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import input_parts, input_uploads, request_inputs
from sealroom.wire import RequestView
from sealroom.wire.uploads import MAX_LEAF_INDEX, StartUploadBody, UploadView

__all__ = ["Uploads", "upload_id"]

_DOMAIN = b"sealroom-upload-v1\x00"


def upload_id(request: str, dataset: str, body: StartUploadBody) -> str:
    """The upload's id: a digest of everything fixed at its start, so starting the same upload
    again (a resumed client) names the same one, and any other shape names another."""
    shape = {
        "request": request,
        "dataset": dataset,
        "enclave": body.enclave,
        "size": body.size,
        "part_size": body.part_size,
        "parts": list(body.parts),
        "leaves": hashlib.sha256(body.leaves).hexdigest(),
    }
    return "sha256:" + hashlib.sha256(_DOMAIN + canonical_json(shape)).hexdigest()


def _part_length(row: Row[Any], index: int) -> int:
    last = int(row.parts) - 1
    return int(row.part_size) if index < last else int(row.size) - int(row.part_size) * last


class Uploads:
    __slots__ = ("_admission", "_state")

    def __init__(self, state: State, *, admission: AdmissionPolicy) -> None:
        self._state = state
        self._admission = admission

    def start(
        self, request: str, dataset: str, body: StartUploadBody, *, caller: PartyId, now: int
    ) -> UploadView:
        """Start (or, with the same shape, resume) the upload of one approved input.

        An unfinished upload of another shape is replaced (the owner sealed again);
        a finished one cannot be.
        """
        uid = upload_id(request, dataset, body)
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            _owned_input(conn, request, dataset, caller)
            _check_shape(body)
            check_admitted(conn, body.enclave, self._admission, now=now)
            _check_same_enclave(conn, request, body.enclave)
            old = conn.execute(
                select(input_uploads).where(
                    input_uploads.c.request == request, input_uploads.c.dataset == dataset
                )
            ).first()
            if old is not None and old.upload == uid:
                return _view(conn, old)
            if old is not None:
                if old.completed_at is not None:
                    raise Conflict("this input has already been uploaded")
                # The owner sealed again: the old parts are erased, and the erasure recorded.
                erase_upload(
                    conn,
                    request,
                    str(old.upload),
                    dataset,
                    reason="an unfinished upload was replaced by one of another shape",
                    now=now,
                )
            conn.execute(
                input_uploads.insert().values(
                    upload=uid,
                    request=request,
                    dataset=dataset,
                    owner=caller,
                    enclave=body.enclave,
                    size=body.size,
                    part_size=body.part_size,
                    parts=len(body.parts),
                    digests=b"".join(bytes.fromhex(d.removeprefix("sha256:")) for d in body.parts),
                    leaves=body.leaves,
                    created_at=now,
                )
            )
            return _view(conn, _upload_row(conn, uid, caller))

    def get(self, upload: str, *, caller: PartyId, now: int) -> UploadView:
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            return _view(conn, _upload_row(conn, upload, caller))

    def put_part(
        self, upload: str, index: int, data: bytes, *, caller: PartyId, now: int
    ) -> UploadView:
        """Store part ``index`` if it has the declared size and digest (again: a no-op)."""
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            row = _open_upload(conn, upload, caller)
            if not 0 <= index < int(row.parts):
                raise InvalidInput(f"part {index} is out of range: the upload has {row.parts}")
            length = _part_length(row, index)
            if len(data) != length:
                raise InvalidInput(f"part {index} must be {length} bytes, got {len(data)}")
            declared = bytes(row.digests)[32 * index : 32 * index + 32]
            if not hmac.compare_digest(hashlib.sha256(data).digest(), declared):
                raise InvalidInput(
                    f"part {index} does not match the SHA-256 declared for it: a part of "
                    "another upload, another position, or damaged in transit"
                )
            if index == 0:
                _check_header(conn, row, data)
            held = conn.execute(
                select(input_parts.c.part).where(
                    input_parts.c.upload == upload, input_parts.c.part == index
                )
            ).first()
            if held is None:
                conn.execute(input_parts.insert().values(upload=upload, part=index, sealed=data))
            return _view(conn, row)

    def complete(self, upload: str, *, caller: PartyId, now: int) -> RequestView:
        """Finish the upload once every part is held; the input then counts as uploaded."""
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            row = _open_upload(conn, upload, caller)
            request = str(row.request)
            received = _received(conn, upload)
            missing = sorted(set(range(int(row.parts))) - set(received))
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                raise Conflict(f"{len(missing)} of {row.parts} parts are missing: {shown}")
            check_admitted(conn, str(row.enclave), self._admission, now=now)
            _check_same_enclave(conn, request, str(row.enclave))
            conn.execute(
                update(input_uploads)
                .where(input_uploads.c.upload == upload)
                .values(completed_at=now)
            )
            conn.execute(
                update(request_inputs)
                .where(
                    request_inputs.c.request == request,
                    request_inputs.c.dataset == row.dataset,
                )
                .values(sealed_size=int(row.size), enclave=str(row.enclave))
            )
            maybe_ready(self._state, conn, request, now)
            return request_view(conn, request)

    def job_part(
        self, request: str, dataset: str, index: int, *, caller: PartyId, now: int
    ) -> bytes:
        """Part ``index`` of a running job's chunked input, for the enclave that claimed it."""
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            running_job(conn, request, caller)
            blob = conn.execute(
                select(input_parts.c.sealed)
                .join(input_uploads, input_uploads.c.upload == input_parts.c.upload)
                .where(
                    input_uploads.c.request == request,
                    input_uploads.c.dataset == dataset,
                    input_uploads.c.completed_at.is_not(None),
                    input_parts.c.part == index,
                )
            ).scalar_one_or_none()
        if blob is None:
            raise NotFound(f"no part {index} of sealed input {dataset} in job {request}")
        return bytes(blob)


def _owned_input(conn: Connection, request: str, dataset: str, caller: PartyId) -> None:
    """The caller's approved, not yet uploaded input of a pending request, or a clear refusal."""
    row = request_row(conn, request, caller)
    inp = conn.execute(
        select(request_inputs).where(
            request_inputs.c.request == request,
            request_inputs.c.dataset == dataset,
            request_inputs.c.owner == caller,
        )
    ).first()
    if inp is None:
        raise NotFound(f"dataset {dataset} is not an input of yours in this request")
    if row.status != "pending":
        raise Conflict(f"the request is {row.status}; uploads are closed")
    if inp.decision != "approve":
        raise Conflict("approve the input before uploading its sealed data")
    if inp.sealed_size is not None:
        raise Conflict("this input has already been uploaded")


def _check_shape(body: StartUploadBody) -> None:
    """The declared shape adds up (checked after access, so a stranger only ever sees 404)."""
    expected = -(-body.size // body.part_size)
    if len(body.parts) != expected:
        raise InvalidInput(
            f"{body.size} bytes in parts of {body.part_size} make {expected} parts, "
            f"but {len(body.parts)} part digests were given"
        )
    if not body.leaves or len(body.leaves) > MAX_LEAF_INDEX:
        raise InvalidInput(
            f"the sealed leaf index must hold 1 to {MAX_LEAF_INDEX} bytes, not {len(body.leaves)}"
        )


def _check_same_enclave(conn: Connection, request: str, enclave: str) -> None:
    other = conn.execute(
        select(request_inputs.c.enclave).where(
            request_inputs.c.request == request,
            request_inputs.c.enclave.is_not(None),
            request_inputs.c.enclave != enclave,
        )
    ).first()
    if other is not None:
        raise Conflict(f"another input is sealed to enclave {other[0]}; seal to the same enclave")


def _upload_row(conn: Connection, upload: str, caller: PartyId) -> Row[Any]:
    row = conn.execute(select(input_uploads).where(input_uploads.c.upload == upload)).first()
    if row is None or row.owner != caller:
        raise NotFound(f"no upload {upload}")
    return row


def _open_upload(conn: Connection, upload: str, caller: PartyId) -> Row[Any]:
    """An unfinished upload of the caller's whose request still takes uploads."""
    row = _upload_row(conn, upload, caller)
    if row.completed_at is not None:
        raise Conflict(f"upload {upload} is already complete")
    _owned_input(conn, str(row.request), str(row.dataset), caller)
    return row


def _check_header(conn: Connection, row: Row[Any], data: bytes) -> None:
    """Part 0 starts with the seal's header: it must name this request and purpose "input"
    (a seal for another job fails here, not only in the enclave after everyone waited)."""
    try:
        header = SealedHeader.parse(data)
    except DecryptionFailed as exc:
        raise InvalidInput(f"part 0 does not start with a sealed header: {exc.detail}") from None
    request_digest = bytes.fromhex(str(row.request).removeprefix("sha256:"))
    if not hmac.compare_digest(header.request_digest, request_digest):
        raise InvalidInput("the sealed data names another request in its header")
    if not hmac.compare_digest(header.purpose_digest, hashlib.sha256(b"input").digest()):
        raise InvalidInput('the sealed data is not sealed for purpose "input"')


def _received(conn: Connection, upload: str) -> list[int]:
    return [
        int(p)
        for (p,) in conn.execute(
            select(input_parts.c.part)
            .where(input_parts.c.upload == upload)
            .order_by(input_parts.c.part)
        )
    ]


def _view(conn: Connection, row: Row[Any]) -> UploadView:
    return UploadView(
        upload=str(row.upload),
        request=str(row.request),
        dataset=str(row.dataset),
        owner=str(row.owner),
        enclave=str(row.enclave),
        size=int(row.size),
        part_size=int(row.part_size),
        parts=int(row.parts),
        received=tuple(_received(conn, str(row.upload))),
        complete=row.completed_at is not None,
    )
