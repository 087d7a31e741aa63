from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealroom.attestation import dcap as dcap_module


@dataclass(frozen=True)
class Dcap:
    tdx_quote: bytes
    tdx_collateral: str
    tdx_outdated: bytes
    tdx_outdated_collateral: str
    sgx_quote: bytes
    sgx_collateral: str


@dataclass(frozen=True)
class DstackRecording:
    path: Path
    quote: bytes
    event_log: str
    report_data: bytes
    vm_config: str


@pytest.fixture(scope="session")
def dcap_vectors(vectors: Path) -> Dcap:
    d = vectors / "dcap"
    return Dcap(
        tdx_quote=(d / "tdx_quote").read_bytes(),
        tdx_collateral=(d / "tdx_quote_collateral.json").read_text(),
        tdx_outdated=(d / "tdx_quote_outdated").read_bytes(),
        tdx_outdated_collateral=(d / "tdx_quote_outdated_collateral.json").read_text(),
        sgx_quote=(d / "sgx_quote").read_bytes(),
        sgx_collateral=(d / "sgx_quote_collateral.json").read_text(),
    )


@pytest.fixture(scope="session")
def dstack_recording(vectors: Path) -> DstackRecording:
    path = vectors / "dstack" / "tdx-lite-getquote.json"
    data = json.loads(path.read_text())
    return DstackRecording(
        path=path,
        quote=bytes.fromhex(data["quote"]),
        event_log=data["event_log"],
        report_data=bytes.fromhex(data["report_data"]),
        vm_config=data["vm_config"],
    )


@pytest.fixture
def stub_dcap(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., list[int]]:
    """Replace only the dcap-qvl call (signature/collateral check) with a fixed verdict.

    For tests of the policy half of DcapVerifier on quotes no vector
    collateral covers, or whose report_data a test patched (which breaks the
    real signature: see test_patched_quote_fails_real_dcap). Framing, parsing,
    measurements, RTMR3 replay and key binding all still run for real.
    """

    def install(status: str = "UpToDate", advisories: tuple[str, ...] = ()) -> list[int]:
        calls: list[int] = []

        def fake(quote: bytes, collateral_json: str, at_time: int) -> tuple[str, tuple[str, ...]]:
            calls.append(at_time)
            return status, advisories

        monkeypatch.setattr(dcap_module, "_run_dcap_qvl", fake)
        return calls

    return install


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (their paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
