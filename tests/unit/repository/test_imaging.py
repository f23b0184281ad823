"""The imaging document source: ingest, the study manifest (RAD-68 publishing) and RAD-69 retrieve."""

from __future__ import annotations

import io

import pydicom
import pytest
from sqlalchemy import select

from hub.db import Database
from hub.errors import XdsError, XdsErrorList
from hub.security.identity import Caller
from hub.settings import Settings
from registry.tables import RegistryCodeRow, RegistryObjectRow
from registry.vocabulary import DocumentEntryScheme, ErrorCode, ResponseStatus
from repository.blobstore import BlobStore
from repository.dicomfile import InvalidDicom
from repository.ingest import Sender, ingest_instance
from repository.manifest import read_manifest
from repository.model import DocumentRequest, ImagingRequest, SeriesRequest, StudyRequest
from repository.publishing import UnknownStudy, publish_study, study_manifest
from repository.registration import LocalRegistry
from repository.tables import DicomInstance, ManifestReference, StoredDocument
from repository.transactions.rad69_retrieve_imaging import retrieve_imaging
from tests.factories.dicom import instance_bytes, make_study
from tests.factories.metadata import RESTRICTED, kos_entry, submission
from tests.unit.repository.conftest import Provide, blob_files, counts, read_blob

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
ISSUER = "1.3.6.1.4.1.21367.2026.77"


@pytest.fixture
def datasets() -> list[pydicom.Dataset]:
    return make_study(n_series=2, per_series=2, patient_id="IMG1", issuer=ISSUER)


@pytest.fixture
def ingested(database: Database, store: BlobStore, caller: Caller,
             datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    with database.session() as session:
        for dataset in datasets:
            ingest_instance(session, store, io.BytesIO(instance_bytes(dataset)),
                            Sender(caller.organisation_id, caller.organisation_oid))
    return datasets


def test_ingest_records_the_header_and_the_xds_patient_id(database: Database, store: BlobStore,
                                                          ingested: list[pydicom.Dataset]) -> None:
    first = ingested[0]
    with database.session() as session:
        row = session.get(DicomInstance, str(first.SOPInstanceUID))
        assert row is not None
        assert row.patient_id == f"IMG1^^^&{ISSUER}&ISO"
        assert (row.study_instance_uid, row.series_instance_uid) == (first.StudyInstanceUID, first.SeriesInstanceUID)
        assert read_blob(store, row.sha256) == instance_bytes(first)


def test_ingest_takes_the_senders_oid_when_the_instance_names_no_issuer(database: Database, store: BlobStore,
                                                                        caller: Caller) -> None:
    (dataset,) = make_study(n_series=1, per_series=1, patient_id="NOISSUER", issuer="")
    with database.session() as session:
        row = ingest_instance(session, store, io.BytesIO(instance_bytes(dataset)),
                              Sender(caller.organisation_id, caller.organisation_oid))
        assert row.patient_id == f"NOISSUER^^^&{caller.organisation_oid}&ISO"


def test_ingesting_the_same_instance_twice_keeps_one(database: Database, store: BlobStore, caller: Caller,
                                                     ingested: list[pydicom.Dataset]) -> None:
    with database.session() as session:
        ingest_instance(session, store, io.BytesIO(instance_bytes(ingested[0])),
                        Sender(caller.organisation_id, caller.organisation_oid))
    assert counts(database)["dicom_instances"] == len(ingested)
    assert len(blob_files(store)) == len(ingested)


@pytest.mark.parametrize("data", [b"not DICOM at all", b"\0" * 128 + b"DICM" + b"\0" * 20])
def test_ingest_refuses_what_is_not_dicom_and_keeps_nothing(database: Database, store: BlobStore,
                                                            caller: Caller, data: bytes) -> None:
    with pytest.raises(InvalidDicom), database.session() as session:
        ingest_instance(session, store, io.BytesIO(data), Sender(caller.organisation_id, caller.organisation_oid))
    assert blob_files(store) == []
    assert counts(database)["dicom_instances"] == 0


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom warns of the bad UID we make on purpose
def test_ingest_refuses_a_uid_with_path_characters(database: Database, store: BlobStore, caller: Caller) -> None:
    (dataset,) = make_study(n_series=1, per_series=1, patient_id="P", issuer=ISSUER)
    dataset.SOPInstanceUID = "1.2.3/../../etc"
    with pytest.raises(InvalidDicom), database.session() as session:
        ingest_instance(session, store, io.BytesIO(instance_bytes(dataset)),
                        Sender(caller.organisation_id, caller.organisation_oid))
    assert blob_files(store) == []


def test_the_study_manifest_references_every_instance_here(database: Database, settings: Settings,
                                                           ingested: list[pydicom.Dataset]) -> None:
    with database.session() as session:
        dataset = study_manifest(session, str(ingested[0].StudyInstanceUID), settings)
    sink = io.BytesIO()
    dataset.save_as(sink, enforce_file_format=True)
    sink.seek(0)
    manifest = read_manifest(sink)
    assert manifest.study_uids == (str(ingested[0].StudyInstanceUID),)
    referenced = {i.sop_instance_uid for s in manifest.studies for series in s.series for i in series.instances}
    assert referenced == {str(d.SOPInstanceUID) for d in ingested}
    assert {series.retrieve_location_uid for s in manifest.studies for series in s.series} == \
        {settings.repository_unique_id}


def test_unknown_study_has_no_manifest(database: Database, settings: Settings) -> None:
    with pytest.raises(UnknownStudy), database.session() as session:
        study_manifest(session, "1.2.3.404", settings)


def test_publish_provides_and_registers_the_manifest(database: Database, store: BlobStore, settings: Settings,
                                                     ingested: list[pydicom.Dataset]) -> None:
    study_uid = str(ingested[0].StudyInstanceUID)
    session = database.new_session()
    try:
        published = publish_study(session, store, LocalRegistry(settings), settings, study_uid)
    finally:
        session.close()
    with database.session() as session:
        entry = session.scalar(select(RegistryObjectRow).where(RegistryObjectRow.unique_id == published.unique_id))
        assert entry is not None and entry.mime_type == "application/dicom"
        events = set(session.scalars(select(RegistryCodeRow.code).where(
            RegistryCodeRow.object_id == entry.id, RegistryCodeRow.scheme == DocumentEntryScheme.EVENT_CODE.value)))
        assert events == {d.Modality for d in ingested}
        references = list(session.scalars(select(ManifestReference)))
        assert {r.sop_instance_uid for r in references} == {str(d.SOPInstanceUID) for d in ingested}
        assert session.scalar(select(StoredDocument).where(StoredDocument.unique_id == published.unique_id))
    assert published.patient_id == f"IMG1^^^&{ISSUER}&ISO"


def test_a_provided_kos_gets_study_and_modalities_in_its_entry(provide: Provide, database: Database,
                                                               settings: Settings,
                                                               ingested: list[pydicom.Dataset]) -> None:
    with database.session() as session:
        dataset = study_manifest(session, str(ingested[0].StudyInstanceUID), settings)
    sink = io.BytesIO()
    dataset.save_as(sink, enforce_file_format=True)
    content = sink.getvalue()
    entry = kos_entry(content, f"IMG1^^^&{ISSUER}&ISO")
    provide(submission(f"IMG1^^^&{ISSUER}&ISO", entries=[entry]), {entry.id: content})
    with database.session() as session:
        row = session.scalar(select(RegistryObjectRow).where(RegistryObjectRow.unique_id == entry.unique_id))
        assert row is not None
        assert f"{ingested[0].StudyInstanceUID}^^^^urn:ihe:iti:xds:2016:studyInstanceUID" in \
            row.content["slots"]["urn:ihe:iti:xds:2013:referenceIdList"]


def test_a_kos_without_evidence_is_refused_and_nothing_kept(provide: Provide, database: Database,
                                                            store: BlobStore, settings: Settings,
                                                            ingested: list[pydicom.Dataset]) -> None:
    before = len(blob_files(store))
    with database.session() as session:
        dataset = study_manifest(session, str(ingested[0].StudyInstanceUID), settings)
    del dataset.CurrentRequestedProcedureEvidenceSequence
    sink = io.BytesIO()
    dataset.save_as(sink, enforce_file_format=True)
    entry = kos_entry(sink.getvalue())
    with pytest.raises((XdsError, XdsErrorList)) as caught:
        provide(submission(entries=[entry]), {entry.id: sink.getvalue()})
    assert caught.value.code == ErrorCode.REPOSITORY_METADATA_ERROR  # type: ignore[union-attr]
    assert len(blob_files(store)) == before
    assert counts(database)["repository_documents"] == 0


def _request(datasets: list[pydicom.Dataset], repository: str, syntaxes: tuple[str, ...] = (EXPLICIT_LE,),
             uids: list[str] | None = None) -> ImagingRequest:
    series: dict[str, list[str]] = {}
    for d in datasets:
        series.setdefault(str(d.SeriesInstanceUID), []).append(str(d.SOPInstanceUID))
    if uids is not None:
        first = next(iter(series))
        series = {first: uids}
    return ImagingRequest((StudyRequest(str(datasets[0].StudyInstanceUID), tuple(
        SeriesRequest(s, tuple(DocumentRequest(repository, u) for u in us)) for s, us in series.items())),),
        syntaxes)


def _retrieve(database: Database, store: BlobStore, settings: Settings, who: Caller,
              request: ImagingRequest) -> tuple[ResponseStatus, dict[str, bytes], list[str]]:
    with database.session() as session:
        result = retrieve_imaging(session, store, request, who, settings)
    contents = {}
    for document in result.documents:
        stream = document.open()
        try:
            contents[document.document_unique_id] = stream.read()
        finally:
            stream.close()
        assert document.size == len(contents[document.document_unique_id])
    return result.status, contents, [e.code.value for e in result.errors]


def test_rad69_answers_stored_instances_as_they_are(database: Database, store: BlobStore, settings: Settings,
                                                    caller: Caller, ingested: list[pydicom.Dataset]) -> None:
    status, contents, errors = _retrieve(database, store, settings, caller,
                                         _request(ingested, settings.repository_unique_id))
    assert (status, errors) == (ResponseStatus.SUCCESS, [])
    assert contents == {str(d.SOPInstanceUID): instance_bytes(d) for d in ingested}


def test_rad69_transcodes_when_only_another_syntax_is_accepted(database: Database, store: BlobStore,
                                                               settings: Settings, caller: Caller,
                                                               ingested: list[pydicom.Dataset]) -> None:
    status, contents, _ = _retrieve(database, store, settings, caller,
                                    _request(ingested, settings.repository_unique_id, (IMPLICIT_LE,)))
    assert status == ResponseStatus.SUCCESS
    for dataset in ingested:
        answered = pydicom.dcmread(io.BytesIO(contents[str(dataset.SOPInstanceUID)]))
        assert answered.file_meta.TransferSyntaxUID == IMPLICIT_LE
        assert (answered.pixel_array == dataset.pixel_array).all()
    assert not any((settings.data_dir / "spool").glob("*"))   # the transcoded copies are gone


def test_rad69_reports_a_syntax_it_cannot_produce(database: Database, store: BlobStore, settings: Settings,
                                                  caller: Caller, ingested: list[pydicom.Dataset]) -> None:
    status, contents, errors = _retrieve(database, store, settings, caller,
                                         _request(ingested, settings.repository_unique_id, (JPEG_BASELINE,)))
    assert (status, contents) == (ResponseStatus.FAILURE, {})
    assert errors == [ErrorCode.REPOSITORY_ERROR.value] * len(ingested)


def test_rad69_unknown_repository_wrong_series_and_unknown_instance(database: Database, store: BlobStore,
                                                                    settings: Settings, caller: Caller,
                                                                    ingested: list[pydicom.Dataset]) -> None:
    other_series = next(d for d in ingested if d.SeriesInstanceUID != ingested[0].SeriesInstanceUID)
    request = _request(ingested, settings.repository_unique_id,
                       uids=[str(ingested[0].SOPInstanceUID), str(other_series.SOPInstanceUID), "1.2.3.404"])
    status, contents, errors = _retrieve(database, store, settings, caller, request)
    assert status == ResponseStatus.PARTIAL_SUCCESS
    assert list(contents) == [str(ingested[0].SOPInstanceUID)]
    assert errors == [ErrorCode.MISSING_DOCUMENT.value] * 2
    status, _, errors = _retrieve(database, store, settings, caller, _request(ingested, "1.2.3.999"))
    assert status == ResponseStatus.FAILURE
    assert set(errors) == {ErrorCode.UNKNOWN_REPOSITORY_ID.value}


def test_rad69_shows_instances_to_others_only_through_a_visible_manifest(
        provide: Provide, database: Database, store: BlobStore, settings: Settings, caller: Caller,
        other_caller: Caller, ingested: list[pydicom.Dataset]) -> None:
    request = _request(ingested, settings.repository_unique_id)
    assert _retrieve(database, store, settings, other_caller, request)[0] == ResponseStatus.FAILURE
    with database.session() as session:
        dataset = study_manifest(session, str(ingested[0].StudyInstanceUID), settings)
    sink = io.BytesIO()
    dataset.save_as(sink, enforce_file_format=True)
    patient = f"IMG1^^^&{ISSUER}&ISO"
    restricted = kos_entry(sink.getvalue(), patient, confidentiality=(RESTRICTED,))
    provide(submission(patient, entries=[restricted]), {restricted.id: sink.getvalue()})
    assert _retrieve(database, store, settings, other_caller, request)[0] == ResponseStatus.FAILURE
    published = publish_study(database.new_session(), store, LocalRegistry(settings), settings,
                              str(ingested[0].StudyInstanceUID))
    assert published.instance_count == len(ingested)
    assert _retrieve(database, store, settings, other_caller, request)[0] == ResponseStatus.SUCCESS


def test_the_nist_rad68_sample_metadata_with_a_real_manifest_is_provided(
        provide: Provide, database: Database, settings: Settings, ingested: list[pydicom.Dataset]) -> None:
    """The XDS-I.b testkit's KOS metadata (uniqueIds filled in as the testkit does when it runs) with
    a manifest of a study this hub holds: stored, registered, its study added to referenceIdList."""
    from registry.ebrim import parse_submit_objects_request
    from tests.conftest import require_samples
    from tests.unit.registry.test_samples import as_run_by_nist_testkit, submit_objects

    sample = require_samples() / "rad68/nist-xdsi-metadata-IDCDEPT001-a.xml"
    request = parse_submit_objects_request(submit_objects(sample))
    as_run_by_nist_testkit(request)
    (entry,) = request.document_entries
    for name in ("hash", "size", "repositoryUniqueId"):   # the repository computes and sets these
        entry.slots.pop(name, None)
    with database.session() as session:
        dataset = study_manifest(session, str(ingested[0].StudyInstanceUID), settings)
    sink = io.BytesIO()
    dataset.save_as(sink, enforce_file_format=True)
    provide(request, {entry.id: sink.getvalue()})
    with database.session() as session:
        row = session.scalar(select(RegistryObjectRow).where(RegistryObjectRow.unique_id == entry.unique_id))
        assert row is not None and row.mime_type == "application/dicom"
        assert f"{ingested[0].StudyInstanceUID}^^^^urn:ihe:iti:xds:2016:studyInstanceUID" in \
            row.content["slots"]["urn:ihe:iti:xds:2013:referenceIdList"]
        assert {r.sop_instance_uid for r in session.scalars(select(ManifestReference))} == \
            {str(d.SOPInstanceUID) for d in ingested}
