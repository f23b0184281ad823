"""Quiet-period publishing inside `xdshub serve`: a quiet study gets its manifest, a restart publishes nothing
twice, a later instance brings a manifest that replaces the first (RPLC)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.db import Database
from registry.tables import RegistryObjectRow
from repository.blobstore import open_blob_store
from repository.ingest import Sender, ingest
from repository.tables import StudyState
from tests.factories.dicom import instance_bytes, make_study
from tests.functional.conftest import RunningHub, new_hub, serving

pytestmark = pytest.mark.functional

QUIET_SECONDS = 1
WAIT_SECONDS = 60
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


def _manifests(database: Database) -> dict[str, str]:
    with database.session() as session:
        rows = session.execute(select(RegistryObjectRow.unique_id, RegistryObjectRow.status).where(
            RegistryObjectRow.mime_type == "application/dicom"))
        return {unique_id: status for unique_id, status in rows}


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_SECONDS} s")
        time.sleep(0.25)


def _ingest(hub: RunningHub, database: Database, datasets: list) -> None:  # type: ignore[type-arg]
    store = open_blob_store(hub.settings.storage_url)
    with database.session() as session:
        from hub.tables import Organisation

        org = session.scalar(select(Organisation).where(Organisation.oid == hub.oids["Org A"]))
        assert org is not None
        for dataset in datasets:
            ingest(session, store, io.BytesIO(instance_bytes(dataset)), Sender(org.id, org.oid))


def test_quiet_studies_are_published_once_across_restarts_then_replaced(tmp_path: Path) -> None:
    hub = new_hub(tmp_path / "var", publish_quiet_seconds=QUIET_SECONDS)
    assert hub.log is not None
    database = Database(hub.settings.database_url)
    first, second = make_study(n_series=1, per_series=2, patient_id="AUTO1", issuer="1.3.6.1.4.1.21367.2026.77")
    study_uid = str(first.StudyInstanceUID)
    try:
        _ingest(hub, database, [first])
        with serving(hub.data_dir, hub.settings, hub.log):
            _wait_for(lambda: len(_manifests(database)) == 1, "the first manifest")
        (one,) = _manifests(database)
        with serving(hub.data_dir, hub.settings, hub.log):
            time.sleep(4 * QUIET_SECONDS + 1)      # several looks of a publisher with nothing due
            assert _manifests(database) == {one: APPROVED}
            _ingest(hub, database, [second])
            _wait_for(lambda: len(_manifests(database)) == 2, "the replacing manifest")
        manifests = _manifests(database)
        assert manifests[one] == DEPRECATED and list(manifests.values()).count(APPROVED) == 1
        with database.session() as session:
            state = session.get(StudyState, study_uid)
            assert state is not None and state.published_instances == 2 and state.failures == 0
    finally:
        database.dispose()
