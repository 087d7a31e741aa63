"""Strict framing of Intel DCAP quotes (v3 SGX, v4/v5 TDX), checked before dcap-qvl runs.

dcap-qvl verifies what it signs, but it tolerates bytes it does not use: the
signature-data and certification-data length fields, the outer certification
data type, PEM whitespace, and the whole root certificate embedded in the
quote (it anchors on its own copy of Intel's root). Measured against the
``tdx_quote`` vector, about 1,000 of its 40,048 single-bit flips still
verified. A quote we store in a proof bundle and refer to by digest must have
exactly one encoding, so we insist on it: every length exact, the embedded
PCK chain in canonical PEM ending at the pinned Intel SGX Root CA, and only
zero padding after the structures.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealroom.errors import AttestationInvalid

__all__ = ["INTEL_SGX_ROOT_CA_SHA256", "QuoteFrame", "check_quote_framing"]

# SHA-256 of the DER of "Intel SGX Root CA" (valid 2018-05-21 .. 2049-12-31),
# the root dcap-qvl trusts; also the root of every issuer chain in the
# collateral vectors.
INTEL_SGX_ROOT_CA_SHA256 = bytes.fromhex(
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
_HEADER_SIZE = 48
_SGX_REPORT_SIZE = 384
_TD10_REPORT_SIZE = 584
_TD15_REPORT_SIZE = 648
_V5_BODY_SIZES = {2: _TD10_REPORT_SIZE, 3: _TD15_REPORT_SIZE}
_ECDSA_P256 = 2
_ECDSA_SIG_AND_KEY = 64 + 64
_QE_REPORT_AND_SIG = 384 + 64
_CERT_TYPE_PCK_CHAIN = 5
_CERT_TYPE_QE_REPORT = 6
_PCK_CHAIN_LENGTH = 3


@dataclass(frozen=True, slots=True)
class QuoteFrame:
    """What the framing says about a quote, before any signature is checked."""

    version: int
    tee_type: int

    @property
    def is_tdx(self) -> bool:
        return self.tee_type == TEE_TYPE_TDX


class _Reader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise AttestationInvalid(f"quote framing: truncated in {what}")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.offset, "trailer")


def _require_zero_padding(data: bytes, what: str) -> None:
    if data.strip(b"\0"):
        raise AttestationInvalid(f"quote framing: non-zero bytes after {what}")


def _check_pck_chain(data: bytes) -> None:
    pem = data.rstrip(b"\0")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationInvalid("quote framing: PCK certificate chain is not PEM") from exc
    if len(certs) != _PCK_CHAIN_LENGTH:
        raise AttestationInvalid(
            f"quote framing: PCK chain must have {_PCK_CHAIN_LENGTH} certificates, has {len(certs)}"
        )
    if b"".join(cert.public_bytes(Encoding.PEM) for cert in certs) != pem:
        raise AttestationInvalid("quote framing: PCK certificate chain is not canonical PEM")
    root = hashlib.sha256(certs[-1].public_bytes(Encoding.DER)).digest()
    if not hmac.compare_digest(root, INTEL_SGX_ROOT_CA_SHA256):
        raise AttestationInvalid(
            "quote framing: PCK chain does not end at the pinned Intel SGX Root CA"
        )


def _check_qe_certification(reader: _Reader) -> None:
    """QE report, its signature, QE auth data and the PCK chain: all lengths exact."""
    reader.take(_QE_REPORT_AND_SIG, "QE report")
    reader.take(reader.u16("QE auth data size"), "QE auth data")
    cert_type = reader.u16("certification data type")
    if cert_type != _CERT_TYPE_PCK_CHAIN:
        raise AttestationInvalid(
            f"quote framing: certification data type {cert_type}, expected a PCK "
            f"certificate chain ({_CERT_TYPE_PCK_CHAIN})"
        )
    _check_pck_chain(reader.take(reader.u32("certification data size"), "PCK chain"))


def check_quote_framing(quote: bytes) -> QuoteFrame:
    """Check that ``quote`` is one exact, canonical DCAP quote; raise otherwise."""
    if not isinstance(quote, bytes):
        raise AttestationInvalid("quote framing: quote must be bytes")
    reader = _Reader(quote)
    version = reader.u16("header")
    key_type = reader.u16("header")
    tee_type = reader.u32("header")
    reader.take(_HEADER_SIZE - 8, "header")
    if key_type != _ECDSA_P256:
        raise AttestationInvalid(f"quote framing: attestation key type {key_type} unsupported")
    if version == 3 and tee_type == TEE_TYPE_SGX:
        reader.take(_SGX_REPORT_SIZE, "SGX report")
    elif version == 4 and tee_type == TEE_TYPE_TDX:
        reader.take(_TD10_REPORT_SIZE, "TD report")
    elif version == 5 and tee_type == TEE_TYPE_TDX:
        body_type = reader.u16("body type")
        body_size = reader.u32("body size")
        if _V5_BODY_SIZES.get(body_type) != body_size:
            raise AttestationInvalid(
                f"quote framing: v5 body type {body_type} with size {body_size} unsupported"
            )
        reader.take(body_size, "TD report")
    else:
        raise AttestationInvalid(
            f"quote framing: version {version} with TEE type {tee_type:#x} unsupported"
        )
    signature_data = _Reader(reader.take(reader.u32("signature data size"), "signature data"))
    _require_zero_padding(reader.rest(), "the signature data")
    signature_data.take(_ECDSA_SIG_AND_KEY, "quote signature")
    if version == 3:
        _check_qe_certification(signature_data)
    else:
        outer_type = signature_data.u16("certification data type")
        if outer_type != _CERT_TYPE_QE_REPORT:
            raise AttestationInvalid(
                f"quote framing: certification data type {outer_type}, expected QE report "
                f"certification data ({_CERT_TYPE_QE_REPORT})"
            )
        size = signature_data.u32("certification data size")
        inner = _Reader(signature_data.take(size, "certification data"))
        _check_qe_certification(inner)
        if inner.offset != len(inner.data):
            raise AttestationInvalid("quote framing: trailing bytes in certification data")
    if signature_data.offset != len(signature_data.data):
        raise AttestationInvalid("quote framing: trailing bytes in signature data")
    return QuoteFrame(version=version, tee_type=tee_type)
