"""Publishing a study the hub holds: its XDS-I.b manifest (KOS) provided and registered (RAD-68).

`study_manifest` builds the KOS for every instance of the study this hub
holds, with this hub's repositoryUniqueId as Retrieve Location UID, so RAD-69
to this hub answers each reference. `publish_study` wraps it in a
DocumentEntry (formatCode KOS, mimeType application/dicom, uniqueId = the
KOS SOP Instance UID, referenceIdList = the study, eventCodeList = the
modalities, RAD TF-3 4.68.4.1.2.3) and a SubmissionSet, and runs the same
Provide and Register pipeline a remote Imaging Document Source would reach
over SOAP: stored here, registered with the configured registry.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import events
from hub.audit.events import Party
from hub.audit.message import Outcome
from hub.audit.record import record
from hub.security.identity import Caller
from hub.settings import Settings
from hub.tables import Organisation
from registry.builders import DocumentSpec, document_entry, has_member, submission_set
from registry.model import Code, SubmitObjectsRequest
from repository.blobstore import BlobStore
from repository.imaging_entries import MODALITY_NAMES
from repository.manifest import ManifestInstance, ManifestStudy, build_manifest, write_manifest
from repository.model import DocumentContent, ProvideRequest
from repository.registration import Registry
from repository.tables import DicomInstance
from repository.transactions.iti41_provide import provide_and_register
from repository.vocabulary import (
    DCM_CODING_SCHEME,
    DICOM_MIME_TYPE,
    KOS_FORMAT_CODE,
    KOS_FORMAT_SCHEME,
    study_reference_id,
)


class UnknownStudy(LookupError):
    """The hub holds no instance of this study."""


class InconsistentStudy(ValueError):
    """The study's instances name more than one patient."""


@dataclass(frozen=True)
class PublishedManifest:
    unique_id: str            # the KOS SOP Instance UID, the DocumentEntry uniqueId
    study_instance_uid: str
    patient_id: str           # XDS form
    instance_count: int
    size: int


def _instances(session: Session, study_uid: str) -> list[DicomInstance]:
    rows = list(session.scalars(select(DicomInstance)
                                .where(DicomInstance.study_instance_uid == study_uid,
                                       DicomInstance.sop_class_uid != KOS_FORMAT_CODE)
                                .order_by(DicomInstance.series_number, DicomInstance.series_instance_uid,
                                          DicomInstance.instance_number, DicomInstance.sop_instance_uid)))
    if not rows:
        raise UnknownStudy(f"this hub holds no instance of study {study_uid}")
    patients = {row.patient_id for row in rows}
    if len(patients) > 1:
        raise InconsistentStudy(f"study {study_uid} has instances of several patients: {sorted(patients)}")
    return rows


def _manifest_study(rows: list[DicomInstance]) -> ManifestStudy:
    first = rows[0]
    return ManifestStudy(
        study_instance_uid=first.study_instance_uid, patient_id=first.dicom_patient_id,
        issuer_of_patient_id=first.issuer_of_patient_id, patient_name=first.patient_name,
        patient_birth_date=first.patient_birth_date, patient_sex=first.patient_sex, study_date=first.study_date,
        study_time=first.study_time, accession_number=first.accession_number, study_id=first.study_id,
        referring_physician_name=first.referring_physician_name,
        instances=tuple(ManifestInstance(r.sop_class_uid, r.sop_instance_uid, r.series_instance_uid, r.modality)
                        for r in rows))


def study_manifest(session: Session, study_uid: str, settings: Settings) -> pydicom.Dataset:
    """The KOS manifest of a study this hub holds (UnknownStudy when it holds none)."""
    return build_manifest(_manifest_study(_instances(session, study_uid)), settings.repository_unique_id)


def manifest_bytes(dataset: pydicom.Dataset) -> bytes:
    sink = io.BytesIO()
    write_manifest(dataset, sink)
    return sink.getvalue()


def manifest_submission(dataset: pydicom.Dataset, content: bytes, rows: list[DicomInstance], settings: Settings,
                        source_oid: str) -> tuple[SubmitObjectsRequest, str]:
    """The RAD-68 metadata of a manifest: DocumentEntry, SubmissionSet and their HasMember."""
    import hashlib

    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    patient_id = rows[0].patient_id
    modalities = sorted({r.modality for r in rows if r.modality})
    spec = DocumentSpec(
        unique_id=str(dataset.SOPInstanceUID), patient_id=patient_id, hash=hashlib.sha1(content).hexdigest(),
        size=len(content), repository_unique_id=settings.repository_unique_id,
        title=f"Imaging study {rows[0].study_description or rows[0].study_instance_uid}"[:128],
        mime_type=DICOM_MIME_TYPE, creation_time=now,
        class_code=Code("IMAGES", "1.3.6.1.4.1.19376.1.2.6.1", "Images"),
        type_code=Code("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study"),
        format_code=Code(KOS_FORMAT_CODE, KOS_FORMAT_SCHEME, "Key Object Selection Document"),
        event_codes=tuple(Code(m, DCM_CODING_SCHEME, MODALITY_NAMES.get(m, m)) for m in modalities),
        reference_ids=(study_reference_id(rows[0].study_instance_uid),),
    )
    entry = document_entry(spec)
    package = submission_set(f"2.25.{uuid.uuid4().int}", patient_id, source_oid, now)
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)]), entry.id


def publisher_of(session: Session, rows: list[DicomInstance]) -> Caller:
    """The organisation that stored the study publishes it."""
    org_ids = {r.submitter_org_id for r in rows if r.submitter_org_id is not None}
    organisation = session.get(Organisation, min(org_ids)) if org_ids else None
    if organisation is None:
        raise UnknownStudy("the study's instances were stored by no registered organisation")
    return Caller(organisation_id=organisation.id, organisation_oid=organisation.oid,
                  organisation_name=organisation.name, client_id="xdshub", thumbprint="",
                  scopes=frozenset({"xds:register"}))


def publish_study(session: Session, store: BlobStore, registry: Registry, settings: Settings, study_uid: str,
                  caller: Caller | None = None) -> PublishedManifest:
    """Build the study's manifest and Provide and Register it (commits, or raises leaving nothing)."""
    rows = _instances(session, study_uid)
    caller = caller or publisher_of(session, rows)
    dataset = build_manifest(_manifest_study(rows), settings.repository_unique_id)
    content = manifest_bytes(dataset)
    submission, entry_id = manifest_submission(dataset, content, rows, settings, caller.organisation_oid)
    published = PublishedManifest(str(dataset.SOPInstanceUID), study_uid, rows[0].patient_id, len(rows), len(content))
    submission_set_uid = submission.submission_sets[0].unique_id

    def audited(session: Session) -> None:   # RAD-68, recorded in the transaction that stores the manifest
        hub = Party(user_id=f"{settings.base_url}/xds/repository", address=settings.host)
        requestor = Party(user_id=caller.organisation_oid, name=caller.organisation_name,
                          alternative_id=caller.client_id)
        record(session, events.provide(requestor=requestor, hub=hub, outcome=Outcome.SUCCESS,
                                       time=datetime.now(UTC), source_id=settings.base_url,
                                       submission_set_uid=submission_set_uid, patient_id=published.patient_id,
                                       transaction="RAD-68"), settings)

    provide_and_register(session, store, registry, ProvideRequest(submission, [DocumentContent(entry_id,
                                                                                               inline=content)]),
                         {}, caller, settings, before_commit=audited)
    return published
