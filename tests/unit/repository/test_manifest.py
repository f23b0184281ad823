"""The XDS-I.b manifest (repository.manifest): built with highdicom, written, read back; bad manifests refused."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace

import pydicom
import pytest
from pydicom import Dataset, config
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from repository.dicomfile import read_instance_header
from repository.manifest import (
    KOS_SOP_CLASS_UID,
    InvalidManifest,
    Manifest,
    ManifestInstance,
    ManifestStudy,
    ReferencedInstance,
    ReferencedSeries,
    ReferencedStudy,
    build_manifest,
    read_manifest,
    write_manifest,
)
from tests.factories.dicom import instance_bytes, make_instance, make_study

RETRIEVE_LOCATION = "1.3.6.1.4.1.21367.2026.1.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def manifest_study(datasets: list[Dataset]) -> ManifestStudy:
    """What the hub knows of a study: the headers it read from the stored instances."""
    headers = [read_instance_header(io.BytesIO(instance_bytes(ds))) for ds in datasets]
    first = headers[0]
    return ManifestStudy(
        study_instance_uid=first.study_instance_uid, patient_id=first.patient_id,
        issuer_of_patient_id=first.issuer_of_patient_id, patient_name=first.patient_name,
        patient_birth_date=first.patient_birth_date, patient_sex=first.patient_sex, study_date=first.study_date,
        study_time=first.study_time, accession_number=first.accession_number, study_id=first.study_id,
        referring_physician_name=first.referring_physician_name,
        instances=tuple(ManifestInstance(h.sop_class_uid, h.sop_instance_uid, h.series_instance_uid, h.modality)
                        for h in headers))


def written(dataset: Dataset) -> io.BytesIO:
    sink = io.BytesIO()
    write_manifest(dataset, sink)
    sink.seek(0)
    return sink


def round_trip(dataset: Dataset) -> Manifest:
    return read_manifest(written(dataset))


@pytest.fixture
def images() -> list[Dataset]:
    return make_study(n_series=2, per_series=3, modalities=("CT", "MR"), patient_id="PAT-1",
                      issuer="1.3.6.1.4.1.21367.2026.7")


@pytest.fixture
def study(images: list[Dataset]) -> ManifestStudy:
    return manifest_study(images)


@pytest.fixture
def kos(study: ManifestStudy) -> Dataset:
    return build_manifest(study, RETRIEVE_LOCATION)


def test_build_write_read_round_trip(images: list[Dataset], study: ManifestStudy) -> None:
    kos_uid, kos_series = generate_uid(), generate_uid()
    dataset = build_manifest(study, RETRIEVE_LOCATION, sop_instance_uid=kos_uid, series_instance_uid=kos_series)

    manifest = round_trip(dataset)

    series_uids = list(dict.fromkeys(ds.SeriesInstanceUID for ds in images))
    expected = ReferencedStudy(images[0].StudyInstanceUID, tuple(
        ReferencedSeries(series_uid, RETRIEVE_LOCATION, "", "", tuple(
            ReferencedInstance(ds.SOPClassUID, ds.SOPInstanceUID) for ds in images
            if ds.SeriesInstanceUID == series_uid))
        for series_uid in series_uids))
    assert manifest == Manifest(sop_instance_uid=kos_uid, series_instance_uid=kos_series,
                                study_instance_uid=images[0].StudyInstanceUID, patient_id="PAT-1",
                                issuer_of_patient_id="1.3.6.1.4.1.21367.2026.7", patient_name="DOE^JANE",
                                studies=(expected,))
    assert manifest.study_uids == (images[0].StudyInstanceUID,)
    assert manifest.instance_count == 6


def test_the_built_manifest_is_a_kos_titled_manifest(kos: Dataset, images: list[Dataset]) -> None:
    read = pydicom.dcmread(written(kos))

    assert read.SOPClassUID == KOS_SOP_CLASS_UID
    assert read.file_meta.MediaStorageSOPClassUID == KOS_SOP_CLASS_UID
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    title = read.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == ("113030", "DCM", "Manifest")
    template = read.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "2010")
    assert (read.Modality, read.ValueType) == ("KO", "CONTAINER")
    assert read.StudyInstanceUID == images[0].StudyInstanceUID
    assert read.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in images}
    evidence = read.CurrentRequestedProcedureEvidenceSequence
    assert [item.StudyInstanceUID for item in evidence] == [images[0].StudyInstanceUID]
    assert [s.RetrieveLocationUID for s in evidence[0].ReferencedSeriesSequence] == [RETRIEVE_LOCATION] * 2
    references = [item for item in read.ContentSequence if "ReferencedSOPSequence" in item]
    assert [(item.ValueType, item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for item in references] == [
        ("IMAGE", ds.SOPInstanceUID) for ds in images]


def test_patient_and_study_attributes_are_copied_from_the_study(kos: Dataset, images: list[Dataset]) -> None:
    read = pydicom.dcmread(written(kos))

    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        assert read[keyword].value == images[0][keyword].value, keyword
    qualifier = read.IssuerOfPatientIDQualifiersSequence[0]
    assert (qualifier.UniversalEntityID, qualifier.UniversalEntityIDType) == ("1.3.6.1.4.1.21367.2026.7", "ISO")


def test_values_highdicom_would_refuse_are_copied_and_broken_ones_left_empty(study: ManifestStudy) -> None:
    odd = replace(study, patient_name="Müller", patient_sex="U", study_date="2026", issuer_of_patient_id="HOSP-A")

    read = pydicom.dcmread(written(build_manifest(odd, RETRIEVE_LOCATION)))

    assert (read.SpecificCharacterSet, str(read.PatientName), read.PatientSex) == ("ISO_IR 192", "Müller", "U")
    assert read.StudyDate == ""   # "2026" is no DA value (PS3.5 6.2); Type 2, so present and empty
    assert read_manifest(written(build_manifest(odd, RETRIEVE_LOCATION))).issuer_of_patient_id == "HOSP-A"


def test_a_non_image_sop_class_is_referenced_as_composite(study: ManifestStudy) -> None:
    pdf = ManifestInstance(ENCAPSULATED_PDF, generate_uid(), generate_uid(), "DOC")
    unknown = ManifestInstance("1.2.3.4.5.6", generate_uid(), pdf.series_instance_uid, "OT")
    dataset = build_manifest(replace(study, instances=(*study.instances, pdf, unknown)), RETRIEVE_LOCATION)

    value_types = {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID: item.ValueType
                   for item in dataset.ContentSequence if "ReferencedSOPSequence" in item}

    assert (value_types[pdf.sop_instance_uid], value_types[unknown.sop_instance_uid]) == ("COMPOSITE", "COMPOSITE")
    assert round_trip(dataset).instance_count == 8


def test_manifests_built_one_after_the_other_share_no_item(study: ManifestStudy) -> None:
    first = build_manifest(study, RETRIEVE_LOCATION)
    first.ConceptNameCodeSequence[0].CodeValue = "113000"

    second = build_manifest(study, RETRIEVE_LOCATION)

    assert second.ConceptNameCodeSequence[0].CodeValue == "113030"
    assert second.SOPInstanceUID != first.SOPInstanceUID


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: replace(s, instances=()), "has no instance to reference"),
    (lambda s: replace(s, study_instance_uid="1.2/3"), "the Study Instance UID '1.2/3' is not a valid UID"),
    (lambda s: replace(s, instances=(replace(s.instances[0], sop_instance_uid="../etc"),)),
     "a SOP Instance UID '../etc' is not a valid UID"),
], ids=["no-instance", "bad-study-uid", "path-instance-uid"])
def test_build_refuses_what_it_could_not_read_back(study: ManifestStudy, change: Callable[[ManifestStudy],
                                                   ManifestStudy], message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        build_manifest(change(study), RETRIEVE_LOCATION)


def test_build_refuses_an_invalid_retrieve_location(study: ManifestStudy) -> None:
    with pytest.raises(InvalidManifest, match="Retrieve Location UID '../repo' is not a valid UID"):
        build_manifest(study, "../repo")


# Refusals on reading: each row changes a valid KOS and names what the message must say -----------------------------

def _drop_evidence(ds: Dataset) -> None:
    del ds.CurrentRequestedProcedureEvidenceSequence


def _empty_evidence(ds: Dataset) -> None:
    ds.CurrentRequestedProcedureEvidenceSequence = []


def _first_series(ds: Dataset) -> Dataset:
    item: Dataset = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    return item


def _no_retrieve_location(ds: Dataset) -> None:
    del _first_series(ds).RetrieveLocationUID


def _ae_title_instead_of_location(ds: Dataset) -> None:
    series = _first_series(ds)
    del series.RetrieveLocationUID
    series.RetrieveAETitle = "PACS"
    series.RetrieveURL = "https://pacs.example/wado"


def _path_instance_uid(ds: Dataset) -> None:
    _first_series(ds).ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "../../etc/passwd"


def _path_series_uid(ds: Dataset) -> None:
    _first_series(ds).SeriesInstanceUID = "1.2/3"


def _no_study_uid(ds: Dataset) -> None:
    del ds.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID


def _no_instances(ds: Dataset) -> None:
    _first_series(ds).ReferencedSOPSequence = []


def _other_title(ds: Dataset) -> None:
    ds.ConceptNameCodeSequence[0].CodeValue = "113000"
    ds.ConceptNameCodeSequence[0].CodeMeaning = "Of Interest"


def _no_sop_class(ds: Dataset) -> None:
    del _first_series(ds).ReferencedSOPSequence[0].ReferencedSOPClassUID


INVALID_MANIFESTS: list[tuple[Callable[[Dataset], None], str]] = [
    (_drop_evidence, "the KOS has no or an empty CurrentRequestedProcedureEvidenceSequence"),
    (_empty_evidence, "the KOS has no or an empty CurrentRequestedProcedureEvidenceSequence"),
    (_no_retrieve_location, r"has no Retrieve Location UID \(0040,E011\)"),
    (_ae_title_instead_of_location, r"has no Retrieve Location UID \(0040,E011\)"),
    (_path_instance_uid, "has an invalid ReferencedSOPInstanceUID '../../etc/passwd'"),
    (_path_series_uid, "has an invalid SeriesInstanceUID '1.2/3'"),
    (_no_study_uid, "a study item of the evidence has no StudyInstanceUID"),
    (_no_instances, "has no or an empty ReferencedSOPSequence"),
    (_no_sop_class, "has no ReferencedSOPClassUID"),
    (_other_title, r"document title is \(113000, DCM, 'Of Interest'\), not \(113030, DCM, \"Manifest\"\)"),
]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")   # pydicom, reading the bad UIDs
@pytest.mark.parametrize(("change", "message"), INVALID_MANIFESTS,
                         ids=[change.__name__.strip("_") for change, _ in INVALID_MANIFESTS])
def test_an_invalid_manifest_is_refused(kos: Dataset, change: Callable[[Dataset], None], message: str) -> None:
    with config.disable_value_validation():
        change(kos)
        stream = written(kos)

    with pytest.raises(InvalidManifest, match=message):
        read_manifest(stream)


def test_a_dicom_instance_that_is_not_a_kos_is_refused() -> None:
    ct = make_instance()

    with pytest.raises(InvalidManifest, match=r"SOP Class UID 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2 is not Key Object "
                                              r"Selection Document Storage"):
        read_manifest(io.BytesIO(instance_bytes(ct)))


def test_bytes_that_are_not_dicom_are_refused() -> None:
    with pytest.raises(InvalidManifest, match="not a DICOM Part 10 file"):
        read_manifest(io.BytesIO(b"%PDF-1.7\n" + b"\0" * 200))


def test_build_refuses_a_patient_id_that_breaks_its_vr(study: ManifestStudy) -> None:
    with pytest.raises(InvalidManifest, match=r"Patient ID 'PPPP.*' is not a valid LO value"):
        build_manifest(replace(study, patient_id="P" * 65), RETRIEVE_LOCATION)
