"""The DICOM audit message codec (PS3.15 A.5): every builder's message is valid against dicom2017c.xsd
for every outcome, reads back what it was given, and survives hostile text."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

import pytest
from lxml import etree

from hub.audit import codes, events
from hub.audit.events import Party
from hub.audit.message import (
    Action,
    ActiveParticipant,
    AuditEvent,
    Outcome,
    ParticipantObject,
    render_audit_message,
    xml_safe,
)
from tests.conftest import require_samples, require_schemas

PARSER = etree.XMLParser(no_network=True, resolve_entities=False)

REQUESTOR = Party(user_id="1.2.840.99999.1", address="192.0.2.10", name="Org A", alternative_id="client-a")
HUB = Party(user_id="https://hub.example.org/xds/registry", address="hub.example.org")
TIME = datetime(2024, 5, 1, 10, 17, 39, 575123, tzinfo=UTC)
SOURCE_ID = "https://hub.example.org"
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
QUERY_ID = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"   # FindDocuments
QUERY_XML = ('<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0">'
             '<!-- naïve «query» --></query:AdhocQueryRequest>').encode()
HOME = "urn:oid:1.3.6.1.4.1.21367.2011.2.6.181"
SUBMISSION_SET = "1.3.6.1.4.1.21367.2024.1.1"
STUDY = "1.2.826.0.1.3680043.8.498.1"
CT, SR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.59"
INSTANCES = [(CT, f"{STUDY}.1.1"), (CT, f"{STUDY}.1.2"), (SR, f"{STUDY}.2.1")]

Builder = Callable[[Outcome], AuditEvent]

BUILDERS: dict[str, Builder] = {
    "stored_query": lambda outcome: events.stored_query(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, query_id=QUERY_ID,
        query_xml=QUERY_XML, patient_id=PATIENT, home_community_id=HOME, description="found 2"),
    "stored_query_unparsed": lambda outcome: events.stored_query(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, query_id="", query_xml=b"",
        patient_id=None, home_community_id=None),
    "register": lambda outcome: events.register(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        submission_set_uid=SUBMISSION_SET, patient_id=PATIENT, description="XDSRegistryMetadataError"),
    "register_unparsed": lambda outcome: events.register(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, submission_set_uid=None,
        patient_id=None),
    "provide": lambda outcome: events.provide(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        submission_set_uid=SUBMISSION_SET, patient_id=PATIENT),
    "provide_rad68": lambda outcome: events.provide(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        submission_set_uid=SUBMISSION_SET, patient_id=PATIENT, transaction="RAD-68"),
    "retrieve": lambda outcome: events.retrieve(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        documents=[("1.2.3.4.1", "1.2.3.99", HOME), ("1.2.3.4.2", "1.2.3.99", None)], patient_id=PATIENT),
    "retrieve_nothing": lambda outcome: events.retrieve(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, documents=[],
        patient_id=None, description="XDSDocumentUniqueIdError"),
    "retrieve_imaging": lambda outcome: events.retrieve_imaging(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        studies=[(STUDY, INSTANCES), ("1.2.826.0.1.3680043.8.498.2", [("", "1.2.826.0.1.3680043.8.498.2.1")])],
        patient_id=PATIENT),
    "token_issued": lambda outcome: events.token_issued(
        requestor=Party("1.2.840.99999.1", "2001:db8::10"), hub=HUB, outcome=outcome, time=TIME,
        source_id=SOURCE_ID, client_id="client-a", scopes="xds:query xds:retrieve"),
    "token_refused": lambda outcome: events.token_issued(
        requestor=Party("unauthenticated"), hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        client_id="unknown", scopes="", description="invalid_client"),
    "organisation_registered": lambda outcome: events.organisation_registered(
        hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, organisation_oid="1.2.840.99999.7",
        organisation_name="St. Mary <Radiology> & Co", scopes="xds:query audit:read"),
    "instances_imported": lambda outcome: events.instances_imported(
        sender=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        studies=[(STUDY, INSTANCES)], patient_id=PATIENT),
    "audit_log_used": lambda outcome: events.audit_log_used(
        hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID, what="file:///srv/xdshub/audit-archive/a.jsonl"),
    "security_alert": lambda outcome: events.security_alert(
        requestor=Party("unauthenticated", "192.0.2.66"), hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        reason="a client certificate is required", transaction=None, path="/xds/registry"),
    "security_alert_scope": lambda outcome: events.security_alert(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        reason="the access token does not grant the scope 'xds:register'", transaction="ITI-42",
        path="/xds/registry"),
}


@lru_cache(maxsize=1)
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path, PARSER))


def audit_schema() -> etree.XMLSchema:
    """DICOM PS3.15 A.5.1 (2017c) as XSD, loaded offline; skips when XDSHUB_SCHEMAS is unset."""
    return _schema(str(require_schemas() / "audit" / "dicom2017c.xsd"))


def assert_valid(document: bytes | etree._Element) -> None:
    root = etree.fromstring(document, PARSER) if isinstance(document, bytes) else document
    schema = audit_schema()
    if not schema.validate(root):
        errors = "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"not valid against dicom2017c.xsd:\n{errors}")


def parse(event: AuditEvent) -> etree._Element:
    return etree.fromstring(render_audit_message(event), PARSER)


def b64(text: str | None) -> bytes:
    assert text is not None
    return base64.b64decode(text, validate=True)


def details(element: etree._Element) -> dict[str, bytes]:
    return {d.get("type"): b64(d.get("value")) for d in element.iterfind("ParticipantObjectDetail")}


def object_with_id_type(root: etree._Element, code: str) -> list[etree._Element]:
    return [o for o in root.iterfind("ParticipantObjectIdentification")
            if o.find("ParticipantObjectIDTypeCode").get("csd-code") == code]


# -- schema validity --------------------------------------------------------------------------------------------

@pytest.mark.schemas
@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: o.name)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_every_builder_renders_a_valid_message_for_every_outcome(builder: str, outcome: Outcome) -> None:
    root = etree.fromstring(render_audit_message(BUILDERS[builder](outcome)), PARSER)
    assert_valid(root)
    assert root.find("EventIdentification").get("EventOutcomeIndicator") == str(int(outcome))


@pytest.mark.schemas
@pytest.mark.samples
@pytest.mark.parametrize("name", ["ipf-audit-application-start.xml", "ipf-audit-xcpd.xml"])
def test_the_schema_loader_accepts_the_published_samples(name: str) -> None:
    sample = require_samples() / "audit" / name
    assert_valid(etree.parse(str(sample), PARSER).getroot())


@pytest.mark.schemas
def test_the_schema_loader_rejects_children_out_of_order() -> None:
    root = parse(BUILDERS["register"](Outcome.SUCCESS))
    source = root.find("AuditSourceIdentification")
    root.remove(source)
    root.insert(0, source)
    with pytest.raises(AssertionError, match="not valid"):
        assert_valid(root)


def test_children_come_in_schema_order() -> None:
    root = parse(BUILDERS["stored_query"](Outcome.SUCCESS))
    assert [child.tag for child in root] == ["EventIdentification", "ActiveParticipant", "ActiveParticipant",
                                             "AuditSourceIdentification", "ParticipantObjectIdentification",
                                             "ParticipantObjectIdentification"]
    (query,) = object_with_id_type(root, "ITI-18")
    assert [child.tag for child in query] == ["ParticipantObjectIDTypeCode", "ParticipantObjectQuery",
                                              "ParticipantObjectDetail", "ParticipantObjectDetail"]


# -- what is given reads back -----------------------------------------------------------------------------------

def test_stored_query_reads_back() -> None:
    root = parse(BUILDERS["stored_query"](Outcome.MINOR_FAILURE))
    identification = root.find("EventIdentification")
    assert identification.attrib == {"EventActionCode": "E", "EventDateTime": "2024-05-01T10:17:39.575Z",
                                     "EventOutcomeIndicator": "4"}
    assert identification.find("EventID").attrib == {"csd-code": "110112", "codeSystemName": "DCM",
                                                      "originalText": "Query"}
    assert identification.find("EventTypeCode").attrib == {"csd-code": "ITI-18", "codeSystemName": "IHE Transactions",
                                                           "originalText": "Registry Stored Query"}
    assert identification.findtext("EventOutcomeDescription") == "found 2"
    (patient,) = object_with_id_type(root, "2")
    assert (patient.get("ParticipantObjectID"), patient.get("ParticipantObjectTypeCode"),
            patient.get("ParticipantObjectTypeCodeRole")) == (PATIENT, "1", "1")
    (query,) = object_with_id_type(root, "ITI-18")
    assert (query.get("ParticipantObjectID"), query.get("ParticipantObjectTypeCode"),
            query.get("ParticipantObjectTypeCodeRole")) == (QUERY_ID, "2", "24")
    assert b64(query.findtext("ParticipantObjectQuery")) == QUERY_XML
    assert details(query) == {"QueryEncoding": b"UTF-8", "ihe:homeCommunityID": HOME.encode()}
    source = root.find("AuditSourceIdentification")
    assert source.get("AuditSourceID") == SOURCE_ID
    assert source.find("AuditSourceTypeCode").get("csd-code") == "4"


def test_requestor_is_the_source_and_the_hub_the_destination() -> None:
    source, destination = parse(BUILDERS["register"](Outcome.SUCCESS)).iterfind("ActiveParticipant")
    assert source.attrib == {"UserID": REQUESTOR.user_id, "AlternativeUserID": "client-a", "UserName": "Org A",
                             "UserIsRequestor": "true", "NetworkAccessPointID": "192.0.2.10",
                             "NetworkAccessPointTypeCode": "2"}
    assert source.find("RoleIDCode").get("csd-code") == "110153"
    assert destination.attrib == {"UserID": HUB.user_id, "UserIsRequestor": "false",
                                  "NetworkAccessPointID": "hub.example.org", "NetworkAccessPointTypeCode": "1"}
    assert destination.find("RoleIDCode").get("csd-code") == "110152"


@pytest.mark.parametrize(("builder", "transaction"), [("register", "ITI-42"), ("provide", "ITI-41"),
                                                      ("provide_rad68", "RAD-68")])
def test_submissions_are_imports_of_their_submission_set(builder: str, transaction: str) -> None:
    event = BUILDERS[builder](Outcome.SUCCESS)
    root = parse(event)
    assert root.find("EventIdentification/EventID").get("csd-code") == "110107"
    assert root.find("EventIdentification").get("EventActionCode") == "C"
    assert root.find("EventIdentification/EventTypeCode").get("csd-code") == transaction
    (submission,) = object_with_id_type(root, "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
    assert (submission.get("ParticipantObjectID"), submission.get("ParticipantObjectTypeCode"),
            submission.get("ParticipantObjectTypeCodeRole")) == (SUBMISSION_SET, "2", "20")
    assert event.patient_ids == (PATIENT,)


def test_provide_refuses_a_transaction_it_does_not_audit() -> None:
    with pytest.raises(ValueError, match="ITI-43"):
        events.provide(requestor=REQUESTOR, hub=HUB, outcome=Outcome.SUCCESS, time=TIME, source_id=SOURCE_ID,
                       submission_set_uid=None, patient_id=None, transaction="ITI-43")


def test_retrieve_names_each_document_with_its_repository_and_community() -> None:
    event = BUILDERS["retrieve"](Outcome.SUCCESS)
    root = parse(event)
    assert root.find("EventIdentification/EventID").get("csd-code") == "110106"
    assert root.find("EventIdentification").get("EventActionCode") == "R"
    first, second = object_with_id_type(root, "9")
    assert (first.get("ParticipantObjectID"), first.get("ParticipantObjectTypeCode"),
            first.get("ParticipantObjectTypeCodeRole")) == ("1.2.3.4.1", "2", "3")
    assert details(first) == {"Repository Unique Id": b"1.2.3.99", "ihe:homeCommunityID": HOME.encode()}
    assert details(second) == {"Repository Unique Id": b"1.2.3.99"}
    assert event.document_uids == ("1.2.3.4.1", "1.2.3.4.2")


def test_retrieve_imaging_lists_the_sop_instances_of_each_study() -> None:
    event = BUILDERS["retrieve_imaging"](Outcome.SUCCESS)
    root = parse(event)
    assert root.find("EventIdentification/EventTypeCode").get("csd-code") == "RAD-69"
    study, other = object_with_id_type(root, "110180")
    assert study.get("ParticipantObjectID") == STUDY
    classes = study.findall("ParticipantObjectDescription/SOPClass")
    assert [(c.get("UID"), c.get("NumberOfInstances")) for c in classes] == [(CT, "2"), (SR, "1")]
    assert [i.get("UID") for i in study.iterfind("ParticipantObjectDescription/SOPClass/Instance")] == \
        [uid for _, uid in INSTANCES]
    (unknown_class,) = other.findall("ParticipantObjectDescription/SOPClass")
    assert unknown_class.get("UID") is None and unknown_class.get("NumberOfInstances") == "1"
    assert event.study_uids == (STUDY, "1.2.826.0.1.3680043.8.498.2")
    assert event.patient_ids == (PATIENT,)


def test_token_request_is_a_user_authentication_of_the_client() -> None:
    root = parse(BUILDERS["token_issued"](Outcome.SUCCESS))
    assert root.find("EventIdentification/EventID").get("csd-code") == "110114"
    assert root.find("EventIdentification/EventTypeCode").get("csd-code") == "110122"
    source = root.find("ActiveParticipant")
    assert (source.get("AlternativeUserID"), source.get("NetworkAccessPointTypeCode")) == ("client-a", "2")
    (client,) = object_with_id_type(root, "11")
    assert client.get("ParticipantObjectID") == "client-a"
    assert details(client) == {"scope": b"xds:query xds:retrieve"}


@pytest.mark.parametrize(("reason", "code"), [
    ("a client certificate is required", "110126"),
    ("the client certificate is not registered to an organisation", "110126"),
    ("a bearer access token is required", "110132"),
    ("the access token has expired", "110132"),
    ("the access token is bound to another certificate (RFC 8705)", "110132"),
    ("the access token does not grant the scope 'xds:register'", "110132"),
])
def test_security_alert_type_follows_the_reason(reason: str, code: str) -> None:
    event = events.security_alert(requestor=REQUESTOR, hub=HUB, outcome=Outcome.SERIOUS_FAILURE, time=TIME,
                                  source_id=SOURCE_ID, reason=reason, transaction="ITI-41", path="/xds/repository")
    root = parse(event)
    assert root.find("EventIdentification/EventID").get("csd-code") == "110113"
    assert root.find("EventIdentification/EventTypeCode").get("csd-code") == code
    assert root.findtext("EventIdentification/EventOutcomeDescription") == reason
    (subject,) = object_with_id_type(root, "12")
    assert subject.get("ParticipantObjectID") == "/xds/repository"
    assert details(subject) == {"Alert Description": reason.encode(), "IHE Transaction": b"ITI-41"}


def test_security_alert_type_can_be_given() -> None:
    event = events.security_alert(requestor=REQUESTOR, hub=HUB, outcome=Outcome.SERIOUS_FAILURE, time=TIME,
                                  source_id=SOURCE_ID, reason="anything", transaction=None, path="/",
                                  kind=codes.NODE_AUTHENTICATION)
    assert event.type_codes == (codes.NODE_AUTHENTICATION,)


# -- values and their rendering ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "type_code"), [
    ("192.0.2.1", "2"), ("2001:db8::1", "2"), ("[::1]", "2"), ("hub.example.org", "1"), ("localhost", "1"),
])
def test_network_access_point_type_follows_the_address(address: str, type_code: str) -> None:
    event = BUILDERS["register"](Outcome.SUCCESS)
    event = AuditEvent(event.event_id, event.action, event.outcome, event.time, event.type_codes,
                       (ActiveParticipant("x", True, network_access_point=address),), event.source_id)
    participant = parse(event).find("ActiveParticipant")
    assert (participant.get("NetworkAccessPointID"), participant.get("NetworkAccessPointTypeCode")) == \
        (address, type_code)


def test_no_address_no_network_access_point() -> None:
    participant = parse(BUILDERS["token_refused"](Outcome.MINOR_FAILURE)).find("ActiveParticipant")
    assert participant.get("NetworkAccessPointID") is None
    assert participant.get("NetworkAccessPointTypeCode") is None


def test_event_time_is_rendered_in_utc_and_must_be_aware() -> None:
    event = BUILDERS["register"](Outcome.SUCCESS)
    paris = AuditEvent(event.event_id, event.action, event.outcome, datetime(2024, 5, 1, 12, 0, 1, 9000,
                       tzinfo=timezone(timedelta(hours=2))), event.type_codes, event.participants, event.source_id)
    assert parse(paris).find("EventIdentification").get("EventDateTime") == "2024-05-01T10:00:01.009Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditEvent(event.event_id, event.action, event.outcome, datetime(2024, 5, 1), event.type_codes,
                   event.participants, event.source_id)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"type_code": 5, "role": None}, "TypeCode"),
    ({"type_code": 2, "role": 27}, "TypeCodeRole"),
    ({"type_code": 2, "role": None, "name": "n", "query": b"q"}, "name or a query"),
])
def test_participant_object_refuses_what_the_schema_would(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ParticipantObject("id", id_type=codes.URI, **kwargs)  # type: ignore[arg-type]


def test_an_event_names_a_participant() -> None:
    with pytest.raises(ValueError, match="active participant"):
        AuditEvent(codes.QUERY, Action.EXECUTE, Outcome.SUCCESS, TIME, (), (), SOURCE_ID)


def test_output_is_utf8_without_declaration() -> None:
    document = render_audit_message(events.register(
        requestor=Party("1.2.3", name="Hôpital de Zürich"), hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
        source_id=SOURCE_ID, submission_set_uid=None, patient_id=None))
    assert document.startswith(b"<AuditMessage>")
    assert "Hôpital de Zürich".encode() in document


# -- hostile text -----------------------------------------------------------------------------------------------

HOSTILE = [
    'quotes " and \' and <tags> & &amp; entities',
    "]]> <!-- --> <?pi?> <!DOCTYPE x [<!ENTITY e 'boom'>]> &e;",
    "non-ASCII: Ærøskøbing, 東京, emoji \U0001f600, RTL \u202e",
    "tab\tnewline\ncarriage\rreturn",
]
CONTROL = "nul\x00 bell\x07 escape\x1b formfeed\x0c del-ok\x7f lone\ud800surrogate noncharacters\ufffe\uffff end"


def hostile_event(text: str) -> AuditEvent:
    return events.register(requestor=Party(user_id=text, address=text, name=text, alternative_id=text),
                           hub=HUB, outcome=Outcome.MINOR_FAILURE, time=TIME, source_id=SOURCE_ID,
                           submission_set_uid=text, patient_id=text, description=text)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips_exactly(text: str) -> None:
    root = parse(hostile_event(text))
    assert root.findtext("EventIdentification/EventOutcomeDescription") == text
    source = root.find("ActiveParticipant")
    assert source.get("UserID") == source.get("UserName") == source.get("AlternativeUserID") == text
    assert [o.get("ParticipantObjectID") for o in root.iterfind("ParticipantObjectIdentification")] == [text, text]


def test_characters_xml_cannot_carry_are_replaced() -> None:
    root = parse(hostile_event(CONTROL))
    expected = ("nul\ufffd bell\ufffd escape\ufffd formfeed\ufffd del-ok\x7f lone\ufffdsurrogate "
                "noncharacters\ufffd\ufffd end")
    assert root.findtext("EventIdentification/EventOutcomeDescription") == expected
    assert root.find("ActiveParticipant").get("UserName") == expected


def test_control_characters_in_a_query_and_details_keep_every_byte() -> None:
    query = b"\x00\x01<AdhocQueryRequest/>\xff"
    event = events.stored_query(requestor=REQUESTOR, hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
                                source_id=SOURCE_ID, query_id=QUERY_ID, query_xml=query, patient_id=None,
                                home_community_id="urn:oid:1.2\x00")
    (query_object,) = object_with_id_type(parse(event), "ITI-18")
    assert b64(query_object.findtext("ParticipantObjectQuery")) == query
    assert details(query_object)["ihe:homeCommunityID"] == b"urn:oid:1.2\x00"


@pytest.mark.schemas
@pytest.mark.parametrize("text", [*HOSTILE, CONTROL])
def test_hostile_text_stays_schema_valid(text: str) -> None:
    assert_valid(render_audit_message(hostile_event(text)))
    alert = events.security_alert(requestor=Party(text, text, text, text), hub=HUB, outcome=Outcome.SERIOUS_FAILURE,
                                  time=TIME, source_id=SOURCE_ID, reason=text, transaction=text, path=text)
    assert_valid(render_audit_message(alert))


def test_xml_safe_keeps_what_xml_allows() -> None:
    allowed = "\t\n\r ~\x7f\x85\u00e9\ud7ff\ue000\ufffd\U00010000\U0010ffff"
    assert xml_safe(allowed) == allowed
    assert xml_safe("\x00\x08\x0b\x0e\x1f\ud800\udfff\ufffe\uffff") == "\ufffd" * 9


@pytest.mark.parametrize("exporting", [True, False])
def test_the_hub_is_the_source_when_it_sends_data(exporting: bool) -> None:
    caller, hub = Party("1.2.3.4", "10.0.0.7"), Party("https://hub.example/xds/repository", "hub.example")
    now = datetime(2026, 11, 29, tzinfo=UTC)
    if exporting:
        event = events.retrieve(requestor=caller, hub=hub, outcome=Outcome.SUCCESS, time=now, source_id="hub",
                                documents=[("1.2.3.9", "1.2.3.1", None)], patient_id=None)
    else:
        event = events.register(requestor=caller, hub=hub, outcome=Outcome.SUCCESS, time=now, source_id="hub",
                                submission_set_uid="1.2.3.8", patient_id=None)
    roles = {p.user_id: (p.role, p.requestor) for p in event.participants}
    sender, receiver = (hub, caller) if exporting else (caller, hub)
    assert roles[sender.user_id][0] == codes.SOURCE_ROLE
    assert roles[receiver.user_id][0] == codes.DESTINATION_ROLE
    assert roles[caller.user_id][1] is True and roles[hub.user_id][1] is False
