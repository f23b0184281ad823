"""The DICOMweb audit messages (RAD-107, RAD-108, RAD-129) are valid DICOM audit messages (PS3.15 A.5.1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from hub.audit import events
from hub.audit.message import AuditEvent, Outcome, render_audit_message
from tests.unit.hub.audit.test_message import (
    HUB,
    INSTANCES,
    PARSER,
    PATIENT,
    REQUESTOR,
    SOURCE_ID,
    STUDY,
    TIME,
    assert_valid,
)

BUILDERS: dict[str, Callable[[Outcome], AuditEvent]] = {
    "store": lambda outcome: events.dicomweb_store(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, studies=[(STUDY, INSTANCES)],
        patient_id=PATIENT),
    "store_nothing": lambda outcome: events.dicomweb_store(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, studies=[], patient_id=None,
        description="multipart body is truncated"),
    "retrieve": lambda outcome: events.dicomweb_retrieve(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, studies=[(STUDY, INSTANCES)],
        patient_id=PATIENT),
    "query": lambda outcome: events.dicomweb_query(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, path="/dicomweb/studies",
        query=b"PatientName=DOE*&limit=10"),
}


@pytest.mark.schemas
@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: o.name)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_dicomweb_builders_render_valid_messages(builder: str, outcome: Outcome) -> None:
    assert_valid(etree.fromstring(render_audit_message(BUILDERS[builder](outcome)), PARSER))


@pytest.mark.parametrize(("builder", "event_id", "action", "transaction"), [
    ("store", "110104", "C", "RAD-108"), ("retrieve", "110104", "R", "RAD-107"), ("query", "110112", "E", "RAD-129"),
])
def test_event_ids_actions_and_transactions(builder: str, event_id: str, action: str, transaction: str) -> None:
    root = etree.fromstring(render_audit_message(BUILDERS[builder](Outcome.SUCCESS)), PARSER)
    identification = root.find("EventIdentification")
    assert identification.find("EventID").get("csd-code") == event_id
    assert identification.get("EventActionCode") == action
    assert identification.find("EventTypeCode").get("csd-code") == transaction
