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
        "2.0.0",
    ): "sha256:01f4ece83c54b3b24eaa34ec92807d29466e7a4fd4680b45f917f749470d35c2",
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
        "2.0.0",
    ): "sha256:78cb502bdcb66cc6f01dd88c3c3c03697120752841a67a915dd89abe519e8da9",
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
        "2.0.0",
    ): "sha256:a2d7496bd836d23f840505e0446268da443ce5e04c7f5681560fbbc370c5dedc",
    (
        "quality-score",
        "2.0.0",
    ): "sha256:e6c66e0dd751c5357e83b3da142542f7418988aeaa427748cfa8e7fccf644c67",
    (
        "sql-aggregate",
        "2.0.0",
    ): "sha256:1aa4415543a61734b9bd9243d5458ea07144607a213b05ff46f3952e7cdd13c4",
    (
        "topic-overlap",
        "2.0.0",
    ): "sha256:365b1d9cff7a5ad71a2f2d8dd772d599b4f497e73e290112d01f5ead3569b180",
    (
        "train-model",
        "2.0.0",
    ): "sha256:60642e5af62bb2db7e5c72693bec30b3ea203f9d8e536afad99aa2155bda2a3c",
}


def test_every_shipped_version_is_pinned_to_its_code_digest() -> None:
    for c in default_registry():
        pinned = PINNED.get((c.id, c.version))
        assert pinned is not None, f"{c.id} {c.version} is new: pin its code digest here"
        assert c.code_digest == pinned, (
            f"the code of {c.id} {c.version} changed ({c.code_digest}): bump its version"
        )
    assert {(c.id, c.version) for c in default_registry()} == set(PINNED)
