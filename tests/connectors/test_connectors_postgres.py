"""PostgreSQL sources against the real server: tables, read-only queries, and the writes refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sealroom.connectors import from_locator, open_source, read_table
from sealroom.connectors.postgres import BATCH_ROWS, PostgresSource
from sealroom.crypto.commit import commit_table
from sealroom.errors import BackendUnavailable, InvalidInput

CSV = (
    "id,small,score,ratio,ok,name,tags,seen,local,day\n"
    "1,7,1.5,0.25,true,ada,,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n"
    "2,,2,0.5,false,,,2026-01-02T08:30:00Z,2026-01-02T08:30:00Z,2026-01-02T00:00:00Z\n"
)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(libpq URL, a fresh schema holding table ``people`` and sequence ``seq``)."""
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"src_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(
            f'CREATE TABLE "{schema}".people (id int8, small int2, score float8, ratio float4, '
            "ok bool, name varchar(20), tags text[], seen timestamptz, local timestamp, "
            "day date, amount numeric)"
        )
        conn.execute(
            f'INSERT INTO "{schema}".people VALUES '
            "(1, 7, 1.5, 0.25, true, 'ada', NULL, '2026-01-01 00:00:00+00', "
            "'2026-01-01 00:00:00', '2026-01-01', 1.10), "
            "(2, NULL, 2, 0.5, false, NULL, ARRAY['x', NULL], '2026-01-02 10:30:00.9+02', "
            "'2026-01-02 08:30:00.9', '2026-01-02', 2.20)"
        )
        conn.execute(f'CREATE SEQUENCE "{schema}".seq')
        conn.execute(f'CREATE TABLE "{schema}"."Empty" (a int)')
    try:
        yield url, schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _count(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".people').fetchone()
        assert row is not None
        return int(row[0])


def test_query_reads_the_same_table_as_the_csv(pg: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg
    query = (
        "SELECT id, small, score, ratio, ok, name, NULL::text[] AS tags, seen, local, day "
        f'FROM "{schema}".people ORDER BY id'
    )
    got = open_source(url, query=query).read()
    (tmp_path / "p.csv").write_text(CSV)
    from_csv = read_table(tmp_path / "p.csv")
    assert got.drop_columns(["tags"]).equals(from_csv.drop_columns(["tags"]))
    assert str(got.schema.field("tags").type) == "list<item: string>"
    assert (
        commit_table(got.drop_columns(["tags"])).root
        == commit_table(from_csv.drop_columns(["tags"])).root
    )


def test_table_with_its_schema_and_an_unreadable_column(pg: tuple[str, str]) -> None:
    url, schema = pg
    with pytest.raises(
        InvalidInput, match=r"column 'amount' has PostgreSQL type numeric.*::float8"
    ):
        open_source(url, table=f"{schema}.people").read()
    got = open_source(url, query=f'SELECT amount::float8 AS amount FROM "{schema}".people').read()
    assert sorted(got.column("amount").to_pylist()) == [1.1, 2.2]
    tags = open_source(url, query=f'SELECT tags FROM "{schema}".people ORDER BY id').read()
    assert tags.column("tags").to_pylist() == [None, ["x", None]]


def test_a_table_is_read_by_name_and_batches_join(pg: tuple[str, str]) -> None:
    url, schema = pg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".big AS SELECT g AS n, g::text AS s '
            f"FROM generate_series(1, {2 * BATCH_ROWS + 5}) g"
        )
    t = open_source(url, table=f'{schema}."big"').read()
    assert t.num_rows == 2 * BATCH_ROWS + 5
    assert t.column("n").to_pylist()[-1] == 2 * BATCH_ROWS + 5
    with pytest.raises(InvalidInput, match=r"no rows"):
        open_source(url, table=f'{schema}."Empty"').read()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("INSERT INTO {s}.people (id) VALUES (3)", r"the query writes \(INSERT\)"),
        ("delete FROM {s}.people", r"the query writes \(DELETE\)"),
        (
            "WITH d AS (DELETE FROM {s}.people RETURNING *) SELECT * FROM d",
            r"tries to write \(a data-modifying WITH\)",
        ),
        ("SELECT nextval('{s}.seq')", r"tries to write"),
        ("SELECT 1; DELETE FROM {s}.people", r"not one read-only SELECT"),
        ("SELEC 1", r"not one read-only SELECT \(syntax error at or near \"SELEC\"\)"),
        ("SELECT * FROM {s}.nope", r'relation ".*nope" does not exist'),
    ],
)
def test_queries_that_write_or_break_are_refused(
    pg: tuple[str, str], query: str, message: str
) -> None:
    url, schema = pg
    with pytest.raises(InvalidInput, match=message):
        open_source(url, query=query.format(s=f'"{schema}"')).read()
    assert _count(url, schema) == 2  # nothing was written
    with psycopg.connect(url) as conn:
        row = conn.execute(f'SELECT last_value, is_called FROM "{schema}".seq').fetchone()
        assert row == (1, False)  # the sequence never advanced


def test_missing_table(pg: tuple[str, str]) -> None:
    url, schema = pg
    with pytest.raises(InvalidInput, match=rf"table {schema}.nope: no table '{schema}.nope'"):
        open_source(url, table=f"{schema}.nope").read()


def test_the_password_is_used_and_never_kept(pg: tuple[str, str]) -> None:
    url, schema = pg
    with_password = url.replace("postgres@", "postgres:hunter2@")
    source = open_source(with_password, table=f"{schema}.people")
    assert isinstance(source, PostgresSource)
    assert "hunter2" not in repr(source)
    assert "hunter2" not in source.name
    locator = source.locator()
    assert "hunter2" not in str(locator)
    again = from_locator(locator)
    assert isinstance(again, PostgresSource)
    assert again.table == f"{schema}.people"


def test_unreachable_server() -> None:
    with pytest.raises(
        BackendUnavailable, match=r"postgresql://postgres@127.0.0.1:1/x.*cannot connect"
    ):
        open_source("postgresql://postgres@127.0.0.1:1/x", table="t").read()


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets when absent
    with pytest.raises(InvalidInput, match=r"pip install 'sealroom\[postgres\]'"):
        open_source("postgresql://u@h/db", table="t")
    with pytest.raises(InvalidInput, match=r"pip install 'sealroom\[postgres\]'"):
        from_locator({"kind": "postgresql", "conninfo": "host=h", "table": "t"}).read()
