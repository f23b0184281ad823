"""Blob storage (repository.blobstore): both backends, no mocks.

The S3 backend runs against a real moto server started in a subprocess on a
free loopback port; moto stands in for a real S3-compatible store (AWS S3,
MinIO, Ceph RGW) and answers the same HTTP API boto3 speaks to them.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest

from repository.blobstore import (
    CHUNK_SIZE,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    FileBlobStore,
    StorageUnavailable,
    open_blob_store,
)
from tests.conftest import s3_store as _s3_store

MiB = 1024 * 1024
GOOD = "0123456789abcdef" * 4


class GeneratedStream(io.RawIOBase):
    """``total`` bytes of varied content produced on demand; hashes what it hands out."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.remaining, self.fail_after, self.handed = total, fail_after, 0
        self.sha256, self.sha1 = hashlib.sha256(), hashlib.sha1()
        self.block = hashlib.sha512(str(total).encode()).digest() * (CHUNK_SIZE // 64)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.handed >= self.fail_after:
            raise ConnectionResetError("client went away mid-upload")
        n = min(self.remaining, CHUNK_SIZE, CHUNK_SIZE if size < 0 else size)
        data = self.handed.to_bytes(8, "big") + self.block[8:n] if n >= 8 else self.block[:n]
        self.remaining -= n
        self.handed += n
        self.sha256.update(data)
        self.sha1.update(data)
        return data


def generated_bytes(size: int) -> bytes:
    stream = GeneratedStream(size)
    return b"".join(iter(lambda: stream.read(CHUNK_SIZE), b""))


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return open_blob_store((tmp_path / "blobs").as_uri())
    request.getfixturevalue("aws_env")
    return _s3_store(request.getfixturevalue("moto_endpoint"))  # type: ignore[no-any-return]


def stored_keys(store: BlobStore) -> list[str]:
    """Every name the backend holds, temporary files included."""
    if isinstance(store, FileBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    listing = store.client.list_objects_v2(Bucket=store.bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.mark.parametrize("size", [0, 1, 5, CHUNK_SIZE, 2 * CHUNK_SIZE + 12345])
def test_round_trip_bytes_and_hashes(store: BlobStore, size: int) -> None:
    data = generated_bytes(size)
    blob = store.put(io.BytesIO(data))
    assert (blob.sha256, blob.sha1, blob.size) == (
        hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data))
    assert store.exists(blob.sha256)
    assert store.size(blob.sha256) == size
    with store.open(blob.sha256) as handle:
        assert handle.read() == data
    h = blob.sha256
    assert any(key.endswith(f"{h[:2]}/{h[2:4]}/{h}") for key in stored_keys(store))


def test_streaming_read_in_pieces(store: BlobStore) -> None:
    data = bytes(range(256)) * 9000
    blob = store.put(io.BytesIO(data))
    with store.open(blob.sha256) as handle:
        pieces = list(iter(lambda: handle.read(100_000), b""))
    assert b"".join(pieces) == data and len(pieces) > 1


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(io.BytesIO(b"same bytes"))
    second = store.put(io.BytesIO(b"same bytes"))
    assert first == second
    assert len(stored_keys(store)) == 1


def test_unknown_blob(store: BlobStore) -> None:
    assert not store.exists(GOOD)
    with pytest.raises(BlobNotFound):
        store.open(GOOD)
    with pytest.raises(BlobNotFound):
        store.size(GOOD)


def test_delete_is_idempotent(store: BlobStore) -> None:
    blob = store.put(io.BytesIO(b"to be deleted"))
    store.delete(blob.sha256)
    assert not store.exists(blob.sha256)
    store.delete(blob.sha256)
    assert stored_keys(store) == []


@pytest.mark.parametrize("bad", [
    "../" * 21 + "a", "/etc/passwd", GOOD.upper(), GOOD[:-1], GOOD + "0", GOOD + "\n", "ab/cd/" + GOOD[6:],
    "0" * 63 + "g", "", None, 42,
])
def test_malformed_addresses_are_refused(store: BlobStore, bad: Any) -> None:
    for operation in (store.open, store.exists, store.delete, store.size):
        with pytest.raises(ValueError):
            operation(bad)


def test_max_bytes(store: BlobStore) -> None:
    assert store.put(io.BytesIO(b"x" * 10), max_bytes=10).size == 10
    with pytest.raises(BlobTooLarge):
        store.put(GeneratedStream(3 * CHUNK_SIZE), max_bytes=CHUNK_SIZE + 1)  # type: ignore[arg-type]
    assert len(stored_keys(store)) == 1


def test_failure_mid_stream_leaves_nothing(store: BlobStore) -> None:
    stream = GeneratedStream(10 * CHUNK_SIZE, fail_after=3 * CHUNK_SIZE)
    with pytest.raises(ConnectionResetError):
        store.put(stream)  # type: ignore[arg-type]
    assert stored_keys(store) == []


def test_check_passes_on_a_usable_store(store: BlobStore) -> None:
    store.check()


# -- file backend ------------------------------------------------------------------------------------


def test_file_crash_mid_stream_no_final_name_and_no_temporary(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put(GeneratedStream(8 * CHUNK_SIZE, fail_after=2 * CHUNK_SIZE))  # type: ignore[arg-type]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_file_fifty_mib_with_bounded_memory(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    stream = GeneratedStream(50 * MiB)
    tracemalloc.start()
    try:
        blob = store.put(stream)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert (blob.sha256, blob.sha1, blob.size) == (stream.sha256.hexdigest(), stream.sha1.hexdigest(), 50 * MiB)
    assert store.path(blob.sha256).stat().st_size == 50 * MiB


def test_file_sweep_temporary(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    assert store.sweep_temporary(0) == 0
    store.tmp.mkdir()
    old, fresh = store.tmp / "put-old.part", store.tmp / "put-fresh.part"
    old.write_bytes(b"abandoned")
    fresh.write_bytes(b"in flight")
    an_hour_ago = time.time() - 3600

    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.sweep_temporary(600) == 1
    assert not old.exists() and fresh.exists()


def test_file_check_fails_when_root_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "occupied").write_bytes(b"a file, not a folder")
    with pytest.raises(OSError):
        FileBlobStore(tmp_path / "occupied").check()


# -- S3 backend --------------------------------------------------------------------------------------


def test_s3_layout_and_sha1_metadata(aws_env: None, moto_endpoint: str) -> None:
    store = _s3_store(moto_endpoint, prefix="site-a/blobs")
    blob = store.put(io.BytesIO(b"layout"))
    key = f"site-a/blobs/{blob.sha256[:2]}/{blob.sha256[2:4]}/{blob.sha256}"
    assert stored_keys(store) == [key]
    head = store.client.head_object(Bucket=store.bucket, Key=key)
    assert head["Metadata"]["sha1"] == blob.sha1


def test_s3_multipart_upload_round_trip(aws_env: None, moto_endpoint: str) -> None:
    store = _s3_store(moto_endpoint)
    stream = GeneratedStream(20 * MiB)
    blob = store.put(stream)
    assert blob.sha256 == stream.sha256.hexdigest()
    digest = hashlib.sha256()
    with store.open(blob.sha256) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    assert digest.hexdigest() == blob.sha256 and store.size(blob.sha256) == 20 * MiB


def test_s3_check_fails_for_a_missing_bucket(aws_env: None, moto_endpoint: str) -> None:
    store = open_blob_store(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint_url={moto_endpoint}"
                            "&region=us-east-1")
    with pytest.raises(StorageUnavailable) as raised:
        store.check()
    assert isinstance(raised.value, OSError)


# -- URLs --------------------------------------------------------------------------------------------


def test_open_blob_store_file_url(tmp_path: Path) -> None:
    store = open_blob_store(tmp_path.as_uri())
    assert isinstance(store, FileBlobStore) and store.root == tmp_path


@pytest.mark.parametrize("url", [
    "ftp://host/path", "blobs", "", "file://remote-host/srv/blobs", "s3:///no-bucket",
    "s3://bucket/p?endpoint=http://x", "file:relative/path",
])
def test_open_blob_store_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        open_blob_store(url)


def test_listing_names_every_blob_and_nothing_else(store: BlobStore) -> None:
    first, second = store.put(io.BytesIO(b"one")), store.put(io.BytesIO(b"two"))
    if isinstance(store, FileBlobStore):
        (store.root / "tmp" / "put-abandoned.part").write_bytes(b"half")
    listed = dict(store.listing())
    assert set(listed) == {first.sha256, second.sha256}
    assert all(abs(modified - time.time()) < 600 for modified in listed.values())
