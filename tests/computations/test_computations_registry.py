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
    ): "sha256:091fd81a21c9122c3ca0825b746e1e2cec171d60070703977d2bc94ffd3ed8ca",
    (
        "correlation",
        "2.0.0",
    ): "sha256:6a1c979e7bcdc028d1b79cb1806df4869093ab4d841a72ce0000c34e80b3d339",
    (
        "gap-analysis",
        "1.0.1",
    ): "sha256:4276ec09cf8b5bef95d5283a5cd4ccb4dc51123d90a4c4aa5310cbf38fbea819",
    (
        "intersection-overlap",
        "2.0.0",
    ): "sha256:fc51ad32318911006fc221322e1b9ddafb52c8c01bbc51f1b2c66accd6694dfd",
    (
        "intersection-sum",
        "2.0.0",
    ): "sha256:65a578e4290ba165e2fc59286441ad5504019ed65daa5df7a731dcf767471045",
    ("lift", "2.0.0"): "sha256:f45e8c1d1b5192023adb701aed091289fccc815eb36c893ccc524737f334c42b",
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
