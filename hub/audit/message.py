"""The DICOM audit message (PS3.15 A.5.1) as plain dataclasses, and its XML rendering.

`render_audit_message(event)` writes the `<AuditMessage>` of DICOM PS3.15 A.5.1
(no namespace) with its children in exactly the order the schema of that
edition (dicom2017c.xsd, as used by IHE ATNA, ITI TF-2 3.20) demands:

    AuditMessage
      EventIdentification  (EventID, EventTypeCode*, EventOutcomeDescription?)
      ActiveParticipant+   (RoleIDCode*)
      AuditSourceIdentification (AuditSourceTypeCode*)
      ParticipantObjectIdentification*
        (ParticipantObjectIDTypeCode, ParticipantObjectName | ParticipantObjectQuery,
         ParticipantObjectDetail*, ParticipantObjectDescription (SOPClass (Instance*))*)

Text that XML 1.0 cannot carry (control characters, lone surrogates,
U+FFFE/U+FFFF) is replaced by U+FFFD, so hostile input in a description never
breaks the record; query and detail values are base64 and keep every byte.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, IntEnum

from lxml import etree

from hub.audit import codes
from hub.audit.codes import CodedValue, NetworkAccessPointType

__all__ = [
    "Action", "ActiveParticipant", "AuditEvent", "CodedValue", "Outcome", "ParticipantObject", "render_audit_message",
    "xml_safe",
]


class Outcome(IntEnum):
    """EventOutcomeIndicator (PS3.15 A.5.1, RFC 3881 5.1.4)."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


class Action(str, Enum):
    """EventActionCode (PS3.15 A.5.1, RFC 3881 5.1.2)."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


@dataclass(frozen=True)
class ActiveParticipant:
    """A user or process taking part in the event (PS3.15 A.5.1 ActiveParticipant, RFC 3881 5.3).

    `network_access_point` is an IP address (NetworkAccessPointTypeCode 2) or a
    machine name (1); the type code is decided from the value.
    """

    user_id: str
    requestor: bool
    role: CodedValue | None = None
    alternative_user_id: str | None = None
    user_name: str | None = None
    network_access_point: str | None = None

    @property
    def network_access_point_type(self) -> NetworkAccessPointType | None:
        if not self.network_access_point:
            return None
        try:
            ipaddress.ip_address(self.network_access_point.strip("[]"))
        except ValueError:
            return NetworkAccessPointType.MACHINE_NAME
        return NetworkAccessPointType.IP_ADDRESS


@dataclass(frozen=True)
class ParticipantObject:
    """A patient, document, study, query or resource the event concerns (PS3.15 A.5.1, RFC 3881 5.5).

    `query` renders as ParticipantObjectQuery and `details` as
    ParticipantObjectDetail type/value pairs, both base64. `sop_classes`
    ((SOP Class UID, (SOP Instance UID, ...)), ...) renders as the DICOM
    ParticipantObjectDescription of a study. The 2017c schema has no free-text
    ParticipantObjectDescription, so `description` renders as a detail of type
    "Description".
    """

    object_id: str
    type_code: int
    role: int | None
    id_type: CodedValue
    name: str | None = None
    query: bytes | None = None
    details: tuple[tuple[str, bytes], ...] = ()
    description: str | None = None
    sop_classes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.type_code not in range(1, 5):
            raise ValueError(f"ParticipantObjectTypeCode {self.type_code} is not 1-4 (RFC 3881 5.5.1)")
        if self.role is not None and self.role not in range(1, 27):
            raise ValueError(f"ParticipantObjectTypeCodeRole {self.role} is not 1-26 (RFC 3881 5.5.2)")
        if self.name is not None and self.query is not None:
            raise ValueError("a participant object has a name or a query, not both (PS3.15 A.5.1)")


@dataclass(frozen=True)
class AuditEvent:
    """One audit message (PS3.15 A.5.1): what happened, who took part, who reports it, what it concerned."""

    event_id: CodedValue
    action: Action
    outcome: Outcome
    time: datetime
    type_codes: tuple[CodedValue, ...]
    participants: tuple[ActiveParticipant, ...]
    source_id: str
    enterprise_site_id: str | None = None
    objects: tuple[ParticipantObject, ...] = ()
    outcome_description: str | None = None
    source_type: CodedValue | None = codes.APPLICATION_SERVER

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("the event time must be timezone-aware (UTC)")
        if not self.participants:
            raise ValueError("an audit message names at least one active participant (PS3.15 A.5.1)")

    def _ids_of(self, id_type: CodedValue) -> tuple[str, ...]:
        return tuple(o.object_id for o in self.objects
                     if (o.id_type.code, o.id_type.system) == (id_type.code, id_type.system) and o.object_id)

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """ParticipantObjectIDs of the patients (ID type RFC-3881 "2" Patient Number)."""
        return self._ids_of(codes.PATIENT_NUMBER)

    @property
    def study_uids(self) -> tuple[str, ...]:
        """ParticipantObjectIDs of the studies (ID type DCM 110180 Study Instance UID)."""
        return self._ids_of(codes.STUDY_INSTANCE_UID)

    @property
    def document_uids(self) -> tuple[str, ...]:
        """ParticipantObjectIDs of the documents (ID type RFC-3881 "9" Report Number)."""
        return self._ids_of(codes.REPORT_NUMBER)


# XML 1.0 section 2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot carry replaced by U+FFFD REPLACEMENT CHARACTER."""
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _timestamp(moment: datetime) -> str:
    """xs:dateTime in UTC with milliseconds, e.g. 2024-05-01T10:17:39.575Z."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _element(parent: etree._Element, tag: str, attributes: dict[str, str | None]) -> etree._Element:
    """A child element carrying the attributes that have a value, each made XML-safe."""
    child = etree.SubElement(parent, tag)
    for name, value in attributes.items():
        if value is not None:
            child.set(name, xml_safe(value))
    return child


def _text(parent: etree._Element, tag: str, text: str) -> None:
    etree.SubElement(parent, tag).text = text


def _coded(parent: etree._Element, tag: str, value: CodedValue) -> etree._Element:
    return _element(parent, tag, {"csd-code": value.code, "codeSystemName": value.system,
                                  "originalText": value.display})


def _event_identification(root: etree._Element, event: AuditEvent) -> None:
    identification = _element(root, "EventIdentification", {
        "EventActionCode": event.action.value,
        "EventDateTime": _timestamp(event.time),
        "EventOutcomeIndicator": str(int(event.outcome)),
    })
    _coded(identification, "EventID", event.event_id)
    for type_code in event.type_codes:
        _coded(identification, "EventTypeCode", type_code)
    if event.outcome_description is not None:
        _text(identification, "EventOutcomeDescription", xml_safe(event.outcome_description))


def _active_participant(root: etree._Element, participant: ActiveParticipant) -> None:
    access_type = participant.network_access_point_type
    element = _element(root, "ActiveParticipant", {
        "UserID": participant.user_id,
        "AlternativeUserID": participant.alternative_user_id or None,
        "UserName": participant.user_name or None,
        "UserIsRequestor": "true" if participant.requestor else "false",
        "NetworkAccessPointID": participant.network_access_point or None,
        "NetworkAccessPointTypeCode": str(int(access_type)) if access_type is not None else None,
    })
    if participant.role is not None:
        _coded(element, "RoleIDCode", participant.role)


def _audit_source(root: etree._Element, event: AuditEvent) -> None:
    source = _element(root, "AuditSourceIdentification", {
        "AuditEnterpriseSiteID": event.enterprise_site_id or None,
        "AuditSourceID": event.source_id,
    })
    if event.source_type is not None:
        _coded(source, "AuditSourceTypeCode", event.source_type)


def _participant_object(root: etree._Element, item: ParticipantObject) -> None:
    element = _element(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": item.object_id or None,
        "ParticipantObjectTypeCode": str(item.type_code),
        "ParticipantObjectTypeCodeRole": str(item.role) if item.role is not None else None,
    })
    _coded(element, "ParticipantObjectIDTypeCode", item.id_type)
    if item.name is not None:
        _text(element, "ParticipantObjectName", xml_safe(item.name))
    elif item.query is not None:
        _text(element, "ParticipantObjectQuery", _b64(item.query))
    details = item.details
    if item.description is not None:
        details += ((codes.DESCRIPTION, item.description.encode("utf-8", "replace")),)
    for kind, value in details:
        _element(element, "ParticipantObjectDetail", {"type": kind, "value": _b64(value)})
    if item.sop_classes:
        description = etree.SubElement(element, "ParticipantObjectDescription")
        for sop_class, instances in item.sop_classes:
            sop = _element(description, "SOPClass", {"UID": sop_class or None,
                                                     "NumberOfInstances": str(len(instances))})
            for instance in instances:
                _element(sop, "Instance", {"UID": instance})


def render_audit_message(event: AuditEvent) -> bytes:
    """The UTF-8 XML of `event`: a DICOM PS3.15 A.5.1 AuditMessage (no XML declaration; UTF-8 is the default)."""
    root = etree.Element("AuditMessage")
    _event_identification(root, event)
    for participant in event.participants:
        _active_participant(root, participant)
    _audit_source(root, event)
    for item in event.objects:
        _participant_object(root, item)
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)
