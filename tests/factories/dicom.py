"""Small real DICOM instances for tests: CT or MR, 16-bit monochrome pixels with known values.

`make_instance` builds one Part 10 dataset (file meta included) of a given
study, series and patient; `make_study` a whole study of several series.
The pixel values are `pixel_values(rows, columns)`, so a test can compare a
decoded `pixel_array` against them after storage or transcoding. Explicit VR
Little Endian by default; `transfer_syntax` gives Implicit VR or Deflated
Little Endian (same bytes in the data set, other encoding) or any syntax
pydicom can compress into here (RLE Lossless, JPEG-LS Lossless).
The patient's assigning authority goes into Issuer of Patient ID Qualifiers
(Universal Entity ID, type ISO; PS3.3 C.7.1.1), `issuer_of_patient_id` into
the plain Issuer of Patient ID (0010,0021).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)

__all__ = ["instance_bytes", "make_instance", "make_study", "pixel_values", "write_instance"]


def pixel_values(rows: int = 8, columns: int = 8) -> np.ndarray:
    """The known 16-bit values every factory image holds (above 255, so both bytes matter)."""
    return ((np.arange(rows * columns, dtype=np.uint32) * 37 + 1000) % 4096).astype(np.uint16).reshape(rows, columns)


def _patient_and_study(ds: Dataset, study_uid: str, patient_id: str, issuer: str | None,
                       issuer_of_patient_id: str | None) -> None:
    ds.PatientName = "DOE^JANE"
    ds.PatientID = patient_id
    if issuer:
        qualifier = Dataset()
        qualifier.UniversalEntityID = issuer
        qualifier.UniversalEntityIDType = "ISO"
        ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
    if issuer_of_patient_id:
        ds.IssuerOfPatientID = issuer_of_patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20260115"
    ds.StudyTime = "093000"
    ds.AccessionNumber = "ACC-1"
    ds.StudyID = "S1"
    ds.StudyDescription = "CT chest"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"


def _image(ds: Dataset, rows: int, columns: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixel_values(rows, columns).tobytes()


def make_instance(*, study_uid: str | None = None, series_uid: str | None = None, sop_uid: str | None = None,
                  modality: str = "CT", patient_id: str = "P1", issuer: str | None = "1.2.3",
                  issuer_of_patient_id: str | None = None, transfer_syntax: str = ExplicitVRLittleEndian,
                  rows: int = 8, columns: int = 8, series_number: int = 1, instance_number: int = 1,
                  body_part: str = "CHEST") -> Dataset:
    """One CT or MR instance with file meta, ready to write as Part 10."""
    sop_class = SOP_CLASSES[modality]
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.Manufacturer = "xdshub tests"
    _patient_and_study(ds, study_uid or generate_uid(), patient_id, issuer, issuer_of_patient_id)
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.BodyPartExamined = body_part
    ds.InstanceNumber = instance_number
    _image(ds, rows, columns)
    return _encoded(ds, UID(transfer_syntax))


def _encoded(ds: Dataset, transfer_syntax: UID) -> Dataset:
    if transfer_syntax in NATIVE:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    return ds


def make_study(n_series: int = 2, per_series: int = 3, *, study_uid: str | None = None,
               modalities: Sequence[str] = ("CT", "MR"), patient_id: str = "P1", issuer: str | None = "1.2.3",
               transfer_syntax: str = ExplicitVRLittleEndian) -> list[Dataset]:
    """A study of `n_series` series (modalities taken in turn) of `per_series` instances each."""
    study_uid = study_uid or generate_uid()
    datasets = []
    for s in range(n_series):
        series_uid = generate_uid()
        for i in range(per_series):
            datasets.append(make_instance(study_uid=study_uid, series_uid=series_uid,
                                          modality=modalities[s % len(modalities)], patient_id=patient_id,
                                          issuer=issuer, transfer_syntax=transfer_syntax, series_number=s + 1,
                                          instance_number=i + 1))
    return datasets


def instance_bytes(ds: Dataset) -> bytes:
    """The dataset as a Part 10 file (preamble, DICM, file meta) in its file meta's transfer syntax."""
    sink = io.BytesIO()
    dcmwrite(sink, ds, enforce_file_format=True)
    return sink.getvalue()


def write_instance(ds: Dataset, path: Path) -> None:
    path.write_bytes(instance_bytes(ds))
