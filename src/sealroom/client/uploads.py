"""The owner's side of a chunked, resumable sealed upload.

The input is sealed once, as one STREAM ciphertext (:mod:`sealroom.crypto.sealing`:
HPKE-wrapped payload key, AES-256-GCM chunks whose nonce carries the chunk index and a
final-chunk flag), written to a spool file in the party's home (0600), and cut into
parts of :data:`~sealroom.wire.uploads.DEFAULT_PART_SIZE` bytes whose SHA-256 the
upload declares up front. A killed upload resumes from the spool: the same shape names
the same upload, and only the parts the coordinator does not hold are sent. Sealing
again instead would draw a fresh payload key (never re-encrypt under an old one), so
the spool is the resume point. It is deleted once the upload is complete.

Beside the stream, the commitment's leaf hashes are sealed to the enclave (purpose
``input-leaves``): with them the enclave checks every committed chunk before its Arrow
parser sees it, without holding the input twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sealroom.client.http import Client
from sealroom.crypto.commit import DatasetCommitment, iter_canonical, leaf_hashes
from sealroom.crypto.files import create_private, read_private, write_private
from sealroom.crypto.keys import PublicIdentity, b64decode_strict, b64encode
from sealroom.crypto.sealing import (
    DEFAULT_CHUNK_SIZE,
    SealContext,
    seal,
    seal_stream,
    sealed_size,
    suite_for,
)
from sealroom.errors import BackendUnavailable, InvalidInput
from sealroom.wire import RequestView
from sealroom.wire.uploads import DEFAULT_PART_SIZE, MAX_SEALED_INPUT, StartUploadBody

__all__ = ["Spool", "check_sealed_size", "seal_to_spool", "spool_path", "upload_spool"]

PartProgress = Callable[[int, int], None]
"""Called with (bytes sent so far, total bytes)."""

_SPOOL_DIR = "uploads"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.2f} GiB"


def check_sealed_size(commitment: DatasetCommitment, recipient: PublicIdentity) -> int:
    """The sealed size of a committed input, refused before any sealing if over the limit."""
    size = sealed_size(commitment.length, DEFAULT_CHUNK_SIZE, suite=suite_for(recipient))
    if size > MAX_SEALED_INPUT:
        raise InvalidInput(
            f"the sealed input would be {size} bytes ({_gib(size)}, {commitment.rows} rows), "
            f"over the coordinator's limit of {MAX_SEALED_INPUT} bytes "
            f"({_gib(MAX_SEALED_INPUT)}) per input"
        )
    return size


@dataclass(frozen=True, slots=True)
class Spool:
    """A sealed input on disk and the upload it makes."""

    path: Path
    enclave: str
    body: StartUploadBody

    @property
    def size(self) -> int:
        return self.body.size


def spool_path(home: Path, request: str, dataset: str) -> Path:
    name = f"{request.removeprefix('sha256:')[:32]}-{dataset.removeprefix('sha256:')[:32]}"
    return home / _SPOOL_DIR / f"{name}.sealed"


def _manifest_path(path: Path) -> Path:
    return path.with_suffix(".json")


def seal_to_spool(
    table: pa.Table,
    commitment: DatasetCommitment,
    enclave_public: PublicIdentity,
    enclave: str,
    context: SealContext,
    path: Path,
    *,
    part_size: int = DEFAULT_PART_SIZE,
) -> Spool:
    """Seal ``table``'s canonical bytes to ``path`` (0600), part digests computed on the way.

    The manifest that makes the spool resumable is written last, so a spool cut short by
    a crash is never resumed: it is sealed again.
    """
    check_sealed_size(commitment, enclave_public)
    leaves_context = SealContext(
        request_digest=context.request_digest,
        recipient=context.recipient,
        purpose="input-leaves",
    )
    sealed_leaves = seal(
        leaf_hashes(table, chunk_size=commitment.chunk_size), enclave_public, leaves_context
    )
    _manifest_path(path).unlink(missing_ok=True)
    create_private(path)
    digests: list[str] = []
    part = hashlib.sha256()
    fill = 0
    total = 0
    try:
        with path.open("wb") as out:
            for piece in seal_stream(iter_canonical(table), enclave_public, context):
                view = memoryview(piece)
                out.write(view)
                total += len(view)
                while view:
                    take = min(part_size - fill, len(view))
                    part.update(view[:take])
                    fill += take
                    view = view[take:]
                    if fill == part_size:
                        digests.append("sha256:" + part.hexdigest())
                        part = hashlib.sha256()
                        fill = 0
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise BackendUnavailable(f"cannot write the sealed input to {path}: {exc}") from None
    if fill:
        digests.append("sha256:" + part.hexdigest())
    body = StartUploadBody(
        enclave=enclave, size=total, part_size=part_size, parts=tuple(digests), leaves=sealed_leaves
    )
    manifest = {
        "enclave": enclave,
        "size": total,
        "part_size": part_size,
        "parts": digests,
        "leaves": b64encode(sealed_leaves),
    }
    write_private(_manifest_path(path), json.dumps(manifest).encode())
    return Spool(path=path, enclave=enclave, body=body)


def load_spool(path: Path, *, enclave: str) -> Spool | None:
    """The spool at ``path`` if a complete one for ``enclave`` is there (else None: seal anew)."""
    raw = read_private(_manifest_path(path), what="upload manifest", max_size=4 << 20)
    if raw is None or not path.exists():
        return None
    try:
        data = json.loads(raw)
        body = StartUploadBody(
            enclave=data["enclave"],
            size=data["size"],
            part_size=data["part_size"],
            parts=tuple(data["parts"]),
            leaves=b64decode_strict(data["leaves"], what="sealed leaf index"),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if body.enclave != enclave or path.stat().st_size != body.size:
        return None
    return Spool(path=path, enclave=enclave, body=body)


def discard_spool(path: Path) -> None:
    for p in (path, _manifest_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def upload_spool(
    client: Client,
    request: str,
    dataset: str,
    spool: Spool,
    *,
    progress: PartProgress | None = None,
) -> RequestView:
    """Send what the coordinator does not hold yet, then complete the upload."""
    view = client.start_upload(request, dataset, spool.body)
    held = set(view.received)
    part_size = spool.body.part_size
    sent = sum(min(part_size, spool.size - i * part_size) for i in held if 0 <= i < view.parts)
    if progress is not None:
        progress(sent, spool.size)
    with spool.path.open("rb") as source:
        for index in range(view.parts):
            if index in held:
                continue
            source.seek(index * part_size)
            data = source.read(part_size)
            client.put_part(view.upload, index, data)
            sent += len(data)
            if progress is not None:
                progress(sent, spool.size)
    done = client.complete_upload(view.upload)
    discard_spool(spool.path)
    return done
