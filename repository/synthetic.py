"""Synthetic imaging studies for the demo: real DICOM Part 10 instances of a made-up patient.

Each instance is a 16-bit CT or MR slice of a simple phantom (a disc whose
radius changes from slice to slice), with the patient, study and series
attributes a PACS would send, and the patient's assigning authority in Issuer
of Patient ID Qualifiers (Universal Entity ID, ISO). They enter the hub
through `repository.ingest`, the path every other source takes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

STORAGE_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


@dataclass(frozen=True)
class SyntheticPatient:
    patient_id: str
    assigning_authority: str     # an OID
    name: str                    # PN, e.g. "DOE^JANE"
    birth_date: str              # DA
    sex: str                     # M, F or O


def phantom_slice(size: int, slice_number: int, slices: int) -> np.ndarray:
    """A disc on a dark background, its radius following the slice position (values 0..2000)."""
    y, x = np.mgrid[0:size, 0:size]
    radius = size * (0.15 + 0.25 * np.sin(np.pi * (slice_number + 0.5) / slices))
    inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 <= radius ** 2
    return np.where(inside, 1000 + 10 * slice_number, 24).astype(np.uint16)


def synthetic_study(patient: SyntheticPatient, modality: str, description: str, slices: int = 8,
                    size: int = 128, accession: str = "") -> list[bytes]:
    """One study of one series: `slices` instances as Part 10 bytes (Explicit VR Little Endian)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    files = []
    for number in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = STORAGE_CLASSES[modality]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = STORAGE_CLASSES[modality]
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName, ds.PatientID = patient.name, patient.patient_id
        qualifier = Dataset()
        qualifier.UniversalEntityID, qualifier.UniversalEntityIDType = patient.assigning_authority, "ISO"
        ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
        ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261128", "101500", accession
        ds.StudyDescription = ds.SeriesDescription = description
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, number + 1
        ds.Modality, ds.Manufacturer, ds.ReferringPhysicianName = modality, "xdshub demo", "REFERRER^ROBIN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = phantom_slice(size, number, slices).tobytes()
        sink = io.BytesIO()
        dcmwrite(sink, ds, enforce_file_format=True)
        files.append(sink.getvalue())
    return files
