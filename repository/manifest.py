"""The XDS-I.b imaging manifest: a DICOM Key Object Selection Document (RAD TF-3 4.68.4.1.2.1, PS3.3 A.35.4).

Reading (`read_manifest`): what a repository receiving RAD-68 must check and
record (RAD TF-3 4.68.4.1.3). The KOS is read with pydicom and checked here,
not through highdicom's `KeyObjectSelectionDocument.from_dataset`, which
deep-copies the document and re-parses the whole SR content tree while the
hub only needs the evidence. `InvalidManifest` is raised, naming the problem, for:

- a stream that is not DICOM Part 10, or a SOP Class other than Key Object
  Selection Document Storage;
- a root Concept Name other than (113030, DCM, "Manifest") (RAD TF-3
  4.68.4.1.2.1; compared on code value and coding scheme, the identity of a
  code in PS3.16 8.1, not on the meaning);
- no or empty Current Requested Procedure Evidence Sequence (0040,A375)
  (PS3.3 C.17.6.2.1), or a study, series or SOP item without its UIDs or with
  an invalid one (PS3.5 9.1: "../x" or "1.2/3" never reaches a path or query);
- a series item without Retrieve Location UID (0040,E011): XDS-I.b names the
  Imaging Document Source holding the series there (RAD TF-3 4.68.4.1.2.1),
  and RAD-69 is addressed to it. Retrieve AE Title and Retrieve URL are read
  when present but do not replace it.

Building (`build_manifest`): highdicom's `KeyObjectSelectionDocument` with a
`KeyObjectSelection` content (TID 2010, document title (113030, DCM,
"Manifest")) builds the KOS: SOP Common, SR Document Series (Modality KO, its
own series), Key Object Document and content modules, the Current Requested
Procedure Evidence Sequence grouped by study and series. highdicom builds from
the referenced instances' datasets; a hub holds their headers in its database,
not the files, so each `ManifestInstance` becomes a minimal pydicom Dataset of
its UIDs (with empty Rows and Columns for an image SOP Class, which makes
highdicom reference it as IMAGE rather than COMPOSITE; the class is judged from
highdicom's own IOD tables, `does_iod_have_pixel_data`, private in highdicom
0.28 and without a public equivalent). Two things are set on
the resulting dataset afterwards, since highdicom cannot express them:

- Retrieve Location UID in every series item of the evidence (XDS-I.b);
- the Patient and General Study attributes, copied verbatim from the study so
  the KOS repeats its images' (PS3.3 C.7.1.1, C.7.2.1), including values
  highdicom's stricter checks refuse (a Patient's Sex "U", a name without
  "^"), plus Issuer of Patient ID and its qualifiers (type ISO when the issuer
  is an OID), which highdicom does not set. A value that breaks its VR (PS3.5
  6.2, e.g. a date not YYYYMMDD) is left empty, these being Type 2, except the
  Patient ID: then InvalidManifest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.config import RAISE
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import validate_value

from repository.dicomfile import InvalidDicom, is_valid_uid, issuer_of_patient_id, read_dataset, text_value

__all__ = [
    "KOS_SOP_CLASS_UID",
    "MANIFEST_TITLE",
    "InvalidManifest",
    "Manifest",
    "ManifestInstance",
    "ManifestStudy",
    "ReferencedInstance",
    "ReferencedSeries",
    "ReferencedStudy",
    "build_manifest",
    "read_manifest",
    "write_manifest",
]

KOS_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.88.59"
MANIFEST_TITLE = ("113030", "DCM", "Manifest")   # code value, coding scheme designator, meaning (CID 7010)
MANIFEST_SERIES_NUMBER = 999   # the KOS's own series; any positive number (PS3.3 C.17.1), apart from the images'
UTF8 = "ISO_IR 192"            # PS3.3 C.12.1.1.2, used when a copied value is not plain ASCII


class InvalidManifest(ValueError):
    """Not a valid XDS-I.b imaging manifest: what is wrong is in the message."""


@dataclass(frozen=True)
class ReferencedInstance:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class ReferencedSeries:
    series_instance_uid: str
    retrieve_location_uid: str
    retrieve_ae_title: str
    retrieve_url: str
    instances: tuple[ReferencedInstance, ...]


@dataclass(frozen=True)
class ReferencedStudy:
    study_instance_uid: str
    series: tuple[ReferencedSeries, ...]


@dataclass(frozen=True)
class Manifest:
    sop_instance_uid: str       # of the KOS itself
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    studies: tuple[ReferencedStudy, ...]    # from the Current Requested Procedure Evidence Sequence

    @property
    def study_uids(self) -> tuple[str, ...]:
        return tuple(study.study_instance_uid for study in self.studies)

    @property
    def instance_count(self) -> int:
        return sum(len(series.instances) for study in self.studies for series in study.series)


@dataclass(frozen=True)
class ManifestInstance:
    """One instance the hub holds, to be referenced by a manifest."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    modality: str


@dataclass(frozen=True)
class ManifestStudy:
    """A study to build a manifest for: its Patient and General Study attributes and the instances to reference."""

    study_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    referring_physician_name: str
    instances: tuple[ManifestInstance, ...]


# Reading ------------------------------------------------------------------------------------------------------------

def _uid(item: Dataset, keyword: str, what: str) -> str:
    value = text_value(item, keyword)
    if not value:
        raise InvalidManifest(f"{what} has no {keyword}")
    if not is_valid_uid(value):
        raise InvalidManifest(f"{what} has an invalid {keyword} {value!r} (PS3.5 9.1)")
    return value


def _items(item: Dataset, keyword: str, what: str) -> list[Dataset]:
    items = list(item.get(keyword) or [])
    if not items:
        raise InvalidManifest(f"{what} has no or an empty {keyword}")
    return items


def _check_title(dataset: Dataset) -> None:
    titles = list(dataset.get("ConceptNameCodeSequence") or [])
    if not titles:
        raise InvalidManifest("the KOS has no document title (Concept Name Code Sequence, 0040,A043)")
    code, scheme = text_value(titles[0], "CodeValue"), text_value(titles[0], "CodingSchemeDesignator")
    if (code, scheme) != MANIFEST_TITLE[:2]:
        raise InvalidManifest(f"the KOS document title is ({code}, {scheme}, {text_value(titles[0], 'CodeMeaning')!r}),"
                              f" not (113030, DCM, \"Manifest\") (RAD TF-3 4.68.4.1.2.1)")


def _series(item: Dataset, study_uid: str) -> ReferencedSeries:
    series_uid = _uid(item, "SeriesInstanceUID", f"a series item of study {study_uid}")
    where = f"series {series_uid}"
    location = text_value(item, "RetrieveLocationUID")
    if not location:
        raise InvalidManifest(f"{where} has no Retrieve Location UID (0040,E011), required by XDS-I.b "
                              f"(RAD TF-3 4.68.4.1.2.1)")
    if not is_valid_uid(location):
        raise InvalidManifest(f"{where} has an invalid RetrieveLocationUID {location!r} (PS3.5 9.1)")
    instances = tuple(
        ReferencedInstance(_uid(sop, "ReferencedSOPClassUID", f"a SOP item of {where}"),
                           _uid(sop, "ReferencedSOPInstanceUID", f"a SOP item of {where}"))
        for sop in _items(item, "ReferencedSOPSequence", where))
    return ReferencedSeries(series_uid, location, text_value(item, "RetrieveAETitle"), text_value(item, "RetrieveURL"),
                            instances)


def _study(item: Dataset) -> ReferencedStudy:
    study_uid = _uid(item, "StudyInstanceUID", "a study item of the evidence")
    return ReferencedStudy(study_uid, tuple(_series(series, study_uid) for series in
                                            _items(item, "ReferencedSeriesSequence", f"study {study_uid}")))


def _manifest(dataset: Dataset) -> Manifest:
    sop_class = text_value(dataset, "SOPClassUID")
    if sop_class != KOS_SOP_CLASS_UID:
        raise InvalidManifest(f"SOP Class UID {sop_class or '(none)'!s} is not Key Object Selection Document "
                              f"Storage ({KOS_SOP_CLASS_UID})")
    _check_title(dataset)
    evidence = _items(dataset, "CurrentRequestedProcedureEvidenceSequence", "the KOS")
    return Manifest(
        sop_instance_uid=_uid(dataset, "SOPInstanceUID", "the KOS"),
        series_instance_uid=_uid(dataset, "SeriesInstanceUID", "the KOS"),
        study_instance_uid=_uid(dataset, "StudyInstanceUID", "the KOS"),
        patient_id=text_value(dataset, "PatientID"),
        issuer_of_patient_id=issuer_of_patient_id(dataset),
        patient_name=text_value(dataset, "PatientName"),
        studies=tuple(_study(item) for item in evidence),
    )


def read_manifest(stream: BinaryIO) -> Manifest:
    """The references of an XDS-I.b manifest; InvalidManifest when the stream is not one."""
    try:
        dataset = read_dataset(stream)
    except InvalidDicom as exc:
        raise InvalidManifest(str(exc)) from None
    try:
        return _manifest(dataset)
    except InvalidManifest:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:   # pydicom's lazy parsing
        raise InvalidManifest(f"malformed KOS: {exc}") from None


# Building -----------------------------------------------------------------------------------------------------------

@functools.cache   # a study has few SOP Classes; highdicom walks its IOD tables for each question
def _is_image(sop_class_uid: str) -> bool:
    from highdicom._standard_utils import does_iod_have_pixel_data

    try:
        return does_iod_have_pixel_data(sop_class_uid)
    except KeyError:   # a SOP Class highdicom's tables do not know: referenced as COMPOSITE
        return False


def _evidence(study: ManifestStudy, instance: ManifestInstance) -> Dataset:
    item = Dataset()
    item.SOPClassUID = instance.sop_class_uid
    item.SOPInstanceUID = instance.sop_instance_uid
    item.StudyInstanceUID = study.study_instance_uid
    item.SeriesInstanceUID = instance.series_instance_uid
    if _is_image(instance.sop_class_uid):
        item.Rows = None
        item.Columns = None
    return item


def _with_patient_for_highdicom(item: Dataset, study: ManifestStudy) -> None:
    """What highdicom reads of the first evidence item; the values it validates are copied later instead."""
    item.PatientID = study.patient_id
    item.AccessionNumber = study.accession_number
    item.StudyID = study.study_id
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName"):
        setattr(item, keyword, None)


def _valid(keyword: str, value: str) -> bool:
    try:
        validate_value(dictionary_VR(keyword), value, RAISE)
    except ValueError:
        return False
    return True


def _copy_patient_and_study(dataset: Dataset, study: ManifestStudy) -> None:
    values = {
        "PatientName": study.patient_name, "PatientID": study.patient_id,
        "PatientBirthDate": study.patient_birth_date, "PatientSex": study.patient_sex,
        "StudyDate": study.study_date, "StudyTime": study.study_time, "AccessionNumber": study.accession_number,
        "StudyID": study.study_id, "ReferringPhysicianName": study.referring_physician_name,
        "IssuerOfPatientID": study.issuer_of_patient_id,
    }
    for keyword, value in values.items():
        setattr(dataset, keyword, value if value and _valid(keyword, value) else None)
    if not dataset.IssuerOfPatientID:
        del dataset.IssuerOfPatientID    # Type 3
    if is_valid_uid(study.issuer_of_patient_id):
        qualifier = Dataset()
        qualifier.UniversalEntityID = study.issuer_of_patient_id
        qualifier.UniversalEntityIDType = "ISO"
        dataset.IssuerOfPatientIDQualifiersSequence = [qualifier]


def _check_buildable(study: ManifestStudy, retrieve_location_uid: str, series_instance_uid: str | None,
                     sop_instance_uid: str | None) -> None:
    if not study.instances:
        raise InvalidManifest(f"study {study.study_instance_uid} has no instance to reference")
    uids = [("the Retrieve Location UID", retrieve_location_uid), ("the Study Instance UID", study.study_instance_uid),
            ("the KOS Series Instance UID", series_instance_uid), ("the KOS SOP Instance UID", sop_instance_uid)]
    for instance in study.instances:
        uids += [("a SOP Class UID", instance.sop_class_uid), ("a SOP Instance UID", instance.sop_instance_uid),
                 ("a Series Instance UID", instance.series_instance_uid)]
    for name, value in uids:
        if value is not None and not is_valid_uid(value):
            raise InvalidManifest(f"{name} {value!r} is not a valid UID (PS3.5 9.1)")
    if not _valid("PatientID", study.patient_id):
        raise InvalidManifest(f"Patient ID {study.patient_id!r} is not a valid LO value (PS3.5 6.2)")


def _needs_utf8(study: ManifestStudy) -> bool:
    return not all(value.isascii() for value in vars(study).values() if isinstance(value, str))


def build_manifest(study: ManifestStudy, retrieve_location_uid: str, *, manufacturer: str = "xdshub",
                   series_instance_uid: str | None = None, sop_instance_uid: str | None = None,
                   description: str = "XDS-I.b imaging manifest") -> pydicom.Dataset:
    """The KOS referencing every instance of `study`, each series retrievable at `retrieve_location_uid`.

    The KOS joins the study of its images, in a new series (Modality KO) unless
    `series_instance_uid` is given; new UIDs are generated where none is given.
    InvalidManifest when the study has no instance or a UID is not valid.
    """
    # highdicom (some 20 MiB once imported) is loaded when a manifest is first built, not in every
    # server worker that only reads manifests and streams documents.
    from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
    from highdicom.sr import CodedConcept

    _check_buildable(study, retrieve_location_uid, series_instance_uid, sop_instance_uid)
    evidence = [_evidence(study, instance) for instance in study.instances]
    _with_patient_for_highdicom(evidence[0], study)
    # a new CodedConcept each time: highdicom puts this very object in the document
    title = CodedConcept(value=MANIFEST_TITLE[0], scheme_designator=MANIFEST_TITLE[1], meaning=MANIFEST_TITLE[2])
    content = KeyObjectSelection(document_title=title, referenced_objects=evidence,
                                 description=description or None)
    document = KeyObjectSelectionDocument(
        evidence=evidence, content=content, series_instance_uid=series_instance_uid or generate_uid(),
        series_number=MANIFEST_SERIES_NUMBER, sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=1,
        manufacturer=manufacturer, transfer_syntax_uid=ExplicitVRLittleEndian,
        specific_character_set=UTF8 if _needs_utf8(study) else None)
    _copy_patient_and_study(document, study)
    for study_item in document.CurrentRequestedProcedureEvidenceSequence:
        for series_item in study_item.ReferencedSeriesSequence:
            series_item.RetrieveLocationUID = retrieve_location_uid   # RAD TF-3 4.68.4.1.2.1
    return document


def write_manifest(dataset: pydicom.Dataset, sink: BinaryIO) -> None:
    """The KOS as a Part 10 file with File Meta Information, in Explicit VR Little Endian (PS3.10 7.1)."""
    dataset.ensure_file_meta()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(sink, dataset, enforce_file_format=True)
