"""Publishing a study the hub holds: its XDS-I.b manifest (KOS) provided and registered (RAD-68).

`study_manifest` builds the KOS for every instance of the study this hub
holds, with this hub's repositoryUniqueId as Retrieve Location UID, so RAD-69
to this hub answers each reference. `publish_study` wraps it in a
DocumentEntry (formatCode KOS, mimeType application/dicom, uniqueId = the
KOS SOP Instance UID, referenceIdList = the study, eventCodeList = the
modalities, RAD TF-3 4.68.4.1.2.3) and a SubmissionSet, and runs the same
Provide and Register pipeline a remote Imaging Document Source would reach
over SOAP: stored here, registered with the configured registry. With
a previous manifest of the study (kept in `study_states`) the submission
carries an RPLC association to it, so the registry deprecates the old
manifest as it approves the new one (ITI TF-3 4.2.2.2.3).
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
from hub.clock import as_utc
from hub.security.identity import Caller
from hub.settings import Settings
from hub.tables import Organisation
from registry.builders import DocumentSpec, document_entry, has_member, relationship, submission_set
from registry.model import Code, SubmitObjectsRequest
from registry.vocabulary import AssociationType
from repository.blobstore import BlobStore
from repository.imaging_entries import MODALITY_NAMES
from repository.manifest import ManifestInstance, ManifestStudy, build_manifest, write_manifest
from repository.model import DocumentContent, ProvideRequest
from repository.registration import Registry
from repository.tables import DicomInstance, StudyState
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
    entry_uuid: str           # the DocumentEntry's entryUUID (what a later RPLC names)
    study_instance_uid: str
    patient_id: str           # XDS form
    instance_count: int
    size: int
    replaced: str | None = None   # the entryUUID of the manifest this one replaced


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
                        source_oid: str, replaces: str | None = None) -> tuple[SubmitObjectsRequest, str]:
    """The RAD-68 metadata of a manifest: DocumentEntry, SubmissionSet and their HasMember, and an RPLC
    association to the entry `replaces` names when given."""
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
    replacing = [relationship(AssociationType.RPLC, entry.id, replaces)] if replaces else []
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id), *replacing]), entry.id


def publisher_of(session: Session, rows: list[DicomInstance]) -> Caller:
    """The organisation that stored the study publishes it."""
    org_ids = {r.submitter_org_id for r in rows if r.submitter_org_id is not None}
    organisation = session.get(Organisation, min(org_ids)) if org_ids else None
    if organisation is None:
        raise UnknownStudy("the study's instances were stored by no registered organisation")
    return Caller(organisation_id=organisation.id, organisation_oid=organisation.oid,
                  organisation_name=organisation.name, client_id="xdshub", thumbprint="",
                  scopes=frozenset({"xds:register"}))


def _state(session: Session, study_uid: str, rows: list[DicomInstance]) -> StudyState:
    """The study's publishing state, locked for this transaction (made for a study held since before 0005)."""
    state = session.get(StudyState, study_uid, with_for_update=True)
    if state is None:
        state = StudyState(study_instance_uid=study_uid, patient_id=rows[0].patient_id,
                           last_instance_at=max(r.stored_at for r in rows), published_instances=0, failures=0,
                           last_error="")
        session.add(state)
    return state


def is_current(state: StudyState) -> bool:
    """The registered manifest covers every instance the study has."""
    return state.published_through is not None and \
        as_utc(state.published_through) >= as_utc(state.last_instance_at)


def publish_study(session: Session, store: BlobStore, registry: Registry, settings: Settings, study_uid: str,
                  caller: Caller | None = None) -> PublishedManifest:
    """Build the study's manifest and Provide and Register it (commits, or raises leaving nothing).

    The study's previous manifest, if any, is replaced (RPLC), and the
    study's state records the new one in the same transaction, whichever
    path published it (the quiet-period publisher, the API, the command line).
    """
    published = _publish(session, store, registry, settings, study_uid, caller, unless_current=False)
    assert published is not None
    return published


def publish_if_stale(session: Session, store: BlobStore, registry: Registry, settings: Settings,
                     study_uid: str) -> PublishedManifest | None:
    """`publish_study` unless the registered manifest already covers every instance (None), checked under the
    study state's row lock, so two publishers never publish the same content twice."""
    return _publish(session, store, registry, settings, study_uid, None, unless_current=True)


def _publish(session: Session, store: BlobStore, registry: Registry, settings: Settings, study_uid: str,
             caller: Caller | None, *, unless_current: bool) -> PublishedManifest | None:
    rows = _instances(session, study_uid)
    state = _state(session, study_uid, rows)
    if unless_current and is_current(state):
        session.rollback()
        return None
    covered, replaces = state.last_instance_at, state.manifest_entry_uuid
    caller = caller or publisher_of(session, rows)
    dataset = build_manifest(_manifest_study(rows), settings.repository_unique_id)
    content = manifest_bytes(dataset)
    submission, entry_id = manifest_submission(dataset, content, rows, settings, caller.organisation_oid, replaces)
    published = PublishedManifest(str(dataset.SOPInstanceUID), entry_id, study_uid, rows[0].patient_id, len(rows),
                                  len(content), replaces)
    submission_set_uid = submission.submission_sets[0].unique_id

    def recorded(session: Session) -> None:   # in the transaction that stores the manifest
        hub = Party(user_id=f"{settings.base_url}/xds/repository", address=settings.host)
        requestor = Party(user_id=caller.organisation_oid, name=caller.organisation_name,
                          alternative_id=caller.client_id)
        record(session, events.provide(requestor=requestor, hub=hub, outcome=Outcome.SUCCESS,
                                       time=datetime.now(UTC), source_id=settings.base_url,
                                       submission_set_uid=submission_set_uid, patient_id=published.patient_id,
                                       transaction="RAD-68"), settings)
        current = session.get(StudyState, study_uid)
        assert current is not None
        current.manifest_unique_id, current.manifest_entry_uuid = published.unique_id, published.entry_uuid
        current.published_through, current.published_instances = covered, published.instance_count
        current.failures, current.last_error, current.attempted_at = 0, "", datetime.now(UTC)

    provide_and_register(session, store, registry, ProvideRequest(submission, [DocumentContent(entry_id,
                                                                                               inline=content)]),
                         {}, caller, settings, before_commit=recorded)
    return published


def record_failure(session: Session, study_uid: str, error: str) -> None:
    """A failed publication of the study, for the quiet-period publisher's back-off (the caller commits)."""
    state = session.get(StudyState, study_uid, with_for_update=True)
    if state is not None:
        state.failures += 1
        state.attempted_at = datetime.now(UTC)
        state.last_error = error[:1000]
