"""Issue 11, class 8, end to end: the buyer's code against the seller's sample (quality-score).

On main (0bebc30) the in-process audit hook was switched off through an event it allowed;
the child ran as root, rejoined the enclave's network namespace, sent the sample out over
TCP and read the enclave's memory (the withheld column, keys, other inputs). The score's
range was a request parameter, so one score carried 48-53 bits; the failure kind and the
run time carried more.

Now the buyer's code is a WebAssembly module with no imports in wasmtime: a module that
imports anything (WASI, a socket, the host's memory) is refused by the enclave, naming
``isolation-imports``; the seller's never-output column never reaches the module; the
range and precision are the seller's pins (a wider range is refused before anyone is
asked); every failure is one failure; and each run charges its log2(outputs) bits to the
seller's total bit budget, which binds across identities: a 23-bit salary cannot leave.
"""

from __future__ import annotations

import json
from typing import Any

from tests.attacks.attack_world import Folder, World
from tests.client.analytics_e2e_world import exact_policy
from tests.computations.wasm_modules import IMPORTS, TRAP, constant, module, value

SALARY = 71_234.56  # 7,123,456 cents: 23 bits
PINNED = {"precision": 2, "wall_ms": 300}


def sample() -> list[dict[str, Any]]:
    return [
        {"salary": SALARY if i == 0 else 40_000.0 + 250.0 * i, "ssn": f"078-05-{1120 + i}"}
        for i in range(30)
    ]


def algorithm(files: Folder, name: str, source: str) -> Any:
    return files.jsonl(name, [{"module": source, "expected": "0.5"}])


def test_the_sample_cannot_be_carried_out(world: World, files: Folder) -> None:
    seller_rules = exact_policy(
        "quality-score", PINNED, bits={"per_requester": "7", "total": "20"}, never_output=["ssn"]
    )
    seller = world.publish("c8-seller", files.csv("sample", sample()), seller_rules)
    buyer_rules = exact_policy(
        "quality-score", PINNED, bits={"per_requester": "999", "total": "999"}
    )

    def ask(name: str, source: str, params: dict[str, Any] = PINNED) -> Any:
        mine = world.publish("c8-buyer", algorithm(files, name, source), buyer_rules)
        return world.ask(f"c8-{name}", "quality-score", [mine, seller], params)

    # A wider range to carry the whole salary in one score: refused before anyone is asked.
    wide = {**PINNED, "score_max": "1000", "precision": 3}  # 20 bits in one score
    assert ask("wide", value(0, 0), wide).refused_by("rule exact-shape-pinned") == "coordinator"
    # One digit pair of the salary per run, from a new identity each time: 6.67 bits each.
    first = ask("digits-1", value(0, 0, scale=1e-5)).released
    assert (first["score"], first["bits"]) == ("0.71", "6.672426")
    assert first["withheld_columns"] == ["ssn"]
    second = ask("digits-2", value(0, 0, scale=1e-3)).released
    assert second["status"] == "failed"  # 71.23 is outside the pinned range: one failure kind
    assert second["score"] is None
    # A third run would bring the total to 3 x 6.67 > 20: refused, whoever asks.
    for later in ("digits-3", "constant"):
        source = value(0, 0, scale=1e-7) if later == "digits-3" else constant(0.5)
        assert ask(later, source).refused_by("rule bits-budget") == "enclave"
    # Everything released about the sample, to every identity together: two scores of at
    # most 6.67 bits; the salary needs 23.
    assert float(first["bits"]) + float(second["bits"]) < 23


def test_no_host_to_reach_and_every_failure_looks_the_same(world: World, files: Folder) -> None:
    seller_rules = exact_policy(
        "quality-score", PINNED, bits={"per_requester": "100", "total": "100"}
    )
    seller = world.publish("c8-seller-2", files.csv("sample", sample()), seller_rules)
    buyer_rules = exact_policy(
        "quality-score", PINNED, bits={"per_requester": "999", "total": "999"}
    )
    # Modules that reach for the host (WASI's fd_write, a socket, the enclave's memory).
    for kind in ("wasi-fd-write", "host-function", "host-memory"):
        mine = world.publish("c8-buyer-2", algorithm(files, kind, IMPORTS[kind]), buyer_rules)
        refused = world.ask("c8-buyer-2", "quality-score", [mine, seller], PINNED)
        assert refused.refused_by("isolation-imports") == "enclave"
    bodies = []
    for name, source in (
        ("trap", TRAP),
        ("nan", constant(float("nan"))),
        ("above", constant(1.5)),
        ("oob", module("(f64.load (i32.const -16))")),
    ):
        mine = world.publish("c8-buyer-2", algorithm(files, f"fail-{name}", source), buyer_rules)
        body = world.ask("c8-buyer-2", "quality-score", [mine, seller], PINNED).released
        body.pop("algorithm_digest")
        bodies.append(json.dumps(body, sort_keys=True))
    assert len(set(bodies)) == 1
    assert json.loads(bodies[0])["status"] == "failed"
