"""What the Storage SCP does with an association: admit it, take in each instance, audit what came.

`Receiver` is framework-free apart from the plain values pynetdicom hands
over (the handlers in `repository.dimse.scp` only translate events):

- `admit`: the Called AE Title must be the hub's (`dimse_ae_title`) and the
  Calling AE Title registered (`repository.dimse.entities`), from the
  registered host when one is set; otherwise the association is rejected
  (A-ASSOCIATE-RJ, PS3.8 7.1.1.9: rejected-permanent, service-user, reason 3
  "calling AE title not recognized" or 7 "called AE title not recognized")
  and a Security Alert (110113, type 110126 Node Authentication) is recorded.
- `store`: one C-STORE into `repository.ingest.ingest` with the AE's
  organisation as Sender, in its own database transaction; a refusal comes
  back as a `Refusal` (status and reason, `repository.dimse.statuses`) and is
  logged; nothing of a refused instance is kept.
- `finish`: at the end of the association (release, abort, or the listener
  stopping) one DICOM Instances Transferred record (110104, PS3.15 A.5.3)
  per study received, and one with a failure outcome when instances were
  refused, written in one transaction.

What is received is remembered per association in memory until `finish`:
the instances themselves are committed one by one, their audit records at
the end of the association, so a crash of the listener in between loses the
records of that association's instances (not the instances).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from hub.audit import events
from hub.audit.codes import NODE_AUTHENTICATION
from hub.audit.events import Party
from hub.audit.message import Action, Outcome
from hub.audit.record import record
from hub.db import Database
from hub.settings import Settings
from repository.blobstore import BlobStore
from repository.dimse.entities import CallingEntity, find_calling_entity, host_allowed
from repository.dimse.statuses import Refusal, RequestMismatch, refusal_for
from repository.ingest import Sender, ingest
from repository.reclaim import reclaim_unreferenced

log = logging.getLogger(__name__)

CALLING_AE_NOT_RECOGNISED = 0x03   # PS3.8 Table 9-21, A-ASSOCIATE-RJ reason/diagnostic (source: service-user)
CALLED_AE_NOT_RECOGNISED = 0x07
MAX_REASONS = 5                    # refusal reasons kept for an association's audit record


@dataclass(frozen=True)
class Rejection:
    """Why an association is rejected: the A-ASSOCIATE-RJ diagnostic and the reason recorded."""

    diagnostic: int
    reason: str


@dataclass
class _Study:
    patient_id: str
    instances: list[tuple[str, str]] = field(default_factory=list)   # (SOP Class UID, SOP Instance UID)
    new: int = 0


@dataclass
class Transfer:
    """One admitted association: who sends, from where, and what it sent so far."""

    calling_ae: str
    entity: CallingEntity
    address: str | None
    studies: dict[str, _Study] = field(default_factory=dict)
    refused: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def sender(self) -> Party:
        """The sending process as an audit participant: its organisation, with the AE title as
        AlternativeUserID in the form PS3.15 A.5.2.2 gives for DICOM applications."""
        return Party(user_id=self.entity.organisation_oid, address=self.address, name=self.entity.organisation_name,
                     alternative_id=f"AETITLES={self.calling_ae}")


class Receiver:
    """The DIMSE listener's work, one `Transfer` per admitted association (keyed by any hashable)."""

    def __init__(self, settings: Settings, database: Database, store: BlobStore) -> None:
        self.settings = settings
        self.database = database
        self.blobs = store
        self._transfers: dict[object, Transfer] = {}
        self._lock = threading.Lock()

    # -- parties ----------------------------------------------------------------------------------------------

    def hub_party(self) -> Party:
        title = self.settings.dimse_ae_title
        return Party(user_id=self.endpoint, address=self.settings.host, alternative_id=f"AETITLES={title}")

    @property
    def endpoint(self) -> str:
        """The listener as a URI (the hub's AE title at its address), for audit records."""
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"dicom://{self.settings.dimse_ae_title}@{host}:{self.settings.dimse_port}"

    # -- association --------------------------------------------------------------------------------------------

    def admit(self, key: object, calling_ae: str, called_ae: str, address: str | None) -> Rejection | None:
        """Admit an association request, or answer why not (after recording a Security Alert)."""
        calling, called = calling_ae.strip(), called_ae.strip()
        rejection: Rejection | None = None
        entity: CallingEntity | None = None
        if called != self.settings.dimse_ae_title:
            rejection = Rejection(CALLED_AE_NOT_RECOGNISED, f"called AE title not recognised: {called!r} is not "
                                                            f"this hub's ({self.settings.dimse_ae_title!r})")
        else:
            with self.database.session() as session:
                entity = find_calling_entity(session, calling)
            if entity is None:
                rejection = Rejection(CALLING_AE_NOT_RECOGNISED,
                                      f"calling AE title not recognised: {calling!r} is not registered")
            elif not host_allowed(entity.host, address):
                rejection = Rejection(CALLING_AE_NOT_RECOGNISED,
                                      f"calling AE title not recognised: {calling!r} may associate from "
                                      f"{entity.host} only, not from {address}")
        if rejection is not None:
            log.warning("DIMSE association from %s (%r -> %r) rejected: %s", address, calling, called,
                        rejection.reason)
            self._record_alone(lambda session: self._alert(session, calling, address, rejection.reason),
                               "a rejected association")
            return rejection
        assert entity is not None
        with self._lock:
            self._transfers[key] = Transfer(calling, entity, address)
        log.info("DIMSE association from %s (%r, %s) accepted", address, calling, entity.organisation_name)
        return None

    def transfer(self, key: object) -> Transfer | None:
        with self._lock:
            return self._transfers.get(key)

    def finish(self, key: object) -> None:
        """The association ended: write its audit records (a failure to write them is logged)."""
        with self._lock:
            transfer = self._transfers.pop(key, None)
        if transfer is None or (not transfer.studies and not transfer.refused):
            return
        self._record_alone(lambda session: self._transferred(session, transfer), "an association's transfers")

    def finish_all(self) -> None:
        """The listener stops: write the records of every association still open."""
        with self._lock:
            keys = list(self._transfers)
        for key in keys:
            self.finish(key)

    # -- C-STORE ------------------------------------------------------------------------------------------------

    def store(self, key: object, open_instance: Callable[[], BinaryIO], sop_class_uid: str,
              sop_instance_uid: str) -> Refusal | None:
        """Take in one instance (a Part 10 stream) for the association's organisation; None when stored
        (or held already with the same bytes), else the refusal."""
        transfer = self.transfer(key)
        if transfer is None:       # not admitted: pynetdicom never gets here, but never store for no one
            return refusal_for(RequestMismatch("the association was not admitted"))
        sender = Sender(transfer.entity.organisation_id, transfer.entity.organisation_oid)
        stored: tuple[str, bool] | None = None          # (sha256, duplicate) once ingest has run
        try:
            with self.database.session() as session, open_instance() as stream:
                result = ingest(session, self.blobs, stream, sender, self.settings.max_upload_bytes)
                instance = result.instance
                stored = (instance.sha256, result.duplicate)
                if (instance.sop_class_uid, instance.sop_instance_uid) != (sop_class_uid, sop_instance_uid):
                    raise RequestMismatch(
                        f"the data set is {instance.sop_class_uid} {instance.sop_instance_uid}, the request "
                        f"named {sop_class_uid} {sop_instance_uid} (PS3.7 9.1.1.1.3-4)")
                study_uid, patient_id = instance.study_instance_uid, instance.patient_id
            duplicate = result.duplicate      # committed
        except Exception as exc:
            refusal = refusal_for(exc)
            if refusal is None:
                raise
            if stored is not None and not stored[1]:
                self._reclaim(stored[0])
            transfer.refused += 1
            if len(transfer.reasons) < MAX_REASONS:
                transfer.reasons.append(f"{sop_instance_uid}: {refusal.reason}")
            log.warning("C-STORE of %s from %r (%s) refused with status 0x%04X: %s", sop_instance_uid,
                        transfer.calling_ae, transfer.address, int(refusal.status), refusal.reason)
            return refusal
        study = transfer.studies.setdefault(study_uid, _Study(patient_id))
        if (sop_class_uid, sop_instance_uid) not in study.instances:
            study.instances.append((sop_class_uid, sop_instance_uid))
        study.new += 0 if duplicate else 1
        log.info("C-STORE of %s from %r stored%s", sop_instance_uid, transfer.calling_ae,
                 " (held already, same bytes)" if duplicate else "")
        return None

    def _reclaim(self, sha256: str) -> None:
        """The bytes of an instance whose row was rolled back, unless another row references them."""
        try:
            with self.database.session() as session:
                reclaim_unreferenced(session, self.blobs, [sha256])
        except Exception:
            log.exception("could not reclaim blob %s (`xdshub storage gc` will)", sha256)

    # -- audit --------------------------------------------------------------------------------------------------

    def _record_alone(self, write: Callable[[Session], None], what: str) -> None:
        try:
            with self.database.session() as session:
                write(session)
        except Exception:
            log.exception("could not record the audit event of %s", what)

    def _alert(self, session: Session, calling_ae: str, address: str | None, reason: str) -> None:
        requestor = Party(user_id="unauthenticated", address=address, alternative_id=f"AETITLES={calling_ae}")
        record(session, events.security_alert(
            requestor=requestor, hub=self.hub_party(), outcome=Outcome.SERIOUS_FAILURE, time=datetime.now(UTC),
            source_id=self.settings.base_url, reason=reason, transaction="DIMSE A-ASSOCIATE",
            path=self.endpoint, kind=NODE_AUTHENTICATION), self.settings)

    def _transferred(self, session: Session, transfer: Transfer) -> None:
        now = datetime.now(UTC)
        for study_uid, study in transfer.studies.items():
            record(session, events.instances_transferred(
                sender=transfer.sender, hub=self.hub_party(), outcome=Outcome.SUCCESS, time=now,
                source_id=self.settings.base_url, action=Action.CREATE if study.new else Action.READ,
                studies=[(study_uid, study.instances)], patient_id=study.patient_id,
                description=f"C-STORE: {len(study.instances)} instance(s), {study.new} new"), self.settings)
        if transfer.refused:
            stored = sum(len(study.instances) for study in transfer.studies.values())
            description = (f"C-STORE: {transfer.refused} instance(s) refused, {stored} stored; "
                           + "; ".join(transfer.reasons))
            record(session, events.instances_transferred(
                sender=transfer.sender, hub=self.hub_party(),
                outcome=Outcome.MINOR_FAILURE if stored else Outcome.SERIOUS_FAILURE, time=now,
                source_id=self.settings.base_url, action=Action.CREATE, studies=[], patient_id=None,
                description=description[:1000]), self.settings)
