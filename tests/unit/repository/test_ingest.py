"""The checks every instance passes on its way in, whichever door it came through (import, STOW, C-STORE)."""

from __future__ import annotations

import io
import threading

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import event, select

from hub.db import Database
from hub.security.identity import Caller
from repository.blobstore import BlobStore
from repository.dicomfile import InvalidDicom, read_instance_header
from repository.ingest import (
    InconsistentPatient,
    Ingested,
    InstanceConflict,
    MissingPixelData,
    Prepared,
    Sender,
    ingest,
    prepare,
    record_all,
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


def _prepared(store: BlobStore, dataset: Dataset, caller: Caller) -> Prepared:
    data = instance_bytes(dataset)
    return prepare(store, io.BytesIO(data), read_instance_header(io.BytesIO(data)), _sender(caller))


def test_a_batch_is_checked_against_what_is_held_and_against_itself_in_order(database: Database, store: BlobStore,
                                                                             caller: Caller) -> None:
    held, conflicting = make_study(n_series=1, per_series=2, patient_id="P1", issuer=ISSUER)
    with database.session() as session:
        ingest(session, store, io.BytesIO(instance_bytes(held)), _sender(caller))
        ingest(session, store, io.BytesIO(instance_bytes(conflicting)), _sender(caller))
    conflicting.SeriesDescription = "edited elsewhere"
    wrong_patient = make_instance(study_uid=str(held.StudyInstanceUID), patient_id="P2", issuer=ISSUER)
    new_first, new_second = make_study(n_series=1, per_series=2, patient_id="P3", issuer=ISSUER)
    new_again = make_instance(sop_uid=str(new_first.SOPInstanceUID), study_uid=str(new_first.StudyInstanceUID),
                              patient_id="P3", issuer=ISSUER, instance_number=9)     # other bytes, same UID
    new_other_patient = make_instance(study_uid=str(new_first.StudyInstanceUID), patient_id="P4", issuer=ISSUER)
    batch = [held, conflicting, wrong_patient, new_first, new_second, new_again, new_other_patient]
    with database.session() as session:
        outcomes = record_all(session, [_prepared(store, ds, caller) for ds in batch])
    kinds = [type(o).__name__ if isinstance(o, InvalidDicom) else ("duplicate" if o.duplicate else "new")
             for o in outcomes]
    assert kinds == ["duplicate", "InstanceConflict", "InconsistentPatient", "new", "new", "InstanceConflict",
                     "InconsistentPatient"]
    with database.session() as session:
        uids = set(session.scalars(select(DicomInstance.sop_instance_uid)))
        state = session.get(StudyState, str(new_first.StudyInstanceUID))
    assert uids == {str(held.SOPInstanceUID), str(conflicting.SOPInstanceUID), str(new_first.SOPInstanceUID),
                    str(new_second.SOPInstanceUID)}
    assert state is not None and state.patient_id == f"P3^^^&{ISSUER}&ISO"


def test_a_batch_costs_the_same_statements_whatever_its_size(database: Database, store: BlobStore,
                                                             caller: Caller) -> None:
    def statements_for(count: int) -> int:
        batch = [_prepared(store, ds, caller) for ds in make_study(n_series=1, per_series=count, issuer=ISSUER)]
        issued: list[str] = []
        with database.session() as session:
            session.connection()
            listener = lambda *args: issued.append(args[2])   # noqa: E731  (conn, cursor, statement, ...)
            event.listen(database.engine, "before_cursor_execute", listener)
            try:
                assert all(isinstance(o, Ingested) and not o.duplicate for o in record_all(session, batch))
            finally:
                event.remove(database.engine, "before_cursor_execute", listener)
        return len(issued)

    assert statements_for(2) == statements_for(40)


def _record_in_thread(database: Database, batch: list[Prepared]) -> tuple[threading.Thread, list[object]]:
    """`record_all` of `batch` in its own session and transaction, committed, on another thread."""
    answer: list[object] = []

    def run() -> None:
        try:
            with database.session() as session:
                answer.extend(record_all(session, batch))
        except Exception as exc:   # the test reads it: the race must not end in an error
            answer.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


@pytest.mark.parametrize("second_patient", ["P1", "P2"])
def test_two_writers_of_the_same_new_study_take_turns(database: Database, store: BlobStore, caller: Caller,
                                                      second_patient: str) -> None:
    """Two transactions that both bring the first instances of one study: the second waits for the first and
    then sees its instances and study (PostgreSQL has no writers' gate; SQLite's gate makes them take turns)."""
    first = make_instance(patient_id="P1", issuer=ISSUER)
    second = make_instance(study_uid=str(first.StudyInstanceUID), patient_id=second_patient, issuer=ISSUER)
    batch_one, batch_two = [_prepared(store, first, caller)], [_prepared(store, second, caller)]
    with database.session() as session:
        assert not record_all(session, batch_one)[0].duplicate  # type: ignore[union-attr]
        thread, answer = _record_in_thread(database, batch_two)
        thread.join(0.5)
        assert thread.is_alive(), "the second writer went on while the first held the study"
    thread.join(30)
    assert not thread.is_alive()
    (outcome,) = answer
    if second_patient == "P1":
        assert isinstance(outcome, Ingested) and not outcome.duplicate
    else:
        assert isinstance(outcome, InconsistentPatient), outcome
    with database.session() as session:
        held = set(session.scalars(select(DicomInstance.sop_instance_uid)))
        state = session.get(StudyState, str(first.StudyInstanceUID))
    assert held == ({str(first.SOPInstanceUID), str(second.SOPInstanceUID)} if second_patient == "P1"
                    else {str(first.SOPInstanceUID)})
    assert state is not None and state.patient_id == f"P1^^^&{ISSUER}&ISO"
