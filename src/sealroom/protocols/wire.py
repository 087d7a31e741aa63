"""Protocol messages on the wire: typed, versioned, size-limited frames.

A frame is one message of one protocol run::

    "SRPM" | wire version (1 byte) | header length (4 bytes, big-endian)
    | header: canonical JSON (RFC 8785)
    | blobs: the raw bytes of each blob, in the order the header lists them

    header = {"protocol", "version", "session", "kind", "seq", "sender",
              "recipient", "fields": {...small JSON values...},
              "blobs": [[name, length], ...]}

Blob lengths must add up to exactly what follows the header: no trailing
bytes, no short reads. Decoding checks the size limit before reading
anything else. Everything a peer sends is read through the accessors
(:meth:`Frame.int_field`, :meth:`Frame.items`, ...), which raise
:class:`~sealroom.errors.ProtocolError` naming the message and the field, so a
malformed message ends the run instead of becoming a wrong answer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sealroom.errors import ProtocolError, StatementFormatError
from sealroom.statements.canonical import canonical_json, parse_json_strict

__all__ = ["DEFAULT_MAX_FRAME", "MAGIC", "WIRE_VERSION", "Frame"]

MAGIC = b"SRPM"
WIRE_VERSION = 1
DEFAULT_MAX_FRAME = 64 << 20
MAX_HEADER = 256 << 10
_PREFIX = struct.Struct(">4sBI")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SESSION = re.compile(r"^[0-9a-f]{32}$")
_HEADER_KEYS = {
    "protocol",
    "version",
    "session",
    "kind",
    "seq",
    "sender",
    "recipient",
    "fields",
    "blobs",
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One protocol message. ``seq`` counts the messages of one sender to one recipient."""

    protocol: str
    version: int
    session: str
    kind: str
    seq: int
    sender: str
    recipient: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    blobs: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, name in (
            ("protocol", self.protocol),
            ("kind", self.kind),
            ("sender", self.sender),
            ("recipient", self.recipient),
            *(("field name", n) for n in self.fields),
            *(("blob name", n) for n in self.blobs),
        ):
            if not isinstance(name, str) or not _NAME.match(name):
                raise ProtocolError(f"message {what} {name!r} is not a valid name")
        if not isinstance(self.session, str) or not _SESSION.match(self.session):
            raise ProtocolError("message session must be 32 lowercase hex characters")
        for what, n in (("version", self.version), ("seq", self.seq)):
            if type(n) is not int or not 0 <= n < 2**31:
                raise ProtocolError(f"message {what} must be an integer in 0..2^31-1")

    @property
    def what(self) -> str:
        return f"{self.protocol} v{self.version} {self.kind} from {self.sender}"

    # --- encoding ---------------------------------------------------------------------

    def encode(self) -> bytes:
        header = {
            "protocol": self.protocol,
            "version": self.version,
            "session": self.session,
            "kind": self.kind,
            "seq": self.seq,
            "sender": self.sender,
            "recipient": self.recipient,
            "fields": dict(self.fields),
            "blobs": [[name, len(data)] for name, data in self.blobs.items()],
        }
        try:
            head = canonical_json(header)
        except StatementFormatError as exc:
            raise ProtocolError(f"{self.what}: fields cannot be encoded: {exc.detail}") from None
        if len(head) > MAX_HEADER:
            raise ProtocolError(f"{self.what}: header exceeds {MAX_HEADER} bytes")
        return b"".join([_PREFIX.pack(MAGIC, WIRE_VERSION, len(head)), head, *self.blobs.values()])

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = DEFAULT_MAX_FRAME) -> Frame:
        if len(data) > max_size:
            raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
        if len(data) < _PREFIX.size:
            raise ProtocolError("message is truncated (no header)")
        magic, version, head_len = _PREFIX.unpack_from(data)
        if magic != MAGIC:
            raise ProtocolError("message does not start with the protocol magic")
        if version != WIRE_VERSION:
            raise ProtocolError(f"unknown wire version {version} (supported: {WIRE_VERSION})")
        if head_len > MAX_HEADER or _PREFIX.size + head_len > len(data):
            raise ProtocolError("message header length is out of range")
        head_bytes = bytes(data[_PREFIX.size : _PREFIX.size + head_len])
        try:
            header = parse_json_strict(head_bytes, max_size=MAX_HEADER, what="message header")
        except StatementFormatError as exc:
            raise ProtocolError(exc.detail) from None
        if not isinstance(header, dict) or set(header) != _HEADER_KEYS:
            raise ProtocolError("message header has missing or unknown keys")
        if canonical_json(header) != head_bytes:
            raise ProtocolError("message header is not canonical JSON")
        fields, blob_list = header["fields"], header["blobs"]
        if not isinstance(fields, dict) or not isinstance(blob_list, list):
            raise ProtocolError("message header fields/blobs have the wrong type")
        blobs: dict[str, bytes] = {}
        offset = _PREFIX.size + head_len
        view = memoryview(data)
        for entry in blob_list:
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or type(entry[1]) is not int
                or entry[1] < 0
            ):
                raise ProtocolError("message blob list entry is malformed")
            name, length = entry
            if name in blobs:
                raise ProtocolError(f"message names blob {name!r} twice")
            if offset + length > len(data):
                raise ProtocolError(f"message is truncated inside blob {name!r}")
            blobs[name] = bytes(view[offset : offset + length])
            offset += length
        if offset != len(data):
            raise ProtocolError(f"message has {len(data) - offset} trailing bytes")
        return cls(
            protocol=_str(header, "protocol"),
            version=header["version"],
            session=_str(header, "session"),
            kind=_str(header, "kind"),
            seq=header["seq"],
            sender=_str(header, "sender"),
            recipient=_str(header, "recipient"),
            fields=fields,
            blobs=blobs,
        )

    # --- reading what a peer sent -----------------------------------------------------

    def only(self, *, fields: Iterable[str] = (), blobs: Iterable[str] = ()) -> None:
        """Require exactly these field and blob names (no missing, no unknown)."""
        for what, have, want in (
            ("fields", set(self.fields), set(fields)),
            ("blobs", set(self.blobs), set(blobs)),
        ):
            if have != want:
                missing, extra = sorted(want - have), sorted(have - want)
                raise ProtocolError(
                    f"{self.what}: {what} missing {missing or 'none'}, unexpected {extra or 'none'}"
                )

    def int_field(self, name: str, *, lo: int, hi: int) -> int:
        value = self._field(name)
        if type(value) is not int or not lo <= value <= hi:
            raise ProtocolError(f"{self.what}: {name} must be an integer in {lo}..{hi}")
        return value

    def bool_field(self, name: str) -> bool:
        value = self._field(name)
        if type(value) is not bool:
            raise ProtocolError(f"{self.what}: {name} must be a boolean")
        return value

    def str_field(
        self, name: str, *, max_len: int = 1000, choices: Iterable[str] | None = None
    ) -> str:
        value = self._field(name)
        if not isinstance(value, str) or len(value) > max_len:
            raise ProtocolError(f"{self.what}: {name} must be a string of at most {max_len}")
        if choices is not None and value not in set(choices):
            raise ProtocolError(f"{self.what}: {name} {value!r} is not one of {sorted(choices)}")
        return value

    def blob(self, name: str, *, max_size: int, size: int | None = None) -> bytes:
        if name not in self.blobs:
            raise ProtocolError(f"{self.what}: blob {name!r} is missing")
        data = self.blobs[name]
        if len(data) > max_size or (size is not None and len(data) != size):
            want = f"exactly {size}" if size is not None else f"at most {max_size}"
            raise ProtocolError(f"{self.what}: blob {name} must be {want} bytes")
        return data

    def items(self, name: str, *, size: int, max_count: int, min_count: int = 0) -> list[bytes]:
        """A blob of fixed-size items, split; the count must be within bounds."""
        data = self.blob(name, max_size=size * max_count)
        if len(data) % size:
            raise ProtocolError(
                f"{self.what}: blob {name} is not a whole number of {size}-byte items"
            )
        count = len(data) // size
        if count < min_count:
            raise ProtocolError(
                f"{self.what}: blob {name} has {count} items, fewer than {min_count}"
            )
        return [data[i : i + size] for i in range(0, len(data), size)]

    def _field(self, name: str) -> Any:
        if name not in self.fields:
            raise ProtocolError(f"{self.what}: field {name!r} is missing")
        return self.fields[name]


def _str(header: dict[str, Any], key: str) -> str:
    value = header[key]
    if not isinstance(value, str):
        raise ProtocolError(f"message header {key} must be a string")
    return value
