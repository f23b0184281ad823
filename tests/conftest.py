"""Shared fixtures: settings in a temporary data dir, databases, organisations.

PostgreSQL variants run when XDSHUB_TEST_POSTGRES_URL is set (CI sets it);
each test session gets its own database, dropped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from hub.db import Base, Database
from hub.settings import Settings, load_settings

POSTGRES_URL = os.environ.get("XDSHUB_TEST_POSTGRES_URL", "")
SCHEMAS = os.environ.get("XDSHUB_SCHEMAS", "")
SAMPLES = os.environ.get("XDSHUB_SAMPLES", "")


def _import_all_tables() -> None:
    import hub.audit.tables  # noqa: F401
    import hub.console.tables  # noqa: F401
    import hub.federation.tables  # noqa: F401
    import hub.shares.tables  # noqa: F401
    import hub.tables  # noqa: F401
    import registry.tables  # noqa: F401
    import repository.tables  # noqa: F401


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("XDSHUB_TEST_POSTGRES_URL is not set: PostgreSQL variant skipped")
    name = f"xdshub_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite always; PostgreSQL too when XDSHUB_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A database with every table, empty at the start of the test."""
    _import_all_tables()
    db = Database(database_url)
    Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    try:
        yield db
    finally:
        Base.metadata.drop_all(db.engine)
        db.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    _import_all_tables()
    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    Base.metadata.create_all(db.engine)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "hub", environ={})


@pytest.fixture
def organisation_factory(database: Database):  # type: ignore[no-untyped-def]
    """Creates organisations: factory(name, oid) -> Organisation id."""
    from hub.tables import Organisation

    def make(name: str = "Org A", oid: str = "1.2.3.4.5") -> int:
        with database.session() as session:
            org = Organisation(name=name, oid=oid, created_at=datetime.now(UTC))
            session.add(org)
            session.flush()
            return org.id

    return make


def require_schemas() -> Path:
    if not SCHEMAS:
        pytest.skip("XDSHUB_SCHEMAS is not set: schema validation skipped (make test sets it)")
    return Path(SCHEMAS)


def require_samples() -> Path:
    if not SAMPLES:
        pytest.skip("XDSHUB_SAMPLES is not set: sample messages skipped (make test sets it)")
    return Path(SAMPLES)


@pytest.fixture(autouse=True)
def _fresh_registration_cache() -> Iterator[None]:
    """Each test starts without remembered certificate/client registrations."""
    from hub.security.protect import forget_registrations

    forget_registrations()
    yield
    forget_registrations()


# -- S3-compatible storage: a real moto server on loopback stands in for AWS S3, MinIO or Ceph RGW --------

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
    from repository.blobstore import open_blob_store

    bucket = f"xdshub-{uuid.uuid4().hex[:12]}"
    store = open_blob_store(f"s3://{bucket}/{prefix}?endpoint_url={endpoint}&region=us-east-1")
    store.client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return store
