"""Reading a stored audit message back: the DICOM PS3.15 A.5.1 XML as plain, display-ready dataclasses.

`describe(message)` reads what `hub.audit.message.render_audit_message` wrote
(and any message of the same schema) into a `RecordView`:

    RecordView
      event, event_types         EventID, EventTypeCode* (Code: code, system, display)
      action, outcome, ...       EventActionCode, EventOutcomeIndicator, EventOutcomeDescription, EventDateTime
      participants               ActiveParticipant+ (ParticipantView)
      source_id                  AuditSourceIdentification/@AuditSourceID
      objects                    ParticipantObjectIdentification* (ObjectView)

Base64 values (ParticipantObjectQuery, ParticipantObjectDetail/@value) are
decoded to text, UTF-8 with U+FFFD for what is not UTF-8, so hostile bytes
display as text and never raise. The message is parsed with the hub's
hardened parser (no entities resolved, no DTD loaded, no network, no huge
trees), and a document type declaration is refused outright: an audit message
never carries one, so it can only be an attempt at an entity attack. Anything
that is not a readable audit message raises `UnreadableMessage` (a
ValueError), never an lxml or base64 exception.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from lxml import etree

from hub.soap.envelope import hardened_parser

__all__ = [
    "Code", "ObjectView", "ParticipantView", "RecordView", "UnreadableMessage", "describe", "pretty_xml",
    "requestor",
]

# EventOutcomeIndicator meanings (PS3.15 A.5.1, RFC 3881 5.1.4)
OUTCOME_MEANINGS = {0: "Success", 4: "Minor failure", 8: "Serious failure", 12: "Major failure"}
_NUMBER = re.compile(r"-?[0-9]{1,9}")     # the xs:integer values of the schema, no more than an int needs


class UnreadableMessage(ValueError):
    """A stored message that is not a readable DICOM audit message (not XML, a DTD, a missing part, bad base64)."""


@dataclass(frozen=True)
class Code:
    """A coded value as the message carries it (csd-code, codeSystemName, originalText)."""

    code: str
    system: str
    display: str

    @property
    def label(self) -> str:
        """What to show: the display text, else the code."""
        return self.display or self.code


@dataclass(frozen=True)
class ParticipantView:
    """One ActiveParticipant (PS3.15 A.5.1, RFC 3881 5.3); absent attributes are ""."""

    user_id: str
    alternative_user_id: str
    user_name: str
    is_requestor: bool
    role: Code | None
    network_access_point: str


@dataclass(frozen=True)
class ObjectView:
    """One ParticipantObjectIdentification (PS3.15 A.5.1, RFC 3881 5.5), base64 values decoded.

    `query` is None when the object has no ParticipantObjectQuery; `details`
    are (type, text) pairs; `sop_classes` are (SOP Class UID, number of
    instances) from the DICOM ParticipantObjectDescription.
    """

    object_id: str
    id_type: Code
    type_code: int | None
    role: int | None
    name: str | None
    query: str | None
    details: tuple[tuple[str, str], ...]
    sop_classes: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RecordView:
    """One audit message, ready to display."""

    event: Code
    event_types: tuple[Code, ...]
    action: str
    outcome: int
    outcome_description: str
    event_time: str                     # EventDateTime as stored, e.g. 2024-05-01T10:17:39.575Z
    participants: tuple[ParticipantView, ...]
    source_id: str
    objects: tuple[ObjectView, ...]

    @property
    def outcome_meaning(self) -> str:
        """The outcome code's meaning, "Success" to "Major failure" (RFC 3881 5.1.4)."""
        return OUTCOME_MEANINGS.get(self.outcome, f"outcome {self.outcome}")


def _parse(message: str) -> etree._Element:
    try:
        root = etree.fromstring(message.encode("utf-8"), hardened_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise UnreadableMessage(f"the audit message is not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnreadableMessage("the audit message carries a document type declaration (never written by the hub)")
    if root.tag != "AuditMessage":
        raise UnreadableMessage(f"the root element is {root.tag!r}, not AuditMessage (PS3.15 A.5.1)")
    return root


def _code(element: etree._Element | None) -> Code | None:
    if element is None:
        return None
    return Code(element.get("csd-code", ""), element.get("codeSystemName", ""), element.get("originalText", ""))


def _int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if not _NUMBER.fullmatch(value.strip()):
        raise UnreadableMessage(f"{what} {value[:40]!r} is not a number")
    return int(value)


def _text(encoded: str, what: str) -> str:
    """Base64 (whitespace allowed, as in wrapped MIME) decoded to UTF-8 text, U+FFFD for bytes that are not."""
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableMessage(f"the {what} is not base64") from None
    return raw.decode("utf-8", "replace")


def _participant(element: etree._Element) -> ParticipantView:
    # UserIsRequestor is xs:boolean, "true" when absent (RFC 3881 5.3.4)
    return ParticipantView(
        user_id=element.get("UserID", ""), alternative_user_id=element.get("AlternativeUserID", ""),
        user_name=element.get("UserName", ""),
        is_requestor=element.get("UserIsRequestor", "true").strip() in ("true", "1"),
        role=_code(element.find("RoleIDCode")), network_access_point=element.get("NetworkAccessPointID", ""))


def _sop_class(element: etree._Element) -> tuple[str, int]:
    count = _int(element.get("NumberOfInstances"), "NumberOfInstances")
    return element.get("UID", ""), count if count is not None else len(element.findall("Instance"))


def _object(element: etree._Element) -> ObjectView:
    query = element.find("ParticipantObjectQuery")
    description = element.find("ParticipantObjectDescription")
    return ObjectView(
        object_id=element.get("ParticipantObjectID", ""),
        id_type=_code(element.find("ParticipantObjectIDTypeCode")) or Code("", "", ""),
        type_code=_int(element.get("ParticipantObjectTypeCode"), "ParticipantObjectTypeCode"),
        role=_int(element.get("ParticipantObjectTypeCodeRole"), "ParticipantObjectTypeCodeRole"),
        name=element.findtext("ParticipantObjectName"),
        query=_text(query.text or "", "ParticipantObjectQuery") if query is not None else None,
        details=tuple((detail.get("type", ""), _text(detail.get("value", ""), "ParticipantObjectDetail value"))
                      for detail in element.iterchildren("ParticipantObjectDetail")),
        sop_classes=tuple(_sop_class(sop) for sop in description.iterchildren("SOPClass"))
        if description is not None else ())


def describe(message: str) -> RecordView:
    """The audit message `message` (XML text, as stored) as a RecordView; UnreadableMessage if it is none."""
    root = _parse(message)
    identification = root.find("EventIdentification")
    event = _code(identification.find("EventID")) if identification is not None else None
    if identification is None or event is None:
        raise UnreadableMessage("the audit message has no EventIdentification/EventID (PS3.15 A.5.1)")
    outcome = _int(identification.get("EventOutcomeIndicator"), "EventOutcomeIndicator")
    if outcome is None:
        raise UnreadableMessage("the audit message has no EventOutcomeIndicator (PS3.15 A.5.1)")
    source = root.find("AuditSourceIdentification")
    return RecordView(
        event=event,
        event_types=tuple(c for c in map(_code, identification.iterchildren("EventTypeCode")) if c is not None),
        action=identification.get("EventActionCode", ""),
        outcome=outcome,
        outcome_description=identification.findtext("EventOutcomeDescription") or "",
        event_time=identification.get("EventDateTime", ""),
        participants=tuple(_participant(p) for p in root.iterchildren("ActiveParticipant")),
        source_id=source.get("AuditSourceID", "") if source is not None else "",
        objects=tuple(_object(o) for o in root.iterchildren("ParticipantObjectIdentification")),
    )


def pretty_xml(message: str) -> str:
    """`message` indented two spaces a level, for display (parsed as `describe` parses; UnreadableMessage too)."""
    root = _parse(message)
    etree.indent(root, space="  ")
    return str(etree.tostring(root, encoding="unicode"))


def requestor(view: RecordView) -> ParticipantView | None:
    """The participant that asked for the event (UserIsRequestor true), or None when none did."""
    return next((p for p in view.participants if p.is_requestor), None)
