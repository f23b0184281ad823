"""What the hub needs from a DICOM Part 10 file (PS3.10 7.1), read with pydicom without the pixel data.

`read_instance_header` answers an `InstanceHeader`: the identifying UIDs, the
transfer syntax from the File Meta Information, and the Patient, General
Study, General Series and General Image attributes the hub records and
queries on (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.6.1); plain single values
are taken from the elements' bytes, the rest decoded by pydicom, with the same
result (`_HeaderValues`). A file without the
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
from functools import cache
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
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


def _required_uid(value: str, name: str) -> str:
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


# Value representations whose values are in the default repertoire whatever the Specific Character Set says
# (PS3.5 6.1.2.3); and the character sets whose text is read here without pydicom (no Specific Character Set is
# the default repertoire: bytes beyond ASCII then go to pydicom, which has its own fallback).
_REPERTOIRE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_DATES_AND_NUMBERS = frozenset({"DA", "DS", "DT", "IS", "TM"})     # pydicom pads these off with spaces only
_ENCODINGS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf-8"}
_INTEGER = re.compile(r"[+-]?[0-9]+")


@cache
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag


class _HeaderValues:
    """The header's attributes of one data set, read from the element's bytes where that plainly gives what
    pydicom's decoding would (one value in ASCII, Latin-1 or UTF-8 as declared, no nulls, no code
    extensions), else through pydicom.

    pydicom turns each element it is asked for into a DataElement, with its character set looked up and its
    value checked: most of the time STOW-RS and C-STORE spend on an instance went there.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        # pydicom has decoded this element already, to know how to decode the others; several values join with
        # "\\" and so are not found
        self.encoding = _ENCODINGS.get(text_value(dataset, "SpecificCharacterSet"))

    def _raw(self, tag: int, vr: str, encoding: str = "ascii") -> str | None:
        """The element's single value as text, "" when absent; None when pydicom must decode it."""
        element = self.dataset.get_item(tag)
        if element is None:
            return ""
        if not isinstance(element, RawDataElement) or not isinstance(element.value, bytes):
            return None
        if (element.VR or dictionary_VR(tag)) != vr:
            return None
        try:
            text = element.value.decode(encoding).rstrip(" " if vr in _DATES_AND_NUMBERS else "\x00 ")
        except UnicodeDecodeError:
            return None
        if "\\" in text or "\x00" in text or "\x1b" in text:    # several values, a null, a code extension
            return None
        return text.strip()

    def text(self, keyword: str, vr: str) -> str:
        encoding = "ascii" if vr in _REPERTOIRE_VRS else self.encoding
        value = self._raw(_tag(keyword), vr, encoding) if encoding is not None else None
        return text_value(self.dataset, keyword) if value is None else value

    def integer(self, keyword: str, vr: str) -> int | None:
        tag = _tag(keyword)
        element = self.dataset.get_item(tag)
        if element is None:
            return None
        if isinstance(element, RawDataElement) and isinstance(element.value, bytes) \
                and (element.VR or dictionary_VR(tag)) == vr:
            if vr == "US" and len(element.value) == 2:
                return int.from_bytes(element.value, "little" if element.is_little_endian else "big")
            if vr == "IS":
                text = self._raw(tag, vr)
                if text == "":
                    return None
                if text is not None and _INTEGER.fullmatch(text):
                    return int(text)
        return _number(self.dataset, keyword)


def _header(dataset: Dataset) -> InstanceHeader:
    values = _HeaderValues(dataset)
    uids = [_required_uid(values.text(keyword, "UI"), name) for keyword, name in REQUIRED_UIDS]
    text, integer = values.text, values.integer
    return InstanceHeader(
        sop_class_uid=uids[0], sop_instance_uid=uids[1], study_instance_uid=uids[2], series_instance_uid=uids[3],
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        modality=text("Modality", "CS"),
        patient_id=text("PatientID", "LO"),
        issuer_of_patient_id=issuer_of_patient_id(dataset),
        patient_name=text("PatientName", "PN"),
        patient_birth_date=text("PatientBirthDate", "DA"),
        patient_sex=text("PatientSex", "CS"),
        study_date=text("StudyDate", "DA"),
        study_time=text("StudyTime", "TM"),
        accession_number=text("AccessionNumber", "SH"),
        study_description=text("StudyDescription", "LO"),
        series_number=integer("SeriesNumber", "IS"),
        instance_number=integer("InstanceNumber", "IS"),
        series_description=text("SeriesDescription", "LO"),
        body_part_examined=text("BodyPartExamined", "CS"),
        referring_physician_name=text("ReferringPhysicianName", "PN"),
        study_id=text("StudyID", "SH"),
        institution_name=text("InstitutionName", "LO"),
        department=text("InstitutionalDepartmentName", "LO"),
        station_name=text("StationName", "SH"),
        manufacturer=text("Manufacturer", "LO"),
        rows=integer("Rows", "US"),
        columns=integer("Columns", "US"),
        bits_allocated=integer("BitsAllocated", "US"),
        number_of_frames=integer("NumberOfFrames", "IS"),
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
