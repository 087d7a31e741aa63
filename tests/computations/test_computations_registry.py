"""The library's versions name its code: a change to a computation's code needs a new version.

An owner's policy allows computations by id and version range, and a request
names the code digest it was approved for. If the code behind a version could
change, a policy written for that version would silently cover other code.
This table pins each shipped version to its digest; when a digest changes,
bump that computation's version (and say why in docs/decisions.md), then pin it.
"""

from __future__ import annotations

from sealroom.computations import default_registry

PINNED: dict[tuple[str, str], str] = {
    (
        "aggregate-stats",
        "2.3.0",
    ): "sha256:7edb5a8e816a114994ecb76a8ab63f44aaf217b15e4e3f2145f3c08935d69fe5",
    (
        "association-test",
        "2.3.0",
    ): "sha256:770a321db1e8c8c55ffae765280aa50287bb26881f996ca077d3cee4b428b816",
    (
        "correlation",
        "2.2.0",
    ): "sha256:2a9cf694d88d60532156ad4ff53d48fc366d82cc23e18b9add45b1241fa2c60c",
    (
        "gap-analysis",
        "2.2.0",
    ): "sha256:3eca4b8faea1dda3e7bdbdd25694cd3ca711d30009686caccd4fe9a3edff77a7",
    (
        "intersection-overlap",
        "2.2.0",
    ): "sha256:d45a387e4d0a42eb8c9b637fb4091156f225e38249bcab42c1c129470d614750",
    (
        "intersection-sum",
        "2.2.0",
    ): "sha256:3847aa972c513574ff7f7de1421bb586e6f2ffb4f67a9bc0a0bf64c51ef67be9",
    ("lift", "2.2.0"): "sha256:be148b2bcb052706b34782d1d02ae387ab44e00ed087ae253ebea61f633d98f4",
    (
        "pattern-search",
        "2.2.0",
    ): "sha256:ee0cd90609009c7cec991a4ea1a667c61303182f0c87e2694565ac97487ccd13",
    ("predict", "1.0.0"): "sha256:cc4bb0d2647b704fad72abcc8064393b64941f3c85f21a3d482c544ac788dddf",
    (
        "quality-score",
        "2.1.0",
    ): "sha256:f0ad9c7bc971109a63573a0878fedaf8f342c28362a271b9dea4fd91b543d14a",
    (
        "sql-aggregate",
        "2.2.0",
    ): "sha256:6c6f098374510964eeb7dc5af6feae3aa1a28170a8d3ad08ecc787e2c4aed6d9",
    (
        "topic-overlap",
        "2.2.0",
    ): "sha256:27ae97f9495ea1793288525b3e2199ded95c7676d44ea3f74eb8a29bc7492be5",
    (
        "train-model",
        "2.2.0",
    ): "sha256:53621c41c979ee35cd8cfaa713a50027d9f18f77718021bddc513c464cff70b0",
}


def test_every_shipped_version_is_pinned_to_its_code_digest() -> None:
    for c in default_registry():
        pinned = PINNED.get((c.id, c.version))
        assert pinned is not None, f"{c.id} {c.version} is new: pin its code digest here"
        assert c.code_digest == pinned, (
            f"the code of {c.id} {c.version} changed ({c.code_digest}): bump its version"
        )
    assert {(c.id, c.version) for c in default_registry()} == set(PINNED)
