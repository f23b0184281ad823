"""Fixtures of the repository tests: a blob store, callers, and Provide and Register run as the endpoint runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.db import Database
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import SubmitObjectsRequest
from registry.tables import RegistryObjectRow
from repository.blobstore import BlobStore, FileBlobStore
from repository.model import BytesContent, DocumentContent, ProvideRequest
from repository.registration import LocalRegistry
from repository.tables import DicomInstance, ManifestReference, StoredDocument
from repository.transactions.iti41_provide import provide_and_register
from tests.conftest import s3_store
from tests.unit.registry.conftest import caller_for


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each repository test runs on both backends: a local folder, and S3 (moto's server)."""
    if request.param == "file":
        return FileBlobStore(tmp_path / "blobs")
    request.getfixturevalue("aws_env")
    return s3_store(request.getfixturevalue("moto_endpoint"))  # type: ignore[no-any-return]


@pytest.fixture
def file_store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def caller(organisation_factory: Callable[..., int]) -> Caller:
    return caller_for(organisation_factory("Org A", "1.2.3.4.5"), "1.2.3.4.5")


@pytest.fixture
def other_caller(organisation_factory: Callable[..., int], caller: Caller) -> Caller:
    return caller_for(organisation_factory("Org B", "1.2.3.4.6"), "1.2.3.4.6")


Provide = Callable[..., None]


@pytest.fixture
def provide(database: Database, store: BlobStore, caller: Caller, settings: Settings) -> Provide:
    """provide(submission, {entry_id: bytes}) as MTOM attachments (or inline=True), in its own session."""
    def run(submission: SubmitObjectsRequest, documents: dict[str, bytes], *, inline: bool = False,
            who: Caller | None = None, extra_parts: dict[str, bytes] | None = None) -> None:
        contents = [DocumentContent(entry_id, inline=data) if inline else DocumentContent(entry_id, f"{n}@test")
                    for n, (entry_id, data) in enumerate(documents.items())]
        attachments = {} if inline else {f"{n}@test": BytesContent(data) for n, data in enumerate(documents.values())}
        attachments.update({cid: BytesContent(data) for cid, data in (extra_parts or {}).items()})
        session = database.new_session()
        try:
            provide_and_register(session, store, LocalRegistry(settings), ProvideRequest(submission, contents),
                                 attachments, who or caller, settings)
        finally:
            session.close()
    return run


def read_blob(store: BlobStore, sha256: str) -> bytes:
    with store.open(sha256) as stream:
        return stream.read()


def blob_files(store: BlobStore) -> list[str]:
    """The address of every blob the store holds (temporary files excluded)."""
    return sorted(address for address, _ in store.listing())


def counts(database: Database) -> dict[str, int]:
    with database.session() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
                for table in (StoredDocument, ManifestReference, DicomInstance, RegistryObjectRow)}
