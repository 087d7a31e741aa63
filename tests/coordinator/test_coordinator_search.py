from __future__ import annotations

import pytest
from coord_helpers import World, make_world
from sqlalchemy import Engine

from sealroom.errors import InvalidInput, NotFound
from sealroom.statements import Keyword, TimeRange
from sealroom.storage.search import SearchQuery
from tests.helpers import T0, identity


def _kw(*terms: str) -> tuple[Keyword, ...]:
    return tuple(Keyword(term=t, count=1) for t in terms)


@pytest.fixture
def w(engine: Engine) -> World:
    world = make_world(engine)  # dataset 0: "TEE development logs", keywords attestation, kms
    return world


def _ids(w: World, **kw: object) -> list[str]:
    return [i["dataset"]["dataset"] for i in w.c.search(SearchQuery(**kw))["items"]]  # type: ignore[arg-type]


def test_search_text_filters_and_similarity(w: World) -> None:
    bob = identity("bob")
    gpu = w.publish(
        bob,
        title="GPU kernels",
        description="CUDA tuning notes",
        keywords=_kw("cuda", "gpu", "kms"),
        topics=("hpc",),
        row_count=500,
        commitment=_commit(500),
        time_range=TimeRange(start=T0 + 10_000, end=T0 + 20_000),
    )
    mixed = w.publish(
        bob,
        title="Attestation on GPUs",
        description="confidential GPU attestation",
        keywords=_kw("attestation", "kms", "gpu"),
        topics=("tee",),
    )
    assert set(_ids(w, q="attestation")) == {w.dataset, mixed}
    assert _ids(w, q="attestation")[0] == mixed  # title match ranks first
    assert _ids(w, q="cuda tuning") == [gpu]
    assert set(_ids(w, keywords=("KMS", "gpu"))) == {gpu, mixed}
    assert _ids(w, owner=w.owner.party_id) == [w.dataset]
    assert _ids(w, min_rows=100) == [gpu]
    assert _ids(w, time_from=T0 + 15_000) == [gpu]
    assert set(_ids(w, time_to=T0)) == {w.dataset, mixed}
    page = w.c.search(SearchQuery(similar_to=w.dataset))
    # w.dataset {attestation, kms}: mixed shares 2 of 3 terms (2/3), gpu 1 of 4 (1/4)
    assert [i["dataset"]["dataset"] for i in page["items"]] == [mixed, gpu]
    assert page["items"][0]["jaccard"] == pytest.approx(2 / 3)
    assert page["items"][1]["jaccard"] == pytest.approx(1 / 4)
    with pytest.raises(NotFound):
        w.c.search(SearchQuery(similar_to="sha256:" + "2" * 64))
    w.c.withdraw_dataset(mixed, {"reason": "gone"}, caller=bob.party_id, now=T0)
    assert _ids(w, q="attestation") == [w.dataset]


def test_search_pagination_is_complete_and_bound_to_query(w: World) -> None:
    for i in range(7):
        w.publish(identity(f"p{i}"), title=f"notes {i}", keywords=_kw("shared", f"t{i}"))
    for q in (
        SearchQuery(limit=3),
        SearchQuery(q="notes", limit=3),
        SearchQuery(keywords=("shared",), limit=2),
    ):
        seen: list[str] = []
        cursor = None
        while True:
            page = w.c.search(SearchQuery(**{**_fields(q), "cursor": cursor}))  # type: ignore[arg-type]
            seen += [i["dataset"]["dataset"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == page["total"]
    first = w.c.search(SearchQuery(q="notes", limit=2))
    with pytest.raises(InvalidInput):
        w.c.search(SearchQuery(q="other", cursor=first["next_cursor"]))
    with pytest.raises(InvalidInput):
        w.c.search(SearchQuery(limit=0))
    with pytest.raises(InvalidInput):
        w.c.search(SearchQuery(q="!!!"))


def _fields(q: SearchQuery) -> dict[str, object]:
    return {f: getattr(q, f) for f in q.__dataclass_fields__}


def _commit(rows: int) -> object:
    import hashlib

    from sealroom.crypto.keys import b64encode
    from sealroom.statements import CommitmentRef

    return CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(hashlib.sha256(b"r").digest()),
        length=10,
        rows=rows,
        chunk_size=1 << 20,
    )
