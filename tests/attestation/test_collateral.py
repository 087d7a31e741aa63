"""Fresh collateral for live decisions: a PCCS the relying party trusts, not the host's copy.

The PCCS is a real HTTP server on loopback (tests/attestation/pccs_server.py)
serving the vectors' real Intel-signed collateral; dcap-qvl verifies for real
unless a test says it stubs the verdict (only where Intel's signature over a
changed TCB info cannot be made).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from sealroom.attestation import DcapPolicy, MeasurementAllowlist, report_data_for
from sealroom.attestation.collateral import (
    EMBEDDED_COLLATERAL_WARNING,
    PCCS_URL_ENV,
    EmbeddedCollateral,
    PccsCollateral,
    collateral_source,
    prefetch,
    with_collateral,
)
from sealroom.attestation.dcap import verify_dcap_quote
from sealroom.attestation.pins import EnclavePin
from sealroom.errors import AttestationInvalid, BackendUnavailable, InvalidInput
from tests.attestation.pccs_server import (
    LoopbackPccs,
    install_verdict_from_collateral,
    loopback_pccs,
    with_tcb_status,
)
from tests.attestation.test_dcap import (
    KEY_DOC,
    VECTOR_TIME,
    dstack_evidence,
    dstack_policy,
    tdx_evidence,
)

if TYPE_CHECKING:
    from tests.attestation.conftest import Dcap, DstackRecording

UNSAFE_PIN = EnclavePin(measurements=DcapPolicy(measurements=MeasurementAllowlist.unsafe_any()))
EXPIRED_TIME = 1752969600  # 2025-07-20: the vector's CRLs have expired


@pytest.fixture
def pccs(dcap_vectors: Dcap) -> Iterator[LoopbackPccs]:
    with loopback_pccs(dcap_vectors.tdx_collateral) as server:
        yield server


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def stub_verdict(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return install_verdict_from_collateral(monkeypatch)


# ------------------------------------------------------------------ the fetcher


def test_the_pccs_serves_the_real_collateral_and_the_quote_verifies_with_it(
    dcap_vectors: Dcap, pccs: LoopbackPccs
) -> None:
    fetched = PccsCollateral(pccs.url).collateral_for(dcap_vectors.tdx_quote, "unused")
    assert json.loads(fetched) == json.loads(dcap_vectors.tdx_collateral)
    assert pccs.requests == [
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        "/tdx/certification/v4/tcb?fmspc=B0C06F000000",
        "/tdx/certification/v4/qe/identity",
        "/sgx/certification/v4/rootcacrl",
    ]
    result = verify_dcap_quote(dcap_vectors.tdx_quote, fetched, at_time=VECTOR_TIME)
    assert result.tcb_status == "UpToDate"


def test_a_live_check_verifies_with_the_fetched_collateral_not_the_embedded(
    dcap_vectors: Dcap, pccs: LoopbackPccs
) -> None:
    # The host sent no usable collateral at all: only the PCCS's can get the quote
    # through DCAP, TCB policy and measurements, to the key binding (the vector quote
    # binds someone else's keys, so that last check is the one that fails).
    evidence = tdx_evidence(dcap_vectors.tdx_quote, "not collateral")
    with pytest.raises(AttestationInvalid, match="collateral does not parse"):
        UNSAFE_PIN.check_fresh(
            evidence, key_document=KEY_DOC, created_at=VECTOR_TIME, now=VECTOR_TIME
        )
    with pytest.raises(AttestationInvalid, match=r"^rule enclave: .*: key binding"):
        UNSAFE_PIN.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=VECTOR_TIME,
            now=VECTOR_TIME,
            collateral=PccsCollateral(pccs.url),
        )
    assert len(pccs.requests) == 4


def test_current_collateral_from_the_pccs_refuses_what_the_hosts_copy_passes(
    dcap_vectors: Dcap,
) -> None:
    """Real dcap-qvl throughout: the host's copy gets the quote through DCAP; the PCCS's
    current answer (a later TCB evaluation, another issue date) does not."""
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match=": key binding"):
        UNSAFE_PIN.check_fresh(
            evidence, key_document=KEY_DOC, created_at=VECTOR_TIME, now=VECTOR_TIME
        )
    with (
        loopback_pccs(dcap_vectors.tdx_outdated_collateral) as current,
        pytest.raises(AttestationInvalid, match="DCAP: quote verification failed") as info,
    ):
        UNSAFE_PIN.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=VECTOR_TIME,
            now=VECTOR_TIME,
            collateral=PccsCollateral(current.url),
        )
    assert "key binding" not in str(info.value.detail)


def test_collateral_from_the_pccs_that_expired_before_now_is_refused(
    dcap_vectors: Dcap, pccs: LoopbackPccs
) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="DCAP: quote verification failed at unix time"):
        UNSAFE_PIN.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=EXPIRED_TIME,
            now=EXPIRED_TIME,
            collateral=PccsCollateral(pccs.url),
        )


@pytest.mark.parametrize("status", ["OutOfDate", "Revoked"])
def test_a_platform_downgraded_since_is_refused_with_current_collateral(
    dcap_vectors: Dcap,
    dstack_recording: DstackRecording,
    stub_verdict: list[str],
    status: str,
) -> None:
    """The attack: the host keeps sending last month's "UpToDate" collateral after Intel
    marked the platform out of date or revoked. The live decision asks the PCCS."""
    pin = EnclavePin(measurements=dstack_policy(dstack_recording))
    evidence = dataclasses.replace(
        dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC)),
        collateral=dcap_vectors.tdx_collateral,
    )
    accepted = pin.check_fresh(evidence, key_document=KEY_DOC, created_at=1, now=1)
    assert accepted.tcb_status == "UpToDate"
    assert EMBEDDED_COLLATERAL_WARNING in accepted.warnings
    with (
        loopback_pccs(with_tcb_status(dcap_vectors.tdx_collateral, status)) as current,
        pytest.raises(AttestationInvalid, match=f"TCB status '{status}' is not accepted"),
    ):
        pin.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=1,
            now=1,
            collateral=PccsCollateral(current.url),
        )
    assert stub_verdict == ["UpToDate", status]
    # Offline verification as of issue time keeps using the evidence's own collateral.
    assert pin.check_as_of(evidence, key_document=KEY_DOC, at_time=1).tcb_status == "UpToDate"


def test_an_up_to_date_answer_from_the_pccs_passes_without_the_embedded_warning(
    dcap_vectors: Dcap, dstack_recording: DstackRecording, stub_verdict: list[str]
) -> None:
    pin = EnclavePin(measurements=dstack_policy(dstack_recording))
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    with loopback_pccs(dcap_vectors.tdx_collateral) as current:
        # The dstack recording is another platform (FMSPC) than the vector collateral's;
        # the PCCS serves what it has, and the stubbed verdict reads it.
        verified = pin.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=1,
            now=1,
            collateral=PccsCollateral(current.url),
        )
    assert verified.tcb_status == "UpToDate"
    assert EMBEDDED_COLLATERAL_WARNING not in verified.warnings
    assert current.requests[1].startswith("/tdx/certification/v4/tcb?fmspc=")


def test_without_a_rootcacrl_path_the_roots_distribution_point_is_used(
    dcap_vectors: Dcap, pccs: LoopbackPccs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealroom.attestation import collateral as module

    named: list[bytes] = []

    def local_distribution_point(chain: bytes) -> str:
        named.append(chain)
        assert (
            module_url(chain) == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
        )
        return f"{pccs.url}/IntelSGXRootCA.der"

    module_url = module._root_crl_url
    monkeypatch.setattr(module, "_root_crl_url", local_distribution_point)
    pccs.serves_root_crl = False
    fetched = PccsCollateral(pccs.url).collateral_for(dcap_vectors.tdx_quote, "")
    assert json.loads(fetched) == json.loads(dcap_vectors.tdx_collateral)
    assert pccs.requests[-2:] == ["/sgx/certification/v4/rootcacrl", "/IntelSGXRootCA.der"]
    assert len(named) == 1


# ---------------------------------------------------------------- fail closed


def test_an_unreachable_pccs_fails_closed(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    url = closed_port_url()
    with pytest.raises(BackendUnavailable, match=r"PCCS at .*: could not fetch .*fail closed"):
        UNSAFE_PIN.check_fresh(
            evidence,
            key_document=KEY_DOC,
            created_at=VECTOR_TIME,
            now=VECTOR_TIME,
            collateral=PccsCollateral(url, timeout=5),
        )


@pytest.mark.parametrize("status", [404, 500, 503])
def test_a_pccs_answering_an_error_fails_closed(
    dcap_vectors: Dcap, pccs: LoopbackPccs, status: int
) -> None:
    pccs.fail_with = status
    with pytest.raises(BackendUnavailable, match=f"answered HTTP {status}"):
        PccsCollateral(pccs.url).collateral_for(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)


def test_a_pccs_answering_malformed_collateral_fails_closed(dcap_vectors: Dcap) -> None:
    broken = json.loads(dcap_vectors.tdx_collateral)
    broken["tcb_info_signature"] = "zz"
    with (
        loopback_pccs(json.dumps(broken)) as bad,
        pytest.raises(BackendUnavailable, match="malformed signature"),
    ):
        PccsCollateral(bad.url).collateral_for(dcap_vectors.tdx_quote, "")
    broken = json.loads(dcap_vectors.tdx_collateral)
    broken["pck_crl_issuer_chain"] = ""
    with (
        loopback_pccs(json.dumps(broken)) as bad,
        pytest.raises(BackendUnavailable, match="without a SGX-PCK-CRL-Issuer-Chain"),
    ):
        PccsCollateral(bad.url).collateral_for(dcap_vectors.tdx_quote, "")


def test_a_quote_that_names_no_platform_is_refused_before_any_request(
    pccs: LoopbackPccs,
) -> None:
    with pytest.raises(AttestationInvalid, match="quote does not name its platform"):
        PccsCollateral(pccs.url).collateral_for(b"\x04\x00" + bytes(100), "")
    assert pccs.requests == []


# ------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "url", ["ftp://pccs", "pccs.example", "https://pccs/?x=1", "https://pc cs", ""]
)
def test_a_malformed_pccs_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="PCCS URL"):
        PccsCollateral(url)


def test_the_source_comes_from_the_option_then_the_environment() -> None:
    assert isinstance(collateral_source(None, environ={}), EmbeddedCollateral)
    assert isinstance(collateral_source(None, environ={PCCS_URL_ENV: ""}), EmbeddedCollateral)
    from_env = collateral_source(None, environ={PCCS_URL_ENV: "https://pccs.example/"})
    assert from_env == PccsCollateral("https://pccs.example")
    chosen = collateral_source("http://127.0.0.1:8081", environ={PCCS_URL_ENV: "https://x"})
    assert chosen == PccsCollateral("http://127.0.0.1:8081")
    with pytest.raises(InvalidInput):
        collateral_source(None, environ={PCCS_URL_ENV: "pccs.example"})


def test_simulated_evidence_never_asks_the_pccs(pccs: LoopbackPccs) -> None:
    from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot

    root = SimulationRoot.from_private_bytes(bytes(range(32)))
    evidence = SimulatedEnclave(root).attest(KEY_DOC)
    source = PccsCollateral(pccs.url)
    assert with_collateral(evidence, source) is evidence
    assert prefetch(evidence, source) is source
    assert pccs.requests == []


def test_one_prefetch_serves_every_check_of_a_decision(
    dcap_vectors: Dcap, pccs: LoopbackPccs
) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, "not collateral")
    fetched = prefetch(evidence, PccsCollateral(pccs.url))
    for _ in range(3):
        with pytest.raises(AttestationInvalid, match=": key binding"):
            UNSAFE_PIN.check_fresh(
                evidence,
                key_document=KEY_DOC,
                created_at=VECTOR_TIME,
                now=VECTOR_TIME,
                collateral=fetched,
            )
    assert len(pccs.requests) == 4
    with pytest.raises(InvalidInput, match="another quote"):
        fetched.collateral_for(dcap_vectors.tdx_outdated, "")
