"""Captures: JPEG, PNG, PDF and MP4 wrapped into DICOM, headers carried, studies grouped, bad input refused."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_fragments
from sqlalchemy import func, select

from hub.db import Database
from repository.blobstore import FileBlobStore
from repository.capture import (
    Captured,
    CaptureError,
    CaptureMetadata,
    ContentMismatch,
    UnsupportedMedia,
    capture,
    parse_birth_date,
    parse_metadata,
)
from repository.ingest import Sender, ingest
from repository.tables import DicomInstance
from tests.factories.dicom import instance_bytes, make_instance
from tests.factories.media import jpeg_bytes, mp4_bytes, pdf_bytes, picture_pixels, png_bytes
from tests.unit.repository.conftest import blob_files, read_blob

ORG = "1.2.3.4.5"
NOW = datetime(2026, 3, 2, 10, 30, 0).astimezone()
META = CaptureMetadata(patient_id="PAT-7", patient_name="Doe^Jane", birth_date="19800214", accession="",
                       body_part="SKIN", device="DermCam 3", department="Dermatology")

Capture = Callable[..., Captured]


@pytest.fixture
def sender(organisation_factory: Callable[..., int]) -> Sender:
    return Sender(organisation_factory("Org A", ORG), ORG)


@pytest.fixture
def run(database: Database, file_store: FileBlobStore, sender: Sender, tmp_path: Path) -> Capture:
    """run(data, metadata=META, media_type=None, filename=..., now=NOW): one capture in its own transaction."""
    def go(data: bytes, metadata: CaptureMetadata = META, *, media_type: str | None = None,
           filename: str | None = None, now: datetime = NOW) -> Captured:
        with database.session() as session:
            return capture(session, file_store, io.BytesIO(data), metadata, sender, media_type=media_type,
                           filename=filename, spool_dir=tmp_path / "spool", now=now)
    return go


def stored(store: FileBlobStore, result: Captured) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(read_blob(store, result.instance.sha256)))


def only_fragment(ds: pydicom.Dataset) -> bytes:
    fragments = list(generate_fragments(ds.PixelData))
    assert fragments[0] == b""                     # empty Basic Offset Table
    return b"".join(fragments[1:])


def test_jpeg_from_a_named_device_is_a_vl_photograph_kept_as_is(run: Capture, file_store: FileBlobStore) -> None:
    data = jpeg_bytes()
    result = run(data, filename="lesion.jpg")
    ds = stored(file_store, result)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4" and ds.Modality == "XC"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert only_fragment(ds).rstrip(b"\x00") == data.rstrip(b"\x00")        # no recompression
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation) == (16, 24, 3, "YBR_FULL_422")
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(ds.pixel_array.astype(int) - decoded).max() <= 3              # the same picture
    assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == ("PAT-7", "Doe^Jane", "19800214")
    assert (ds.BodyPartExamined, ds.InstitutionalDepartmentName) == ("SKIN", "Dermatology")
    assert (ds.ManufacturerModelName, ds.StationName, ds.SeriesDescription) == ("DermCam 3",) * 3
    row = result.instance
    assert row.patient_id == f"PAT-7^^^&{ORG}&ISO" and row.station_name == "DermCam 3"
    assert row.department == "Dermatology" and row.body_part_examined == "SKIN"


@pytest.mark.parametrize("mode, photometric, bits", [("RGB", "RGB", 8), ("L", "MONOCHROME2", 8),
                                                     ("I;16", "MONOCHROME2", 16)])
def test_png_without_a_device_is_a_secondary_capture_with_the_same_pixels(
        run: Capture, file_store: FileBlobStore, mode: str, photometric: str, bits: int) -> None:
    result = run(png_bytes(mode=mode), CaptureMetadata(patient_id="PAT-7"), filename="screen.png")
    ds = stored(file_store, result)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and ds.Modality == "OT" and ds.ConversionType == "WSD"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.LossyImageCompression) == (photometric, bits, "00")
    assert np.array_equal(ds.pixel_array, picture_pixels(mode=mode))
    assert "ManufacturerModelName" not in ds and "StationName" not in ds


def test_png_alpha_is_dropped_and_the_colours_kept(run: Capture, file_store: FileBlobStore) -> None:
    rgba = np.dstack([picture_pixels(), np.full((12, 16), 128, np.uint8)])
    sink = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(sink, format="PNG")
    ds = stored(file_store, run(sink.getvalue(), media_type="image/png"))
    assert np.array_equal(ds.pixel_array, picture_pixels())


def test_progressive_jpeg_is_decoded_not_recompressed(run: Capture, file_store: FileBlobStore) -> None:
    data = jpeg_bytes(progressive=True)
    ds = stored(file_store, run(data, media_type="image/jpeg"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and ds.LossyImageCompression == "01"
    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_pdf_is_an_encapsulated_pdf(run: Capture, file_store: FileBlobStore) -> None:
    data = pdf_bytes() + b"x"     # odd length: padded in DICOM, the true length recorded
    ds = stored(file_store, run(data, filename="consent form.pdf"))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf" and ds.DocumentTitle == "consent form"
    assert ds.EncapsulatedDocumentLength == len(data)
    assert ds.EncapsulatedDocument[:len(data)] == data and ds.BurnedInAnnotation == "YES"


def test_mp4_with_h264_high_profile_is_a_video_photograph_kept_as_is(run: Capture,
                                                                     file_store: FileBlobStore) -> None:
    data = mp4_bytes(width=1280, height=720, frames=75, timescale=30_000, frame_duration=1001)
    result = run(data, media_type="video/mp4")
    ds = stored(file_store, result)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4.1"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (720, 1280, 75)
    assert float(ds.FrameTime) == pytest.approx(33.3667, abs=1e-3) and ds.FrameIncrementPointer == 0x00181063
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420"
    assert only_fragment(ds)[:len(data)] == data
    assert result.instance.number_of_frames == 75


@pytest.mark.parametrize("options, syntax_or_error", [
    ({"level": 42, "width": 1920, "height": 1080}, "1.2.840.10008.1.2.4.104"),
    ({"profile": 77, "level": 31}, "1.2.840.10008.1.2.4.102"),
    ({"codec": b"hvc1"}, "only H.264"),
    ({"profile": 110}, "profile 110"),
    ({"width": 3840, "height": 2160, "level": 51}, "exceeds 1920x1080"),
    ({"level": 50}, "above 4.2"),
    ({"brand": b"qt  "}, "is not MP4"),
])
def test_which_mp4_files_can_be_kept_as_is(run: Capture, file_store: FileBlobStore, options: dict[str, Any],
                                           syntax_or_error: str) -> None:
    data = mp4_bytes(**options)
    if syntax_or_error.startswith("1.2."):
        assert stored(file_store, run(data, filename="v.mp4")).file_meta.TransferSyntaxUID == syntax_or_error
        return
    with pytest.raises(UnsupportedMedia, match=syntax_or_error):
        run(data, filename="v.mp4")
    assert blob_files(file_store) == []


@pytest.mark.parametrize("data, media_type, filename, error, message", [
    (png_bytes(), "image/jpeg", None, ContentMismatch, "declared JPEG .* but its content is PNG"),
    (jpeg_bytes(), None, "scan.png", ContentMismatch, "declared PNG"),
    (b"hello, not a pdf", "application/pdf", None, ContentMismatch, "does not begin with that type's signature"),
    (b"\x00\x00\x00\x18moov", "video/mp4", None, ContentMismatch, "declared MP4"),
    (b"GIF89a...", "image/gif", None, UnsupportedMedia, "image/gif is not a type"),
    (b"plain", None, "notes.txt", UnsupportedMedia, r"\.txt files"),
    (b"plain", None, None, UnsupportedMedia, "none of JPEG, PNG, PDF or MP4"),
    (instance_bytes(make_instance()), None, "x.dcm", UnsupportedMedia, "DICOM already"),
    (b"\xff\xd8\xff\xe0\x00\x04", "image/jpeg", None, ContentMismatch, "no frame header"),
])
def test_content_not_what_its_type_says_is_refused_and_nothing_kept(
        run: Capture, file_store: FileBlobStore, database: Database, data: bytes, media_type: str | None,
        filename: str | None, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        run(data, media_type=media_type, filename=filename)
    assert blob_files(file_store) == []
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(DicomInstance)) == 0


def test_status_codes_of_the_errors() -> None:
    assert (ContentMismatch.status, UnsupportedMedia.status, CaptureError.status) == (400, 415, 400)


def test_same_accession_joins_the_same_study_and_device_series(run: Capture) -> None:
    meta = CaptureMetadata(patient_id="PAT-7", accession="A100", device="DermCam 3")
    first, second = run(jpeg_bytes(), meta), run(png_bytes(), meta, now=NOW + timedelta(days=1))
    other_device = run(jpeg_bytes(), CaptureMetadata(patient_id="PAT-7", accession="A100", device="Scope 9"))
    document = run(pdf_bytes(), meta)
    studies = {r.instance.study_instance_uid for r in (first, second, other_device, document)}
    assert len(studies) == 1
    assert first.instance.series_instance_uid == second.instance.series_instance_uid
    assert (first.instance.instance_number, second.instance.instance_number) == (1, 2)
    assert first.instance.study_date == second.instance.study_date == "20260302"
    assert len({r.instance.series_instance_uid for r in (first, other_device, document)}) == 3
    assert sorted(r.instance.series_number or 0 for r in (first, other_device, document)) == [1, 2, 3]


def test_without_accession_the_same_patient_on_the_same_day_shares_a_study(run: Capture) -> None:
    meta = CaptureMetadata(patient_id="PAT-7")
    morning, evening = run(jpeg_bytes(), meta), run(png_bytes(), meta, now=NOW + timedelta(hours=8))
    tomorrow = run(jpeg_bytes(), meta, now=NOW + timedelta(days=1))
    someone_else = run(jpeg_bytes(), CaptureMetadata(patient_id="PAT-8"))
    with_accession = run(jpeg_bytes(), CaptureMetadata(patient_id="PAT-7", accession="A1"))
    assert morning.instance.study_instance_uid == evening.instance.study_instance_uid
    assert len({r.instance.study_instance_uid for r in (morning, tomorrow, someone_else, with_accession)}) == 4


def test_a_capture_joins_a_modality_exam_by_accession(run: Capture, database: Database,
                                                      file_store: FileBlobStore, sender: Sender) -> None:
    exam = make_instance(patient_id="PAT-7", issuer=None)      # accession ACC-1, sender's OID as authority
    with database.session() as session:
        ingest(session, file_store, io.BytesIO(instance_bytes(exam)), sender)
    result = run(jpeg_bytes(), CaptureMetadata(patient_id="PAT-7", accession="ACC-1", device="Cam"))
    ds = stored(file_store, result)
    assert ds.StudyInstanceUID == exam.StudyInstanceUID and ds.StudyDate == exam.StudyDate
    assert ds.StudyDescription == exam.StudyDescription and ds.SeriesNumber == 2
    with pytest.raises(CaptureError, match="accession ACC-1 belongs to a study of another patient"):
        run(jpeg_bytes(), CaptureMetadata(patient_id="PAT-9", accession="ACC-1"))


@pytest.mark.parametrize("value, expected", [("19800214", "19800214"), ("1980-02-14", "19800214"), ("", "")])
def test_birth_dates_accepted(value: str, expected: str) -> None:
    assert parse_birth_date(value, today=date(2026, 3, 2)) == expected


@pytest.mark.parametrize("value", ["1980-13-01", "19800231", "1980/02/14", "14.02.1980", "800214", "20270101",
                                   "1980-2-14", "18000101"])
def test_bad_birth_dates_refused(value: str) -> None:
    with pytest.raises(CaptureError, match="birth_date"):
        parse_birth_date(value, today=date(2026, 3, 2))


@pytest.mark.parametrize("fields, message", [
    ({}, "patient_id is required"),
    ({"patient_id": "  "}, "patient_id is required"),
    ({"patient_id": "P\\1"}, "backslash"),
    ({"patient_id": "P1", "accession": "A" * 17}, "accession is longer than 16"),
    ({"patient_id": "P1", "body_part": "left-arm"}, "not a DICOM code string"),
    ({"patient_id": "P1", "birth_date": "yesterday"}, "birth_date"),
    ({"patient_id": "P1", "colour": "red"}, "unknown field"),
])
def test_bad_metadata_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        parse_metadata(fields)


def test_metadata_normalised() -> None:
    meta = parse_metadata({"patient_id": " P1 ", "body_part": "skin", "birth_date": "1980-02-14"})
    assert (meta.patient_id, meta.body_part, meta.birth_date) == ("P1", "SKIN", "19800214")
