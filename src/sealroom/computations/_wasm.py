"""Run a buyer's WebAssembly scoring function as a pure function of a table.

Private helper of ``quality-score``. The isolation boundary is WebAssembly itself,
executed by wasmtime (Bytecode Alliance): a module can reach nothing but its own
linear memory and what the host passes in. We pass in NOTHING: a module that
imports anything (functions, memories, tables, globals; so no WASI: no files,
network, clock, randomness or environment) is refused before it is instantiated,
so the whole module is a deterministic function of the bytes we write into its
memory. The engine is configured for determinism as well: NaN canonicalisation
on, relaxed SIMD and threads off (no shared memory), one linear memory.

Limits, each ending the run with the same single failure (:data:`FAILED`):

* ``fuel``: wasmtime charges about one unit per executed instruction; running out
  traps. This bounds the work whatever the machine.
* ``memory_bytes``: the store's limiter caps linear memory (``memory.grow``
  returns -1 past it; a module that declares more fails to instantiate); one
  instance, one memory, one table of at most 10,000 elements; the native stack
  is capped (``max_wasm_stack``), so deep recursion traps.
* ``deadline``: epoch interruption traps the module at a wall-clock deadline
  (a timer thread increments the engine's epoch), in case fuel runs slower than
  the deadline assumed.

ABI (version 1; the README's quality-score row points here). The module exports:

* ``memory``: its linear memory (32-bit, not shared);
* ``alloc(size: i32) -> i32``: the 8-byte aligned offset of ``size`` writable bytes
  (the host calls it once, for the whole table, and checks the range lies in memory);
* ``score(table: i32, n_cols: i32, n_rows: i32) -> f64``: the score.

The host writes the table at ``table`` (little-endian, absolute offsets):
``n_cols`` column entries of 16 bytes each, ``kind: i32`` (1: f64 values, 2: UTF-8
strings), ``name: i32``, ``name_len: i32``, ``data: i32``; then the names. A
kind-1 column's ``data`` is ``n_rows`` f64 values (integers and booleans as f64,
exact up to 2^53; a missing value is NaN). A kind-2 column's ``data`` is
``n_rows`` pairs ``(offset: i32, len: i32)`` into UTF-8 bytes (``len`` = -1 for a
missing value). Columns come in the sample's order.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from sealroom.errors import InvalidInput, PolicyDenied

__all__ = [
    "ABI_VERSION",
    "FAILED",
    "Column",
    "WasmLimits",
    "load_module",
    "run_score",
    "runtime",
]

ABI_VERSION: Final = 1
FAILED: Final = "failed"
"""The one failure the output may name, whatever went wrong inside the module."""
MAX_MODULE_BYTES: Final = 4 << 20
MAX_STACK_BYTES: Final = 512 << 10
MAX_TABLE_ELEMENTS: Final = 10_000
_ENTRY: Final = struct.Struct("<iiii")
_KIND: Final[dict[str, int]] = {"f64": 1, "utf8": 2}
_MAX_ADDRESS: Final = 1 << 32


@dataclass(frozen=True, slots=True)
class Column:
    """One column as the module sees it: f64 values (NaN missing) or UTF-8 strings (None missing)."""

    name: str
    kind: Literal["f64", "utf8"]
    values: Sequence[float] | Sequence[bytes | None]  # f64: NaN (never None) when missing


@dataclass(frozen=True, slots=True)
class WasmLimits:
    fuel: int
    memory_bytes: int


def runtime() -> str:
    """The wasmtime release that isolates the module, or PolicyDenied if there is none."""
    try:
        from importlib.metadata import version

        import wasmtime  # noqa: F401
    except ImportError:
        raise PolicyDenied(
            "quality-score: wasmtime is not installed, so buyer code cannot be isolated",
            rule="isolation-unavailable",
        ) from None
    return f"wasmtime {version('wasmtime')}"


def _engine(*, interruptible: bool) -> object:
    import wasmtime

    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = interruptible
    config.cranelift_nan_canonicalization = True
    config.wasm_threads = False
    config.wasm_relaxed_simd = False
    config.wasm_memory64 = False
    config.wasm_multi_memory = False
    config.max_wasm_stack = MAX_STACK_BYTES
    return wasmtime.Engine(config)


def load_module(text: str) -> bytes:
    """The module as validated wasm bytes; refuses anything but a pure, ABI-conforming module.

    ``text`` is WebAssembly text (starting with ``(``) or the base64 of a binary
    module. Depends on the buyer's input only, so its refusals say why.
    """
    runtime()
    import wasmtime

    stripped = text.strip()
    if stripped.startswith("("):
        try:
            wasm = bytes(wasmtime.wat2wasm(stripped))
        except wasmtime.WasmtimeError:
            raise InvalidInput(
                "quality-score: the module's WebAssembly text does not parse"
            ) from None
    else:
        try:
            wasm = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "quality-score: the module is neither WebAssembly text nor base64 of a binary"
            ) from None
    if len(wasm) > MAX_MODULE_BYTES:
        raise InvalidInput(f"quality-score: the module exceeds {MAX_MODULE_BYTES} bytes")
    engine = _engine(interruptible=False)
    assert isinstance(engine, wasmtime.Engine)
    try:
        module = wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError:
        raise InvalidInput("quality-score: the module is not valid WebAssembly") from None
    if module.imports:
        first = module.imports[0]
        raise PolicyDenied(
            f"quality-score: the module imports {first.module}.{first.name}; a scoring module "
            "may import nothing (no WASI, no host functions)",
            rule="isolation-imports",
        )
    exports = {e.name: e.type for e in module.exports}
    memory = exports.get("memory")
    if not isinstance(memory, wasmtime.MemoryType) or memory.is_64 or memory.is_shared:
        raise InvalidInput("quality-score: the module must export a 32-bit 'memory'")
    i32, f64 = wasmtime.ValType.i32(), wasmtime.ValType.f64()
    for name, params, results in (
        ("alloc", [i32], [i32]),
        ("score", [i32, i32, i32], [f64]),
    ):
        func = exports.get(name)
        if not (
            isinstance(func, wasmtime.FuncType)
            and func.params == params
            and func.results == results
        ):
            shown = ", ".join(str(p) for p in params)
            raise InvalidInput(
                f"quality-score: the module must export {name}({shown}) -> {results[0]}"
            )
    return wasm


def _layout(columns: Sequence[Column], n_rows: int, base: int) -> bytes:
    """The table at ``base`` as described in the module docstring."""
    header = bytearray()
    body = bytearray()
    cursor = base + _ENTRY.size * len(columns)

    def put(data: bytes) -> int:
        nonlocal cursor
        pad = -cursor % 8
        body.extend(b"\0" * pad)
        at = cursor + pad
        body.extend(data)
        cursor = at + len(data)
        return at

    for col in columns:
        name = col.name.encode("utf-8")
        name_at = put(name)
        if col.kind == "f64":
            floats = np.asarray(col.values, dtype="<f8")
            if floats.shape != (n_rows,):
                raise ValueError("a column must have n_rows values")
            data_at = put(floats.tobytes())
        else:
            texts = [v if isinstance(v, bytes) else None for v in col.values]
            blob_at = put(b"".join(t for t in texts if t is not None))
            pairs, offset = [], blob_at
            for t in texts:
                if t is None:
                    pairs += [0, -1]
                else:
                    pairs += [offset, len(t)]
                    offset += len(t)
            data_at = put(np.asarray(pairs, dtype="<i4").tobytes())
        header += _ENTRY.pack(_KIND[col.kind], name_at, len(name), data_at)
        if cursor >= _MAX_ADDRESS:
            raise OverflowError("the table does not fit a 32-bit memory")
    return bytes(header + body)


def run_score(
    wasm: bytes, columns: Sequence[Column], n_rows: int, limits: WasmLimits, *, deadline: float
) -> float | None:
    """The module's score on the table, or None on ANY failure (one kind, by design).

    ``deadline`` is a ``time.monotonic()`` instant at which the module is interrupted.
    """
    import wasmtime

    engine = _engine(interruptible=True)
    assert isinstance(engine, wasmtime.Engine)
    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), engine.increment_epoch)
    timer.daemon = True
    try:
        size = len(_layout(columns, n_rows, 0))
        module = wasmtime.Module(engine, wasm)
        store = wasmtime.Store(engine)
        store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=MAX_TABLE_ELEMENTS,
            instances=1,
            tables=1,
            memories=1,
        )
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(1)
        timer.start()
        instance = wasmtime.Instance(store, module, [])
        exports = instance.exports(store)
        memory, alloc, score = exports["memory"], exports["alloc"], exports["score"]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(alloc, wasmtime.Func)
        assert isinstance(score, wasmtime.Func)
        base = alloc(store, size)
        if (
            not isinstance(base, int)
            or base < 0
            or base % 8
            or base + size > memory.data_len(store)
        ):
            return None
        memory.write(store, _layout(columns, n_rows, base), base)
        value = score(store, base, len(columns), n_rows)
    except Exception:
        return None
    finally:
        timer.cancel()
    return value if isinstance(value, float) and math.isfinite(value) else None
