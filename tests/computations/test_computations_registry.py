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
        "1.0.1",
    ): "sha256:69364f1c4a64ac65d5932f2f7ea22c5ab615451e86c44219229e820228ad6c12",
    (
        "association-test",
        "1.0.1",
    ): "sha256:d921703860831c3e00f0a769e0321cd9c0fd62dc45dc5616e55eaeb5e89735f9",
    (
        "correlation",
        "1.0.1",
    ): "sha256:a98a94e918210cfbe4a9c3895fb23b4637f07197ab800d34df98872afe862540",
    (
        "gap-analysis",
        "1.0.1",
    ): "sha256:4276ec09cf8b5bef95d5283a5cd4ccb4dc51123d90a4c4aa5310cbf38fbea819",
    (
        "intersection-overlap",
        "1.0.1",
    ): "sha256:83c55e148e0d1419a69f6527e99f8398e0ef2cf81ad658f801d32afb188b21d0",
    (
        "intersection-sum",
        "1.0.1",
    ): "sha256:af5c146cd40d9fce33fd74cd9a20bd53d759f691387ae6cf64f21530e05c8c9c",
    ("lift", "1.0.1"): "sha256:8c91a4f4b5c30412a783701c3eb951cc072d6e58b50848a7cd26586887503bcf",
    (
        "pattern-search",
        "1.0.1",
    ): "sha256:80d47c00f2926c117095f17002b8c1cf4f46af94c978b05b679e002bfb280f22",
    (
        "quality-score",
        "1.0.1",
    ): "sha256:be193396553b6c2b1135849f35804cafa4cd210ae191bb8ae9ca1fde911aa6ac",
    (
        "sql-aggregate",
        "1.0.1",
    ): "sha256:3c6a48af6f2dd73b7f5531be40b9264f66462b3dedafeacdbfa16f4a8d9c47cb",
    (
        "topic-overlap",
        "1.0.1",
    ): "sha256:d98a484a2273924368d28b13b351af5a8d5d0ca815b12e5256d2cbd30eaef76a",
    (
        "train-model",
        "1.0.1",
    ): "sha256:8bffe7db1b69211afa0fcdc96bf1088050215742024d313fc1e13b526e9b20bb",
}


def test_every_shipped_version_is_pinned_to_its_code_digest() -> None:
    for c in default_registry():
        pinned = PINNED.get((c.id, c.version))
        assert pinned is not None, f"{c.id} {c.version} is new: pin its code digest here"
        assert c.code_digest == pinned, (
            f"the code of {c.id} {c.version} changed ({c.code_digest}): bump its version"
        )
    assert {(c.id, c.version) for c in default_registry()} == set(PINNED)
