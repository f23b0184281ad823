"""Quiet-period publishing: due studies published once, later instances replace the manifest (RPLC), failures
backed off, nothing published twice after a restart."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
from sqlalchemy import select, update

from hub.db import Database
from hub.errors import XdsError
from hub.security.identity import Caller
from hub.settings import Settings
from registry.tables import RegistryObjectRow
from repository import autopublish
from repository.autopublish import due_studies, publish_due, retry_after
from repository.blobstore import BlobStore
from repository.ingest import Sender, ingest
from repository.publishing import publish_study
from repository.registration import LocalRegistry
from repository.tables import StudyState
from tests.factories.dicom import instance_bytes, make_instance, make_study

ISSUER = "1.3.6.1.4.1.21367.2026.77"
QUIET = timedelta(seconds=300)
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    return replace(settings, publish_quiet_seconds=int(QUIET.total_seconds()))


def _ingest(database: Database, store: BlobStore, caller: Caller, datasets: list[pydicom.Dataset]) -> None:
    with database.session() as session:
        for dataset in datasets:
            ingest(session, store, io.BytesIO(instance_bytes(dataset)),
                   Sender(caller.organisation_id, caller.organisation_oid))


def _age(database: Database, by: timedelta) -> None:
    """Move every study's activity into the past, as if time went by."""
    with database.session() as session:
        for state in session.scalars(select(StudyState)):
            state.last_instance_at = state.last_instance_at - by
            if state.published_through is not None:
                state.published_through = state.published_through - by


def _manifests(database: Database) -> dict[str, str]:
    with database.session() as session:
        rows = session.execute(select(RegistryObjectRow.unique_id, RegistryObjectRow.status).where(
            RegistryObjectRow.mime_type == "application/dicom"))
        return {unique_id: status for unique_id, status in rows}


def test_a_study_is_published_once_it_is_quiet_and_only_once(database: Database, store: BlobStore, caller: Caller,
                                                              quiet_settings: Settings) -> None:
    study = make_study(n_series=1, per_series=2, patient_id="P1", issuer=ISSUER)
    _ingest(database, store, caller, study)
    registry = LocalRegistry(quiet_settings)
    assert publish_due(database, store, registry, quiet_settings) == []         # still arriving
    _age(database, QUIET)
    (attempt,) = publish_due(database, store, registry, quiet_settings)
    assert attempt.published is not None and attempt.published.instance_count == 2
    assert publish_due(database, store, registry, quiet_settings) == []         # a restart finds nothing due
    assert _manifests(database) == {attempt.published.unique_id: APPROVED}


def test_a_later_instance_brings_a_manifest_that_replaces_the_first(database: Database, store: BlobStore,
                                                                     caller: Caller, quiet_settings: Settings) -> None:
    first, second = make_study(n_series=1, per_series=2, patient_id="P1", issuer=ISSUER)
    registry = LocalRegistry(quiet_settings)
    _ingest(database, store, caller, [first])
    _age(database, QUIET)
    (one,) = publish_due(database, store, registry, quiet_settings)
    _ingest(database, store, caller, [second])
    with database.session() as session:
        assert due_studies(session, QUIET) == []                               # quiet again first
    _age(database, QUIET)
    (two,) = publish_due(database, store, registry, quiet_settings)
    assert one.published is not None and two.published is not None
    assert two.published.replaced == one.published.entry_uuid and two.published.instance_count == 2
    assert _manifests(database) == {one.published.unique_id: DEPRECATED, two.published.unique_id: APPROVED}


def test_publishing_by_hand_counts_too(database: Database, store: BlobStore, caller: Caller,
                                       quiet_settings: Settings) -> None:
    study = make_study(n_series=1, per_series=1, patient_id="P1", issuer=ISSUER)
    _ingest(database, store, caller, study)
    session = database.new_session()
    try:
        publish_study(session, store, LocalRegistry(quiet_settings), quiet_settings, str(study[0].StudyInstanceUID))
    finally:
        session.close()
    _age(database, QUIET)
    assert publish_due(database, store, LocalRegistry(quiet_settings), quiet_settings) == []


class _RefusingRegistry(LocalRegistry):
    """This hub's registry, refusing every submission the way a registry under maintenance answers."""

    def register(self, *_args: object) -> None:
        raise XdsError("the registry is down for maintenance")


def test_a_failure_is_recorded_and_tried_again_after_a_back_off(database: Database, store: BlobStore,
                                                                caller: Caller, quiet_settings: Settings) -> None:
    study = make_study(n_series=1, per_series=1, patient_id="P1", issuer=ISSUER)
    _ingest(database, store, caller, study)
    _age(database, QUIET)
    (failed,) = publish_due(database, store, _RefusingRegistry(quiet_settings), quiet_settings)
    assert failed.published is None and "down for maintenance" in failed.error
    with database.session() as session:
        state = session.get(StudyState, str(study[0].StudyInstanceUID))
        assert state is not None and state.failures == 1 and "maintenance" in state.last_error
        assert due_studies(session, QUIET) == []                               # backing off
        later = datetime.now(UTC) + retry_after(1, QUIET) + timedelta(seconds=1)
        assert due_studies(session, QUIET, later) == [str(study[0].StudyInstanceUID)]
    with database.session() as session:
        session.execute(update(StudyState).values(attempted_at=datetime.now(UTC) - timedelta(hours=2)))
    (ok,) = publish_due(database, store, LocalRegistry(quiet_settings), quiet_settings)
    assert ok.published is not None
    with database.session() as session:
        state = session.get(StudyState, str(study[0].StudyInstanceUID))
        assert state is not None and state.failures == 0 and state.last_error == ""


def test_back_off_doubles_up_to_an_hour() -> None:
    assert [retry_after(n, QUIET) for n in (0, 1, 2, 3)] == [timedelta(0), QUIET, 2 * QUIET, 4 * QUIET]
    assert retry_after(30, QUIET) == autopublish.MAX_BACKOFF


def test_a_manifest_arriving_is_not_new_study_content(database: Database, store: BlobStore, caller: Caller,
                                                      quiet_settings: Settings) -> None:
    kos = make_instance(study_uid="1.2.3.9", series_uid="1.2.3.9.1", sop_uid="1.2.3.9.1.1", patient_id="P1",
                        issuer=ISSUER, series_number=1, instance_number=1)
    kos.SOPClassUID = kos.file_meta.MediaStorageSOPClassUID = KOS
    kos.Modality = "KO"
    del kos.PixelData
    _ingest(database, store, caller, [kos])
    with database.session() as session:
        assert session.get(StudyState, "1.2.3.9") is None
