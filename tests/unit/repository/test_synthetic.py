"""The demo's synthetic studies: real Part 10 files the ingest path accepts, with known pixel values."""

from __future__ import annotations

import io

import pydicom

from repository.dicomfile import read_instance_header
from repository.synthetic import SyntheticPatient, phantom_slice, synthetic_study

PATIENT = SyntheticPatient("DEMO-9", "1.3.6.1.4.1.21367.2026.10", "DEMO^PATIENT", "19700101", "O")


def test_phantom_is_a_disc_brighter_in_later_slices() -> None:
    first, last = phantom_slice(64, 0, 4), phantom_slice(64, 3, 4)
    assert (first[32, 32], first[0, 0]) == (1000, 24)
    assert last[32, 32] == 1030


def test_a_study_is_one_series_of_the_patient_read_back_by_ingest() -> None:
    files = synthetic_study(PATIENT, "MR", "MR brain", slices=3, size=16, accession="ACC-1")
    headers = [read_instance_header(io.BytesIO(data)) for data in files]
    assert len({h.study_instance_uid for h in headers}) == len({h.series_instance_uid for h in headers}) == 1
    assert len({h.sop_instance_uid for h in headers}) == 3
    assert {(h.patient_id, h.issuer_of_patient_id, h.modality) for h in headers} == \
        {("DEMO-9", "1.3.6.1.4.1.21367.2026.10", "MR")}
    dataset = pydicom.dcmread(io.BytesIO(files[1]))
    assert (dataset.pixel_array == phantom_slice(16, 1, 3)).all()
