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
        "1.1.0",
    ): "sha256:d4630b9e126621bad8a06ad1523159db3e1858f7b68d5cb7c69bafd01d2875f3",
    (
        "correlation",
        "1.1.0",
    ): "sha256:66ae222fd18796f9b13d8b8ba4c89d281ae346961c236388caf1f4d44dda723a",
    (
        "gap-analysis",
        "1.0.1",
    ): "sha256:4276ec09cf8b5bef95d5283a5cd4ccb4dc51123d90a4c4aa5310cbf38fbea819",
    (
        "intersection-overlap",
        "1.1.0",
    ): "sha256:caf862b2142f087b8718f7209678efb3baef32de0820a0c9903dcf87fcd77726",
    (
        "intersection-sum",
        "1.1.0",
    ): "sha256:fc089578fb60a3fdc94745285c088e21d1489b2034458e36a1d00526af2711c8",
    ("lift", "1.1.0"): "sha256:b61f3991e255289c3c24686b93d0578d9c0c576089372675351d66e03b9a9ee6",
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
        "2.0.0",
    ): "sha256:1aa4415543a61734b9bd9243d5458ea07144607a213b05ff46f3952e7cdd13c4",
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
