"""Reclaiming blobs nothing references: at once after a refused submission, and by `collect_garbage`."""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime

from hub.db import Database
from repository.blobstore import FileBlobStore
from repository.reclaim import collect_garbage, reclaim_unreferenced
from repository.tables import StoredDocument
from tests.unit.repository.conftest import blob_files


def _document(database: Database, sha256: str, unique_id: str) -> None:
    with database.session() as session:
        session.add(StoredDocument(unique_id=unique_id, sha256=sha256, sha1="0" * 40, size=3,
                                   mime_type="text/plain", stored_at=datetime.now(UTC)))


def _age(store: FileBlobStore, sha256: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(store.path(sha256), (then, then))


def test_reclaim_deletes_only_unreferenced_blobs(database: Database, file_store: FileBlobStore) -> None:
    store = file_store
    kept, dropped = store.put(io.BytesIO(b"kept")), store.put(io.BytesIO(b"dropped"))
    _document(database, kept.sha256, "1.2.3.1")
    with database.session() as session:
        deleted = reclaim_unreferenced(session, store, [kept.sha256, dropped.sha256])
    assert deleted == [dropped.sha256]
    assert store.exists(kept.sha256) and not store.exists(dropped.sha256)


def test_garbage_collection_spares_referenced_and_young_blobs(database: Database, file_store: FileBlobStore) -> None:
    store = file_store   # modification times are set on the files; S3 listing is covered in test_blobstore
    referenced = store.put(io.BytesIO(b"referenced"))
    orphan = store.put(io.BytesIO(b"orphan of a crash"))
    in_flight = store.put(io.BytesIO(b"a submission still running"))
    _document(database, referenced.sha256, "1.2.3.2")
    for blob in (referenced, orphan):
        _age(store, blob.sha256, 7200)
    abandoned = store.root / "tmp" / "put-abandoned.part"
    abandoned.write_bytes(b"half written")
    os.utime(abandoned, (time.time() - 7200, time.time() - 7200))

    session = database.new_session()
    try:
        result = collect_garbage(session, store, grace_seconds=3600)
    finally:
        session.close()
    assert result.deleted == [orphan.sha256]
    assert (result.examined, result.temporary_removed) == (2, 1)
    assert set(blob_files(store)) == {referenced.sha256, in_flight.sha256}
    assert not abandoned.exists()
