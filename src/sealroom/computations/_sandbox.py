"""Run untrusted Python (a buyer's scoring algorithm) in a constrained child process.

Private helper of ``quality-score``. This is a best-effort sandbox, not a VM;
the protections that applied are named in every result (:attr:`SandboxResult.protection`):

* a fresh interpreter, ``python -I -S -B``: isolated mode, no site-packages, no
  user site, no environment variables read, no bytecode written; an empty
  environment; stdin is a file in a private temporary directory (mode 0700)
  holding only the approved inputs (the algorithm source and the seller's sample
  as CSV); stderr goes to /dev/null; the working directory is that (otherwise
  empty) directory;
* kernel resource limits set before the interpreter starts: ``RLIMIT_CPU``,
  ``RLIMIT_AS``, ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE`` = 0 (no file can be
  written), ``RLIMIT_CORE`` = 0, ``RLIMIT_NPROC`` = 0 (no fork; not enforced for
  root, so a root parent drops the child to uid/gid 65534 first);
* a new session (the whole process group is killed on timeout), a wall-clock
  timeout and an output-size limit enforced by the parent;
* inside the child, before the algorithm runs: a network namespace of its own
  when the kernel permits ``unshare(CLONE_NEWNET)`` (tried directly, then with
  a new user namespace), the standard output and error redirected to /dev/null
  (printing reaches no one), a fixed set of pure-computation modules preloaded,
  then a ``sys.addaudithook`` hook that refuses every audited operation except
  compiling and executing code and attribute access: no ``open`` (so no file
  outside the inputs, which are already in memory), no import, no socket, no
  subprocess, no ``os.system``/``exec``/``fork``, no ``ctypes``, no ``gc``
  introspection.

The child reports on a private duplicate of its original standard output one
JSON line: ``{"score": "<float repr>"}`` or ``{"error": "<kind>"}``. The
algorithm could find that descriptor and write to it; the parent then accepts
exactly one well-formed line and nothing else, so the algorithm controls at
most which of those results is reported, never anything larger.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = [
    "FAILURES",
    "Failure",
    "SandboxLimits",
    "SandboxResult",
    "run_sandboxed",
]

Failure = Literal[
    "timeout",
    "cpu-limit",
    "memory-limit",
    "output-limit",
    "refused",
    "error",
    "no-score-function",
    "invalid-score",
    "crashed",
]
FAILURES: tuple[Failure, ...] = (
    "timeout",
    "cpu-limit",
    "memory-limit",
    "output-limit",
    "refused",
    "error",
    "no-score-function",
    "invalid-score",
    "crashed",
)

MAX_REPORT_BYTES = 256
_NOBODY = 65534

# The child's program. It reads everything it may use from stdin before the algorithm runs.
_CHILD = r"""
import sys, os, json, csv, io, math, builtins
_out = os.dup(1)
_chunks = []
while True:
    _b = os.read(0, 1 << 20)
    if not _b:
        break
    _chunks.append(_b)
_data = b"".join(_chunks)
del _chunks
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0); os.dup2(_null, 1); os.dup2(_null, 2)

def _report(obj):
    os.write(_out, (json.dumps(obj, separators=(",", ":")) + "\n").encode())

_header, _, _body = _data.partition(b"\n")
del _data
_meta = json.loads(_header)
_source = _meta["source"]
_types = _meta["types"]

def _conv(kind, text):
    if text == "":
        return "" if kind == "string" else None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "true"
    return text

_reader = csv.reader(io.StringIO(_body.decode("utf-8")))
_names = next(_reader, [])
table = {n: [] for n in _names}
_cols = [table[n] for n in _names]
_kinds = [_types[n] for n in _names]
for _row in _reader:
    for _c, _k, _v in zip(_cols, _kinds, _row):
        _c.append(_conv(_k, _v))
del _reader, _body, _header, _meta

_netns = "none"
try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.unshare(0x40000000) == 0:
        _netns = "network namespace"
    elif _libc.unshare(0x10000000 | 0x40000000) == 0:
        _netns = "user+network namespace"
    del _libc
except Exception:
    pass
for _m in list(sys.modules):
    if _m == "ctypes" or _m.startswith("ctypes.") or _m == "_ctypes":
        del sys.modules[_m]

import math, statistics, collections, itertools, functools, operator, re, random, decimal
import fractions, heapq, bisect, string, datetime, array, copy, dataclasses, typing, enum

_ALLOWED = frozenset({"compile", "exec", "object.__getattr__", "object.__setattr__",
                      "object.__delattr__", "time.sleep"})
_refused = []

def _hook(event, args, _allowed=_ALLOWED, _refused=_refused):
    if event not in _allowed:
        _refused.append(event)
        raise PermissionError("sandbox: " + event + " is not permitted")

try:
    _code = compile(_source, "<algorithm>", "exec")
except BaseException:
    _code = None
del _source
sys.addaudithook(_hook)
_report({"protection": _netns})
try:
    if _code is None:
        raise SyntaxError("the algorithm does not compile")
    _ns = {"__name__": "algorithm", "__builtins__": builtins}
    exec(_code, _ns)
    _fn = _ns.get("score")
    if not callable(_fn):
        _report({"error": "no-score-function"})
    else:
        _value = _fn(table)
        if isinstance(_value, bool) or not isinstance(_value, (int, float)):
            _report({"error": "invalid-score"})
        else:
            _value = float(_value)
            if math.isfinite(_value):
                _report({"score": repr(_value)})
            else:
                _report({"error": "invalid-score"})
except MemoryError:
    _report({"error": "memory-limit"})
except BaseException:
    _report({"error": "refused" if _refused else "error"})
"""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_seconds: int = 10
    memory_bytes: int = 512 << 20
    wall_seconds: float = 30.0
    max_output_bytes: int = MAX_REPORT_BYTES * 2
    max_files: int = 16


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """A finite score or a failure kind from :data:`FAILURES`, and the protections that applied."""

    score: float | None
    failure: Failure | None
    protection: str


def _limits_fn(limits: SandboxLimits) -> Callable[[], None]:
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_files, limits.max_files))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))

    return apply


def _protection(netns: str, dropped_root: bool) -> str:
    parts = [
        "child process (python -I -S, empty env, private temp dir)",
        "rlimits cpu/as/nofile/fsize=0/core=0/nproc=0",
        "audit hook (no open, import, socket, subprocess, exec, ctypes)",
        "wall-clock and output limits",
    ]
    if dropped_root:
        parts.append("uid 65534")
    elif os.geteuid() == 0:
        parts.append("running as root (uid 65534 cannot execute the interpreter here)")
    parts.append(netns if netns != "none" else "no network namespace (not permitted here)")
    return "best effort, not a VM: " + "; ".join(parts)


def _read_bounded(proc: subprocess.Popen[bytes], limits: SandboxLimits) -> tuple[bytes, str | None]:
    """The child's report bytes, or a failure kind for timeout / too much output."""
    assert proc.stdout is not None
    deadline = time.monotonic() + limits.wall_seconds
    buf = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(buf), "timeout"
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return bytes(buf), None
            buf += chunk
            if len(buf) > limits.max_output_bytes:
                return bytes(buf), "output-limit"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def _parse(report: bytes) -> tuple[str, float | None, Failure | None]:
    lines = report.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        return "none", None, "crashed"
    try:
        first, second = json.loads(lines[0]), json.loads(lines[1])
    except ValueError:
        return "none", None, "crashed"
    netns = first.get("protection") if isinstance(first, dict) and len(first) == 1 else None
    if netns not in ("none", "network namespace", "user+network namespace"):
        return "none", None, "crashed"
    if not isinstance(second, dict) or len(second) != 1:
        return netns, None, "crashed"
    if "error" in second:
        kind = second["error"]
        return netns, None, kind if kind in FAILURES else "crashed"
    text = second.get("score")
    if not isinstance(text, str) or len(text) > 40:
        return netns, None, "crashed"
    try:
        value = float(text)
    except ValueError:
        return netns, None, "crashed"
    return (netns, value, None) if math.isfinite(value) else (netns, None, "invalid-score")


def _spawn(
    stdin: BinaryIO, work: Path, limits: SandboxLimits, *, drop: bool
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - a fixed argv; the source travels on stdin
        [sys.executable, "-I", "-S", "-B", "-c", _CHILD],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=work,
        env={},
        close_fds=True,
        start_new_session=True,
        preexec_fn=_limits_fn(limits),
        user=_NOBODY if drop else None,
        group=_NOBODY if drop else None,
        extra_groups=[] if drop else None,
    )


def run_sandboxed(
    source: str, sample_csv: bytes, types: dict[str, str], *, limits: SandboxLimits
) -> SandboxResult:
    """Run ``score(table)`` from ``source`` on the sample; never raises for the algorithm's faults.

    ``types`` maps each CSV column to "int", "float", "bool" or "string"; the algorithm sees
    ``table`` as a dict of column name -> list of values (None for a missing value).
    """
    header = json.dumps({"source": source, "types": types}, separators=(",", ":"))
    dropped_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="sealroom-sandbox-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        inputs = work / "inputs"
        with inputs.open("wb") as f:
            f.write(header.encode("utf-8") + b"\n" + sample_csv)
        proc: subprocess.Popen[bytes] | None = None
        for drop in (True, False) if dropped_root else (False,):
            with inputs.open("rb") as stdin:
                try:
                    proc = _spawn(stdin, work, limits, drop=drop)
                except PermissionError:
                    # the interpreter is not executable by uid 65534 (e.g. under /root)
                    continue
                dropped_root = drop
                break
        if proc is None:  # pragma: no cover - the second attempt runs as ourselves
            raise OSError("the sandbox child could not be started")
        try:
            report, failure = _read_bounded(proc, limits)
        finally:
            if proc.poll() is None:
                _kill(proc)
            else:
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        code = proc.returncode
    netns, score, parsed = _parse(report)
    protection = _protection(netns, dropped_root)
    if failure is not None:
        return SandboxResult(score=None, failure=failure, protection=protection)  # type: ignore[arg-type]
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and parsed == "crashed":
        return SandboxResult(score=None, failure="cpu-limit", protection=protection)
    if parsed is not None:
        return SandboxResult(score=None, failure=parsed, protection=protection)
    if code != 0:
        return SandboxResult(score=None, failure="crashed", protection=protection)
    return SandboxResult(score=score, failure=None, protection=protection)
