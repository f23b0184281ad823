"""ITI-42 Register Document Set-b service (ITI TF-2b 3.42) against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db import Database
from hub.errors import XdsError, XdsErrorList
from hub.security.identity import Caller
from hub.settings import Settings
from registry.builders import has_member, new_id
from registry.model import Association, SubmitObjectsRequest
from registry.store import object_for
from registry.tables import RegistryObjectRow
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import AssociationType, AvailabilityStatus, ErrorCode, ObjectKind
from tests.factories.metadata import (
    OTHER_PATIENT,
    RESTRICTED,
    add_to_folder,
    document,
    replacement,
    submission,
    symbolic_ids,
)

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
APPROVED = AvailabilityStatus.APPROVED.value
DEPRECATED = AvailabilityStatus.DEPRECATED.value

from tests.unit.registry.conftest import Register, caller_for


def row(database: Database, ident: str) -> RegistryObjectRow:
    with database.session() as session:
        found = session.get(RegistryObjectRow, ident)
        assert found is not None, ident
        session.expunge(found)
        return found


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RegistryObjectRow)) or 0


def error_codes(caught: pytest.ExceptionInfo[XdsErrorList]) -> list[ErrorCode]:
    return [e.code for e in caught.value.errors]


def test_submission_is_stored_approved_version_1(database: Database, register: Register, caller: Caller) -> None:
    request = submission(documents=2, folders=1)
    register(request)
    for obj in request.objects:
        stored = row(database, obj.id)
        assert (stored.status, stored.lid, stored.version) == (APPROVED, obj.id, 1)
        assert stored.submitter_org_id == caller.organisation_id and not stored.restricted
    doc = request.document_entries[0]
    stored_doc = row(database, doc.id)
    assert (stored_doc.kind, stored_doc.unique_id, stored_doc.patient_id) == (
        ObjectKind.DOCUMENT_ENTRY.value, doc.unique_id, doc.patient_id)
    assert object_for(stored_doc).classifications == doc.classifications
    folder_row = row(database, request.folders[0].id)
    assert folder_row.last_update_time == "20260201120000"   # set by the registry: ITI TF-3 4.2.3.4.5
    assert request.objects[0].status is None                  # the caller's request is left alone


def test_register_never_commits(database: Database, caller: Caller, settings: Settings) -> None:
    with database.new_session() as session:
        register_document_set(session, submission(), caller, settings, now=NOW)
        assert count(session) == 3
        session.rollback()
    with database.session() as session:
        assert count(session) == 0


def test_symbolic_ids_become_uuids_everywhere(database: Database, register: Register) -> None:
    request = symbolic_ids(submission(folders=1))
    register(request)
    with database.session() as session:
        rows = session.scalars(select(RegistryObjectRow)).all()
        objects = [object_for(r) for r in rows]
    assert len(objects) == len(request.objects)
    ids = {o.id for o in objects}
    assert all(i.startswith("urn:uuid:") for i in ids)
    for obj in objects:
        assert obj.lid == obj.id
        assert all(c.classified_object == obj.id and c.id.startswith("urn:uuid:") for c in obj.classifications)
        assert all(e.registry_object == obj.id for e in obj.external_identifiers)
        if isinstance(obj, Association):
            assert {obj.source, obj.target} <= ids


@pytest.mark.parametrize("same", ["uniqueId", "entryUUID"])
def test_duplicates_in_registry_are_refused(database: Database, register: Register, same: str) -> None:
    first = submission()
    register(first)
    again = submission()
    if same == "uniqueId":
        again.document_entries[0].external_identifiers[1].value = first.document_entries[0].unique_id or ""
    else:
        again = submission(entries=[document()])
        old_id, new = first.document_entries[0].id, again.document_entries[0]
        for assoc in again.associations:
            assoc.target = old_id if assoc.target == new.id else assoc.target
        new.id = old_id
        for c in new.classifications:
            c.classified_object = old_id
        for e in new.external_identifiers:
            e.registry_object = old_id
    with pytest.raises(XdsErrorList) as caught:
        register(again)
    assert ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY in error_codes(caught)
    with database.session() as session:
        assert count(session) == len(first.objects)   # only the first submission


def test_failure_leaves_nothing_in_the_session(database: Database, caller: Caller, settings: Settings) -> None:
    kept = submission()
    refused, _ = replacement(new_id())   # replaces an entry the registry does not have
    with database.session() as session:
        register_document_set(session, kept, caller, settings, now=NOW)
        with pytest.raises(XdsErrorList) as caught:
            register_document_set(session, refused, caller, settings, now=NOW)
        assert error_codes(caught) == [ErrorCode.REPLACE_FAILED]
        assert not session.new and not session.dirty
    with database.session() as session:
        assert {r for r in session.scalars(select(RegistryObjectRow.id))} == {o.id for o in kept.objects}


def test_validation_errors_are_raised_before_the_database(database: Database, register: Register) -> None:
    request = submission()
    request.document_entries[0].slots.pop("hash")
    with pytest.raises(XdsErrorList) as caught:
        register(request)
    assert error_codes(caught) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_replacement_deprecates_and_joins_folders(database: Database, register: Register) -> None:
    original = submission(folders=2)
    register(original)
    old = original.document_entries[0]
    request, new = replacement(old.id, AssociationType.RPLC)
    register(request)
    assert row(database, old.id).status == DEPRECATED
    assert row(database, new.id).status == APPROVED
    with database.session() as session:
        joined = session.scalars(select(RegistryObjectRow).where(
            RegistryObjectRow.association_type == AssociationType.HAS_MEMBER.value,
            RegistryObjectRow.target_object == new.id,
            RegistryObjectRow.source_object.in_([f.id for f in original.folders]))).all()
        assert len(joined) == 2 and all(j.status == APPROVED for j in joined)
    for folder in original.folders:
        assert row(database, folder.id).last_update_time == "20260201120000"


@pytest.mark.parametrize(("kind", "code"), [
    (AssociationType.RPLC, ErrorCode.REPLACE_FAILED),
    (AssociationType.XFRM_RPLC, ErrorCode.REPLACE_FAILED),
    (AssociationType.APND, ErrorCode.DEPRECATED_DOCUMENT),
    (AssociationType.XFRM, ErrorCode.DEPRECATED_DOCUMENT),
    (AssociationType.SIGNS, ErrorCode.DEPRECATED_DOCUMENT),
])
def test_relationship_to_a_deprecated_entry(database: Database, register: Register, kind: AssociationType,
                                            code: ErrorCode) -> None:
    original = submission()
    register(original)
    old = original.document_entries[0]
    register(replacement(old.id)[0])
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(old.id, kind)[0])
    assert error_codes(caught) == [code]


@pytest.mark.parametrize(("kind", "code"), [
    (AssociationType.RPLC, ErrorCode.REPLACE_FAILED),
    (AssociationType.APND, ErrorCode.REGISTRY_METADATA_ERROR),
])
def test_relationship_to_an_unknown_entry(register: Register, kind: AssociationType, code: ErrorCode) -> None:
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(new_id(), kind)[0])
    assert error_codes(caught) == [code]


def test_relationship_to_another_patient(register: Register) -> None:
    original = submission(OTHER_PATIENT)
    register(original)
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(original.document_entries[0].id, AssociationType.APND)[0])
    assert error_codes(caught) == [ErrorCode.PATIENT_ID_DOES_NOT_MATCH]


def test_apnd_keeps_the_original_approved(database: Database, register: Register) -> None:
    original = submission()
    register(original)
    register(replacement(original.document_entries[0].id, AssociationType.APND)[0])
    assert row(database, original.document_entries[0].id).status == APPROVED


def test_existing_folder_gets_a_document(database: Database, register: Register, caller: Caller,
                                         settings: Settings) -> None:
    first = submission(folders=1)
    second = submission()
    with database.session() as session:
        register_document_set(session, first, caller, settings, now=datetime(2026, 1, 20, tzinfo=UTC))
    register(second)
    folder_id = first.folders[0].id
    assert row(database, folder_id).last_update_time == "20260120000000"
    register(add_to_folder(folder_id, second.document_entries[0].id))
    assert row(database, folder_id).last_update_time == "20260201120000"
    with database.session() as session:
        stored = session.get(RegistryObjectRow, folder_id)
        assert stored is not None
        assert object_for(stored).slot("lastUpdateTime") == ["20260201120000"]


@pytest.mark.parametrize("problem", ["other patient folder", "source is a document", "unknown folder"])
def test_existing_folder_errors(register: Register, problem: str) -> None:
    folder_owner = submission(OTHER_PATIENT if problem == "other patient folder" else
                              submission().submission_sets[0].patient_id or "", folders=1)
    register(folder_owner)
    doc = submission()
    register(doc)
    source = {"other patient folder": folder_owner.folders[0].id,
              "source is a document": folder_owner.document_entries[0].id,
              "unknown folder": new_id()}[problem]
    with pytest.raises(XdsErrorList) as caught:
        register(add_to_folder(source, doc.document_entries[0].id))
    expected = ErrorCode.PATIENT_ID_DOES_NOT_MATCH if problem == "other patient folder" \
        else ErrorCode.REGISTRY_METADATA_ERROR
    assert error_codes(caught) == [expected]


def test_reference_to_an_existing_document(database: Database, register: Register) -> None:
    first = submission()
    register(first)
    second = submission()
    ss = second.submission_sets[0]
    second.objects.append(has_member(ss.id, first.document_entries[0].id, "Reference"))
    register(second)
    assert row(database, second.associations[-1].id).target_object == first.document_entries[0].id


def test_restricted_confidentiality_hides_from_other_organisations(
        database: Database, register: Register, organisation_factory: Callable[..., int]) -> None:
    secret = submission(entries=[document(confidentiality=(RESTRICTED,))])
    register(secret)
    doc_id = secret.document_entries[0].id
    assert row(database, doc_id).restricted
    assert row(database, secret.associations[0].id).restricted       # the membership tells as much
    assert not row(database, secret.submission_sets[0].id).restricted
    other = caller_for(organisation_factory("Org B", "1.2.3.4.6"), "1.2.3.4.6")
    with pytest.raises(XdsErrorList) as caught:   # another organisation cannot even name it
        register(replacement(doc_id, AssociationType.APND)[0], other)
    assert error_codes(caught) == [ErrorCode.REGISTRY_METADATA_ERROR]
    register(replacement(doc_id, AssociationType.APND)[0])   # its own organisation can


def test_errors_are_xds_errors(register: Register) -> None:
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(new_id())[0])
    assert all(isinstance(e, XdsError) and e.location for e in caught.value.errors)


def test_golden_submission_registers(database: Database, register: Register) -> None:
    """tests/fixtures/registry/iti42-folder-symbolic-ids.xml: symbolic ids, top-level node classifications."""
    from lxml import etree

    from registry.ebrim import parse_submit_objects_request

    path = Path(__file__).parents[2] / "fixtures" / "registry" / "iti42-folder-symbolic-ids.xml"
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    register(parse_submit_objects_request(etree.parse(str(path), parser).getroot()))
    with database.session() as session:
        rows = session.scalars(select(RegistryObjectRow)).all()
        assert sorted(r.kind for r in rows) == ["Association"] * 3 + ["DocumentEntry", "Folder", "SubmissionSet"]
        assert all(r.id.startswith("urn:uuid:") for r in rows)
        doc = next(r for r in rows if r.kind == ObjectKind.DOCUMENT_ENTRY.value)
        assert doc.unique_id == "1.3.6.1.4.1.21367.2026.7.100.1" and doc.hash and doc.size == 36


@pytest.mark.postgres
def test_concurrent_submissions_of_one_unique_id(database: Database, caller: Caller, settings: Settings) -> None:
    """Two sessions submit one uniqueId at once: the database lets exactly one win (ITI TF-2b 3.42.4.1.3.2)."""
    if database.url.startswith("sqlite"):
        pytest.skip("concurrency is settled by PostgreSQL's unique index; SQLite serialises writers")
    first, second = submission(), submission()
    second.document_entries[0].external_identifiers[1].value = first.document_entries[0].unique_id or ""
    flushed, outcomes = threading.Event(), {}

    def winner() -> None:
        with database.session() as session:
            register_document_set(session, first, caller, settings, now=NOW)
            flushed.set()
            time.sleep(0.5)            # the loser is now blocked on the unique index
        outcomes["first"] = "registered"

    def loser() -> None:
        flushed.wait(10)
        try:
            with database.session() as session:
                register_document_set(session, second, caller, settings, now=NOW)
            outcomes["second"] = "registered"
        except XdsErrorList as exc:
            outcomes["second"] = exc.errors[0].code.value

    threads = [threading.Thread(target=winner), threading.Thread(target=loser)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {"first": "registered", "second": ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY.value}
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(RegistryObjectRow).where(
            RegistryObjectRow.unique_id == first.document_entries[0].unique_id)) == 1
