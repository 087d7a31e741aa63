"""The dstack app compose: its hash as dstack measures it, known answers from dstack itself,
and the allowlist `sealroom measurements` writes, as the TDX verifier uses it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import dcap_qvl
import pytest
from dstack_sdk.get_compose_hash import get_compose_hash
from typer.testing import CliRunner

from sealroom.attestation import DcapVerifier, TeeEvidence, report_data_for
from sealroom.attestation.app_compose import (
    AppCompose,
    default_app_id,
    mr_config_id_v1,
    normalize,
    rtmr3_expectations,
)
from sealroom.attestation.rtmr import parse_event_log, replay_rtmr3
from sealroom.cli.deploy import enclave_app_compose
from sealroom.cli.main import app
from sealroom.errors import AttestationInvalid, InvalidInput
from sealroom.verification.trust import parse_measurements

if TYPE_CHECKING:
    from tests.attestation.conftest import DstackRecording

# Dstack-TEE/dstack, sdk/simulator/app-compose.json at commit 3db28906 (the file of the
# simulator shipped with dstack; Apache-2.0, (c) Phala Network). Byte-exact, final newline
# included: it is not in the normalized form, so dstack (which hashes the bytes) and the
# dstack SDK (which hashes the normalized form) give different hashes for it.
DSTACK_SIMULATOR_APP_COMPOSE = (
    b'{"manifest_version":2,"name":"guest-agent","runner":"docker-compose","'
    b'docker_compose_file":"services:\\n  dstack-agent:\\n    image: ubuntu\\n '
    b"   user: root\\n    network_mode: host\\n    volumes:\\n      - /:/host/\\"
    b"n      - /var/run/tappd.sock:/var/run/tappd.sock\\n      - /var/run/dst"
    b"ack.sock:/var/run/dstack.sock\\n    entrypoint: |\\n      bash -c '\\n   "
    b"   apt-get update && apt-get install -y socat\\n      socat TCP-LISTEN:"
    b"2000,fork UNIX-CONNECT:/var/run/tappd.sock &\\n      socat TCP-LISTEN:3"
    b"000,fork UNIX-CONNECT:/var/run/dstack.sock &\\n      tail -f /dev/null\\"
    b"n      '\\n  dstack-verifier:\\n    image: dstacktee/dstack-verifier:0.5"
    b'.4\\n    ports:\\n      - \\"8080:8080\\"\\n    restart: unless-stopped","g'
    b'ateway_enabled":true,"public_logs":true,"public_sysinfo":true,"public_'
    b'tcbinfo":true,"key_provider_id":"","allowed_envs":[],"no_instance_id":'
    b'false,"secure_time":false,"key_provider":"kms","kms_enabled":true,"sto'
    b'rage_fs":"ext4","pre_launch_script":"docker run --rm --privileged --pi'
    b'd=host --net=host -v /:/host \\\\\\n  -e SSH_GITHUB_USER=\\"kvinwang\\" \\\\\\'
    b'n  kvin/dstack-openssh-installer:latest"}\n'
)
# sha256sum of that file (coreutils) and dstack_sdk.get_compose_hash of its JSON (0.5.4).
SIMULATOR_FILE_HASH = "65b4e574f16973956908b6359920593c3b7d9f36f38e81a47f996a0c0d5435bb"
SIMULATOR_SDK_HASH = "84d4e7a031ef7d048d1492ca00b754c32513934e53f62b2dcf84b3e440656f61"

# A real CVM's GetQuote (dstack verifier fixture): compose hash, and its mr_config_id.
RECORDED_COMPOSE_HASH = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9"
IMAGE = "ghcr.io/example/sealroom@sha256:" + "ab" * 32
KEY_DOC = b'{"enclave":"keys","v":1}'
# Offsets inside a v4 TDX quote: 48-byte header, then the TD report.
OFF_MR_CONFIG_ID = 48 + 184
OFF_RTMR3 = 48 + 472
OFF_REPORT_DATA = 48 + 520


def test_compose_hash_is_sha256_of_the_exact_bytes_known_answer() -> None:
    compose = AppCompose.parse(DSTACK_SIMULATOR_APP_COMPOSE)
    assert compose.compose_hash.hex() == SIMULATOR_FILE_HASH
    assert not compose.normalized
    assert compose.key_provider == "kms"


def test_the_normalized_form_is_the_one_the_dstack_sdk_hashes() -> None:
    compose = AppCompose.parse(DSTACK_SIMULATOR_APP_COMPOSE)
    normalized = normalize(compose.document)
    import hashlib

    assert hashlib.sha256(normalized).hexdigest() == SIMULATOR_SDK_HASH
    # dstack's own implementation, live, agrees on both the file and our normalized bytes.
    assert get_compose_hash(json.loads(DSTACK_SIMULATOR_APP_COMPOSE)) == SIMULATOR_SDK_HASH
    assert AppCompose.parse(normalized).compose_hash.hex() == SIMULATOR_SDK_HASH
    assert AppCompose.parse(normalized).normalized


def test_the_enclave_app_compose_hashes_the_same_in_dstack_and_in_the_sdk() -> None:
    raw = enclave_app_compose(IMAGE)
    compose = AppCompose.parse(raw)
    assert compose.normalized
    assert compose.compose_hash.hex() == get_compose_hash(json.loads(raw))
    assert compose.images() == (IMAGE,)
    assert compose.unpinned_images() == ()
    assert compose.key_provider == "kms"
    inner = compose.document["docker_compose_file"]
    assert '["sealroom", "enclave", "--dstack", "--state", ' in inner
    assert compose.document["allowed_envs"] == ["SEALROOM_URL"]
    # One byte of the image digest changes the hash: the code is pinned.
    other = enclave_app_compose(IMAGE[:-1] + "c")
    assert AppCompose.parse(other).compose_hash != compose.compose_hash


def test_the_enclave_app_compose_refuses_a_tag() -> None:
    with pytest.raises(InvalidInput, match="by digest"):
        enclave_app_compose("ghcr.io/example/sealroom:1.0")


def test_config_id_and_app_id_known_answers_from_a_real_cvm(
    dstack_recording: DstackRecording,
) -> None:
    report = dcap_qvl.parse_quote(dstack_recording.quote).report
    digest = bytes.fromhex(RECORDED_COMPOSE_HASH)
    assert mr_config_id_v1(digest) == report.mr_config_id
    events = {e.event: e.payload for e in parse_event_log(dstack_recording.event_log)}
    assert events["compose-hash"] == digest
    assert events["app-id"] == default_app_id(digest)


def test_rtmr3_expectations_known_answers_from_a_real_cvm(vectors: Path) -> None:
    """dstack's verifier fixture carries the digests dstack computed for each runtime event."""
    recorded = json.loads((vectors / "dstack" / "quote-report.json").read_text())
    log = {e["event"]: e for e in json.loads(recorded["event_log"]) if e["imr"] == 3}
    digest = bytes.fromhex(log["compose-hash"]["event_payload"])
    expected = rtmr3_expectations(digest, app_id=default_app_id(digest))
    assert [e.name for e in expected] == ["app-id", "compose-hash"]
    for event in expected:
        assert event.payload.hex() == log[event.name]["event_payload"]
        assert event.digest.hex() == log[event.name]["digest"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "not UTF-8"),
        (b"[1]", "expected a JSON object"),
        (b'{"name":"a","name":"b","runner":"bash","manifest_version":2}', "duplicate key"),
        (b'{"name":"a","runner":"bash","manifest_version":NaN}', "not JSON"),
        (b'{"name":"a","manifest_version":2}', "missing 'runner'"),
        (b'{"name":"a","runner":"podman","manifest_version":2}', "'runner' must be"),
        (b'{"name":"a","runner":"docker-compose","manifest_version":2}', "docker_compose_file"),
    ],
)
def test_bad_app_compose_files_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AppCompose.parse(raw)


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ("services:\n  a:\n    build: .\n", "builds its image"),
        ("services:\n  a:\n    command: x\n", "names no image"),
        ("services: {}\n", "no services"),
        ("services: [\n", "not YAML"),
    ],
)
def test_images_the_hash_cannot_pin_are_refused(services: str, message: str) -> None:
    doc = {"name": "a", "runner": "docker-compose", "manifest_version": 2}
    compose = AppCompose.parse(json.dumps({**doc, "docker_compose_file": services}).encode())
    with pytest.raises(InvalidInput, match=message):
        compose.images()


def test_tags_are_listed_as_unpinned() -> None:
    compose = AppCompose.parse(DSTACK_SIMULATOR_APP_COMPOSE)
    assert compose.unpinned_images() == ("ubuntu", "dstacktee/dstack-verifier:0.5.4")


# --- the allowlist `sealroom measurements` writes, used by the TDX verifier ----------------


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _evidence_for(recording: DstackRecording, compose_hash: bytes) -> TeeEvidence:
    """The recorded CVM's quote and event log as if it ran ``compose_hash`` (launched with a v1
    config id) and bound KEY_DOC. Only a stubbed DCAP step accepts the patched quote."""
    events = json.loads(recording.event_log)
    for event in events:
        if event["imr"] == 3 and event["event"] == "compose-hash":
            event["event_payload"] = compose_hash.hex()
    event_log = json.dumps(events)
    quote = _patch(recording.quote, OFF_MR_CONFIG_ID, mr_config_id_v1(compose_hash))
    quote = _patch(quote, OFF_RTMR3, replay_rtmr3(parse_event_log(event_log)))
    quote = _patch(quote, OFF_REPORT_DATA, report_data_for(KEY_DOC))
    return TeeEvidence(
        tee="tdx",
        simulated=False,
        provider="dstack",
        quote=quote,
        event_log=event_log,
        collateral="collateral is not consulted: DCAP is stubbed",
    )


def _measure(tmp_path: Path, recording: DstackRecording, *args: str) -> bytes:
    compose = tmp_path / "app-compose.json"
    compose.write_bytes(enclave_app_compose(IMAGE))
    report = dcap_qvl.parse_quote(recording.quote).report
    os_file = tmp_path / "mr.json"  # the shape `dstack-mr measure --json` prints
    os_file.write_text(
        json.dumps(
            {
                "mrtd": report.mr_td.hex(),
                "rtmr0": report.rt_mr0.hex(),
                "rtmr1": report.rt_mr1.hex(),
                "rtmr2": report.rt_mr2.hex(),
            }
        )
    )
    result = CliRunner().invoke(
        app, ["measurements", str(compose), "--os-measurements", str(os_file), *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout.encode()


def test_evidence_of_the_measured_app_passes_the_tdx_verifier(
    tmp_path: Path, dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    allowlist = _measure(tmp_path, dstack_recording)
    digest = AppCompose.parse(enclave_app_compose(IMAGE)).compose_hash
    verified = DcapVerifier(parse_measurements(allowlist)).verify_at_time(
        _evidence_for(dstack_recording, digest), key_document=KEY_DOC, at_time=1_800_000_000
    )
    assert verified.measurements["compose_hash"] == digest.hex()
    assert verified.measurements["mr_config_id"] == mr_config_id_v1(digest).hex()


def test_evidence_of_another_app_is_refused_by_the_allowlist(
    tmp_path: Path, dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    policy = parse_measurements(_measure(tmp_path, dstack_recording, "--config-id", "zero"))
    other = AppCompose.parse(enclave_app_compose(IMAGE[:-1] + "c")).compose_hash
    # Launched without a config id, running another compose: RTMR3 names it, and it is refused.
    evidence = _evidence_for(dstack_recording, other)
    zero_id = _patch(evidence.quote, OFF_MR_CONFIG_ID, bytes(48))
    with pytest.raises(AttestationInvalid, match=f"measurement compose_hash {other.hex()}"):
        DcapVerifier(policy).verify_at_time(
            TeeEvidence(
                tee="tdx",
                simulated=False,
                provider="dstack",
                quote=zero_id,
                event_log=evidence.event_log,
                collateral=evidence.collateral,
            ),
            key_document=KEY_DOC,
            at_time=1_800_000_000,
        )
    # And a v1 config id is not accepted when only "zero" was asked for.
    digest = AppCompose.parse(enclave_app_compose(IMAGE)).compose_hash
    with pytest.raises(AttestationInvalid, match="measurement mr_config_id"):
        DcapVerifier(policy).verify_at_time(
            _evidence_for(dstack_recording, digest), key_document=KEY_DOC, at_time=1_800_000_000
        )
