"""An owner's decision to seal to a TDX enclave uses the owner's PCCS, not the host's copy."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from sealroom.attestation import TeeEvidence, report_data_for
from sealroom.attestation.collateral import (
    EMBEDDED_COLLATERAL_WARNING,
    EmbeddedCollateral,
    PccsCollateral,
)
from sealroom.attestation.pins import EnclavePin
from sealroom.cli.exits import ExitCode, exit_code_for
from sealroom.client.trust import SealingTrust, verify_enclave_evidence
from sealroom.enclave.keys import EnclaveKeys
from sealroom.errors import AttestationInvalid, BackendUnavailable
from sealroom.statements import Envelope
from tests.attestation import conftest as attestation_conftest
from tests.attestation.conftest import Dcap, DstackRecording
from tests.attestation.pccs_server import (
    install_verdict_from_collateral,
    loopback_pccs,
    with_tcb_status,
)
from tests.attestation.test_dcap import dstack_evidence, dstack_policy

NOW = 1_800_000_000


@pytest.fixture
def dcap_vectors(vectors: Path) -> Dcap:
    return attestation_conftest.dcap_vectors.__wrapped__(vectors)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def dstack_recording(vectors: Path) -> DstackRecording:
    return attestation_conftest.dstack_recording.__wrapped__(vectors)  # type: ignore[attr-defined, no-any-return]


class RecordedTdx:
    """A TDX provider replaying the dstack recording, patched to bind the given keys, with
    the collateral a host chose to send (DCAP's signature check is stubbed in these tests)."""

    def __init__(self, recording: DstackRecording, collateral: str) -> None:
        self._recording = recording
        self._collateral = collateral

    def attest(self, key_document: bytes) -> TeeEvidence:
        evidence = dstack_evidence(self._recording, report_data=report_data_for(key_document))
        return dataclasses.replace(evidence, collateral=self._collateral)


@pytest.fixture
def tdx_enclave(dstack_recording: DstackRecording, dcap_vectors: Dcap) -> Envelope:
    provider = RecordedTdx(dstack_recording, dcap_vectors.tdx_collateral)
    return EnclaveKeys.create_at_time(provider, tee="tdx", now=NOW).evidence.envelope


def test_the_owner_seals_on_current_collateral_and_refuses_a_downgraded_platform(
    tdx_enclave: Envelope,
    dstack_recording: DstackRecording,
    dcap_vectors: Dcap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = install_verdict_from_collateral(monkeypatch)
    pins = [EnclavePin(measurements=dstack_policy(dstack_recording))]
    # Without a PCCS: the host's (UpToDate) copy decides, and the result says so.
    chosen = verify_enclave_evidence(tdx_enclave, pins=pins, trust=SealingTrust(), now=NOW)
    assert EMBEDDED_COLLATERAL_WARNING in chosen.warnings
    with loopback_pccs(with_tcb_status(dcap_vectors.tdx_collateral, "OutOfDate")) as pccs:
        trust = SealingTrust(collateral=PccsCollateral(pccs.url))
        with pytest.raises(AttestationInvalid, match="TCB status 'OutOfDate' is not accepted"):
            verify_enclave_evidence(tdx_enclave, pins=pins, trust=trust, now=NOW)
        # Two pins (policy and the owner's own option), one fetch.
        twice = [*pins, *pins]
        with pytest.raises(AttestationInvalid, match="OutOfDate"):
            verify_enclave_evidence(tdx_enclave, pins=twice, trust=trust, now=NOW)
    assert len(pccs.requests) == 8
    assert seen == ["UpToDate", "OutOfDate", "OutOfDate"]  # the first refusal ends a check
    with loopback_pccs(dcap_vectors.tdx_collateral) as pccs:
        trust = SealingTrust(collateral=PccsCollateral(pccs.url))
        ok = verify_enclave_evidence(tdx_enclave, pins=pins, trust=trust, now=NOW)
    assert EMBEDDED_COLLATERAL_WARNING not in ok.warnings
    assert ok.digest == chosen.digest


def test_an_unreachable_pccs_refuses_to_seal_with_exit_9(
    tdx_enclave: Envelope, dstack_recording: DstackRecording, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_verdict_from_collateral(monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    trust = SealingTrust(collateral=PccsCollateral(url, timeout=5))
    pins = [EnclavePin(measurements=dstack_policy(dstack_recording))]
    with pytest.raises(BackendUnavailable, match="fail closed") as info:
        verify_enclave_evidence(tdx_enclave, pins=pins, trust=trust, now=NOW)
    assert exit_code_for(info.value) == ExitCode.UNAVAILABLE == 9


def test_the_party_takes_its_source_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealroom.client import Client, Party
    from sealroom.crypto.keys import Identity

    client = Client(base_url="http://127.0.0.1:1", identity=Identity.generate())
    monkeypatch.setenv("SEALROOM_PCCS_URL", "https://pccs.example/")
    party = Party(client=client, home=tmp_path, name="owner")
    assert party._collateral == PccsCollateral("https://pccs.example")
    monkeypatch.delenv("SEALROOM_PCCS_URL")
    assert Party(client=client, home=tmp_path, name="o")._collateral == EmbeddedCollateral()
    client.close()
