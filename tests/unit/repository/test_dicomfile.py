"""Reading a Part 10 instance's header (repository.dicomfile): known values, issuer rules, refusals."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable

import pytest
from pydicom import Dataset, config, dcmread
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

from repository.dicomfile import InstanceHeader, InvalidDicom, is_valid_uid, read_instance_header, text_value
from tests.factories.dicom import instance_bytes, make_instance


def header_of(ds: Dataset) -> InstanceHeader:
    return read_instance_header(io.BytesIO(instance_bytes(ds)))


def written_without_validation(ds: Dataset) -> bytes:
    """The instance as written by a sender that does not check its values."""
    with config.disable_value_validation():
        return instance_bytes(ds)


def test_header_fields_are_read_from_a_ct_instance() -> None:
    ds = make_instance(study_uid="1.2.3.4.1", series_uid="1.2.3.4.1.2", sop_uid="1.2.3.4.1.2.3", modality="CT",
                       patient_id="PAT-7", issuer="1.3.6.1.4.1.21367.2026.7", series_number=4, instance_number=12)

    assert header_of(ds) == InstanceHeader(
        sop_class_uid=CTImageStorage, sop_instance_uid="1.2.3.4.1.2.3", study_instance_uid="1.2.3.4.1",
        series_instance_uid="1.2.3.4.1.2", transfer_syntax_uid=ExplicitVRLittleEndian, modality="CT",
        patient_id="PAT-7", issuer_of_patient_id="1.3.6.1.4.1.21367.2026.7", patient_name="DOE^JANE",
        patient_birth_date="19700101", patient_sex="F", study_date="20260115", study_time="093000",
        accession_number="ACC-1", study_description="CT chest", series_number=4, instance_number=12,
        series_description="CT series 4", body_part_examined="CHEST", referring_physician_name="HOUSE^GREGORY",
        study_id="S1", manufacturer="xdshub tests", rows=ds.Rows, columns=ds.Columns, bits_allocated=16,
        has_pixel_data=True)


def test_an_instance_without_pixel_data_says_so() -> None:
    ds = make_instance(study_uid="1.2.3.4.1", series_uid="1.2.3.4.1.2", sop_uid="1.2.3.4.1.2.3", modality="CT",
                       patient_id="PAT-7", issuer="", series_number=1, instance_number=1)
    del ds.PixelData
    assert header_of(ds).has_pixel_data is False


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless])
def test_the_transfer_syntax_comes_from_the_file_meta(syntax: str) -> None:
    ds = make_instance(modality="MR", transfer_syntax=syntax)

    header = header_of(ds)

    assert (header.transfer_syntax_uid, header.sop_class_uid, header.modality) == (syntax, MRImageStorage, "MR")
    assert header.sop_instance_uid == ds.SOPInstanceUID


@pytest.mark.parametrize(("qualifier", "plain", "expected"), [
    ("1.2.3.99", "HOSPITAL-A", "1.2.3.99"),   # the qualifiers' Universal Entity ID wins
    (None, "HOSPITAL-A", "HOSPITAL-A"),       # else Issuer of Patient ID
    (None, None, ""),
], ids=["qualifiers", "issuer-of-patient-id", "none"])
def test_issuer_of_patient_id(qualifier: str | None, plain: str | None, expected: str) -> None:
    ds = make_instance(issuer=qualifier, issuer_of_patient_id=plain)

    assert header_of(ds).issuer_of_patient_id == expected


def test_absent_optional_attributes_become_empty_or_none() -> None:
    ds = make_instance()
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber",
                    "StudyDescription", "SeriesNumber", "InstanceNumber", "SeriesDescription", "BodyPartExamined",
                    "ReferringPhysicianName", "StudyID", "Modality"):
        delattr(ds, keyword)
    ds.PatientID = ""

    header = header_of(ds)

    assert (header.series_number, header.instance_number) == (None, None)
    assert {header.patient_name, header.patient_birth_date, header.patient_sex, header.study_date, header.study_time,
            header.accession_number, header.study_description, header.series_description, header.body_part_examined,
            header.referring_physician_name, header.study_id, header.modality, header.patient_id} == {""}


@pytest.mark.parametrize("data", [
    b"",
    b"this is a text file, not DICOM\n" * 10,
    instance_bytes(make_instance())[132:],   # a data set without preamble, "DICM" and file meta
], ids=["empty", "text", "no-part10-header"])
def test_not_part_10_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidDicom, match="not a DICOM Part 10 file"):
        read_instance_header(io.BytesIO(data))


@pytest.mark.parametrize(("keyword", "name"), [
    ("SOPClassUID", "SOP Class UID (0008,0016)"),
    ("SOPInstanceUID", "SOP Instance UID (0008,0018)"),
    ("StudyInstanceUID", "Study Instance UID (0020,000D)"),
    ("SeriesInstanceUID", "Series Instance UID (0020,000E)"),
])
def test_a_missing_required_uid_is_refused(keyword: str, name: str) -> None:
    ds = make_instance()
    delattr(ds, keyword)

    with pytest.raises(InvalidDicom, match=re.escape(f"missing required attribute {name}")):
        header_of(ds)


# pydicom warns about such values as it reads them; the refusal is the behaviour under test
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
@pytest.mark.filterwarnings("ignore:The value length .* for VR UI:UserWarning")
@pytest.mark.parametrize("uid", ["../etc/passwd", "1.2/3", "1.2.3\\..\\4", "1..2", "1.2.", "1.02.3", "1.2.a",
                                 "1." + "2" * 63])
@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_a_uid_with_path_or_invalid_characters_is_refused(keyword: str, uid: str) -> None:
    ds = make_instance()
    with config.disable_value_validation():
        setattr(ds, keyword, uid)

    with pytest.raises(InvalidDicom, match="is not a valid UID"):
        read_instance_header(io.BytesIO(written_without_validation(ds)))


def test_a_file_meta_without_transfer_syntax_is_refused() -> None:
    data = bytearray(instance_bytes(make_instance()))
    # rename (0002,0010) Transfer Syntax UID to the unused (0002,0011) element in place
    position = data.index(b"\x02\x00\x10\x00UI")
    data[position + 2:position + 4] = b"\x11\x00"

    with pytest.raises(InvalidDicom, match=r"no Transfer Syntax UID \(0002,0010\)"):
        read_instance_header(io.BytesIO(bytes(data)))


@pytest.mark.parametrize(("value", "valid"), [
    ("1.2.840.10008.1.2.1", True),
    ("0", True),
    ("2.25.0.1", True),
    ("1." + "2" * 62, True),        # 64 characters
    ("1." + "2" * 63, False),       # 65
    ("", False),
    ("1.02", False),                # leading zero in a component
    ("1..2", False),
    (".1.2", False),
    ("1.2.", False),
    ("1.2/3", False),
    ("../etc", False),
    ("1.2.3 ", False),
])
def test_is_valid_uid(value: str, valid: bool) -> None:
    assert is_valid_uid(value) is valid


# -- the header read from the elements' bytes gives exactly what pydicom's decoding gives ----------------------

TEXT_FIELDS = {
    "sop_class_uid": "SOPClassUID", "sop_instance_uid": "SOPInstanceUID", "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID", "modality": "Modality", "patient_id": "PatientID",
    "patient_name": "PatientName", "patient_birth_date": "PatientBirthDate", "patient_sex": "PatientSex",
    "study_date": "StudyDate", "study_time": "StudyTime", "accession_number": "AccessionNumber",
    "study_description": "StudyDescription", "series_description": "SeriesDescription",
    "body_part_examined": "BodyPartExamined", "referring_physician_name": "ReferringPhysicianName",
    "study_id": "StudyID", "institution_name": "InstitutionName", "department": "InstitutionalDepartmentName",
    "station_name": "StationName", "manufacturer": "Manufacturer",
}
NUMBER_FIELDS = {"series_number": "SeriesNumber", "instance_number": "InstanceNumber", "rows": "Rows",
                 "columns": "Columns", "bits_allocated": "BitsAllocated", "number_of_frames": "NumberOfFrames"}


def decoded_by_pydicom(data: bytes) -> dict[str, object]:
    """The oracle: every field through pydicom's own decoding of the element."""
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    fields: dict[str, object] = {field: text_value(ds, keyword) for field, keyword in TEXT_FIELDS.items()}
    for field, keyword in NUMBER_FIELDS.items():
        value = ds.get(keyword)
        try:
            fields[field] = None if value is None or value == "" else int(value)
        except (TypeError, ValueError):
            fields[field] = None
    return fields


def patched(ds: Dataset, replacements: dict[str, bytes], charset: str | None = None) -> bytes:
    """The instance with some values' bytes replaced as written (placeholders of the same length), so that
    padding, nulls and undeclared bytes reach the reader exactly."""
    if charset is not None:
        ds.SpecificCharacterSet = charset
    placeholders = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # a placeholder is no valid date or number
        for n, (keyword, raw) in enumerate(replacements.items()):
            if not raw:
                setattr(ds, keyword, "")
                continue
            number = keyword in ("InstanceNumber", "SeriesNumber")     # IS: pydicom takes only numbers
            placeholder = str(98765430 + n).rjust(len(raw)) if number else f"Q{n}".ljust(len(raw), "Z")
            setattr(ds, keyword, placeholder)
            placeholders[placeholder.encode()] = raw
    data = written_without_validation(ds)
    for placeholder, raw in placeholders.items():
        assert data.count(placeholder) == 1
        data = data.replace(placeholder, raw)
    return data


def plain() -> Dataset:
    return make_instance(patient_id="PAT-7", series_number=4, instance_number=12)


def big_endian() -> Dataset:
    ds = plain()
    del ds.PixelData             # pydicom encodes no big endian pixel data; the header is what is read here
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    return ds


@pytest.mark.parametrize("data", [
    pytest.param(lambda: instance_bytes(plain()), id="explicit-little"),
    pytest.param(lambda: instance_bytes(make_instance(transfer_syntax=ImplicitVRLittleEndian)), id="implicit"),
    pytest.param(lambda: instance_bytes(big_endian()), id="explicit-big"),
    pytest.param(lambda: patched(plain(), {"PatientName": "Yamada^Tarou=山田^太郎".encode(),
                                           "InstitutionName": "Klinikum Müller".encode()}, "ISO_IR 192"),
                 id="utf-8-declared"),
    pytest.param(lambda: patched(plain(), {"PatientName": "Müller^Hans".encode("latin-1")}, "ISO_IR 100"),
                 id="latin-1-declared"),
    pytest.param(lambda: patched(plain(), {"PatientName": "Müller^Hans ".encode()}, ""), id="utf-8-undeclared"),
    pytest.param(lambda: patched(plain(), {"PatientName": "Müller^Hans".encode()}, "ISO_IR 6"),
                 id="utf-8-declared-ascii"),
    pytest.param(lambda: patched(plain(), {"PatientName": b"M\x1b-A\xfcller^Hans"}, "ISO_IR 100"),
                 id="latin-1-escape"),
    pytest.param(lambda: patched(plain(), {"PatientName": "Yamada^Tarou=\x1b$B;3ED\x1b(B".encode("latin-1")},
                                 "\\ISO 2022 IR 87"), id="iso-2022"),
    pytest.param(lambda: patched(plain(), {"PatientID": b"PAT-7\x00", "StationName": b" CT01 ",
                                           "AccessionNumber": b"A\x00B ", "Modality": b"CT\\PT "}),
                 id="padding-nulls-multiple-values"),
    pytest.param(lambda: patched(plain(), {"StudyDate": b"20260115\x00\x00", "StudyTime": b" 093000 "}),
                 id="dates-padded"),
    pytest.param(lambda: patched(plain(), {"InstanceNumber": b"+7      ", "SeriesNumber": b"  04    "}),
                 id="integers"),
    pytest.param(lambda: patched(plain(), {"InstanceNumber": b"1.0     ", "SeriesNumber": b"        "}),
                 id="integers-odd"),
    pytest.param(lambda: patched(plain(), {"StudyDescription": b"", "PatientName": b"  "}), id="empty"),
])
def test_the_header_is_what_pydicom_decodes(data: Callable[[], bytes]) -> None:
    written = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # pydicom warns of "1.0" as an IS, on either path
        header = read_instance_header(io.BytesIO(written))
        expected = decoded_by_pydicom(written)
    assert {field: getattr(header, field) for field in (*TEXT_FIELDS, *NUMBER_FIELDS)} == expected
