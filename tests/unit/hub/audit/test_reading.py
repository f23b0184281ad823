"""Reading stored audit messages back for display: what each event builder wrote reads back as plain values,
and hostile or broken XML is refused as UnreadableMessage with nothing resolved or fetched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.audit import events
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome, render_audit_message
from hub.audit.reading import Code, ParticipantView, UnreadableMessage, describe, pretty_xml, requestor

REQUESTOR = Party(user_id="1.2.840.99999.1", address="192.0.2.10", name="Org A", alternative_id="client-a")
HUB = Party(user_id="https://hub.example.org/xds/repository", address="hub.example.org")
TIME = datetime(2024, 5, 1, 10, 17, 39, 575123, tzinfo=UTC)
SOURCE_ID = "https://hub.example.org"
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
HOME = "urn:oid:1.3.6.1.4.1.21367.2011.2.6.181"
STUDY = "1.2.826.0.1.3680043.8.498.1"
CT, SR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.59"
QUERY_XML = ('<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0">'
             '<!-- naïve «query» --></query:AdhocQueryRequest>').encode()


def stored(event: AuditEvent) -> str:
    """The message as the audit table stores it (hub.audit.record)."""
    return render_audit_message(event).decode("utf-8")


def retrieve(outcome: Outcome = Outcome.SUCCESS) -> str:
    return stored(events.retrieve(
        requestor=REQUESTOR, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
        documents=[("1.2.3.4.1", "1.2.3.99", HOME), ("1.2.3.4.2", "1.2.3.99", None)], patient_id=PATIENT))


def alert() -> str:
    return stored(events.security_alert(
        requestor=Party("unauthenticated", "192.0.2.66"), hub=HUB, outcome=Outcome.SERIOUS_FAILURE, time=TIME,
        source_id=SOURCE_ID, reason="the access token does not grant the scope 'xds:retrieve'",
        transaction="ITI-43", path="/xds/repository"))


# -- what the builders wrote reads back -------------------------------------------------------------------------

def test_a_retrieve_reads_back() -> None:
    view = describe(retrieve())
    assert view.event == Code("110106", "DCM", "Export")
    assert view.event_types == (Code("ITI-43", "IHE Transactions", "Retrieve Document Set"),)
    assert (view.action, view.outcome, view.outcome_meaning, view.outcome_description, view.event_time) == (
        "R", 0, "Success", "", "2024-05-01T10:17:39.575Z")
    assert view.source_id == SOURCE_ID
    assert view.participants == (
        ParticipantView(HUB.user_id, "", "", False, Code("110153", "DCM", "Source Role ID"), "hub.example.org"),
        ParticipantView(REQUESTOR.user_id, "client-a", "Org A", True, Code("110152", "DCM", "Destination Role ID"),
                        "192.0.2.10"))
    patient, first, second = view.objects
    assert (patient.object_id, patient.id_type.label, patient.type_code, patient.role) == (
        PATIENT, "Patient Number", 1, 1)
    assert (first.object_id, first.id_type, first.type_code, first.role, first.name, first.query) == (
        "1.2.3.4.1", Code("9", "RFC-3881", "Report Number"), 2, 3, None, None)
    assert first.details == (("Repository Unique Id", "1.2.3.99"), ("ihe:homeCommunityID", HOME))
    assert second.details == (("Repository Unique Id", "1.2.3.99"),)


def test_the_requestor_is_the_participant_who_asked() -> None:
    asking = requestor(describe(retrieve()))
    assert asking is not None
    assert (asking.user_id, asking.user_name, asking.is_requestor) == (REQUESTOR.user_id, "Org A", True)


def test_a_message_without_a_requestor_has_none() -> None:
    message = retrieve().replace('UserIsRequestor="true"', 'UserIsRequestor="false"')
    assert requestor(describe(message)) is None


@pytest.mark.parametrize("query_xml, text", [
    (QUERY_XML, QUERY_XML.decode("utf-8")),
    (b"<q>caf\xe9 \xff</q>", "<q>caf\ufffd \ufffd</q>"),      # not UTF-8: shown with replacement characters
    (b"", ""),                                                   # an unparsed request: present but empty
])
def test_the_query_is_decoded_as_text(query_xml: bytes, text: str) -> None:
    view = describe(stored(events.stored_query(
        requestor=REQUESTOR, hub=HUB, outcome=Outcome.SUCCESS, time=TIME, source_id=SOURCE_ID,
        query_id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", query_xml=query_xml, patient_id=PATIENT,
        home_community_id=HOME)))
    (query,) = [o for o in view.objects if o.query is not None]
    assert query.query == text
    assert (query.id_type.code, query.role) == ("ITI-18", 24)
    assert query.details == (("QueryEncoding", "UTF-8"), ("ihe:homeCommunityID", HOME))


def test_a_retrieve_imaging_counts_instances_by_sop_class() -> None:
    view = describe(stored(events.retrieve_imaging(
        requestor=REQUESTOR, hub=HUB, outcome=Outcome.MINOR_FAILURE, time=TIME, source_id=SOURCE_ID,
        studies=[(STUDY, [(CT, f"{STUDY}.1.1"), (CT, f"{STUDY}.1.2"), (SR, f"{STUDY}.2.1")]),
                 ("1.2.826.0.1.3680043.8.498.2", [("", "1.2.826.0.1.3680043.8.498.2.1")])],
        patient_id=PATIENT, description="1 of 4 instances missing")))
    assert (view.event_types[0].code, view.outcome, view.outcome_meaning, view.outcome_description) == (
        "RAD-69", 4, "Minor failure", "1 of 4 instances missing")
    _, study, other = view.objects
    assert (study.object_id, study.id_type.label, study.sop_classes) == (STUDY, "Study Instance UID",
                                                                         ((CT, 2), (SR, 1)))
    assert other.sop_classes == (("", 1),)


def test_a_security_alert_reads_back() -> None:
    view = describe(alert())
    assert (view.event.label, view.event_types[0].label, view.outcome, view.outcome_meaning) == (
        "Security Alert", "Use of Restricted Function", 8, "Serious failure")
    assert view.outcome_description == "the access token does not grant the scope 'xds:retrieve'"
    (subject,) = view.objects
    assert (subject.object_id, subject.id_type.label, subject.role) == ("/xds/repository", "URI", None)
    assert subject.details == (("Alert Description", view.outcome_description), ("IHE Transaction", "ITI-43"))


def test_hostile_text_reads_back_as_written() -> None:
    name = 'Org "A" <script>alert(1)</script> & \x00\x1b naïve'
    view = describe(stored(events.retrieve(
        requestor=Party("1.2.840.99999.1", "192.0.2.10", name=name), hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
        source_id=SOURCE_ID, documents=[], patient_id=PATIENT, description="=cmd|' /C calc'!A0")))
    asking = requestor(view)
    assert asking is not None and asking.user_name == 'Org "A" <script>alert(1)</script> & \ufffd\ufffd naïve'
    assert view.outcome_description == "=cmd|' /C calc'!A0"


def test_pretty_xml_indents_and_reads_back_the_same() -> None:
    message = retrieve()
    pretty = pretty_xml(message)
    lines = pretty.splitlines()
    assert lines[0] == "<AuditMessage>" and lines[1].startswith("  <EventIdentification ")
    assert any(line.startswith("    <EventID ") for line in lines)
    assert describe(pretty) == describe(message)


# -- what is not a readable message ----------------------------------------------------------------------------

def broken(change: tuple[str, str]) -> str:
    old, new = change
    message = retrieve()
    assert old in message
    return message.replace(old, new, 1)


@pytest.mark.parametrize("message", [
    "",
    "not xml at all",
    "<AuditMessage><EventIdentification>",
    "<Envelope/>",
    broken(('<EventID csd-code="110106" codeSystemName="DCM" originalText="Export"/>', "")),
    broken(('EventOutcomeIndicator="0"', 'EventOutcomeIndicator="zero"')),
    broken(('EventOutcomeIndicator="0"', 'EventOutcomeIndicator="4_0"')),
    broken(('EventOutcomeIndicator="0"', "")),
    broken(('ParticipantObjectTypeCode="2"', 'ParticipantObjectTypeCode="two"')),
    broken(('value="MS4yLjMuOTk="', 'value="not base64!"')),
], ids=["empty", "text", "truncated", "other root", "no EventID", "outcome not a number", "outcome with underscore",
        "no outcome", "object type not a number", "detail not base64"])
def test_what_is_not_an_audit_message_is_unreadable(message: str) -> None:
    with pytest.raises(UnreadableMessage):
        describe(message)


def test_unreadable_message_is_a_value_error() -> None:
    assert issubclass(UnreadableMessage, ValueError)
    with pytest.raises(ValueError):
        pretty_xml("<AuditMessage>")


def with_entity(reference: str) -> str:
    """A real Security Alert whose EventOutcomeDescription text is the entity `reference`."""
    message = alert()
    description = "<EventOutcomeDescription>the access token does not grant the scope 'xds:retrieve'<"
    assert description in message
    return message.replace(description, f"<EventOutcomeDescription>{reference}<", 1)


def test_even_a_harmless_internal_entity_is_refused() -> None:
    # libxml2 substitutes internal entities in attribute values whatever resolve_entities says: the DTD is refused.
    message = '<!DOCTYPE AuditMessage [<!ENTITY x "injected">]>' + alert().replace(
        'AuditSourceID="https://hub.example.org"', 'AuditSourceID="&x;"', 1)
    with pytest.raises(UnreadableMessage, match="document type declaration"):
        describe(message)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that would see any connection the parser made (it must see none).

    libxml2 builds without HTTP support (2.13 and later by default) never connect whatever the parser's
    options; on a build with it, this is what catches a parser that reaches the network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def nothing_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_an_external_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    message = f'<!DOCTYPE AuditMessage [<!ENTITY x SYSTEM "{secret.as_uri()}">]>' + with_entity("&x;")
    for read in (describe, pretty_xml):
        with pytest.raises(UnreadableMessage, match="document type declaration") as caught:
            read(message)
        assert "TOP-SECRET" not in str(caught.value)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE AuditMessage [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/entity">]>',
    '<!DOCTYPE AuditMessage SYSTEM "http://127.0.0.1:{port}/audit.dtd">',
    '<!DOCTYPE AuditMessage [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>',
], ids=["external entity", "external DTD", "parameter entity"])
def test_nothing_is_fetched_over_the_network(listener: socket.socket, doctype: str) -> None:
    port = listener.getsockname()[1]
    message = doctype.format(port=port) + with_entity("&x;")
    for read in (describe, pretty_xml):
        with pytest.raises(UnreadableMessage, match="document type declaration"):
            read(message)
    assert nothing_connected(listener)


def test_billion_laughs_is_refused_quickly() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    message = f"<!DOCTYPE AuditMessage [{''.join(entities)}]>" + with_entity("&lol9;")
    started = time.monotonic()
    for read in (describe, pretty_xml):
        with pytest.raises(UnreadableMessage):
            read(message)
    assert time.monotonic() - started < 2.0
