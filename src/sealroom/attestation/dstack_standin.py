"""A stand-in for the dstack guest agent that replays one recorded ``GetQuote`` response.

It speaks what dstack-sdk 0.5.4's ``DstackClient`` speaks: HTTP/1.x over a
Unix socket, ``POST /<Method>`` with a JSON body, JSON back. It answers
``GetQuote`` with the recorded quote *whatever report_data was asked for* —
so its quotes are genuine Intel quotes that bind someone else's key — and
``Info`` with values taken from the recording, under an ``app_name`` that
says it is a simulated stand-in, so :class:`~sealroom.attestation.dstack.DstackProvider`
labels its evidence ``simulated`` and provider ``dstack-standin``.

This exists to test the real client path (SDK, socket, JSON shapes, error
handling) without a CVM. Nothing it serves can pass key binding. ``GetKey``
answers a key derived from the recording's app id and the path by a public
function (:func:`standin_app_key`): the same for every stand-in of one
recording, as a KMS app key is for every instance of one app, and secret from
no one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import dcap_qvl

from sealroom.attestation.dstack import STANDIN_APP_NAME_MARKER
from sealroom.attestation.rtmr import parse_event_log, runtime_event_payload
from sealroom.errors import InvalidInput, SealroomError

__all__ = ["STANDIN_APP_NAME", "GuestAgentStandIn", "StandInRecording", "standin_app_key"]

STANDIN_APP_NAME = (
    f"{STANDIN_APP_NAME_MARKER} (SIMULATED: replays a recorded quote; binds no key of yours)"
)
_MAX_BODY = 1 << 20
_MAX_REPORT_DATA = 64


def standin_app_key(app_id: str, path: str, purpose: str) -> bytes:
    """The stand-in's ``GetKey`` answer: public, deterministic, labelled as simulated."""
    label = b"sealroom dstack stand-in app key (SIMULATED, derivable by anyone)\x00"
    return hashlib.sha256(
        label + b"\x00".join(x.encode("utf-8") for x in (app_id, path, purpose))
    ).digest()


@dataclass(frozen=True, slots=True)
class StandInRecording:
    """A guest agent ``GetQuoteResponse`` as captured from a real CVM."""

    quote_hex: str
    event_log: str
    report_data_hex: str
    vm_config: str

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StandInRecording:
        try:
            data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"stand-in recording {path}: cannot read JSON") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"stand-in recording {path}: expected a JSON object")
        fields = {"quote": "quote_hex", "event_log": "event_log", "report_data": "report_data_hex"}
        values: dict[str, str] = {}
        for theirs, ours in fields.items():
            if not isinstance(data.get(theirs), str):
                raise InvalidInput(f"stand-in recording {path}: {theirs} must be a string")
            values[ours] = data[theirs]
        vm_config = data.get("vm_config", "")
        if not isinstance(vm_config, str):
            raise InvalidInput(f"stand-in recording {path}: vm_config must be a string")
        return cls(vm_config=vm_config, **values)

    def get_quote_response(self) -> dict[str, str]:
        return {
            "quote": self.quote_hex,
            "event_log": self.event_log,
            "report_data": self.report_data_hex,
            "vm_config": self.vm_config,
        }

    def info_response(self) -> dict[str, str]:
        """An ``Info`` answer in the shape dstack-sdk 0.5.4 parses, filled from the recording."""
        events = parse_event_log(self.event_log)

        def payload(name: str) -> bytes:
            return runtime_event_payload(events, name) or b""

        try:
            report: Any = dcap_qvl.parse_quote(bytes.fromhex(self.quote_hex)).report
        except ValueError as exc:
            raise InvalidInput("stand-in recording: quote does not parse") from exc
        try:
            vm_config: Any = json.loads(self.vm_config) if self.vm_config else {}
        except ValueError:
            vm_config = {}
        os_image_hash = vm_config.get("os_image_hash", "") if isinstance(vm_config, dict) else ""
        compose_hash = payload("compose-hash").hex()
        tcb_info = {
            "mrtd": report.mr_td.hex(),
            "rtmr0": report.rt_mr0.hex(),
            "rtmr1": report.rt_mr1.hex(),
            "rtmr2": report.rt_mr2.hex(),
            "rtmr3": report.rt_mr3.hex(),
            "app_compose": "",
            "event_log": json.loads(self.event_log),
            "mr_aggregated": "",
            "os_image_hash": os_image_hash,
            "compose_hash": compose_hash,
            "device_id": "",
        }
        return {
            "app_id": payload("app-id").hex(),
            "instance_id": payload("instance-id").hex(),
            "app_cert": "",
            "tcb_info": json.dumps(tcb_info),
            "app_name": STANDIN_APP_NAME,
            "device_id": "",
            "mr_aggregated": "",
            "os_image_hash": os_image_hash,
            "key_provider_info": payload("key-provider").decode("utf-8", errors="replace"),
            "compose_hash": compose_hash,
            "vm_config": self.vm_config,
        }


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, recording: StandInRecording) -> None:
        self.recording = recording
        self.info = recording.info_response()
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        super().__init__(path, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr log (which also trips over Unix socket addresses)."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._reply(405, {"error": "use POST"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= _MAX_BODY:
            self._reply(413, {"error": "request too large"})
            return
        try:
            request: Any = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply(400, {"error": "request body is not JSON"})
            return
        if not isinstance(request, dict):
            self._reply(400, {"error": "request body must be a JSON object"})
            return
        method = self.path.lstrip("/")
        with self.server.lock:
            self.server.calls.append((method, request))
        if method == "Info":
            self._reply(200, self.server.info)
        elif method == "GetQuote":
            report_data = request.get("report_data")
            if (
                not isinstance(report_data, str)
                or not report_data
                or len(report_data) > 2 * _MAX_REPORT_DATA
                or any(c not in "0123456789abcdefABCDEF" for c in report_data)
            ):
                self._reply(400, {"error": "report_data must be 1..64 bytes of hex"})
                return
            self._reply(200, self.server.recording.get_quote_response())
        elif method == "GetKey":
            path, purpose = request.get("path", ""), request.get("purpose", "")
            if not isinstance(path, str) or not isinstance(purpose, str):
                self._reply(400, {"error": "path and purpose must be strings"})
                return
            key = standin_app_key(str(self.server.info["app_id"]), path, purpose)
            self._reply(200, {"key": key.hex(), "signature_chain": []})
        else:
            self._reply(404, {"error": f"method {method!r} is not implemented by the stand-in"})


class GuestAgentStandIn:
    """Serve a recording on a Unix socket for the duration of a ``with`` block."""

    __slots__ = ("_recording", "_server", "_socket_path", "_thread")

    def __init__(self, socket_path: str | os.PathLike[str], recording: StandInRecording) -> None:
        self._socket_path = os.fspath(socket_path)
        self._recording = recording
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def socket_path(self) -> str:
        return self._socket_path

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(method, JSON request) pairs received so far, for tests to inspect."""
        if self._server is None:
            return []
        with self._server.lock:
            return list(self._server.calls)

    def __enter__(self) -> Self:
        if self._server is not None:
            raise SealroomError("the stand-in is already running")
        server = _Server(self._socket_path, self._recording)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="dstack-guest-agent-standin",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._socket_path)
