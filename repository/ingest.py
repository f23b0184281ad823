"""One entry for any DICOM instance the hub takes in (import, and later STOW-RS, C-STORE, captures).

The instance is streamed into the blob store, its header read back from
there (pydicom, pixel data not loaded) and recorded in `dicom_instances`.
The XDS patient id is `ID^^^&OID&ISO` with the assigning authority from
Issuer of Patient ID Qualifiers (Universal Entity ID), else from the sending
organisation's OID (DESIGN.md, Patient identity). Storing the same SOP
Instance again with the same bytes changes nothing; with other bytes it
replaces the earlier copy; the replaced blob, referenced by nothing any more,
is left for `xdshub storage gc`.
The caller commits; on error nothing is recorded and the blob is reclaimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from repository.blobstore import BlobStore, open_seekable
from repository.dicomfile import InstanceHeader, InvalidDicom, is_valid_uid, read_instance_header
from repository.reclaim import reclaim_unreferenced
from repository.tables import DicomInstance


@dataclass(frozen=True)
class Sender:
    """Who sends the instance: the organisation's id (for visibility) and OID (default assigning authority)."""

    organisation_id: int | None
    organisation_oid: str


def assigning_authority(header: InstanceHeader, sender: Sender) -> str:
    """The instance's issuer when it is an OID (Universal Entity ID, ISO), else the sender's OID."""
    issuer = header.issuer_of_patient_id
    return issuer if issuer and is_valid_uid(issuer) else sender.organisation_oid


def xds_patient_id(header: InstanceHeader, sender: Sender) -> str:
    authority = assigning_authority(header, sender)
    if not header.patient_id:
        raise InvalidDicom("the instance has no Patient ID (0010,0020)")
    if not authority:
        raise InvalidDicom("the instance names no Issuer of Patient ID and the sender has no OID")
    return f"{header.patient_id}^^^&{authority}&ISO"


def _row(header: InstanceHeader, sender: Sender, sha256: str, size: int) -> dict[str, object]:
    return dict(
        sop_instance_uid=header.sop_instance_uid, sop_class_uid=header.sop_class_uid,
        study_instance_uid=header.study_instance_uid, series_instance_uid=header.series_instance_uid,
        transfer_syntax_uid=header.transfer_syntax_uid, modality=header.modality,
        patient_id=xds_patient_id(header, sender), dicom_patient_id=header.patient_id,
        issuer_of_patient_id=assigning_authority(header, sender),
        patient_name=header.patient_name, patient_birth_date=header.patient_birth_date,
        patient_sex=header.patient_sex, study_date=header.study_date, study_time=header.study_time,
        accession_number=header.accession_number, study_id=header.study_id,
        study_description=header.study_description, referring_physician_name=header.referring_physician_name,
        series_number=header.series_number, series_description=header.series_description,
        body_part_examined=header.body_part_examined, instance_number=header.instance_number,
        sha256=sha256, size=size, submitter_org_id=sender.organisation_id, stored_at=datetime.now(UTC),
    )


def ingest_instance(session: Session, store: BlobStore, stream: BinaryIO, sender: Sender,
                    max_bytes: int | None = None) -> DicomInstance:
    """Store one Part 10 instance and record it; InvalidDicom (nothing kept) when it is not acceptable."""
    blob = store.put(stream, max_bytes)
    try:
        with open_seekable(store, blob.sha256) as stored:
            header = read_instance_header(stored)
        values = _row(header, sender, blob.sha256, blob.size)
    except InvalidDicom:
        reclaim_unreferenced(session, store, [blob.sha256])
        raise
    existing = session.get(DicomInstance, header.sop_instance_uid)
    if existing is None:
        instance = DicomInstance(**values)
        session.add(instance)
        session.flush()
        return instance
    for name, value in values.items():
        setattr(existing, name, value)
    session.flush()
    return existing
