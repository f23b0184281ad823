"""The checks every instance passes on its way in, whichever door it came through (import, STOW, C-STORE)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from hub.db import Database
from hub.security.identity import Caller
from repository.blobstore import BlobStore
from repository.ingest import (
    InconsistentPatient,
    InstanceConflict,
    MissingPixelData,
    Sender,
    ingest,
)
from repository.tables import DicomInstance, StudyState
from tests.factories.dicom import instance_bytes, make_instance, make_study
from tests.unit.repository.conftest import blob_files, read_blob

ISSUER = "1.3.6.1.4.1.21367.2026.77"


def _sender(caller: Caller) -> Sender:
    return Sender(caller.organisation_id, caller.organisation_oid)


def test_the_same_instance_again_is_a_duplicate_that_changes_nothing(database: Database, store: BlobStore,
                                                                     caller: Caller) -> None:
    (dataset,) = make_study(n_series=1, per_series=1, patient_id="P1", issuer=ISSUER)
    with database.session() as session:
        assert not ingest(session, store, io.BytesIO(instance_bytes(dataset)), _sender(caller)).duplicate
    with database.session() as session:
        first = session.get(StudyState, str(dataset.StudyInstanceUID))
        assert first is not None
        received = first.last_instance_at
    with database.session() as session:
        assert ingest(session, store, io.BytesIO(instance_bytes(dataset)), _sender(caller)).duplicate
    with database.session() as session:
        state = session.get(StudyState, str(dataset.StudyInstanceUID))
        assert state is not None and state.last_instance_at == received   # a repeat is not new activity


def test_other_content_under_a_held_sop_instance_uid_is_a_conflict(database: Database, store: BlobStore,
                                                                  caller: Caller) -> None:
    (dataset,) = make_study(n_series=1, per_series=1, patient_id="P1", issuer=ISSUER)
    original = instance_bytes(dataset)
    with database.session() as session:
        ingest(session, store, io.BytesIO(original), _sender(caller))
    dataset.SeriesDescription = "edited elsewhere"
    with pytest.raises(InstanceConflict, match="nothing was overwritten"), database.session() as session:
        ingest(session, store, io.BytesIO(instance_bytes(dataset)), _sender(caller))
    with database.session() as session:
        row = session.get(DicomInstance, str(dataset.SOPInstanceUID))
        assert row is not None and read_blob(store, row.sha256) == original
    assert len(blob_files(store)) == 1                  # the refused copy is not kept


def test_a_study_keeps_one_patient(database: Database, store: BlobStore, caller: Caller) -> None:
    first, second = make_study(n_series=1, per_series=2, patient_id="P1", issuer=ISSUER)
    second.PatientID = "SOMEONE-ELSE"
    with database.session() as session:
        ingest(session, store, io.BytesIO(instance_bytes(first)), _sender(caller))
    with pytest.raises(InconsistentPatient, match="held for patient P1"), database.session() as session:
        ingest(session, store, io.BytesIO(instance_bytes(second)), _sender(caller))
    with database.session() as session:
        assert session.scalars(select(DicomInstance.sop_instance_uid)).all() == [str(first.SOPInstanceUID)]


def test_an_image_without_pixel_data_is_refused(database: Database, store: BlobStore, caller: Caller) -> None:
    dataset = make_instance(study_uid="1.2.3.4.1", series_uid="1.2.3.4.1.2", sop_uid="1.2.3.4.1.2.3",
                            modality="CT", patient_id="P1", issuer=ISSUER, series_number=1, instance_number=1)
    del dataset.PixelData
    with pytest.raises(MissingPixelData, match="CT Image Storage"), database.session() as session:
        ingest(session, store, io.BytesIO(instance_bytes(dataset)), _sender(caller))
    assert blob_files(store) == []


def test_acquisition_attributes_are_recorded(database: Database, store: BlobStore, caller: Caller) -> None:
    dataset = make_instance(study_uid="1.2.3.4.1", series_uid="1.2.3.4.1.2", sop_uid="1.2.3.4.1.2.3",
                            modality="CT", patient_id="P1", issuer=ISSUER, series_number=1, instance_number=1)
    dataset.InstitutionName, dataset.InstitutionalDepartmentName = "St. Mary", "Radiology"
    dataset.StationName = "CT01"
    with database.session() as session:
        row = ingest(session, store, io.BytesIO(instance_bytes(dataset)), _sender(caller)).instance
        assert (row.institution_name, row.department, row.station_name, row.manufacturer) == \
            ("St. Mary", "Radiology", "CT01", "xdshub tests")
        assert (row.rows, row.columns, row.bits_allocated) == (dataset.Rows, dataset.Columns, 16)
