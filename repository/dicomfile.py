"""What the hub needs from a DICOM Part 10 file (PS3.10 7.1), read with pydicom without the pixel data.

`read_instance_header` answers an `InstanceHeader`: the identifying UIDs, the
transfer syntax from the File Meta Information, and the Patient, General
Study, General Series and General Image attributes the hub records and
queries on (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.6.1). A file without the
Part 10 preamble and "DICM" prefix, without a File Meta Information transfer
syntax, or without a valid SOP Class, SOP Instance, Study Instance or Series
Instance UID raises `InvalidDicom`. The UIDs must satisfy PS3.5 9.1
(`is_valid_uid`), because they name stored objects and end up in paths,
queries and URLs: "../etc" or "1.2/3" is refused here. Optional attributes
that are absent or empty become "" (text) or None (numbers).

`read_dataset` and `text_value` / `issuer_of_patient_id` are shared with
`repository.manifest`. pydicom's parse errors on untrusted input are
translated into `InvalidDicom` here, at the edge; errors of the stream itself
(OSError) pass through, they are storage failures, not bad content.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

__all__ = [
    "InstanceHeader",
    "InvalidDicom",
    "is_valid_uid",
    "issuer_of_patient_id",
    "read_dataset",
    "read_instance_header",
    "text_value",
]

# PS3.5 9.1: components of digits separated by ".", no leading zero unless the component is "0"
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
UID_MAX_LENGTH = 64

# What pydicom raises on malformed input, besides its own InvalidDicomError
_PARSE_ERRORS = (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                 NotImplementedError, OverflowError, struct.error)

PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)   # Pixel Data, Float and Double Float Pixel Data
HEADER_DEFER_SIZE = 16 * 1024                           # bigger values (pixel data) are skipped, not read

REQUIRED_UIDS = (
    ("SOPClassUID", "SOP Class UID (0008,0016)"),
    ("SOPInstanceUID", "SOP Instance UID (0008,0018)"),
    ("StudyInstanceUID", "Study Instance UID (0020,000D)"),
    ("SeriesInstanceUID", "Series Instance UID (0020,000E)"),
)


class InvalidDicom(ValueError):
    """The stream is not a DICOM Part 10 file the hub can take: what is wrong is in the message."""


@dataclass(frozen=True)
class InstanceHeader:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    modality: str
    patient_id: str
    issuer_of_patient_id: str       # Universal Entity ID of the qualifiers, else Issuer of Patient ID, else ""
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_description: str
    series_number: int | None
    instance_number: int | None
    series_description: str
    body_part_examined: str
    referring_physician_name: str
    study_id: str
    institution_name: str = ""
    department: str = ""            # Institutional Department Name (0008,1040)
    station_name: str = ""
    manufacturer: str = ""
    rows: int | None = None
    columns: int | None = None
    bits_allocated: int | None = None
    number_of_frames: int | None = None
    has_pixel_data: bool = False     # Pixel Data, Float or Double Float Pixel Data present (7FE0,00xx)


def is_valid_uid(value: str) -> bool:
    """PS3.5 9.1: 1 to 64 characters, digits and dots, no empty component, no leading zero in a component."""
    return 0 < len(value) <= UID_MAX_LENGTH and _UID.fullmatch(value) is not None


def read_dataset(stream: BinaryIO, *, stop_before_pixels: bool = False, defer_size: int | None = None) -> Dataset:
    """A Part 10 file read with pydicom (File Meta Information required); InvalidDicom otherwise.

    `defer_size`: values larger than this many bytes are skipped, not read, until accessed.
    """
    try:
        dataset = pydicom.dcmread(stream, stop_before_pixels=stop_before_pixels, defer_size=defer_size, force=False)
    except OSError:
        raise
    except InvalidDicomError:
        raise InvalidDicom("not a DICOM Part 10 file (PS3.10 7.1: 128-byte preamble, \"DICM\" prefix, "
                           "File Meta Information)") from None
    except _PARSE_ERRORS as exc:
        raise InvalidDicom(f"malformed DICOM Part 10 file: {exc}") from None
    file_meta = getattr(dataset, "file_meta", None)
    syntax = str(file_meta.get("TransferSyntaxUID") or "") if file_meta is not None else ""
    if not syntax:
        raise InvalidDicom("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    if not is_valid_uid(syntax):
        raise InvalidDicom(f"the Transfer Syntax UID (0002,0010) {syntax!r} is not a valid UID")
    return dataset


def text_value(dataset: Dataset, keyword: str) -> str:
    """An attribute as text: "" when absent or empty, values of a multi-valued attribute joined by "\\"."""
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def issuer_of_patient_id(dataset: Dataset) -> str:
    """Universal Entity ID of Issuer of Patient ID Qualifiers (0010,0024), else Issuer of Patient ID (0010,0021).

    PS3.3 C.7.1.1: the qualifiers identify the assigning authority unambiguously
    (an OID when the type is ISO), where Issuer of Patient ID is free text.
    """
    for item in dataset.get("IssuerOfPatientIDQualifiersSequence") or []:
        universal = text_value(item, "UniversalEntityID")
        if universal:
            return universal
    return text_value(dataset, "IssuerOfPatientID")


def _required_uid(dataset: Dataset, keyword: str, name: str) -> str:
    value = text_value(dataset, keyword)
    if not value:
        raise InvalidDicom(f"missing required attribute {name}")
    if not is_valid_uid(value):
        raise InvalidDicom(f"{name} {value!r} is not a valid UID (PS3.5 9.1)")
    return value


def _number(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _header(dataset: Dataset) -> InstanceHeader:
    uids = [_required_uid(dataset, keyword, name) for keyword, name in REQUIRED_UIDS]
    return InstanceHeader(
        sop_class_uid=uids[0], sop_instance_uid=uids[1], study_instance_uid=uids[2], series_instance_uid=uids[3],
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        modality=text_value(dataset, "Modality"),
        patient_id=text_value(dataset, "PatientID"),
        issuer_of_patient_id=issuer_of_patient_id(dataset),
        patient_name=text_value(dataset, "PatientName"),
        patient_birth_date=text_value(dataset, "PatientBirthDate"),
        patient_sex=text_value(dataset, "PatientSex"),
        study_date=text_value(dataset, "StudyDate"),
        study_time=text_value(dataset, "StudyTime"),
        accession_number=text_value(dataset, "AccessionNumber"),
        study_description=text_value(dataset, "StudyDescription"),
        series_number=_number(dataset, "SeriesNumber"),
        instance_number=_number(dataset, "InstanceNumber"),
        series_description=text_value(dataset, "SeriesDescription"),
        body_part_examined=text_value(dataset, "BodyPartExamined"),
        referring_physician_name=text_value(dataset, "ReferringPhysicianName"),
        study_id=text_value(dataset, "StudyID"),
        institution_name=text_value(dataset, "InstitutionName"),
        department=text_value(dataset, "InstitutionalDepartmentName"),
        station_name=text_value(dataset, "StationName"),
        manufacturer=text_value(dataset, "Manufacturer"),
        rows=_number(dataset, "Rows"),
        columns=_number(dataset, "Columns"),
        bits_allocated=_number(dataset, "BitsAllocated"),
        number_of_frames=_number(dataset, "NumberOfFrames"),
        has_pixel_data=any(tag in dataset for tag in PIXEL_DATA_TAGS),
    )


def read_instance_header(stream: BinaryIO) -> InstanceHeader:
    """The header of a Part 10 instance, pixel data skipped (not read); InvalidDicom when it is not acceptable.

    The stream must be seekable; it is read from its current position and
    left anywhere.
    """
    dataset = read_dataset(stream, defer_size=HEADER_DEFER_SIZE)
    try:
        return _header(dataset)
    except InvalidDicom:
        raise
    except _PARSE_ERRORS as exc:   # pydicom parses elements lazily: a malformed value surfaces here
        raise InvalidDicom(f"malformed DICOM data set: {exc}") from None
