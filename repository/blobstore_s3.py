"""The S3-compatible blob backend (``s3://bucket/prefix``); see ``repository.blobstore``.

``put`` must know the SHA-256 before it can name the object, so it first
streams the input through a ``SpooledTemporaryFile`` (in memory up to
``SPOOL_IN_MEMORY`` bytes, on local disk beyond), hashing on the way, then
uploads it with boto3's managed transfer (multipart above ``part_size``).
Memory stays bounded by the spool threshold plus ``part_size`` x ``concurrency``.
Reads stream from the ``get_object`` body. Objects live at
``prefix/ab/cd/<hex>`` and carry the SHA-1 as user metadata (``x-amz-meta-sha1``).
"""

from __future__ import annotations

import errno
import io
import re
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from repository.blobstore import (
    CHUNK_SIZE,
    BlobNotFound,
    StorageUnavailable,
    StoredBlob,
    blob_key,
    copy_hashing,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SPOOL_IN_MEMORY = 4 * CHUNK_SIZE
DEFAULT_PART_SIZE = 8 * CHUNK_SIZE
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def make_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """An S3 client; credentials come from boto3's usual chain (env, config files, roles).

    With an explicit endpoint (MinIO, Ceph, moto...) path-style addressing is used,
    which S3-compatible stores support more widely than virtual-host style.
    """
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _is_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND


_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


class _BodyReader(io.RawIOBase):
    """A raw reader over a botocore StreamingBody, so callers get a real BinaryIO."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3BlobStore:
    """Blobs as objects ``prefix/ab/cd/<hex>`` in one bucket."""

    def __init__(self, bucket: str, prefix: str, client: Any, *, part_size: int = DEFAULT_PART_SIZE,
                 concurrency: int = 4) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                                       max_concurrency=concurrency, use_threads=concurrency > 1)

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def key(self, sha256: str) -> str:
        relative = blob_key(sha256)
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def put(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredBlob:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="xdshub-put-") as spool:
            blob = copy_hashing(stream, spool, max_bytes)  # type: ignore[arg-type]
            if self.exists(blob.sha256):
                return blob  # same bytes already stored: idempotent
            spool.seek(0)
            self.client.upload_fileobj(spool, self.bucket, self.key(blob.sha256),
                                       ExtraArgs={"Metadata": {"sha1": blob.sha1}}, Config=self.transfer)
        return blob

    def open(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(sha256) from None
            raise
        return io.BufferedReader(_BodyReader(response["Body"]), buffer_size=CHUNK_SIZE)

    def _head(self, sha256: str) -> dict[str, Any] | None:
        key = self.key(sha256)
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return head

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFound(sha256)
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> None:
        """Remove a blob; deleting an absent blob is not an error (idempotent, as in S3)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def listing(self) -> Iterator[tuple[str, float]]:
        """Every blob address with its last-modified time (epoch seconds)."""
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if _SHA256_NAME.fullmatch(name) and item["Key"] == self.key(name):
                    yield name, item["LastModified"].timestamp()

    def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers to these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise StorageUnavailable(errno.EIO, f"bucket {self.bucket!r}: {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(errno.EIO, f"bucket {self.bucket!r}: {type(exc).__name__}") from exc
