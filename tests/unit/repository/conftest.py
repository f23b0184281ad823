"""Fixtures of the repository tests: a blob store, callers, and Provide and Register run as the endpoint runs it."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import func, select

from hub.db import Database
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import SubmitObjectsRequest
from registry.tables import RegistryObjectRow
from repository.blobstore import FileBlobStore, open_blob_store
from repository.model import DocumentContent, ProvideRequest
from repository.registration import LocalRegistry
from repository.tables import DicomInstance, ManifestReference, StoredDocument
from repository.transactions.iti41_provide import provide_and_register
from tests.unit.registry.conftest import caller_for


@dataclass(frozen=True)
class BytesContent:
    """An attachment held in memory (what the MTOM reader hands over, without the temporary file)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials through boto3's usual chain (here: the environment), nothing from the host."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def s3_store(endpoint: str, prefix: str = "blobs") -> Any:
    """An S3BlobStore on a fresh bucket of the moto server (moto stands in for a real S3-compatible store)."""
    bucket = f"xdshub-{uuid.uuid4().hex[:12]}"
    store = open_blob_store(f"s3://{bucket}/{prefix}?endpoint_url={endpoint}&region=us-east-1")
    store.client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return store


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def caller(organisation_factory: Callable[..., int]) -> Caller:
    return caller_for(organisation_factory("Org A", "1.2.3.4.5"), "1.2.3.4.5")


@pytest.fixture
def other_caller(organisation_factory: Callable[..., int], caller: Caller) -> Caller:
    return caller_for(organisation_factory("Org B", "1.2.3.4.6"), "1.2.3.4.6")


Provide = Callable[..., None]


@pytest.fixture
def provide(database: Database, store: FileBlobStore, caller: Caller, settings: Settings) -> Provide:
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


def read_blob(store: FileBlobStore, sha256: str) -> bytes:
    with store.open(sha256) as stream:
        return stream.read()


def blob_files(store: FileBlobStore) -> list[Path]:
    """Every blob under a real name (temporary files excluded)."""
    return sorted(p for p in store.root.rglob("*") if p.is_file() and p.parent.name != "tmp")


def counts(database: Database) -> dict[str, int]:
    with database.session() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
                for table in (StoredDocument, ManifestReference, DicomInstance, RegistryObjectRow)}
