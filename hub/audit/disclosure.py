"""The per-patient disclosure report: who received or viewed a patient's images and documents, when, and how.

A disclosure is a record of this patient (the indexed `patient_id`) whose
EventID says data left the hub or was shown, with outcome 0 (success) or 4
(minor failure, e.g. a retrieve that answered part of what was asked):

    110106 Export                        ITI-43, RAD-69, and any later export
    110103 DICOM Instances Accessed      a viewer (later)
    110104 DICOM Instances Transferred   WADO-RS (RAD-107)

Instances transferred *to* the hub (STOW-RS, RAD-108; C-STORE, recorded
without a type code) are the same event but no disclosure: they are left
out by their type, and any message whose requestor is not the Destination
(role 110152, the one data went to) is left out as well.

Outcomes 8 and 12 of those events, and Security Alerts (110113) with those outcomes, disclosed
nothing: `refused_attempts` counts them for the report's "N refused attempts".

The recipient is the message's requestor (UserIsRequestor true). Convention,
new with this report, for the events still to come:

    requestor UserID                            recipient_kind   recipient_id
    "share:<link id>"                           "share link"     the link id
    an organisation OID (the record's           "organisation"   the OID
      organisation_oid: a registered
      organisation, or any OID, e.g. of one
      since removed)
    anything else (a console user, ...)         "user"           the UserID

The recipient's name is the organisation's name when the OID is registered
(all names looked up in one query), else the participant's UserName, else "".
What was disclosed are the message's objects of ID type DCM 110180 Study
Instance UID ("Study") and RFC-3881 "9" Report Number, the document unique id
("Document"). A message that cannot be read (`UnreadableMessage`) still
yields its disclosure, from the record's indexed columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from hub.audit import codes
from hub.audit.query import AuditFilter, _filtered
from hub.audit.reading import UnreadableMessage, describe, requestor
from hub.audit.tables import AuditRecord
from hub.clock import as_utc
from hub.tables import Organisation

__all__ = ["DISCLOSURE_EVENTS", "Disclosure", "RecipientKind", "disclosures", "refused_attempts"]

DISCLOSURE_EVENTS = (codes.EXPORT.code, codes.INSTANCES_ACCESSED.code, codes.INSTANCES_TRANSFERRED.code)
DISCLOSED_OUTCOMES = (0, 4)          # RFC 3881 5.1.4: success, minor failure
REFUSED_OUTCOMES = (8, 12)           # serious failure, major failure
SHARE_PREFIX = "share:"
INBOUND_TRANSFERS = ("RAD-108", "")      # 110104 into the hub: STOW-RS, and C-STORE (no type code)
STUDY, DOCUMENT = "Study", "Document"
# ParticipantObjectIDTypeCode (code, system) -> what the report calls the object
_DISCLOSED_OBJECTS = {(codes.STUDY_INSTANCE_UID.code, codes.STUDY_INSTANCE_UID.system): STUDY,
                      (codes.REPORT_NUMBER.code, codes.REPORT_NUMBER.system): DOCUMENT}
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")   # ISO/IEC 8824 dotted decimal, at least two arcs

RecipientKind = Literal["organisation", "share link", "user"]


@dataclass(frozen=True)
class Disclosure:
    """One disclosure of the patient's data: when, to whom, from where, by which transaction, of what.

    `objects` are ("Study", Study Instance UID) and ("Document", document
    unique id) pairs, in the message's order.
    """

    seq: int
    recorded_at: datetime                # timezone-aware, UTC
    recipient_kind: RecipientKind
    recipient_id: str
    recipient_name: str
    address: str
    transaction: str
    outcome: int
    objects: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Disclosed:
    """What a record's message says: the requestor's UserID and UserName, the objects disclosed, and whether
    data went to the requestor."""

    user_id: str
    user_name: str
    objects: tuple[tuple[str, str], ...]
    to_requestor: bool = True


def _bound(moment: datetime | None, name: str) -> datetime | None:
    """A bound in UTC: SQLite compares stored timestamps as written, in UTC, without their zone."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def _criteria(patient_id: str, since: datetime | None, until: datetime | None) -> AuditFilter:
    return AuditFilter(patient_id=patient_id, since=_bound(since, "since"), until=_bound(until, "until"))


def _read(record: AuditRecord) -> _Disclosed:
    """The requestor and the disclosed objects of the record's message, or of its columns when unreadable."""
    try:
        view = describe(record.message)
    except UnreadableMessage:
        return _Disclosed(record.organisation_oid, "", ((STUDY, record.study_uid),) if record.study_uid else ())
    asking = requestor(view)
    objects = tuple((_DISCLOSED_OBJECTS[(o.id_type.code, o.id_type.system)], o.object_id) for o in view.objects
                    if (o.id_type.code, o.id_type.system) in _DISCLOSED_OBJECTS and o.object_id)
    if asking is None:
        return _Disclosed("", "", objects)
    to_requestor = asking.role is None or asking.role.code == codes.DESTINATION_ROLE.code
    return _Disclosed(asking.user_id, asking.user_name, objects, to_requestor)


def _disclosing(query: Select[Any]) -> Select[Any]:
    """Only the events that send data out: not the transfers into the hub (STOW-RS, C-STORE)."""
    return query.where(AuditRecord.event_id.in_(DISCLOSURE_EVENTS), ~and_(
        AuditRecord.event_id == codes.INSTANCES_TRANSFERRED.code, AuditRecord.event_type.in_(INBOUND_TRANSFERS)))


def _kind(user_id: str, organisation_oid: str, names: dict[str, str]) -> tuple[RecipientKind, str]:
    if user_id.startswith(SHARE_PREFIX):
        return "share link", user_id[len(SHARE_PREFIX):]
    if user_id in names or (user_id == organisation_oid and _OID.fullmatch(user_id)):
        return "organisation", user_id
    return "user", user_id


def _names(session: Session, oids: set[str]) -> dict[str, str]:
    """The names of the registered organisations among `oids`, in one query."""
    if not oids:
        return {}
    return {oid: name for oid, name in session.execute(
        select(Organisation.oid, Organisation.name).where(Organisation.oid.in_(sorted(oids))))}


def disclosures(session: Session, patient_id: str, since: datetime | None = None,
                until: datetime | None = None) -> list[Disclosure]:
    """The disclosures of patient `patient_id`, oldest first, recorded in [since, until) when given.

    ValueError for a naive `since` or `until`.
    """
    query = (_disclosing(_filtered(select(AuditRecord), _criteria(patient_id, since, until)))
             .where(AuditRecord.outcome.in_(DISCLOSED_OUTCOMES)).order_by(AuditRecord.seq))
    rows = [(record, disclosed) for record in session.scalars(query)
            if (disclosed := _read(record)).to_requestor]
    names = _names(session, {disclosed.user_id for _, disclosed in rows
                             if disclosed.user_id and not disclosed.user_id.startswith(SHARE_PREFIX)})
    report: list[Disclosure] = []
    for record, disclosed in rows:
        kind, recipient_id = _kind(disclosed.user_id, record.organisation_oid, names)
        name = names.get(disclosed.user_id, "") if kind == "organisation" else ""
        report.append(Disclosure(
            seq=record.seq, recorded_at=as_utc(record.recorded_at), recipient_kind=kind,
            recipient_id=recipient_id, recipient_name=name or disclosed.user_name,
            address=record.client_address, transaction=record.event_type, outcome=record.outcome,
            objects=disclosed.objects))
    return report


def refused_attempts(session: Session, patient_id: str, since: datetime | None = None,
                     until: datetime | None = None) -> int:
    """How many disclosures of the patient were refused in [since, until): the disclosure events with outcome
    8 or 12, and Security Alerts (110113), recorded for `patient_id`. ValueError for a naive bound."""
    base = _filtered(select(func.count()).select_from(AuditRecord), _criteria(patient_id, since, until)) \
        .where(AuditRecord.outcome.in_(REFUSED_OUTCOMES))
    refused = _disclosing(base)
    alerts = base.where(AuditRecord.event_id == codes.SECURITY_ALERT.code)
    return int(session.scalar(refused) or 0) + int(session.scalar(alerts) or 0)
