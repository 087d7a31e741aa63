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
    ): "sha256:feeb87cc052f8575a7273b2f30f39fbe75a4db732009dd2bec62f14588c45d32",
    (
        "correlation",
        "2.0.0",
    ): "sha256:ac9305286e524da7e4c1ac58e13adace43ad6957e1e4038f8d5cd769f71dac36",
    (
        "gap-analysis",
        "1.0.1",
    ): "sha256:4276ec09cf8b5bef95d5283a5cd4ccb4dc51123d90a4c4aa5310cbf38fbea819",
    (
        "intersection-overlap",
        "2.0.0",
    ): "sha256:50fb08f7b3531793fb8b6816318064e86045909e012da783f84b18f4f7d442ef",
    (
        "intersection-sum",
        "2.0.0",
    ): "sha256:672db82c7d0d61b8f1dbc1bb6e6a37c66291245c7d568170b5e35fcedc7e968b",
    ("lift", "2.0.0"): "sha256:37a5cb59db87c67216facdf6d79a63bbafd560e9e9f42136f86afa6471b81460",
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
