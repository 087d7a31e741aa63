"""A real PCCS stand-in for tests: an HTTP server on loopback speaking the PCCS v4 API.

It serves one platform's collateral (dcap-qvl ``QuoteCollateralV3`` JSON, as the
vectors store it) the way a PCCS does: CRLs as DER with their issuer chain in a
URL-encoded header, TCB info and QE identity as ``{"tcbInfo": ..., "signature": ...}``
with the signed text byte for byte. Every request is recorded, and a test can
make it answer an HTTP error instead.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dcap_qvl
import pytest

from sealroom.attestation import dcap as dcap_module


@dataclass
class LoopbackPccs:
    collateral: dict[str, str]
    url: str = ""
    requests: list[str] = field(default_factory=list)
    # When set, every request is answered with this HTTP status and no body.
    fail_with: int | None = None
    # Intel's PCS has no rootcacrl path: clients take the root CA's CRL distribution point.
    serves_root_crl: bool = True

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(path)
        if self.fail_with is not None:
            return self.fail_with, {}, b""
        c = self.collateral
        route = urllib.parse.urlsplit(path).path
        chain = urllib.parse.quote
        if route == "/sgx/certification/v4/pckcrl":
            header = {"SGX-PCK-CRL-Issuer-Chain": chain(c["pck_crl_issuer_chain"])}
            return 200, header, bytes.fromhex(c["pck_crl"])
        if route == "/IntelSGXRootCA.der":
            return 200, {}, bytes.fromhex(c["root_ca_crl"])
        if route == "/sgx/certification/v4/rootcacrl" and self.serves_root_crl:
            return 200, {}, c["root_ca_crl"].encode()  # PCCS answers hex text here
        if route in ("/tdx/certification/v4/tcb", "/sgx/certification/v4/tcb"):
            body = f'{{"tcbInfo":{c["tcb_info"]},"signature":"{c["tcb_info_signature"]}"}}'
            return 200, {"TCB-Info-Issuer-Chain": chain(c["tcb_info_issuer_chain"])}, body.encode()
        if route in ("/tdx/certification/v4/qe/identity", "/sgx/certification/v4/qe/identity"):
            body = (
                f'{{"enclaveIdentity":{c["qe_identity"]},'
                f'"signature":"{c["qe_identity_signature"]}"}}'
            )
            header = {"SGX-Enclave-Identity-Issuer-Chain": chain(c["qe_identity_issuer_chain"])}
            return 200, header, body.encode()
        return 404, {}, b""


@contextmanager
def loopback_pccs(collateral_json: str) -> Iterator[LoopbackPccs]:
    """Serve ``collateral_json`` as a PCCS on 127.0.0.1 (a free port) while the block runs."""
    pccs = LoopbackPccs(collateral=json.loads(collateral_json))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = pccs.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pccs.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield pccs
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def with_tcb_status(collateral_json: str, status: str) -> str:
    """The collateral with every TCB level marked ``status`` (as Intel publishes after a
    TCB recovery or revocation). Intel's signature no longer covers it: see stub_verdict."""
    collateral = json.loads(collateral_json)
    tcb_info = json.loads(collateral["tcb_info"])
    for level in tcb_info["tcbLevels"]:
        level["tcbStatus"] = status
    collateral["tcb_info"] = json.dumps(tcb_info, separators=(",", ":"))
    return json.dumps(collateral)


def install_verdict_from_collateral(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace dcap-qvl's verdict with the status the collateral it is given states.

    Everything else runs for real, and the collateral still goes through dcap-qvl's
    parser: this shows *which* collateral a decision was taken on, where a real
    "platform now out of date" TCB info for the vectors' platform does not exist.
    """
    seen: list[str] = []

    def fake(quote: bytes, collateral_json: str, at_time: int) -> tuple[str, tuple[str, ...]]:
        dcap_qvl.QuoteCollateralV3.from_json(collateral_json)
        tcb_info = json.loads(json.loads(collateral_json)["tcb_info"])
        status = tcb_info["tcbLevels"][0]["tcbStatus"]
        seen.append(status)
        return status, ()

    monkeypatch.setattr(dcap_module, "_run_dcap_qvl", fake)
    return seen
