"""Transfer syntax choice and transcoding (repository.transcode): pixel values compared to the known ones."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.pixels import get_encoder
from pydicom.uid import (
    MPEG2MPML,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from repository.dicomfile import read_instance_header
from repository.manifest import ManifestInstance, ManifestStudy, build_manifest, write_manifest
from repository.transcode import TranscodeUnavailable, can_transcode, choose_transfer_syntax, transcode
from tests.factories.dicom import instance_bytes, make_instance, pixel_values

EXPLICIT, IMPLICIT, DEFLATED = ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian
NOT_A_SYNTAX = "1.2.3.4.5"
JPEG_LS_ENCODER = pytest.mark.skipif(not get_encoder(JPEGLSLossless).is_available,
                                     reason="no JPEG-LS encoder (pyjpegls) installed")


def transcoded(ds: Dataset, target: str) -> Dataset:
    sink = io.BytesIO()
    transcode(io.BytesIO(instance_bytes(ds)), sink, target)
    sink.seek(0)
    return pydicom.dcmread(sink)


@pytest.mark.parametrize(("stored", "wanted", "expected"), [
    (EXPLICIT, [], EXPLICIT),                                 # nothing listed: anything goes, so as stored
    (EXPLICIT, [EXPLICIT], EXPLICIT),
    (EXPLICIT, [IMPLICIT, EXPLICIT], EXPLICIT),               # stored wins when it is accepted at all
    (EXPLICIT, [IMPLICIT], IMPLICIT),
    (IMPLICIT, [DEFLATED], DEFLATED),
    (DEFLATED, [IMPLICIT], IMPLICIT),
    (EXPLICIT, [RLELossless], RLELossless),
    (RLELossless, [IMPLICIT, EXPLICIT], IMPLICIT),            # first reachable in the caller's order
    (RLELossless, [EXPLICIT], EXPLICIT),
    (IMPLICIT, [JPEGBaseline8Bit, EXPLICIT], EXPLICIT),       # no JPEG baseline encoder: skipped
    (EXPLICIT, [JPEGBaseline8Bit], None),
    (EXPLICIT, [JPEGLSNearLossless], None),                   # lossy never produced
    (EXPLICIT, [ExplicitVRBigEndian], None),                  # retired, neither written ...
    (ExplicitVRBigEndian, [EXPLICIT], None),                  # ... nor read
    (ExplicitVRBigEndian, [ExplicitVRBigEndian], ExplicitVRBigEndian),   # but given as held
    (MPEG2MPML, [EXPLICIT], None),                            # no decoder for video
    (EXPLICIT, [NOT_A_SYNTAX], None),
    (NOT_A_SYNTAX, [EXPLICIT], None),
])
def test_choose_transfer_syntax(stored: str, wanted: list[str], expected: str | None) -> None:
    assert choose_transfer_syntax(stored, wanted) == expected


@JPEG_LS_ENCODER
def test_jpeg_ls_lossless_is_offered_when_its_encoder_is_installed() -> None:
    assert choose_transfer_syntax(RLELossless, [JPEGLSNearLossless, JPEGLSLossless]) == JPEGLSLossless
    assert can_transcode(EXPLICIT, JPEGLSLossless)


@pytest.mark.parametrize(("stored", "target"), [
    (EXPLICIT, IMPLICIT),
    (IMPLICIT, EXPLICIT),
    (EXPLICIT, DEFLATED),
    (DEFLATED, IMPLICIT),
    (EXPLICIT, RLELossless),
    (IMPLICIT, RLELossless),
    (RLELossless, EXPLICIT),
    (RLELossless, IMPLICIT),
    (RLELossless, DEFLATED),
    pytest.param(EXPLICIT, JPEGLSLossless, marks=JPEG_LS_ENCODER),
    pytest.param(JPEGLSLossless, RLELossless, marks=JPEG_LS_ENCODER),
])
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_transcoding_keeps_the_pixel_values_and_the_instance(stored: str, target: str, modality: str) -> None:
    ds = make_instance(modality=modality, transfer_syntax=stored, rows=6, columns=10)

    result = transcoded(ds, target)

    assert result.file_meta.TransferSyntaxUID == target
    assert result.SOPInstanceUID == result.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (result.SOPClassUID, result.PatientID, str(result.PatientName)) == (ds.SOPClassUID, "P1", "DOE^JANE")
    np.testing.assert_array_equal(result.pixel_array, pixel_values(6, 10))


@pytest.mark.parametrize("target", [IMPLICIT, DEFLATED])
def test_native_to_native_leaves_the_pixel_bytes_as_they_are(target: str) -> None:
    result = transcoded(make_instance(), target)

    assert result.PixelData == pixel_values().tobytes()


def test_the_transcoded_file_is_an_instance_the_hub_reads() -> None:
    ds = make_instance(study_uid="1.2.3.7", series_uid="1.2.3.7.1", sop_uid="1.2.3.7.1.1")
    sink = io.BytesIO()
    transcode(io.BytesIO(instance_bytes(ds)), sink, RLELossless)
    sink.seek(0)

    header = read_instance_header(sink)

    assert (header.sop_instance_uid, header.series_instance_uid, header.study_instance_uid,
            header.transfer_syntax_uid) == ("1.2.3.7.1.1", "1.2.3.7.1", "1.2.3.7", RLELossless)


def test_a_data_set_without_pixel_data_is_only_relabelled() -> None:
    image = make_instance()
    kos = build_manifest(ManifestStudy(image.StudyInstanceUID, "P1", "1.2.3", "DOE^JANE", "", "", "", "", "", "", "",
                                       (ManifestInstance(image.SOPClassUID, image.SOPInstanceUID,
                                                         image.SeriesInstanceUID, "CT"),)), "1.2.3.4")
    source = io.BytesIO()
    write_manifest(kos, source)
    source.seek(0)
    sink = io.BytesIO()

    transcode(source, sink, RLELossless)
    sink.seek(0)
    result = pydicom.dcmread(sink)

    assert result.file_meta.TransferSyntaxUID == RLELossless
    assert result.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[
        0].ReferencedSOPInstanceUID == image.SOPInstanceUID


@pytest.mark.parametrize("target", [JPEGBaseline8Bit, JPEGLSNearLossless, ExplicitVRBigEndian, MPEG2MPML,
                                    NOT_A_SYNTAX])
def test_an_unsupported_target_raises_and_writes_nothing(target: str) -> None:
    sink = io.BytesIO()

    with pytest.raises(TranscodeUnavailable, match="cannot be given in"):
        transcode(io.BytesIO(instance_bytes(make_instance())), sink, target)
    assert sink.getvalue() == b""


def test_pixel_data_the_encoder_cannot_take_raises() -> None:
    ds = make_instance()
    del ds.Rows   # the RLE encoder needs the image's dimensions

    with pytest.raises(TranscodeUnavailable, match="failed for this instance"):
        transcode(io.BytesIO(instance_bytes(ds)), io.BytesIO(), RLELossless)


def test_a_source_that_is_not_dicom_raises() -> None:
    with pytest.raises(TranscodeUnavailable, match="not readable"):
        transcode(io.BytesIO(b"not dicom"), io.BytesIO(), EXPLICIT)
