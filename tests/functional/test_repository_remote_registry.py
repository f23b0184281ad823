"""A hub whose repository registers with another hub's registry (ITI-42 over mutual TLS and OAuth).

Two real servers: the registry hub, and the repository hub configured with
`registry_url` and the client bundle the registry hub issued to it. A
submission to the repository hub is stored there and registered there; when
the registry refuses, the repository keeps nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.client import HubClient
from hub.db import Database
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY, ErrorCode, ResponseStatus
from repository.consumer import Outgoing, provide, retrieve
from repository.model import DocumentRequest
from repository.tables import StoredDocument
from tests.factories.metadata import PDF_BYTES, entry_for, submission, unique_oid
from tests.functional.conftest import new_hub, register, serving
from tests.functional.test_repository_tls import find_documents

pytestmark = pytest.mark.functional

REPOSITORY_HUB_OID = "1.3.6.1.4.1.21367.2026.950"
REPOSITORY_ID = "1.3.6.1.4.1.21367.2026.950.1"


def documents_at(data_dir: Path, database_url: str) -> tuple[int, int]:
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.scalar(select(func.count()).select_from(StoredDocument)) or 0
    finally:
        database.dispose()
    return rows, sum(1 for p in (data_dir / "blobs").rglob("*") if p.is_file() and p.parent.name != "tmp")


def test_provide_registers_with_the_configured_registry(tmp_path: Path) -> None:
    registry_hub = new_hub(tmp_path / "registry")
    bundle = register(registry_hub.settings, "Repository hub", REPOSITORY_HUB_OID, tmp_path / "repository-client")
    repository_hub = new_hub(tmp_path / "repository", registry_url=f"{registry_hub.url}/xds/registry",
                             registry_bundle=bundle, repository_unique_id=REPOSITORY_ID)
    assert registry_hub.log is not None and repository_hub.log is not None
    with serving(registry_hub.data_dir, registry_hub.settings, registry_hub.log), \
            serving(repository_hub.data_dir, repository_hub.settings, repository_hub.log):
        source = HubClient(repository_hub.bundle("Org A"), base_url=repository_hub.url)
        entry = entry_for(PDF_BYTES, repository_unique_id=REPOSITORY_ID)
        answer = provide(source, submission(entries=[entry]), {entry.id: Outgoing.of(PDF_BYTES, "application/pdf")})
        assert answer.body.get("status") == ResponseStatus.SUCCESS.value

        # The registry hub holds the entry, pointing at the repository hub; the registry hub has no bytes.
        consumer = HubClient(registry_hub.bundle("Org B"), base_url=registry_hub.url)
        patient = entry.patient_id or ""
        found = consumer.soap("/xds/registry", ACTION_STORED_QUERY,
                              render_adhoc_query_request(find_documents(patient)))
        slots = {s.get("name"): s.findtext("{*}ValueList/{*}Value")
                 for s in found.body.iter("{*}Slot")}
        assert slots["repositoryUniqueId"] == REPOSITORY_ID
        assert documents_at(registry_hub.data_dir, registry_hub.settings.database_url) == (0, 0)

        got = retrieve(HubClient(repository_hub.bundle("Org B"), base_url=repository_hub.url),
                       [DocumentRequest(REPOSITORY_ID, entry.unique_id or "")])
        try:
            assert got.read(entry.unique_id or "") == PDF_BYTES
        finally:
            got.close()

        # The registry refuses a uniqueId it already holds: the repository keeps nothing of it.
        taken = entry_for(b"registered directly", repository_unique_id=REPOSITORY_ID, unique_id=unique_oid())
        direct = HubClient(registry_hub.bundle("Org A"), base_url=registry_hub.url)
        registered = direct.soap("/xds/registry", ACTION_REGISTER,
                                 render_submit_objects_request(submission(entries=[taken])))
        assert registered.body.get("status") == ResponseStatus.SUCCESS.value
        before = documents_at(repository_hub.data_dir, repository_hub.settings.database_url)
        clash = entry_for(b"registered directly", repository_unique_id=REPOSITORY_ID, unique_id=taken.unique_id)
        answer = provide(source, submission(entries=[clash]),
                         {clash.id: Outgoing.of(b"registered directly", "text/plain")})
        assert answer.body.get("status") == ResponseStatus.FAILURE.value
        codes = [e.get("errorCode") for e in answer.body.iter("{*}RegistryError")]
        assert codes == [ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY.value]
        assert documents_at(repository_hub.data_dir, repository_hub.settings.database_url) == before
