from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from sealroom.attestation import (
    DcapPolicy,
    DcapVerifier,
    DstackProvider,
    MeasurementAllowlist,
    TeeEvidence,
    pccs_collateral_fetcher,
    report_data_for,
)
from sealroom.attestation import dstack_standin as standin_module
from sealroom.attestation.dstack_standin import GuestAgentStandIn, StandInRecording
from sealroom.errors import AttestationInvalid, BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    from tests.attestation.conftest import Dcap, DstackRecording

KEY_DOC = b'{"enclave":"keys","v":1}'
DSTACK_COMPOSE_HASH = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9"
# tdx_quote_outdated_collateral.json is for the same platform (FMSPC 90C06F000000)
# as the recorded dstack quote, but expired before that quote's PCK certificate
# was issued (2026-04-15): no vector collateral verifies the recorded quote.
NEAREST_TIME = 1771500000


@pytest.fixture
def standin(socket_dir: Path, dstack_recording: DstackRecording) -> Iterator[GuestAgentStandIn]:
    recording = StandInRecording.from_file(dstack_recording.path)
    with GuestAgentStandIn(socket_dir / "dstack.sock", recording) as agent:
        yield agent


def fixed(collateral: str) -> Callable[[bytes], str]:
    return lambda quote: collateral


def pinned_policy(recording: DstackRecording) -> DcapPolicy:
    import dcap_qvl

    report = dcap_qvl.parse_quote(recording.quote).report
    return DcapPolicy(
        measurements=MeasurementAllowlist(
            mrtd=frozenset({report.mr_td.hex()}),
            rtmr0=frozenset({report.rt_mr0.hex()}),
            rtmr1=frozenset({report.rt_mr1.hex()}),
            rtmr2=frozenset({report.rt_mr2.hex()}),
            mr_config_id=frozenset({report.mr_config_id.hex()}),
            compose_hash=frozenset({DSTACK_COMPOSE_HASH}),
        )
    )


def test_provider_talks_to_the_standin_over_a_unix_socket(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording, dcap_vectors: Dcap
) -> None:
    provider = DstackProvider(
        standin.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
    )
    evidence = provider.attest(KEY_DOC)
    assert evidence.tee == "tdx"
    assert evidence.simulated is True
    assert evidence.provider == "dstack-standin"
    assert evidence.quote == dstack_recording.quote
    assert evidence.event_log == dstack_recording.event_log
    assert evidence.collateral == dcap_vectors.tdx_outdated_collateral
    info = json.loads(evidence.info)
    assert "SIMULATED" in info["app_name"]
    assert info["compose_hash"] == DSTACK_COMPOSE_HASH
    # It asked for exactly our report_data, all 64 bytes.
    assert standin.calls == [
        ("Info", {}),
        ("GetQuote", {"report_data": report_data_for(KEY_DOC).hex()}),
    ]
    assert TeeEvidence.from_dict(json.loads(json.dumps(evidence.to_dict()))) == evidence


def test_standin_evidence_is_rejected_as_simulated_by_default(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording, dcap_vectors: Dcap
) -> None:
    evidence = DstackProvider(
        standin.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
    ).attest(KEY_DOC)
    with pytest.raises(AttestationInvalid, match="simulated TEE evidence is not trusted") as info:
        DcapVerifier(pinned_policy(dstack_recording)).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=NEAREST_TIME
        )
    assert "dstack-standin" in str(info.value)


def test_no_vector_collateral_covers_the_recorded_quote(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording, dcap_vectors: Dcap
) -> None:
    evidence = DstackProvider(
        standin.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
    ).attest(KEY_DOC)
    verifier = DcapVerifier(pinned_policy(dstack_recording), allow_simulated=True)
    with pytest.raises(AttestationInvalid, match="DCAP: .*CertNotValidYet"):
        verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=NEAREST_TIME)


def test_standin_evidence_passes_replay_but_fails_key_binding(
    standin: GuestAgentStandIn,
    dstack_recording: DstackRecording,
    dcap_vectors: Dcap,
    stub_dcap: Callable[..., list[int]],
) -> None:
    """DCAP stubbed (see above); everything after it runs for real on the evidence."""
    evidence = DstackProvider(
        standin.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
    ).attest(KEY_DOC)
    calls = stub_dcap()
    verifier = DcapVerifier(pinned_policy(dstack_recording), allow_simulated=True)
    with pytest.raises(AttestationInvalid, match="^key binding"):
        verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=NEAREST_TIME)
    assert calls == [NEAREST_TIME]
    # ... and the replay really ran: a tampered log stops it earlier.
    tampered = TeeEvidence.from_dict(
        evidence.to_dict() | {"event_log": evidence.event_log.replace("7a6673", "7a6674")}
    )
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        verifier.verify_at_time(tampered, key_document=KEY_DOC, at_time=NEAREST_TIME)


def test_hiding_the_standin_marker_gains_nothing(
    monkeypatch: pytest.MonkeyPatch,
    socket_dir: Path,
    dstack_recording: DstackRecording,
    dcap_vectors: Dcap,
) -> None:
    """An agent that replays a quote but claims to be real is caught by key binding."""
    monkeypatch.setattr(standin_module, "STANDIN_APP_NAME", "my-production-app")
    recording = StandInRecording.from_file(dstack_recording.path)
    with GuestAgentStandIn(socket_dir / "dstack.sock", recording) as agent:
        provider = DstackProvider(
            agent.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
        )
        with pytest.raises(AttestationInvalid, match="does not carry the report_data"):
            provider.attest(KEY_DOC)


def test_simulator_endpoint_from_the_environment_is_labelled(
    monkeypatch: pytest.MonkeyPatch,
    socket_dir: Path,
    dstack_recording: DstackRecording,
    dcap_vectors: Dcap,
) -> None:
    monkeypatch.setattr(standin_module, "STANDIN_APP_NAME", "some-app")
    recording = StandInRecording.from_file(dstack_recording.path)
    with GuestAgentStandIn(socket_dir / "dstack.sock", recording) as agent:
        monkeypatch.setenv("DSTACK_SIMULATOR_ENDPOINT", agent.socket_path)
        provider = DstackProvider(collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral))
        assert provider.endpoint == agent.socket_path
        evidence = provider.attest(KEY_DOC)
    assert evidence.simulated is True
    assert evidence.provider == "dstack-simulator"


def test_missing_socket_is_backend_unavailable(socket_dir: Path) -> None:
    path = str(socket_dir / "absent.sock")
    provider = DstackProvider(path, collateral_fetcher=fixed("{}"))
    with pytest.raises(BackendUnavailable, match=f"dstack guest agent at {path}"):
        provider.attest(KEY_DOC)


def test_dead_socket_is_backend_unavailable(socket_dir: Path) -> None:
    path = str(socket_dir / "dead.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)  # the file stays; nobody listens
    provider = DstackProvider(path, collateral_fetcher=fixed("{}"))
    with pytest.raises(BackendUnavailable, match=f"dstack guest agent at {path}"):
        provider.attest(KEY_DOC)


def test_collateral_fetch_failure_propagates(standin: GuestAgentStandIn) -> None:
    def failing(quote: bytes) -> str:
        raise BackendUnavailable("PCCS at https://pccs.example: down")

    provider = DstackProvider(standin.socket_path, collateral_fetcher=failing)
    with pytest.raises(BackendUnavailable, match="pccs.example"):
        provider.attest(KEY_DOC)


@pytest.mark.parametrize("collateral", ["", "{}", "not json"])
def test_unusable_collateral_is_backend_unavailable(
    standin: GuestAgentStandIn, collateral: str
) -> None:
    provider = DstackProvider(standin.socket_path, collateral_fetcher=fixed(collateral))
    with pytest.raises(BackendUnavailable, match="collateral"):
        provider.attest(KEY_DOC)


def test_fetcher_receives_the_quote(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording, dcap_vectors: Dcap
) -> None:
    seen: list[bytes] = []

    def fetch(quote: bytes) -> str:
        seen.append(quote)
        return dcap_vectors.tdx_outdated_collateral

    DstackProvider(standin.socket_path, collateral_fetcher=fetch).attest(KEY_DOC)
    assert seen == [dstack_recording.quote]


def test_default_fetcher_reports_an_unreachable_pccs(dcap_vectors: Dcap) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(BackendUnavailable, match=f"PCCS at {url}"):
        pccs_collateral_fetcher(url)(dcap_vectors.tdx_quote)


def test_default_fetcher_works_inside_a_running_event_loop(dcap_vectors: Dcap) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetch = pccs_collateral_fetcher(f"http://127.0.0.1:{port}")

    async def from_async_code() -> None:
        with pytest.raises(BackendUnavailable, match="PCCS at"):
            fetch(dcap_vectors.tdx_quote)

    asyncio.run(from_async_code())


@pytest.mark.parametrize("url", ["", "ftp://pccs", "pccs.phala.network"])
def test_default_fetcher_needs_an_http_url(url: str) -> None:
    with pytest.raises(InvalidInput):
        pccs_collateral_fetcher(url)


def test_provider_requires_bytes_and_a_positive_timeout(standin: GuestAgentStandIn) -> None:
    with pytest.raises(InvalidInput):
        DstackProvider(standin.socket_path, collateral_fetcher=fixed("{}"), timeout=0)
    with pytest.raises(InvalidInput):
        DstackProvider(standin.socket_path, collateral_fetcher=fixed("{}")).attest("x")  # type: ignore[arg-type]


# ----------------------------------------------------------- the stand-in


def post(agent: GuestAgentStandIn, method: str, body: object) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=agent.socket_path)
    with httpx.Client(transport=transport, base_url="http://localhost") as client:
        return client.post(f"/{method}", json=body)


def test_standin_replays_the_recording_whatever_is_asked(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording
) -> None:
    for report_data in ("00", "ff" * 64):
        response = post(standin, "GetQuote", {"report_data": report_data})
        assert response.status_code == 200
        body = response.json()
        assert bytes.fromhex(body["quote"]) == dstack_recording.quote
        assert bytes.fromhex(body["report_data"]) == dstack_recording.report_data


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("GetQuote", {"report_data": "ff" * 65}, 400),
        ("GetQuote", {"report_data": ""}, 400),
        ("GetQuote", {"report_data": "xyz"}, 400),
        ("GetQuote", {}, 400),
        ("GetQuote", [], 400),
        ("GetKey", {"path": 7}, 400),
        ("Sign", {}, 404),
    ],
)
def test_standin_refuses_what_it_does_not_do(
    standin: GuestAgentStandIn, method: str, body: object, status: int
) -> None:
    assert post(standin, method, body).status_code == status


def test_standin_info_says_it_is_simulated(
    standin: GuestAgentStandIn, dstack_recording: DstackRecording
) -> None:
    info = post(standin, "Info", {}).json()
    assert info["app_name"].startswith("sealroom-dstack-standin (SIMULATED")
    tcb = json.loads(info["tcb_info"])
    assert tcb["rtmr3"].startswith("6f24c170")
    assert info["os_image_hash"] == json.loads(dstack_recording.vm_config)["os_image_hash"]


def test_standin_stops_and_removes_its_socket(
    socket_dir: Path, dstack_recording: DstackRecording
) -> None:
    path = socket_dir / "dstack.sock"
    recording = StandInRecording.from_file(dstack_recording.path)
    with GuestAgentStandIn(path, recording):
        assert path.exists()
    assert not path.exists()
    with pytest.raises(BackendUnavailable):
        DstackProvider(str(path), collateral_fetcher=fixed("{}")).attest(KEY_DOC)


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", json.dumps({"quote": 1, "event_log": "[]", "report_data": ""})],
)
def test_bad_recordings_are_rejected(socket_dir: Path, content: str) -> None:
    path = socket_dir / "recording.json"
    path.write_text(content)
    with pytest.raises(InvalidInput):
        StandInRecording.from_file(path)


def test_workers_on_one_app_derive_one_deployment_identity(
    standin: GuestAgentStandIn, dcap_vectors: Dcap
) -> None:
    """``--dstack`` without a secret file: the keys derive from the KMS app key (here the
    stand-in's, public and labelled), so every instance of the app has the same keys."""
    from sealroom.enclave.keys import deployment_identity
    from sealroom.enclave.worker import make_enclave_keys

    key = DstackProvider(standin.socket_path).app_key()
    assert key == DstackProvider(standin.socket_path).app_key()
    assert ("GetKey", {"path": "sealroom/enclave-keys/v1", "purpose": "sealroom-enclave"}) in [
        (m, {k: v for k, v in body.items() if k in ("path", "purpose")})
        for m, body in standin.calls
    ]
    provider = DstackProvider(
        standin.socket_path, collateral_fetcher=fixed(dcap_vectors.tdx_outdated_collateral)
    )
    a = make_enclave_keys(tee="dstack", now=1000, provider=provider, deployment_secret=key)
    assert a.public == deployment_identity(key).public
    assert a.evidence.statement.simulated  # the stand-in's evidence says so
