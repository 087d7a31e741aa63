"""S3 sources against a real local S3 server (moto in server mode, over HTTP on loopback)."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sealroom.connectors import from_locator, open_source, read_table
from sealroom.connectors.s3 import EXTRA_MESSAGE, S3Source
from sealroom.errors import InvalidInput
from tests.connectors.s3_server import S3_ENV, moto_s3

CSV = "ts,n,text\n2026-01-01T00:00:00Z,1,alpha note\n2026-01-02T00:00:00Z,2,beta note\n"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """(endpoint, a boto3 client) with bucket ``owner-data`` holding a few objects."""
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="owner-data")
        client.put_object(Bucket="owner-data", Key="notes.csv", Body=CSV.encode())
        client.put_object(
            Bucket="owner-data", Key="2026/notes.csv.gz", Body=gzip.compress(CSV.encode())
        )
        client.put_object(Bucket="owner-data", Key="semi.csv", Body=b"a;b\n1;2\n")
        client.put_object(Bucket="owner-data", Key="bad.jsonl.gz", Body=b"\x1f\x8bnot really")
        buf = io.BytesIO()
        pq.write_table(pa.table({"n": pa.array([1, 2], pa.int32())}), buf)
        client.put_object(Bucket="owner-data", Key="n.parquet", Body=buf.getvalue())
        yield endpoint, client


def test_objects_read_like_files(s3: tuple[str, object], tmp_path: Path) -> None:
    endpoint, _ = s3
    (tmp_path / "notes.csv").write_text(CSV)
    local = read_table(tmp_path / "notes.csv")
    plain = open_source("s3://owner-data/notes.csv", endpoint=endpoint).read()
    zipped = open_source("s3://owner-data/2026/notes.csv.gz", endpoint=endpoint).read()
    assert plain.equals(local)
    assert zipped.equals(local)
    parquet = open_source("s3://owner-data/n.parquet", endpoint=endpoint).read()
    assert parquet.schema.field("n").type == pa.int64()
    semi = open_source("s3://owner-data/semi.csv", endpoint=endpoint, delimiter=";").read()
    assert semi.column_names == ["a", "b"]


def test_endpoint_from_boto3_env(s3: tuple[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, _ = s3
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    source = open_source("s3://owner-data/notes.csv")
    assert source.read().num_rows == 2
    assert source.locator() == {"kind": "s3", "url": "s3://owner-data/notes.csv"}


def test_locator_round_trips_without_credentials(s3: tuple[str, object]) -> None:
    endpoint, _ = s3
    source = open_source("s3://owner-data/semi.csv", endpoint=endpoint, delimiter=";")
    locator = source.locator()
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in str(locator)
    again = from_locator(locator)
    assert again.read().equals(source.read())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://owner-data/missing.csv", r"s3://owner-data/missing.csv: no such object"),
        ("s3://no-such-bucket/x.csv", r"s3://no-such-bucket/x.csv: no such bucket"),
        ("s3://owner-data/semi.csv", r"likely ';'-separated"),
        ("s3://owner-data/bad.jsonl.gz", r"s3://owner-data/bad.jsonl.gz: unreadable gzip data"),
    ],
)
def test_bad_objects(s3: tuple[str, object], url: str, message: str) -> None:
    endpoint, _ = s3
    with pytest.raises(InvalidInput, match=message):
        open_source(url, endpoint=endpoint).read()


def test_wrong_credentials_are_refused(
    s3: tuple[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = s3
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(InvalidInput, match=r"no S3 credentials found"):
        open_source("s3://owner-data/notes.csv", endpoint=endpoint).read()


def test_object_over_the_limit_is_refused_before_reading(s3: tuple[str, object]) -> None:
    from sealroom.connectors import ReadLimits

    endpoint, _ = s3
    with pytest.raises(InvalidInput, match=r"over the limit of 10 bytes"):
        open_source("s3://owner-data/notes.csv", endpoint=endpoint).read(
            limits=ReadLimits(max_bytes=10)
        )


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` meets when absent
    source = S3Source.parse("s3://b/k.csv")
    with pytest.raises(InvalidInput) as caught:
        source.read()
    assert caught.value.detail == EXTRA_MESSAGE
    assert "sealroom[s3]" in EXTRA_MESSAGE
