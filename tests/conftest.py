"""Shared fixtures: settings in a temporary data dir, databases, organisations.

PostgreSQL variants run when XDSHUB_TEST_POSTGRES_URL is set (CI sets it);
each test session gets its own database, dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hub.db import Base, Database
from hub.settings import Settings, load_settings

POSTGRES_URL = os.environ.get("XDSHUB_TEST_POSTGRES_URL", "")
SCHEMAS = os.environ.get("XDSHUB_SCHEMAS", "")
SAMPLES = os.environ.get("XDSHUB_SAMPLES", "")


def _import_all_tables() -> None:
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
