"""Fixtures of the registry tests: a caller and a way to register through ITI-42."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hub.db import Database
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import SubmitObjectsRequest
from registry.transactions.iti42_register import register_document_set
from tests.factories.registry_rows import RegistryRows

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

Register = Callable[..., None]


def caller_for(org_id: int, oid: str = "1.2.3.4.5") -> Caller:
    return Caller(organisation_id=org_id, organisation_oid=oid, organisation_name=f"Org {org_id}",
                  client_id=f"client-{org_id}", thumbprint="00" * 32, scopes=frozenset({"xds:register"}))


@pytest.fixture
def caller(organisation_factory: Callable[..., int]) -> Caller:
    return caller_for(organisation_factory("Org A", "1.2.3.4.5"))


@pytest.fixture
def register(database: Database, caller: Caller, settings: Settings) -> Register:
    """Register in a committed transaction of its own, as the SOAP endpoint does."""
    def run(request: SubmitObjectsRequest, who: Caller | None = None) -> None:
        with database.session() as session:
            register_document_set(session, request, who or caller, settings, now=NOW)
    return run




@pytest.fixture
def reg(database: Database, organisation_factory: Callable[..., int], settings: Settings) -> RegistryRows:
    """Realistic registry rows stored directly, and queries run as organisation A or B."""
    return RegistryRows.create(database, organisation_factory, settings)
