"""The patient link audit message is a valid DICOM audit message (PS3.15 A.5.1): Patient Record, Create, with
the domain id and the local id as patient objects, the domain id first (the one the trail indexes)."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from hub.audit import events
from hub.audit.message import AuditEvent, render_audit_message
from hub.audit.record import entry_of
from tests.unit.hub.audit.test_message import HUB, PARSER, PATIENT, REQUESTOR, SOURCE_ID, TIME, assert_valid

LOCAL = "A-1^^^&1.3.6.1.4.1.21367.2026.101&ISO"


def linked(rehomed: int = 0) -> AuditEvent:
    return events.patient_linked(by=REQUESTOR, hub=HUB, time=TIME, source_id=SOURCE_ID,
                                 organisation_oid=REQUESTOR.user_id, local_id=LOCAL, domain_id=PATIENT,
                                 rehomed=rehomed)


@pytest.mark.schemas
@pytest.mark.parametrize("rehomed", [0, 3])
def test_patient_linked_renders_a_valid_message(rehomed: int) -> None:
    assert_valid(etree.fromstring(render_audit_message(linked(rehomed)), PARSER))


def test_patient_record_create_naming_both_ids() -> None:
    root = etree.fromstring(render_audit_message(linked(3)), PARSER)
    identification = root.find("EventIdentification")
    assert identification.find("EventID").get("csd-code") == "110110"
    assert identification.get("EventActionCode") == "C"
    assert "3 registry entries moved" in identification.findtext("EventOutcomeDescription")
    patients = [(o.get("ParticipantObjectID"), o.get("ParticipantObjectTypeCode"),
                 o.get("ParticipantObjectTypeCodeRole"),
                 base64.b64decode(o.find("ParticipantObjectDetail").get("value")).decode())
                for o in root.findall("ParticipantObjectIdentification")]
    assert patients == [(PATIENT, "1", "1", "affinity domain id"),
                        (LOCAL, "1", "1", f"local id at organisation {REQUESTOR.user_id}")]
    requestor = next(p for p in root.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true")
    assert requestor.get("UserID") == REQUESTOR.user_id
    entry = entry_of(linked())
    assert (entry.event_id, entry.event_type, entry.patient_id) == ("110110", "110110", PATIENT)
