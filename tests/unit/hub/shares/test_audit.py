"""The share link audit messages are valid DICOM audit messages (PS3.15 A.5.1), with the viewer as the
Destination, named "share:<link id>", and the browser's User-Agent as a detail of the study."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from lxml import etree

from hub.audit import events
from hub.audit.events import Party
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

VIEWER = Party(user_id="share:5f2c9a", address="198.51.100.7", name="Dr. Who")
AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)"

BUILDERS: dict[str, Callable[[Outcome], AuditEvent]] = {
    "created": lambda outcome: events.share_changed(
        by=REQUESTOR, hub=HUB, time=TIME, source_id=SOURCE_ID, link_id="5f2c9a", study_uid=STUDY,
        patient_id=PATIENT, change="created"),
    "viewed": lambda outcome: events.share_viewed(
        viewer=VIEWER, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, study_uid=STUDY,
        instances=INSTANCES, patient_id=PATIENT, user_agent=AGENT),
    "exported": lambda outcome: events.share_exported(
        viewer=VIEWER, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, study_uid=STUDY,
        instances=INSTANCES, patient_id=None, user_agent=None, description="download broke off"),
}


@pytest.mark.schemas
@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: o.name)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_share_builders_render_valid_messages(builder: str, outcome: Outcome) -> None:
    assert_valid(etree.fromstring(render_audit_message(BUILDERS[builder](outcome)), PARSER))


@pytest.mark.parametrize(("builder", "event_id", "action"), [
    ("created", "110113", "E"), ("viewed", "110103", "R"), ("exported", "110106", "R"),
])
def test_event_ids_and_actions(builder: str, event_id: str, action: str) -> None:
    root = etree.fromstring(render_audit_message(BUILDERS[builder](Outcome.SUCCESS)), PARSER)
    identification = root.find("EventIdentification")
    assert identification.find("EventID").get("csd-code") == event_id
    assert identification.get("EventActionCode") == action


def test_the_viewer_is_the_destination_with_its_browser() -> None:
    root = etree.fromstring(render_audit_message(BUILDERS["viewed"](Outcome.SUCCESS)), PARSER)
    viewer = next(p for p in root.findall("ActiveParticipant") if p.get("UserID") == "share:5f2c9a")
    assert viewer.get("UserIsRequestor") == "true" and viewer.get("UserName") == "Dr. Who"
    assert viewer.find("RoleIDCode").get("csd-code") == "110152"
    study = next(o for o in root.findall("ParticipantObjectIdentification") if o.get("ParticipantObjectID") == STUDY)
    details = {d.get("type"): base64.b64decode(d.get("value")).decode() for d in
               study.findall("ParticipantObjectDetail")}
    assert details["UserAgent"] == AGENT
