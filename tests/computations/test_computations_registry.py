"""The library's versions name its code: a change to a computation's code needs a new version.

An owner's policy allows computations by id and version range, and a request
names the code digest it was approved for. If the code behind a version could
change, a policy written for that version would silently cover other code.
This table pins each shipped version to its digest; when a digest changes,
bump that computation's version (and say why in docs/decisions.md), then pin it.
"""

from __future__ import annotations

from sealroom.computations import default_registry

PINNED = {
    (
        "aggregate-stats",
        "1.1.0",
    ): "sha256:3a3f08812ef138ad8910dea2438e567201db04149557ba65959d791012503ae5",
    (
        "association-test",
        "2.0.0",
    ): "sha256:76ed7c0f9d2ab01fa9d57a0786faca45d62aae23c2cb4a626ee73b3475b861f6",
    (
        "correlation",
        "2.0.0",
    ): "sha256:4acd03e29b2069d2cf901f86942144a8412bd145de2ad0ff845ca430882f06c9",
    (
        "gap-analysis",
        "1.0.1",
    ): "sha256:4276ec09cf8b5bef95d5283a5cd4ccb4dc51123d90a4c4aa5310cbf38fbea819",
    (
        "intersection-overlap",
        "2.0.0",
    ): "sha256:d4566552ef72a5ae9e2e3fb6905422c867d408aa037b46e1acc287acb1bafb14",
    (
        "intersection-sum",
        "2.0.0",
    ): "sha256:cfd5ed1b44585e572df291e8d76ccbe8dd21f7941190f6e2be92aa24a9e4fd7d",
    ("lift", "2.0.0"): "sha256:d23c7ee4daf497dd2b7183cf921a6f50b52279fef6445b8f43346af7b07c35a1",
    (
        "pattern-search",
        "1.0.1",
    ): "sha256:80d47c00f2926c117095f17002b8c1cf4f46af94c978b05b679e002bfb280f22",
    (
        "quality-score",
        "1.1.0",
    ): "sha256:bed0e348d9c6a1d00c681ba447d96d23b926bf911107af23bfd79d8f39de702a",
    (
        "sql-aggregate",
        "1.1.0",
    ): "sha256:6f86e051727284d506bc052fed4a17510fe5c2031d8a7aca3b40b66ffb5eb2f4",
    (
        "topic-overlap",
        "1.0.1",
    ): "sha256:d98a484a2273924368d28b13b351af5a8d5d0ca815b12e5256d2cbd30eaef76a",
    (
        "train-model",
        "1.1.0",
    ): "sha256:49ce7b70db38668ca34542897a94cdf8ee7aff56978cd4941abdb49fa8613ec3",
}


def test_every_shipped_version_is_pinned_to_its_code_digest() -> None:
    for c in default_registry():
        pinned = PINNED.get((c.id, c.version))
        assert pinned is not None, f"{c.id} {c.version} is new: pin its code digest here"
        assert c.code_digest == pinned, (
            f"the code of {c.id} {c.version} changed ({c.code_digest}): bump its version"
        )
    assert {(c.id, c.version) for c in default_registry()} == set(PINNED)
