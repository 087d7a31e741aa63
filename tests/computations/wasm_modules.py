"""WebAssembly scoring modules (text format) for the quality-score tests and attacks.

Every module follows the ABI of :mod:`sealroom.computations._wasm`: it exports
``memory``, ``alloc(size) -> offset`` and ``score(table, n_cols, n_rows) -> f64``.
"""

from __future__ import annotations

ALLOC = """
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $size i32) (result i32)
    (local $at i32) (local $pages i32)
    (local.set $at (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.set $pages
      (i32.sub (i32.shr_u (i32.add (global.get $heap) (i32.const 65535)) (i32.const 16))
               (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable))))
    (local.get $at))
"""


def module(
    score_body: str, *, memory: str = '(memory (export "memory") 1)', extra: str = ""
) -> str:
    """A module with the standard allocator and ``score_body`` as the score function's body.

    The body sees ``$table``, ``$cols``, ``$rows`` and the locals ``$i`` (i32), ``$p`` (i32),
    ``$acc``, ``$n`` and ``$v`` (f64).
    """
    return f"""(module
  {extra}
  {memory}
  {ALLOC}
  (func (export "score") (param $table i32) (param $cols i32) (param $rows i32) (result f64)
    (local $i i32) (local $p i32) (local $acc f64) (local $n f64) (local $v f64)
    {score_body}))
"""


def column_data(index: int) -> str:
    """The data pointer of column ``index`` (16-byte entries, data at +12)."""
    return f"(i32.load offset={16 * index + 12} (local.get $table))"


def mean(index: int) -> str:
    """The mean of the non-missing values of f64 column ``index``."""
    return module(f"""
    (local.set $p {column_data(index)})
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $v (f64.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 3)))))
        (if (f64.eq (local.get $v) (local.get $v))
          (then (local.set $acc (f64.add (local.get $acc) (local.get $v)))
                (local.set $n (f64.add (local.get $n) (f64.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (f64.div (local.get $acc) (local.get $n))""")


def value(index: int, row: int, scale: float = 1.0) -> str:
    """One cell of f64 column ``index`` times ``scale``: an attempt to exfiltrate it."""
    return module(f"""
    (f64.mul (f64.const {scale})
      (f64.load (i32.add {column_data(index)} (i32.const {8 * row}))))""")


def constant(x: float) -> str:
    return module(f"(f64.const {x})")


def spin_on(index: int, per_unit: int) -> str:
    """Loops ``per_unit`` times per unit of cell (index, row 0): data-dependent run time."""
    return module(f"""
    (local.set $p (i32.trunc_f64_s (f64.mul (f64.const {per_unit})
      (f64.load {column_data(index)}))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $p)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (f64.const 0.5)""")


FOREVER = module("(loop $l (br $l)) (f64.const 0.5)")
GROW = module(
    "(drop (memory.grow (i32.const 30000))) (if (i32.eq (memory.grow (i32.const 60000)) (i32.const -1)) (then unreachable)) (f64.const 0.5)"
)
TRAP = module("unreachable")
RECURSE = module(
    "(call $deep (i32.const 0)) (f64.const 0.5)",
    extra="(func $deep (param $d i32) (call $deep (i32.add (local.get $d) (i32.const 1))))",
)
BAD_ALLOC = """(module (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 65530))
  (func (export "score") (param i32 i32 i32) (result f64) (f64.const 0.5)))"""
UNALIGNED_ALLOC = """(module (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1027))
  (func (export "score") (param i32 i32 i32) (result f64) (f64.const 0.5)))"""
HUGE_MEMORY = module("(f64.const 0.5)", memory='(memory (export "memory") 2000)')
_HOST_MEMORY = '(import "env" "enclave" (memory $m 1)) (export "memory" (memory $m))'
IMPORTS = {
    "wasi-fd-write": module(
        "(f64.const 0.5)",
        extra='(import "wasi_snapshot_preview1" "fd_write" '
        "(func (param i32 i32 i32 i32) (result i32)))",
    ),
    "host-function": module("(f64.const 0.5)", extra='(import "env" "socket" (func (result i32)))'),
    "host-memory": module("(f64.const 0.5)", memory=_HOST_MEMORY),
    "host-global": module("(f64.const 0.5)", extra='(import "env" "key" (global i64))'),
    "host-table": module("(f64.const 0.5)", extra='(import "env" "t" (table 1 funcref))'),
}
"""Modules that import something from the host, by what they import."""
