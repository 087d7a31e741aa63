"""An object in S3-compatible storage as a source (boto3, the optional ``[s3]`` extra).

The object's body is read as a stream, front to back, through the same readers as
a local file (gzip by magic bytes, CSV/JSONL line by line; Parquet, which needs
random access, is spooled to a private temporary file first). The endpoint is
AWS unless ``--endpoint`` or boto3's own ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` name another (MinIO, Ceph, R2, a local test server);
credentials come from the AWS credential chain and are never recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sealroom.connectors.files import read_stream
from sealroom.connectors.types import DEFAULT_LIMITS, ReadLimits
from sealroom.errors import BackendUnavailable, InvalidInput

__all__ = ["EXTRA_MESSAGE", "S3Source"]

EXTRA_MESSAGE = "reading s3:// sources needs the optional extra: pip install 'sealroom[s3]'"


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise InvalidInput(EXTRA_MESSAGE) from None
    return boto3


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Source:
    bucket: str
    key: str
    endpoint: str | None = None
    format: str | None = None
    delimiter: str | None = None

    @classmethod
    def parse(
        cls,
        url: str,
        *,
        format: str | None = None,
        delimiter: str | None = None,
        endpoint: str | None = None,
    ) -> S3Source:
        rest = url.split("://", 1)[1]
        bucket, _, key = rest.partition("/")
        if not bucket or not key or key.endswith("/"):
            raise InvalidInput(f"{url}: an S3 source is s3://BUCKET/KEY, naming one object")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise InvalidInput(f"--endpoint must be an http(s):// URL, got {endpoint!r}")
        return cls(bucket=bucket, key=key, endpoint=endpoint, format=format, delimiter=delimiter)

    @classmethod
    def from_locator(cls, locator: Mapping[str, str]) -> S3Source:
        return cls.parse(
            locator.get("url", ""),
            format=locator.get("format"),
            delimiter=locator.get("delimiter"),
            endpoint=locator.get("endpoint"),
        )

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def locator(self) -> dict[str, str]:
        loc = {"kind": "s3", "url": self.name}
        for key, value in (
            ("endpoint", self.endpoint),
            ("format", self.format),
            ("delimiter", self.delimiter),
        ):
            if value is not None:
                loc[key] = value
        return loc

    def read(self, *, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
        boto3 = _boto3()
        from botocore.config import Config
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
        )

        # A session of its own: boto3's default session caches credentials process-wide.
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10),
        )
        try:
            obj = client.get_object(Bucket=self.bucket, Key=self.key)
        except NoCredentialsError:
            raise InvalidInput(
                f"{self.name}: no S3 credentials found (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or an AWS profile)"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404"):
                raise InvalidInput(f"{self.name}: no such object") from None
            if code == "NoSuchBucket":
                raise InvalidInput(f"{self.name}: no such bucket {self.bucket!r}") from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise InvalidInput(f"{self.name}: access denied ({code})") from None
            raise BackendUnavailable(f"{self.name}: the object store refused ({code})") from None
        except BotoCoreError as exc:
            raise BackendUnavailable(
                f"{self.name}: cannot reach the object store ({exc})"
            ) from None
        size = int(obj.get("ContentLength", 0))
        body = obj["Body"]
        try:
            if size == 0:
                raise InvalidInput(f"{self.name}: the object is empty")
            if size > limits.max_bytes:
                raise InvalidInput(
                    f"{self.name}: object is {size} bytes, over the limit of {limits.max_bytes} bytes"
                )
            return read_stream(
                body, name=self.name, format=self.format, delimiter=self.delimiter, limits=limits
            )
        except BotoCoreError as exc:
            raise BackendUnavailable(f"{self.name}: the download failed ({exc})") from None
        finally:
            body.close()
