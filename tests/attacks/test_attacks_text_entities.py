"""Issue 11, class 10, end to end: the text computations count entities, not records.

On main (0bebc30), with ``{"k": 5, "entity_column": "module"}``, topic-overlap released
terms seen in 27 records but only 2 modules; gap-analysis and the card share the counting
code.

Now a term is named only when k distinct entities of its input use it, whatever the other
input (which the attacker writes to hold any candidate term) says; gap-analysis's
"covered" bit about a learner is the same threshold, so a term two of the victim's modules
use looks exactly like a term none of them uses.
"""

from __future__ import annotations

from typing import Any

from tests.attacks.attack_world import Folder, World

PROBE = "patientzero diagnosis"


def modules(with_probe: bool) -> list[dict[str, Any]]:
    """27 records naming the probe in 2 modules (or none), 60 others in 60 modules."""
    rows = [
        {
            "text": f"worked on {PROBE}" if with_probe else "worked on the build",
            "module": f"m{i % 2}",
        }
        for i in range(27)
    ]
    return rows + [
        {"text": f"reviewed the build pipeline {i}", "module": f"f{i}"} for i in range(60)
    ]


RULES = {"k": 5, "entity_column": "module"}


def test_topic_overlap_counts_modules_not_records(world: World, files: Folder) -> None:
    victim = world.publish(
        "c10-victim",
        files.jsonl("modules", modules(with_probe=True)),
        {"allow": [{"id": "topic-overlap"}], "auto_approve": [{"id": "topic-overlap"}], **RULES},
    )
    probe = files.jsonl("probe", [{"text": PROBE}] * 5)
    mine = world.publish("c10-mallory", probe, {"allow": [{"id": "topic-overlap"}], "k": 1})
    body = world.ask("c10-mallory", "topic-overlap", [victim, mine], {"top": 200}).released
    named_as_victims = {s["term"] for s in body["shared"]} | {
        t["term"] for t in body["unique_to_a"]
    }
    assert "build pipeline" in named_as_victims
    assert not any("patientzero" in t for t in named_as_victims)


def test_gap_analysis_coverage_is_the_same_threshold(world: World, files: Folder) -> None:
    """The attacker writes an expert log of candidate terms and names the victim's log as the
    learner: 'covered' would say whether the victim wrote the term at all."""
    expert = files.jsonl(
        "expert",
        [{"text": f"{PROBE} and the build pipeline", "who": f"e{i}"} for i in range(6)],
    )
    mine = world.publish(
        "c10-eve", expert, {"allow": [{"id": "gap-analysis"}], "k": 1, "entity_column": "who"}
    )
    bodies = []
    for with_probe in (True, False):
        rules = {
            "allow": [{"id": "gap-analysis"}],
            "auto_approve": [{"id": "gap-analysis"}],
            **RULES,
        }
        victim = world.publish(
            f"c10-learner-{with_probe}",
            files.jsonl(f"learner_{with_probe}", modules(with_probe)),
            rules,
        )
        bodies.append(world.ask("c10-eve", "gap-analysis", [mine, victim], {}).released)
    # The probe in 27 records of 2 modules reads exactly as the probe written nowhere.
    assert bodies[0] == bodies[1]
    assert any(PROBE in g["term"] or "patientzero" in g["term"] for g in bodies[0]["gaps"])
