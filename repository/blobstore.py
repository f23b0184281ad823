"""Content-addressed blob storage for the repository (DESIGN "Storage", CONVENTIONS 7).

A blob is addressed by the SHA-256 of its bytes; its key is ``ab/cd/<64 hex>``
(the first two byte pairs fan the blobs out over directories or S3 prefixes).
``put`` streams the input in 1 MiB chunks and computes on the way the SHA-256
(the address), the SHA-1 (the XDS ``hash`` slot, hex) and the size, so memory
stays bounded whatever the document size. Storing the same bytes twice is
idempotent: the second ``put`` answers the same ``StoredBlob`` and writes nothing.

Backends, chosen by the storage URL's scheme (``open_blob_store``):

- ``file:///abs/path`` -> ``FileBlobStore``: temp file in ``root/tmp``, fsync,
  ``os.replace`` to the final name, fsync of the directory; a crash never leaves
  a half-written blob under a real name.
- ``s3://bucket/prefix?endpoint_url=...&region=...`` -> ``S3BlobStore``
  (``repository.blobstore_s3``), credentials from boto3's usual chain.

Errors: ``BlobStoreError`` is the base; ``BlobNotFound`` (unknown address, also a
``KeyError``), ``BlobTooLarge`` (``max_bytes`` exceeded, nothing kept) and
``StorageUnavailable`` (``check`` failed; also an ``OSError``). A
malformed address raises ``ValueError`` before any filesystem or S3 access.
Mapping to IHE error codes happens at the transaction boundary, not here.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlparse
from urllib.request import url2pathname

CHUNK_SIZE = 1024 * 1024
TMP_DIR = "tmp"
_SHA256 = re.compile(r"[0-9a-f]{64}")

__all__ = [
    "CHUNK_SIZE",
    "BatchedPuts",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobTooLarge",
    "FileBlobStore",
    "StorageUnavailable",
    "StoredBlob",
    "blob_key",
    "copy_hashing",
    "deferred_sync",
    "open_blob_store",
    "open_seekable",
    "validate_sha256",
]


class BlobStoreError(Exception):
    """Base of the blob storage errors."""


class BlobNotFound(BlobStoreError, KeyError):
    """No blob has this address."""

    def __init__(self, sha256: str) -> None:
        super().__init__(sha256)
        self.sha256 = sha256

    def __str__(self) -> str:
        return f"no blob with sha256 {self.sha256}"


class BlobTooLarge(BlobStoreError):
    """The stream is longer than the ``max_bytes`` allowed; nothing was stored."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"blob exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class StorageUnavailable(BlobStoreError, OSError):
    """``check`` failed: the backend cannot store blobs now (an OSError for readiness probes)."""


@dataclass(frozen=True)
class StoredBlob:
    sha256: str  # hex, the address
    sha1: str  # hex, the XDS DocumentEntry.hash
    size: int  # bytes, the XDS DocumentEntry.size


@runtime_checkable
class BlobStore(Protocol):
    def put(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredBlob: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def size(self, sha256: str) -> int: ...

    def check(self) -> None: ...

    def listing(self) -> Iterator[tuple[str, float]]: ...


def validate_sha256(sha256: object) -> str:
    """Answer ``sha256`` if it is exactly 64 lowercase hex digits, else raise ValueError."""
    if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
        raise ValueError(f"not a blob address (64 lowercase hex digits): {sha256!r:.80}")
    return sha256


SPOOL_IN_MEMORY = 8 * 1024 * 1024


def open_seekable(store: BlobStore, sha256: str) -> BinaryIO:
    """A blob opened for readers that seek (pydicom): the file itself, or a spooled copy of a stream.

    Local blobs are files and seek as they are; S3 bodies are streams, copied
    here into memory up to 8 MiB and to an anonymous temporary file beyond.
    """
    stream = store.open(sha256)
    if stream.seekable():
        return stream
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="xdshub-blob-")
    try:
        with stream:
            while chunk := stream.read(CHUNK_SIZE):
                spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]


def blob_key(sha256: str) -> str:
    """The relative key of a blob: ``ab/cd/<hex>``."""
    validate_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def copy_hashing(stream: BinaryIO, sink: BinaryIO, max_bytes: int | None = None) -> StoredBlob:
    """Copy ``stream`` to ``sink`` in CHUNK_SIZE pieces, hashing and counting on the way."""
    sha256, sha1, size = hashlib.sha256(), hashlib.sha1(), 0
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            break
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise BlobTooLarge(max_bytes)
        sha256.update(chunk)
        sha1.update(chunk)
        sink.write(chunk)
    return StoredBlob(sha256=sha256.hexdigest(), sha1=sha1.hexdigest(), size=size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    """Blobs as files under ``root/ab/cd/<hex>``; temporary files in ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / TMP_DIR

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def temporary_file(self) -> tuple[int, Path]:
        """A new temporary file for a put, open for writing; `tmp` is made when missing (rather than
        asked for on every put: with concurrent puts, that costs more than the write)."""
        try:
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-", suffix=".part")
        except FileNotFoundError:
            self.tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-", suffix=".part")
        return fd, Path(name)

    def put(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredBlob:
        fd, temporary = self.temporary_file()
        try:
            with os.fdopen(fd, "wb") as out:
                blob = copy_hashing(stream, out, max_bytes)
                out.flush()
                os.fsync(out.fileno())
            final = self.path(blob.sha256)
            if final.is_file():
                temporary.unlink()  # same bytes already stored: idempotent
                return blob
            self._make_parents(final)
            os.replace(temporary, final)
            _fsync_dir(final.parent)
            return blob
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _make_parents(self, final: Path) -> None:
        """Create ``ab/cd`` durably: each new directory is fsynced into its parent."""
        for directory in (final.parent.parent, final.parent):
            if not directory.is_dir():
                directory.mkdir(exist_ok=True)
                _fsync_dir(directory.parent)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        """Remove a blob; deleting an absent blob is not an error (idempotent)."""
        path = self.path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    def listing(self) -> Iterator[tuple[str, float]]:
        """Every blob address with its modification time (epoch seconds); temporary files excluded."""
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for path in sorted(first.glob("[0-9a-f][0-9a-f]/*")):
                if _SHA256.fullmatch(path.name) and path.name.startswith(first.name + path.parent.name):
                    try:
                        yield path.name, path.stat().st_mtime
                    except FileNotFoundError:
                        continue  # deleted meanwhile

    def check(self) -> None:
        """Raise OSError unless a file can be created, synced and removed under root."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.tmp, prefix="check-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())

    def sweep_temporary(self, older_than_seconds: float) -> int:
        """Remove temporary files abandoned (not modified) for longer than given; answer the count."""
        if not self.tmp.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.tmp.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # removed concurrently
        return removed


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNC_THREADS = 8
_sync_pool: ThreadPoolExecutor | None = None
_sync_pool_lock = threading.Lock()


def _fsync_all(paths: Iterable[Path]) -> None:
    """fsync every path, several at once: concurrent fsyncs share the file system's journal commits."""
    global _sync_pool
    todo = list(paths)
    if len(todo) <= 1:
        for path in todo:
            _fsync_path(path)
        return
    with _sync_pool_lock:       # made on first use, in the process that uses it (after gunicorn forks)
        if _sync_pool is None:
            _sync_pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="xdshub-fsync")
        pool = _sync_pool
    for future in [pool.submit(_fsync_path, path) for path in todo]:
        future.result()


class BatchedPuts:
    """A `FileBlobStore` whose puts become durable together, in `sync()`, instead of one by one (group commit).

    `put` writes the temporary file and hashes it, nothing more. `sync` then
    fsyncs all the temporary files (concurrently), renames each to its final
    name, and fsyncs each directory touched once: a crash still never leaves a
    half-written blob under a real name, and the caller must call `sync`
    before it commits any row that references these blobs (STOW-RS does, per
    request). Until then a pending blob cannot be opened; `delete` drops it.
    """

    def __init__(self, store: FileBlobStore) -> None:
        self.store = store
        self._pending: dict[str, Path] = {}      # sha256 -> its temporary file
        self.written: list[str] = []             # every blob this batch wrote (not those found stored)
        self._held: set[Path] = set()            # directories of blobs found already stored

    def put(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredBlob:
        store = self.store
        fd, temporary = store.temporary_file()
        try:
            with os.fdopen(fd, "wb") as out:
                blob = copy_hashing(stream, out, max_bytes)
            final = store.path(blob.sha256)
            if blob.sha256 in self._pending or final.is_file():
                temporary.unlink()          # same bytes stored or pending: idempotent
                if blob.sha256 not in self._pending:
                    self._held.add(final.parent)   # its directory entry may not be synced yet by its writer
                return blob
            self._pending[blob.sha256] = temporary
            self.written.append(blob.sha256)
            return blob
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def sync(self) -> None:
        """Make every pending blob durable under its final name (then rows may reference them)."""
        pending, self._pending = self._pending, {}
        try:
            _fsync_all(pending.values())
            directories: set[Path] = set(self._held)
            for sha256, temporary in pending.items():
                final = self.store.path(sha256)
                for directory in (final.parent.parent, final.parent):
                    if not directory.is_dir():
                        directory.mkdir(exist_ok=True)
                        directories.add(directory.parent)
                os.replace(temporary, final)
                directories.add(final.parent)
            _fsync_all(sorted(directories))
            self._held.clear()
        except BaseException:
            for temporary in pending.values():
                temporary.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        """Drop every pending blob (the request failed)."""
        for temporary in self._pending.values():
            temporary.unlink(missing_ok=True)
        self._pending.clear()
        self._held.clear()

    def open(self, sha256: str) -> BinaryIO:
        return self.store.open(sha256)

    def exists(self, sha256: str) -> bool:
        return sha256 in self._pending or self.store.exists(sha256)

    def delete(self, sha256: str) -> None:
        temporary = self._pending.pop(sha256, None)
        if temporary is not None:
            temporary.unlink(missing_ok=True)
            return
        self.store.delete(sha256)

    def size(self, sha256: str) -> int:
        temporary = self._pending.get(sha256)
        return temporary.stat().st_size if temporary is not None else self.store.size(sha256)

    def check(self) -> None:
        self.store.check()

    def listing(self) -> Iterator[tuple[str, float]]:
        return self.store.listing()


def deferred_sync(store: BlobStore) -> BatchedPuts | None:
    """A group-commit view of a local store (`BatchedPuts`), None for other backends (they put durably)."""
    return BatchedPuts(store) if isinstance(store, FileBlobStore) else None


def open_blob_store(storage_url: str) -> BlobStore:
    """The backend a storage URL names: ``file:///abs/path`` or ``s3://bucket/prefix?...``."""
    parsed = urlparse(storage_url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file storage URL must name a local absolute path: {storage_url!r}")
        path = Path(url2pathname(parsed.path))
        if not path.is_absolute() or parsed.query:
            raise ValueError(f"file storage URL must be file:///absolute/path: {storage_url!r}")
        return FileBlobStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 storage URL must name a bucket (s3://bucket/prefix): {storage_url!r}")
        params = {key: values[-1] for key, values in parse_qs(parsed.query, strict_parsing=False).items()}
        unknown = set(params) - {"endpoint_url", "region"}
        if unknown:
            raise ValueError(f"unknown S3 storage URL parameter(s) {sorted(unknown)}; "
                             "accepted: endpoint_url, region")
        from repository.blobstore_s3 import S3BlobStore, make_client

        client = make_client(endpoint_url=params.get("endpoint_url"), region=params.get("region"))
        return S3BlobStore(bucket=parsed.netloc, prefix=unquote(parsed.path).strip("/"), client=client)
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} in {storage_url!r}; "
                     "expected file:///absolute/path or s3://bucket/prefix")
