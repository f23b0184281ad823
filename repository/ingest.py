"""One entry for any DICOM instance the hub takes in: import, STOW-RS, C-STORE, captures.

The instance is streamed into the blob store, its header read back from
there (pydicom, pixel data skipped) and checked, then recorded in
`dicom_instances`. The XDS patient id is `ID^^^&OID&ISO` with the assigning
authority from Issuer of Patient ID Qualifiers (Universal Entity ID), else
from the sending organisation's OID (DESIGN.md, Patient identity).

Checks, each an `InvalidDicom` subclass naming what is wrong:
- the UIDs and Part 10 structure (`repository.dicomfile`);
- a Patient ID is present;
- an image SOP class ("... Image Storage") carries pixel data (`MissingPixelData`);
- every instance of a study names the same patient (`InconsistentPatient`);
- a SOP Instance UID already held with other bytes is a conflict, nothing is
  overwritten (`InstanceConflict`); with the same bytes it is accepted and
  changes nothing (`Ingested.duplicate`).

A new instance also moves its study's `StudyState.last_instance_at` on, which
the quiet-period publisher watches. The caller commits; on error nothing is
recorded and the new blob is reclaimed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from pydicom.uid import UID
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from repository.blobstore import BlobStore, open_seekable
from repository.dicomfile import InstanceHeader, InvalidDicom, is_valid_uid, read_instance_header
from repository.reclaim import reclaim_unreferenced
from repository.tables import DicomInstance, StudyState
from repository.visibility import batches
from repository.vocabulary import KOS_FORMAT_CODE as KOS_SOP_CLASS

_LOCKED = "xdshub_studies_locked"


class MissingPixelData(InvalidDicom):
    """An image SOP class without Pixel Data."""


class InconsistentPatient(InvalidDicom):
    """The study is held already with another patient."""


class InstanceConflict(InvalidDicom):
    """The SOP Instance UID is held already with other content."""


@dataclass(frozen=True)
class Sender:
    """Who sends the instance: the organisation's id (for visibility) and OID (default assigning authority)."""

    organisation_id: int | None
    organisation_oid: str


@dataclass(frozen=True)
class Ingested:
    instance: DicomInstance
    duplicate: bool           # the same bytes were held already: nothing changed


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


def is_image_storage(sop_class_uid: str) -> bool:
    """An image storage SOP class of PS3.4 B.5 (its registered name ends in "Image Storage")."""
    return UID(sop_class_uid).name.endswith("Image Storage")


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
        institution_name=header.institution_name[:64], department=header.department[:64],
        station_name=header.station_name[:64], manufacturer=header.manufacturer[:64], rows=header.rows,
        columns=header.columns, bits_allocated=header.bits_allocated, number_of_frames=header.number_of_frames,
        sha256=sha256, size=size, submitter_org_id=sender.organisation_id, stored_at=datetime.now(UTC),
    )


def checked_patient_id(header: InstanceHeader, sender: Sender) -> str:
    """The instance's XDS patient id, after the checks that need no database; InvalidDicom when refused."""
    patient_id = xds_patient_id(header, sender)
    if is_image_storage(header.sop_class_uid) and not header.has_pixel_data:
        raise MissingPixelData(f"{UID(header.sop_class_uid).name} instance {header.sop_instance_uid} has no "
                               "Pixel Data (7FE0,0010)")
    return patient_id


def _studies_locked(session: Session) -> set[str]:
    """The studies whose `StudyState` row this transaction has locked (or created) already."""
    transaction = session.get_transaction()
    mark = session.info.get(_LOCKED)
    if mark is None or mark[0] is not transaction:
        mark = session.info[_LOCKED] = (transaction, set())
    return mark[1]  # type: ignore[no-any-return]


_TURNS = text("SELECT count(pg_advisory_xact_lock(k)) FROM "
              "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered")


def _turn_key(study_uid: str) -> int:
    """The study's PostgreSQL advisory lock key: 64 bits of a hash of its UID, namespaced to this use."""
    digest = hashlib.sha256(f"xdshub.study-writer:{study_uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _take_turns(session: Session, study_uids: list[str]) -> None:
    """On PostgreSQL, wait until no other transaction is writing these studies, and keep them until commit.

    A `StudyState` row can be locked only once it exists: two transactions
    both bringing the first instances of a study would both find none, both
    insert one, and the second fail on the key. A transaction-level advisory
    lock per study (taken in key order, so two batches cannot deadlock) makes
    them take turns, and the second then reads what the first committed.
    SQLite needs none: its writers' gate (`hub.db`) lets one writer in at a time.
    """
    if study_uids and session.get_bind().dialect.name == "postgresql":
        session.execute(_TURNS, {"keys": sorted({_turn_key(uid) for uid in study_uids})})


class _BatchCheck:
    """What the database holds of a batch's instances and studies, read with a few statements for the batch."""

    def __init__(self, session: Session, batch: Sequence[Prepared]) -> None:
        studies = sorted({p.header.study_instance_uid for p in batch})
        receiving = {p.header.study_instance_uid for p in batch if p.header.sop_class_uid != KOS_SOP_CLASS}
        locked = _studies_locked(session)
        _take_turns(session, [uid for uid in studies if uid in receiving and uid not in locked])
        uids = sorted({p.header.sop_instance_uid for p in batch})
        self.instances: dict[str, DicomInstance] = {}
        for chunk in batches(uids):
            self.instances.update((i.sop_instance_uid, i) for i in session.scalars(
                select(DicomInstance).where(DicomInstance.sop_instance_uid.in_(chunk))))
        self.states: dict[str, StudyState] = {}
        for uid in studies:        # locked once per transaction; later, from the identity map
            if uid in locked:
                state = session.get(StudyState, uid)
                if state is not None:
                    self.states[uid] = state
        unread = [uid for uid in studies if uid not in locked]
        for chunk in batches([uid for uid in unread if uid in receiving]):
            query = select(StudyState).where(StudyState.study_instance_uid.in_(chunk)).with_for_update()
            self.states.update((state.study_instance_uid, state) for state in session.scalars(query))
            locked.update(chunk)
        for chunk in batches([uid for uid in unread if uid not in receiving]):
            self.states.update((state.study_instance_uid, state) for state in session.scalars(
                select(StudyState).where(StudyState.study_instance_uid.in_(chunk))))
        self.patients = {uid: state.patient_id for uid, state in self.states.items()}
        for chunk in batches([uid for uid in studies if uid not in self.patients]):
            first_patients = (select(DicomInstance.study_instance_uid, func.min(DicomInstance.patient_id))
                              .where(DicomInstance.study_instance_uid.in_(chunk))
                              .group_by(DicomInstance.study_instance_uid))
            self.patients.update((study, patient) for study, patient in session.execute(first_patients))

    def take(self, session: Session, prepared: Prepared) -> Ingested:
        """The instance checked against what is held (and taken earlier in the batch), and added when new."""
        header, values = prepared.header, prepared.values
        existing = self.instances.get(header.sop_instance_uid)
        if existing is not None:
            if existing.sha256 != prepared.sha256:
                raise InstanceConflict(f"SOP Instance {header.sop_instance_uid} is held already with other "
                                       "content; nothing was overwritten (send it with a new SOP Instance UID)")
            return Ingested(existing, duplicate=True)
        study, patient_id = header.study_instance_uid, str(values["patient_id"])
        held = self.patients.get(study)
        if held is not None and held != patient_id:
            raise InconsistentPatient(f"study {study} is held for patient {held}; this instance names "
                                      f"{patient_id}")
        instance = DicomInstance(**values)
        session.add(instance)
        self.instances[instance.sop_instance_uid] = instance
        self.patients[study] = patient_id
        if instance.sop_class_uid != KOS_SOP_CLASS:     # a manifest is not new study content
            state = self.states.get(study)
            if state is None:
                state = self.states[study] = StudyState(
                    study_instance_uid=study, patient_id=patient_id, last_instance_at=instance.stored_at,
                    published_instances=0, failures=0, last_error="")
                session.add(state)
            else:
                state.last_instance_at = instance.stored_at
        return Ingested(instance, duplicate=False)


@dataclass(frozen=True)
class Prepared:
    """An instance whose bytes are in the blob store and whose header passed the checks needing no database."""

    header: InstanceHeader
    values: dict[str, object]      # its `dicom_instances` row

    @property
    def sha256(self) -> str:
        return str(self.values["sha256"])


def prepare(store: BlobStore, stream: BinaryIO, header: InstanceHeader, sender: Sender,
            max_bytes: int | None = None) -> Prepared:
    """The first half of `ingest`, for a caller that read the header from exactly these bytes already:
    the checks that need no database, then the bytes stored. Refused (InvalidDicom) before anything is
    stored. It touches no database, so STOW-RS runs it for every part before its write transaction."""
    checked_patient_id(header, sender)
    blob = store.put(stream, max_bytes)
    return Prepared(header, _row(header, sender, blob.sha256, blob.size))


def record_all(session: Session, batch: Sequence[Prepared]) -> list[Ingested | InvalidDicom]:
    """The second half of `ingest` for many instances, in order: each checked against what is held and
    against those before it, then added (the caller commits). An instance that cannot be taken gets its
    InvalidDicom in the answer, records nothing, and the caller reclaims its blob. A few statements serve
    the whole batch: one read of the instances held, one of their studies, and the inserts together."""
    if not batch:
        return []
    check = _BatchCheck(session, batch)
    outcomes: list[Ingested | InvalidDicom] = []
    for prepared in batch:
        try:
            outcomes.append(check.take(session, prepared))
        except InvalidDicom as exc:
            outcomes.append(exc)
    session.flush()
    return outcomes


def record(session: Session, prepared: Prepared) -> Ingested:
    """`record_all` of one instance; InvalidDicom when it cannot be taken."""
    (outcome,) = record_all(session, [prepared])
    if isinstance(outcome, InvalidDicom):
        raise outcome
    return outcome


def ingest(session: Session, store: BlobStore, stream: BinaryIO, sender: Sender,
           max_bytes: int | None = None, header: InstanceHeader | None = None) -> Ingested:
    """Store one Part 10 instance and record it; InvalidDicom (nothing kept) when it is not acceptable.

    `header`: the caller read it already from exactly these bytes, so it is
    not read back from the blob store.
    """
    if header is not None:
        prepared = prepare(store, stream, header, sender, max_bytes)
    else:
        blob = store.put(stream, max_bytes)
        try:
            with open_seekable(store, blob.sha256) as stored:
                header = read_instance_header(stored)
            checked_patient_id(header, sender)
        except InvalidDicom:
            reclaim_unreferenced(session, store, [blob.sha256])
            raise
        prepared = Prepared(header, _row(header, sender, blob.sha256, blob.size))
    try:
        return record(session, prepared)
    except InvalidDicom:
        reclaim_unreferenced(session, store, [prepared.sha256])
        raise


def ingest_instance(session: Session, store: BlobStore, stream: BinaryIO, sender: Sender,
                    max_bytes: int | None = None) -> DicomInstance:
    """`ingest`, for callers that need only the instance."""
    return ingest(session, store, stream, sender, max_bytes).instance
