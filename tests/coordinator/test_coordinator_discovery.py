"""Discovery on the in-process index: exact Jaccard ranking, filters, stale-index safety, paging.

Every test runs on SQLite and PostgreSQL (the ``engine`` fixture is parametrised).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select

from sealroom.coordinator.datasets import Datasets
from sealroom.coordinator.service import Coordinator
from sealroom.errors import InvalidInput
from sealroom.statements import Keyword, TimeRange
from sealroom.storage.discovery_index import DiscoveryIndex
from sealroom.storage.engine import read_transaction
from sealroom.storage.schema import datasets
from sealroom.storage.search import SearchQuery, search
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, identity


def _kw(*terms: str) -> tuple[Keyword, ...]:
    return tuple(Keyword(term=t, count=1) for t in terms)


def _all_pages(
    c: Coordinator, cursor: str | None = None, **kw: Any
) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    while True:
        page = c.datasets.search(SearchQuery(**kw, cursor=cursor))
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items, int(page.total)


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [i.dataset.dataset for i in items]


def _jaccard_world(w: World) -> dict[str, str]:
    bob, carol = identity("bob"), identity("carol")
    sets = {
        "target": ("a", "b", "c", "d"),
        "same": ("a", "b", "c", "d"),  # 4/4
        "three": ("a", "b", "c"),  # 3/4
        "superset": ("a", "b", "c", "d", "e"),  # 4/5
        "ab": ("a", "b"),  # 2/4
        "abxy": ("a", "b", "x", "y"),  # 2/6
        "cd": ("c", "d"),  # 2/4, ties with ab, published later
        "none": ("z",),  # 0: not returned
        "AB-upper": ("A", "B"),  # 2/4 after case folding, published last
    }
    rows = {"three": 500, "ab": 700}
    out = {}
    for i, (name, terms) in enumerate(sets.items()):
        out[name] = w.publish(
            carol if name == "abxy" else bob,
            title=f"set {name}",
            keywords=_kw(*terms),
            row_count=rows.get(name, 3),
            commitment=_commit(rows.get(name, 3), i),
        )
    return out


def test_discovery_similar_to_exact_jaccard_and_tie_order(w: World) -> None:
    d = _jaccard_world(w)
    items, total = _all_pages(w.c, similar_to=d["target"], limit=2)
    expected = [
        ("same", Fraction(1)),
        ("superset", Fraction(4, 5)),
        ("three", Fraction(3, 4)),
        ("ab", Fraction(1, 2)),
        ("cd", Fraction(1, 2)),
        ("AB-upper", Fraction(1, 2)),
        ("abxy", Fraction(1, 3)),
    ]
    assert _ids(items) == [d[name] for name, _ in expected]
    assert [i.jaccard for i in items] == [float(j) for _, j in expected]
    assert total == len(expected)
    assert all(i.score == 0.0 for i in items)


def test_discovery_similar_to_with_filters(w: World) -> None:
    d = _jaccard_world(w)
    carol = identity("carol")
    assert _ids(w.c.datasets.search(SearchQuery(similar_to=d["target"], min_rows=100)).items) == [
        d["three"],
        d["ab"],
    ]
    assert _ids(
        w.c.datasets.search(SearchQuery(similar_to=d["target"], keywords=("E",))).items
    ) == [d["superset"]]
    page = w.c.datasets.search(SearchQuery(similar_to=d["target"], owner=carol.party_id))
    assert _ids(page.items) == [d["abxy"]]
    assert page.total == 1
    page = w.c.datasets.search(SearchQuery(similar_to=d["target"], q="set", max_rows=600))
    # "ab" (700 rows) is filtered out; the 1/2 tie between cd and AB-upper goes to text score
    want = ["same", "superset", "three", "cd", "AB-upper", "abxy"]
    assert _ids(page.items) == [d[name] for name in want]
    assert page.items[0].score > 0
    assert page.items[0].jaccard == 1.0
    # a withdrawn target still works as a reference; it is never its own neighbour
    w.c.datasets.withdraw(d["same"], "x", caller=identity("bob").party_id, now=T0)
    assert _ids(w.c.datasets.search(SearchQuery(similar_to=d["same"], limit=1)).items) == [
        d["target"]
    ]


def test_discovery_pages_neither_repeat_nor_skip_when_data_changes(w: World) -> None:
    d = _jaccard_world(w)
    bob = identity("bob")
    first = w.c.datasets.search(SearchQuery(similar_to=d["target"], limit=2))
    assert _ids(first.items) == [d["same"], d["superset"]]
    w.c.datasets.withdraw(d["three"], "x", caller=bob.party_id, now=T0)
    late = w.publish(bob, title="late", keywords=_kw("a", "b", "c", "d"), commitment=_commit(3, 99))
    rest, _ = _all_pages(w.c, similar_to=d["target"], limit=2, cursor=first.next_cursor)
    # ``late`` (1.0) sorts before the cursor: not repeated; ``three`` is gone; nothing skipped
    assert _ids(rest) == [d["ab"], d["cd"], d["AB-upper"], d["abxy"]]

    newest = w.c.datasets.search(SearchQuery(limit=3))
    assert _ids(newest.items) == [late, d["AB-upper"], d["none"]]
    w.c.datasets.withdraw(d["cd"], "x", caller=bob.party_id, now=T0)
    w.publish(bob, title="later", keywords=_kw("q"), commitment=_commit(3, 100))
    rest, total = _all_pages(w.c, limit=3, cursor=newest.next_cursor)
    assert _ids(rest) == [d["abxy"], d["ab"], d["superset"], d["same"], d["target"], w.dataset]
    assert total == 10


def test_discovery_index_follows_other_processes(w: World) -> None:
    other = Coordinator.open(
        engine=w.c.state.engine,
        registry=w.c.state.registry,
        keystore=w.keystore,
        log_origin="sealroom.test/log",
    )
    assert _ids(other.datasets.search(SearchQuery(keywords=("gpu",))).items) == []
    bob = identity("bob")
    gpu = w.publish(bob, title="GPU", keywords=_kw("gpu", "kms"), commitment=_commit(3, 1))
    assert _ids(other.datasets.search(SearchQuery(keywords=("gpu",))).items) == [gpu]
    page = other.datasets.search(SearchQuery(similar_to=w.dataset))
    assert _ids(page.items) == [gpu]
    assert page.items[0].jaccard == pytest.approx(1 / 3)
    w.c.datasets.withdraw(gpu, "x", caller=bob.party_id, now=T0)
    assert other.datasets.search(SearchQuery(keywords=("gpu",))).total == 0
    assert other.datasets.search(SearchQuery(similar_to=w.dataset)).items == ()


def test_discovery_older_transaction_is_not_confused_by_a_newer_index(w: World) -> None:
    bob = identity("bob")
    ix = DiscoveryIndex(delta_limit=0)
    query = SearchQuery(similar_to=w.dataset)
    kept = w.publish(bob, title="kept", keywords=_kw("kms"), commitment=_commit(3, 1))
    with read_transaction(w.c.state.engine) as old:
        before = search(old, query, ix)  # pins this transaction's snapshot and loads the index
        assert [h.dataset for h in before.hits] == [kept]
        new = w.publish(
            bob, title="new", keywords=_kw("kms", "attestation"), commitment=_commit(3, 2)
        )
        w.c.datasets.withdraw(kept, "x", caller=bob.party_id, now=T0)
        with read_transaction(w.c.state.engine) as fresh:
            assert [h.dataset for h in search(fresh, query, ix).hits] == [new]
        again = search(old, query, ix)  # the shared index is now newer than this snapshot
        assert again == before


def test_discovery_text_pages_with_selective_filters(w: World) -> None:
    rng = random.Random(3)
    big = set()
    for i in range(30):
        rows = rng.choice([3, 3, 3, 5000])
        ds = w.publish(
            identity(f"p{i % 4}"),
            title=f"notes {'notes ' * (i % 3)}{i}",
            keywords=_kw("shared", f"t{i}"),
            row_count=rows,
            commitment=_commit(rows, i),
        )
        if rows >= 1000:
            big.add(ds)
    items, total = _all_pages(w.c, q="notes", min_rows=1000, limit=2)
    assert set(_ids(items)) == big
    assert len(items) == len(big) == total
    scores = [i.score for i in items]
    assert scores == sorted(scores, reverse=True)
    every, total = _all_pages(w.c, q="notes", limit=4)
    assert len(_ids(every)) == len(set(_ids(every))) == total == 30
    assert [i.score for i in every] == sorted((i.score for i in every), reverse=True)


def test_discovery_cursor_is_checked(w: World) -> None:
    for i in range(3):
        w.publish(identity("bob"), title=f"x{i}", keywords=_kw("k"), commitment=_commit(3, i))
    page = w.c.datasets.search(SearchQuery(keywords=("k",), limit=1))
    raw = json.loads(base64.urlsafe_b64decode(page.next_cursor + "=="))
    for bad in ([1.5, raw["a"][0]], [True], ["1"], [-1]):
        forged = base64.urlsafe_b64encode(json.dumps({"f": raw["f"], "a": bad}).encode()).decode()
        with pytest.raises(InvalidInput):
            w.c.datasets.search(SearchQuery(keywords=("k",), limit=1, cursor=forged))
    with pytest.raises(InvalidInput):
        w.c.datasets.search(SearchQuery(keywords=("k",), limit=1, cursor="%%%"))


def test_discovery_matches_a_brute_force_reference(w: World) -> None:
    """Random data and queries, with publications and withdrawals between the queries."""
    rng = random.Random(11)
    vocab = [f"v{i}" for i in range(12)]
    owners = [identity(f"o{i}") for i in range(3)]
    # A fresh index that merges its postings at once (exercises the merges too).
    c = replace(w.c, datasets=Datasets(w.c.state, discovery=DiscoveryIndex(delta_limit=0)))
    meta: dict[str, dict[str, Any]] = {
        w.dataset: {"owner": w.owner, "terms": {"attestation", "kms"}, "rows": 3, "end": T0}
    }

    def publish(i: int) -> None:
        owner = rng.choice(owners)
        terms = rng.sample(vocab, rng.randint(1, 5))
        rows = rng.randint(1, 1000)
        start = T0 + rng.randint(0, 100)
        end = start + rng.randint(0, 50)
        ds = w.publish(
            owner,
            title=f"d{i}",
            keywords=_kw(*terms),
            row_count=rows,
            commitment=_commit(rows, i),
            time_range=TimeRange(start=start, end=end),
        )
        meta[ds] = {"owner": owner, "terms": set(terms), "rows": rows, "end": end}

    for i in range(14):
        publish(i)
    for step in range(4):
        with read_transaction(w.c.state.engine) as conn:
            seq_of = {
                str(r.dataset): int(r.seq)
                for r in conn.execute(select(datasets.c.dataset, datasets.c.seq))
            }
        for _ in range(6):
            target = rng.choice(sorted(meta))
            q: dict[str, Any] = {"limit": rng.randint(1, 4)}
            if rng.random() < 0.6:
                q["similar_to"] = target
            if rng.random() < 0.4:
                q["keywords"] = tuple(rng.sample(vocab, rng.randint(1, 2)))
            if rng.random() < 0.4:
                q["min_rows"] = rng.randint(1, 800)
            if rng.random() < 0.3:
                q["owner"] = rng.choice(owners).party_id
            if rng.random() < 0.3:
                q["time_from"] = T0 + rng.randint(0, 120)
            items, total = _all_pages(c, **q)
            expected = _reference(meta, seq_of, q)
            assert [(i.dataset.dataset, i.jaccard) for i in items] == expected
            assert total == len(expected)
        publish(100 + step)
        gone = rng.choice(sorted(meta))
        c.datasets.withdraw(gone, "x", caller=meta[gone]["owner"].party_id, now=T0)
        del meta[gone]


def _reference(
    meta: dict[str, dict[str, Any]], seq_of: dict[str, int], q: dict[str, Any]
) -> list[tuple[str, float | None]]:
    out = []
    target = q.get("similar_to")
    for ds, m in meta.items():
        if "keywords" in q and not set(q["keywords"]) <= m["terms"]:
            continue
        if "min_rows" in q and m["rows"] < q["min_rows"]:
            continue
        if "owner" in q and m["owner"].party_id != q["owner"]:
            continue
        if "time_from" in q and m["end"] < q["time_from"]:
            continue
        jac = None
        if target is not None:
            a, b = m["terms"], meta[target]["terms"]
            jac = len(a & b) / len(a | b)
            if ds == target or jac == 0:
                continue
        out.append((ds, jac))
    if target is not None:
        out.sort(key=lambda x: (-(x[1] or 0.0), seq_of[x[0]]))
    else:
        out.sort(key=lambda x: -seq_of[x[0]])
    return out


def _commit(rows: int, salt: int) -> Any:
    import hashlib

    from sealroom.crypto.keys import b64encode
    from sealroom.statements import CommitmentRef

    return CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(hashlib.sha256(b"r%d" % salt).digest()),
        length=10,
        rows=rows,
        chunk_size=1 << 20,
    )
