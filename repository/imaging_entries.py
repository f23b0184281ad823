"""What a manifest (KOS) DocumentEntry says about the imaging study it references (RAD TF-3 4.68.4.1.2.3.2).

The Imaging Document Source fills referenceIdList with each Study Instance
UID and eventCodeList with the acquisition modalities; when the submitted
entry lacks them the repository adds them from the manifest and from the
instances this hub holds. The references themselves are recorded so RAD-69
can tell which retrieve location holds each instance.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.builders import code_classification
from registry.model import Code, ExtrinsicObject
from registry.vocabulary import DocumentEntryScheme
from repository.manifest import Manifest
from repository.tables import DicomInstance, ManifestReference
from repository.vocabulary import (
    DCM_CODING_SCHEME,
    DICOM_MIME_TYPE,
    KOS_FORMAT_CODE,
    REFERENCE_ID_LIST_SLOT,
    study_reference_id,
)

# DICOM CID 29 display names of the modalities a hub commonly sees (PS3.16)
MODALITY_NAMES = {
    "CT": "Computed Tomography", "MR": "Magnetic Resonance", "US": "Ultrasound", "CR": "Computed Radiography",
    "DX": "Digital Radiography", "MG": "Mammography", "NM": "Nuclear Medicine", "PT": "Positron emission tomography",
    "XA": "X-Ray Angiography", "RF": "Radio Fluoroscopy", "ES": "Endoscopy", "XC": "External-camera Photography",
    "OP": "Ophthalmic photography", "SM": "Slide Microscopy", "OT": "Other",
}


def is_manifest_entry(entry: ExtrinsicObject) -> bool:
    formats = {c.code for c in entry.codes(DocumentEntryScheme.FORMAT_CODE)}
    return entry.mime_type == DICOM_MIME_TYPE and KOS_FORMAT_CODE in formats


def modalities_of(session: Session, manifest: Manifest) -> list[str]:
    """Modalities of the referenced instances this hub holds, in a stable order."""
    uids = [i.sop_instance_uid for s in manifest.studies for series in s.series for i in series.instances]
    found: set[str] = set()
    for start in range(0, len(uids), 500):
        found.update(session.scalars(select(DicomInstance.modality).distinct()
                                     .where(DicomInstance.sop_instance_uid.in_(uids[start:start + 500]))))
    return sorted(m for m in found if m and m != "KO")


def describe_manifest_entry(entry: ExtrinsicObject, manifest: Manifest, modalities: list[str]) -> None:
    """Add the study UIDs to referenceIdList and the modalities to eventCodeList where missing."""
    references = entry.slots.setdefault(REFERENCE_ID_LIST_SLOT, [])
    for study_uid in manifest.study_uids:
        value = study_reference_id(study_uid)
        if value not in references:
            references.append(value)
    present = {c.code for c in entry.codes(DocumentEntryScheme.EVENT_CODE)}
    for modality in modalities:
        if modality not in present:
            entry.classifications.append(code_classification(
                DocumentEntryScheme.EVENT_CODE, entry.id,
                Code(modality, DCM_CODING_SCHEME, MODALITY_NAMES.get(modality, modality))))


def reference_rows(manifest_unique_id: str, manifest: Manifest) -> list[ManifestReference]:
    return [
        ManifestReference(manifest_unique_id=manifest_unique_id, study_instance_uid=study.study_instance_uid,
                          series_instance_uid=series.series_instance_uid, sop_instance_uid=instance.sop_instance_uid,
                          sop_class_uid=instance.sop_class_uid, retrieve_location_uid=series.retrieve_location_uid)
        for study in manifest.studies for series in study.series for instance in series.instances
    ]
