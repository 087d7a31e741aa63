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
        "2.1.0",
    ): "sha256:96e10b13fb456a855f13024249c7f7d6750500b2315c1b00c6fdec884633dba6",
    (
        "association-test",
        "2.1.0",
    ): "sha256:c306575525bc48388792ab62c11d3f9ac4d0d1df50b489800fe38a6aae02765f",
    (
        "correlation",
        "2.1.0",
    ): "sha256:ad73c4d1787dc24385752026420b32a743bc6b1fa1266a7d7c192b54787209cd",
    (
        "gap-analysis",
        "2.1.0",
    ): "sha256:c1662b58e34a83478da31262096bf8e8814fb0a0966aba8fdbab5841022356be",
    (
        "intersection-overlap",
        "2.1.0",
    ): "sha256:eff69a86cb4af37664e2357f3d60e2b2f326f344e325f0d960cc92a3f613d375",
    (
        "intersection-sum",
        "2.1.0",
    ): "sha256:b5f55f740bd33a9dc0cef764fc650f6256d75b97a999219aa733b3ec01fe6339",
    ("lift", "2.1.0"): "sha256:c3f588dbfe7ec8be0dd92c17270eb433696df93c0bc3215056b61cd8070328b3",
    (
        "pattern-search",
        "2.1.0",
    ): "sha256:2a614cd27ceff2fba5557e261b6fe364d935b1de3be0f28d325b71200fb8bde9",
    ("predict", "1.0.0"): "sha256:cc4bb0d2647b704fad72abcc8064393b64941f3c85f21a3d482c544ac788dddf",
    (
        "quality-score",
        "2.1.0",
    ): "sha256:f0ad9c7bc971109a63573a0878fedaf8f342c28362a271b9dea4fd91b543d14a",
    (
        "sql-aggregate",
        "2.1.0",
    ): "sha256:e683185e2f146288187941e838f129f574b53cc989b37e781e0af07cf54756db",
    (
        "topic-overlap",
        "2.1.0",
    ): "sha256:51d11639b992df2fc23ee83e13c340b214e1672540ee9fe74a5cc0600a3d38e9",
    (
        "train-model",
        "2.1.0",
    ): "sha256:11121f695748956f8ee7c7e2eb66a555b7fbe645436189a1ac0786365b1c9a59",
}


def test_every_shipped_version_is_pinned_to_its_code_digest() -> None:
    for c in default_registry():
        pinned = PINNED.get((c.id, c.version))
        assert pinned is not None, f"{c.id} {c.version} is new: pin its code digest here"
        assert c.code_digest == pinned, (
            f"the code of {c.id} {c.version} changed ({c.code_digest}): bump its version"
        )
    assert {(c.id, c.version) for c in default_registry()} == set(PINNED)
