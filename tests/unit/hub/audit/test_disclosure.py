"""The per-patient disclosure report, from records written the way the hub writes them (hub.audit.record):
who received the patient's documents and images, oldest first; refusals only counted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, update

from hub.audit import codes, events
from hub.audit.chain import append
from hub.audit.codes import ObjectRole, ObjectType
from hub.audit.disclosure import Disclosure, disclosures, refused_attempts
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome, ParticipantObject
from hub.audit.record import entry_of, record
from hub.audit.tables import AuditRecord
from hub.db import Database
from hub.settings import Settings

ORG_A = Party(user_id="1.2.840.99999.1", address="192.0.2.10", name="Org A (as it called itself)",
              alternative_id="client-a")
ORG_B = Party(user_id="1.2.840.99999.2", address="198.51.100.7", name="Org B", alternative_id="client-b")
HUB = Party(user_id="https://hub.example.org/xds/repository", address="hub.example.org")
SOURCE_ID = "https://hub.example.org"
TIME = datetime(2024, 5, 1, 10, 17, 39, tzinfo=UTC)
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
OTHER_PATIENT = "Q999^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
REPOSITORY = "1.3.6.1.4.1.21367.2024.9"
DOCUMENT = "1.3.6.1.4.1.21367.2024.1.1"
STUDY = "1.2.826.0.1.3680043.8.498.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def retrieve(requestor: Party = ORG_A, outcome: Outcome = Outcome.SUCCESS, patient_id: str = PATIENT,
             documents: tuple[str, ...] = (DOCUMENT,)) -> AuditEvent:
    return events.retrieve(requestor=requestor, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
                           documents=[(uid, REPOSITORY, None) for uid in documents], patient_id=patient_id)


def retrieve_imaging(requestor: Party = ORG_B, outcome: Outcome = Outcome.SUCCESS,
                     patient_id: str = PATIENT) -> AuditEvent:
    return events.retrieve_imaging(requestor=requestor, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
                                   studies=[(STUDY, [(CT, f"{STUDY}.1.1")])], patient_id=patient_id)


def stored_query(patient_id: str = PATIENT) -> AuditEvent:
    return events.stored_query(requestor=ORG_A, hub=HUB, outcome=Outcome.SUCCESS, time=TIME, source_id=SOURCE_ID,
                               query_id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
                               query_xml=b"<AdhocQueryRequest/>", patient_id=patient_id, home_community_id=None)


def refused_alert(patient_id: str = PATIENT) -> AuditEvent:
    """A Security Alert about the patient (the builder names none yet: a later refusal, e.g. of a share link)."""
    alert = events.security_alert(requestor=ORG_A, hub=HUB, outcome=Outcome.SERIOUS_FAILURE, time=TIME,
                                  source_id=SOURCE_ID, reason="consent withheld", transaction="RAD-69",
                                  path="/xds/imaging")
    patient = ParticipantObject(patient_id, ObjectType.PERSON, ObjectRole.PATIENT, codes.PATIENT_NUMBER)
    return replace(alert, objects=(patient, *alert.objects))


Record = Callable[..., list[AuditRecord]]


@pytest.fixture
def record_events(database: Database, settings: Settings) -> Record:
    """Records events as the hub does, each in its own transaction; returns the stored records."""
    def run(*audited: AuditEvent) -> list[AuditRecord]:
        stored = []
        for audit_event in audited:
            with database.session() as session:
                stored.append(record(session, audit_event, settings))
        return stored
    return run


@pytest.fixture
def organisations(organisation_factory: Callable[..., int]) -> None:
    organisation_factory("Org A Hospital", ORG_A.user_id)
    organisation_factory("Org B Imaging", ORG_B.user_id)


def report(database: Database, **window: Any) -> list[Disclosure]:
    with database.session() as session:
        return disclosures(session, PATIENT, **window)


def summary(rows: list[Disclosure]) -> list[tuple[object, ...]]:
    return [(d.recipient_kind, d.recipient_id, d.recipient_name, d.transaction, d.outcome, d.objects) for d in rows]


@pytest.mark.usefixtures("organisations")
def test_the_report_lists_who_received_what_oldest_first(database: Database, record_events: Record) -> None:
    stored = record_events(retrieve(), retrieve_imaging(), retrieve(outcome=Outcome.MINOR_FAILURE))
    rows = report(database)
    assert summary(rows) == [
        ("organisation", ORG_A.user_id, "Org A Hospital", "ITI-43", 0, (("Document", DOCUMENT),)),
        ("organisation", ORG_B.user_id, "Org B Imaging", "RAD-69", 0, (("Study", STUDY),)),
        ("organisation", ORG_A.user_id, "Org A Hospital", "ITI-43", 4, (("Document", DOCUMENT),)),
    ]
    assert [d.seq for d in rows] == [r.seq for r in stored]
    assert [d.address for d in rows] == ["192.0.2.10", "198.51.100.7", "192.0.2.10"]
    for row in rows:
        assert row.recorded_at.utcoffset() == timedelta(0)
    assert rows[0].recorded_at <= rows[1].recorded_at <= rows[2].recorded_at


@pytest.mark.usefixtures("organisations")
def test_refusals_other_patients_and_other_events_are_not_disclosures(database: Database,
                                                                      record_events: Record) -> None:
    record_events(retrieve(outcome=Outcome.SERIOUS_FAILURE), retrieve_imaging(outcome=Outcome.MAJOR_FAILURE),
                  retrieve(patient_id=OTHER_PATIENT), stored_query(), refused_alert(), refused_alert(OTHER_PATIENT),
                  retrieve_imaging())
    assert summary(report(database)) == [
        ("organisation", ORG_B.user_id, "Org B Imaging", "RAD-69", 0, (("Study", STUDY),))]
    with database.session() as session:
        assert refused_attempts(session, PATIENT) == 3
        assert refused_attempts(session, OTHER_PATIENT) == 1
        assert refused_attempts(session, "nobody") == 0


@pytest.mark.usefixtures("organisations")
def test_share_links_users_and_unregistered_organisations(database: Database, record_events: Record) -> None:
    record_events(retrieve_imaging(Party("share:abc", "203.0.113.5", name="Link for Dr Who")),
                  retrieve_imaging(Party("share:", "203.0.113.5")),
                  retrieve(Party("jdoe", "203.0.113.6", name="Jane Doe")),
                  retrieve(Party("1.2.840.99999.77", "203.0.113.7", name="Org Gone")),
                  retrieve(Party("1.2.840.99999.78", "203.0.113.8")))
    assert [row[:3] for row in summary(report(database))] == [
        ("share link", "abc", "Link for Dr Who"),
        ("share link", "", ""),
        ("user", "jdoe", "Jane Doe"),
        ("organisation", "1.2.840.99999.77", "Org Gone"),      # an OID no longer registered: its own name
        ("organisation", "1.2.840.99999.78", ""),
    ]


@pytest.mark.parametrize("event_id", [codes.INSTANCES_ACCESSED, codes.INSTANCES_TRANSFERRED],
                         ids=lambda c: c.display)
@pytest.mark.usefixtures("organisations")
def test_instances_accessed_and_transferred_are_disclosures(database: Database, record_events: Record,
                                                            event_id: codes.CodedValue) -> None:
    viewed = replace(retrieve_imaging(Party("share:abc", "203.0.113.5")), event_id=event_id)
    refused = replace(retrieve_imaging(outcome=Outcome.SERIOUS_FAILURE), event_id=event_id)
    record_events(viewed, refused)
    assert summary(report(database)) == [("share link", "abc", "", "RAD-69", 0, (("Study", STUDY),))]
    with database.session() as session:
        assert refused_attempts(session, PATIENT) == 1


@pytest.mark.usefixtures("organisations")
def test_documents_and_studies_of_one_event_are_all_listed(database: Database, record_events: Record) -> None:
    record_events(retrieve(documents=(DOCUMENT, "1.3.6.1.4.1.21367.2024.1.2")))
    (row,) = report(database)
    assert row.objects == (("Document", DOCUMENT), ("Document", "1.3.6.1.4.1.21367.2024.1.2"))


def test_the_window_is_since_inclusive_until_exclusive(database: Database, settings: Settings) -> None:
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    with database.session() as session:
        for hour in range(4):     # the hub's own record path, on a fixed clock
            append(session, entry_of(retrieve()), now=start + timedelta(hours=hour))
            append(session, entry_of(retrieve(outcome=Outcome.SERIOUS_FAILURE)), now=start + timedelta(hours=hour))
    rows = report(database, since=start + timedelta(hours=1), until=start + timedelta(hours=3))
    assert [d.recorded_at for d in rows] == [start + timedelta(hours=1), start + timedelta(hours=2)]
    plus_two = timezone(timedelta(hours=2))   # the same instants given in another zone
    rows = report(database, since=(start + timedelta(hours=1)).astimezone(plus_two),
                  until=(start + timedelta(hours=3)).astimezone(plus_two))
    assert [d.recorded_at for d in rows] == [start + timedelta(hours=1), start + timedelta(hours=2)]
    with database.session() as session:
        assert refused_attempts(session, PATIENT, since=start + timedelta(hours=3)) == 1
        assert refused_attempts(session, PATIENT, until=start + timedelta(hours=3)) == 3


def test_a_naive_bound_is_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="timezone-aware"):
        disclosures(session, PATIENT, since=datetime(2024, 5, 1))
    with database.session() as session, pytest.raises(ValueError, match="timezone-aware"):
        refused_attempts(session, PATIENT, until=datetime(2024, 5, 1))


@pytest.mark.usefixtures("organisations")
def test_organisation_names_are_looked_up_in_one_query(database: Database, record_events: Record) -> None:
    record_events(*[retrieve(), retrieve_imaging()] * 5)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        rows = report(database)
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)
    assert len(rows) == 10
    assert sum("FROM organisations" in s for s in statements) == 1


@pytest.mark.usefixtures("organisations")
def test_an_unreadable_message_is_still_reported_from_its_columns(database: Database,
                                                                  record_events: Record) -> None:
    (stored,) = record_events(retrieve_imaging())
    with database.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == stored.seq).values(message="<AuditMessage"))
    assert summary(report(database)) == [
        ("organisation", ORG_B.user_id, "Org B Imaging", "RAD-69", 0, (("Study", STUDY),))]


@pytest.mark.usefixtures("organisations")
def test_instances_sent_to_the_hub_are_not_disclosures_but_wado_is(database: Database,
                                                                    record_events: Record) -> None:
    studies = [(STUDY, [(CT, f"{STUDY}.1.1")])]
    stow = events.dicomweb_store(requestor=ORG_A, hub=HUB, outcome=Outcome.SUCCESS, time=TIME, source_id=SOURCE_ID,
                                 studies=studies, patient_id=PATIENT)
    c_store = events.instances_transferred(sender=ORG_A, hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
                                           source_id=SOURCE_ID, action=events.Action.CREATE, studies=studies,
                                           patient_id=PATIENT)
    refused_store = replace(c_store, outcome=Outcome.SERIOUS_FAILURE)
    wado = events.dicomweb_retrieve(requestor=ORG_B, hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
                                    source_id=SOURCE_ID, studies=studies, patient_id=PATIENT)
    record_events(stow, c_store, refused_store, wado)
    assert summary(report(database)) == [
        ("organisation", ORG_B.user_id, "Org B Imaging", "RAD-107", 0, (("Study", STUDY),))]
    with database.session() as session:
        assert refused_attempts(session, PATIENT) == 0       # a refused C-STORE withheld nothing from anyone
