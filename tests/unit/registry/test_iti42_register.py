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
from registry.model import Association, ExtrinsicObject, RegistryPackage, SubmitObjectsRequest
from registry.store import object_for
from registry.tables import RegistryObjectRow
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import (
    AssociationType,
    AvailabilityStatus,
    DocumentEntryScheme,
    ErrorCode,
    FolderScheme,
    ObjectKind,
    SubmissionSetScheme,
)
from tests.factories.metadata import (
    OTHER_PATIENT,
    RESTRICTED,
    add_to_folder,
    document,
    replacement,
    submission,
    symbolic_ids,
)
from tests.unit.registry.conftest import Register, caller_for

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
APPROVED = AvailabilityStatus.APPROVED.value
DEPRECATED = AvailabilityStatus.DEPRECATED.value


def race(database: Database, caller: Caller, settings: Settings, first: SubmitObjectsRequest,
         second: SubmitObjectsRequest) -> dict[str, str]:
    """Register `first`, and `second` while first's transaction is still open; report each outcome."""
    flushed, outcomes = threading.Event(), {}

    def winner() -> None:
        with database.session() as session:
            register_document_set(session, first, caller, settings, now=NOW)
            flushed.set()
            time.sleep(0.5)            # the loser now waits on first's locks or unique index entries
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
    return outcomes


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
    assert "lastUpdateTime" not in request.folders[0].slots


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


def same_document_again(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    """`again` registers the first submission's document (uniqueId, hash, size) once more."""
    old, new = first.document_entries[0], again.document_entries[0]
    for name in ("hash", "size"):
        new.slots[name] = list(old.slots[name])
    set_unique_id(new, DocumentEntryScheme.UNIQUE_ID, old.unique_id)


def set_unique_id(obj: ExtrinsicObject | RegistryPackage, scheme: str, value: str | None) -> None:
    next(e for e in obj.external_identifiers if e.scheme == scheme).value = value or ""


def other_hash(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    set_unique_id(again.document_entries[0], DocumentEntryScheme.UNIQUE_ID, first.document_entries[0].unique_id)


def other_size(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    same_document_again(first, again)
    again.document_entries[0].slots["size"] = ["999999"]


def same_submission_set(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    set_unique_id(again.submission_sets[0], SubmissionSetScheme.UNIQUE_ID, first.submission_sets[0].unique_id)


def same_folder(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    set_unique_id(again.folders[0], FolderScheme.UNIQUE_ID, first.folders[0].unique_id)


def same_entry_uuid(first: SubmitObjectsRequest, again: SubmitObjectsRequest) -> None:
    old_id, new = first.document_entries[0].id, again.document_entries[0]
    for assoc in again.associations:
        assoc.source = old_id if assoc.source == new.id else assoc.source
        assoc.target = old_id if assoc.target == new.id else assoc.target
    new.id = old_id
    for c in new.classifications:
        c.classified_object = old_id
    for e in new.external_identifiers:
        e.registry_object = old_id


DUPLICATES = [
    # case, change, code: ITI TF-3 Table 4.2.4.1-2
    ("document with another hash", other_hash, ErrorCode.NON_IDENTICAL_HASH),
    ("document with another size", other_size, ErrorCode.NON_IDENTICAL_SIZE),
    # Local policy (module docstring of iti42_register): one entry per uniqueId, even for an identical copy.
    ("the same document again", same_document_again, ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY),
    ("submission set uniqueId", same_submission_set, ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY),
    ("folder uniqueId", same_folder, ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY),
    ("entryUUID", same_entry_uuid, ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY),
]


@pytest.mark.parametrize(("case", "change", "code"), DUPLICATES, ids=[d[0] for d in DUPLICATES])
def test_duplicates_in_registry_are_refused(database: Database, register: Register, case: str,
                                            change: Callable[[SubmitObjectsRequest, SubmitObjectsRequest], None],
                                            code: ErrorCode) -> None:
    first, again = submission(folders=1), submission(folders=1)
    register(first)
    change(first, again)
    with pytest.raises(XdsErrorList) as caught:
        register(again)
    assert error_codes(caught) == [code]
    with database.session() as session:
        assert count(session) == len(first.objects)   # only the first submission


def test_failure_leaves_nothing_in_the_session(database: Database, caller: Caller, settings: Settings) -> None:
    kept = submission()
    refused, _ = replacement(new_id())   # replaces an entry the registry does not have
    with database.session() as session:
        register_document_set(session, kept, caller, settings, now=NOW)
        with pytest.raises(XdsErrorList) as caught:
            register_document_set(session, refused, caller, settings, now=NOW)
        assert error_codes(caught) == [ErrorCode.UNRESOLVED_REFERENCE]
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


RELATIONSHIPS = [AssociationType.RPLC, AssociationType.XFRM_RPLC, AssociationType.APND, AssociationType.XFRM,
                 AssociationType.SIGNS]


@pytest.mark.parametrize("kind", RELATIONSHIPS, ids=lambda k: k.name)
def test_relationship_to_a_deprecated_entry(database: Database, register: Register, kind: AssociationType) -> None:
    """ITI TF-3 Table 4.2.4.1-2: XDSRegistryDeprecatedDocumentError, for replacements too (XDSReplaceFailed
    is marked deprecated there, pointing to ITI TF-2b 3.42.4.1.3.5)."""
    original = submission()
    register(original)
    old = original.document_entries[0]
    register(replacement(old.id)[0])
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(old.id, kind)[0])
    assert error_codes(caught) == [ErrorCode.DEPRECATED_DOCUMENT]


@pytest.mark.parametrize("kind", RELATIONSHIPS, ids=lambda k: k.name)
def test_relationship_to_an_unknown_entry(register: Register, kind: AssociationType) -> None:
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(new_id(), kind)[0])
    assert error_codes(caught) == [ErrorCode.UNRESOLVED_REFERENCE]


def test_relationship_to_a_folder(register: Register) -> None:
    original = submission(folders=1)
    register(original)
    with pytest.raises(XdsErrorList) as caught:
        register(replacement(original.folders[0].id, AssociationType.APND)[0])
    assert error_codes(caught) == [ErrorCode.REGISTRY_METADATA_ERROR]
    assert "not a DocumentEntry" in caught.value.errors[0].message


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
    expected = {"other patient folder": ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                "source is a document": ErrorCode.REGISTRY_METADATA_ERROR,
                "unknown folder": ErrorCode.UNRESOLVED_REFERENCE}[problem]
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
    assert error_codes(caught) == [ErrorCode.UNRESOLVED_REFERENCE]
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


def test_replacement_deprecates_addenda_and_transformations(database: Database, register: Register) -> None:
    """ITI TF-2b 3.42.4.1.3.5: replacing an entry deprecates its APND and XFRM dependents, transitively."""
    original = submission()
    register(original)
    old = original.document_entries[0].id
    addendum, transform, signature = (replacement(old, kind) for kind in (
        AssociationType.APND, AssociationType.XFRM, AssociationType.SIGNS))
    for request, _ in (addendum, transform, signature):
        register(request)
    addendum_of_addendum = replacement(addendum[1].id, AssociationType.APND)
    register(addendum_of_addendum[0])
    request, new = replacement(old, AssociationType.RPLC)
    register(request)
    statuses = {name: row(database, doc.id).status for name, doc in (
        ("original", original.document_entries[0]), ("addendum", addendum[1]), ("transform", transform[1]),
        ("addendum of addendum", addendum_of_addendum[1]), ("signature", signature[1]), ("replacement", new))}
    assert statuses == {"original": DEPRECATED, "addendum": DEPRECATED, "transform": DEPRECATED,
                        "addendum of addendum": DEPRECATED, "signature": APPROVED, "replacement": APPROVED}


def test_replacement_already_filed_joins_its_folder_once(database: Database, register: Register) -> None:
    original = submission(folders=1)
    register(original)
    folder_id = original.folders[0].id
    request, new = replacement(original.document_entries[0].id)
    request.objects.append(has_member(folder_id, new.id))
    register(request)
    with database.session() as session:
        memberships = session.scalars(select(RegistryObjectRow.id).where(
            RegistryObjectRow.association_type == AssociationType.HAS_MEMBER.value,
            RegistryObjectRow.source_object == folder_id, RegistryObjectRow.target_object == new.id)).all()
    assert len(memberships) == 1


def test_other_integrity_errors_are_not_reported_as_duplicates(database: Database, settings: Settings) -> None:
    """Only a unique index means "registered concurrently"; anything else is a fault of the hub, not the caller."""
    from sqlalchemy.exc import IntegrityError

    stranger = caller_for(987654)   # no such organisation: the submitter foreign key fails
    with database.session() as session, pytest.raises(IntegrityError):
        register_document_set(session, submission(), stranger, settings, now=NOW)


@pytest.mark.postgres
def test_concurrent_replacements_of_one_entry(database: Database, register: Register, caller: Caller,
                                              settings: Settings) -> None:
    """Two sessions replace one entry at once: the row lock lets exactly one win (ITI TF-2b 3.42.4.1.3.5)."""
    if database.url.startswith("sqlite"):
        pytest.skip("concurrency is settled by PostgreSQL row locks; SQLite serialises writers")
    original = submission()
    register(original)
    old = original.document_entries[0].id
    first, second = replacement(old)[0], replacement(old)[0]

    outcomes = race(database, caller, settings, first, second)
    assert outcomes == {"first": "registered", "second": ErrorCode.DEPRECATED_DOCUMENT.value}
    assert row(database, old).status == DEPRECATED


@pytest.mark.postgres
def test_concurrent_submissions_of_one_unique_id(database: Database, caller: Caller, settings: Settings) -> None:
    """Two sessions submit one uniqueId at once: the database lets exactly one win (ITI TF-2b 3.42.4.1.3.2)."""
    if database.url.startswith("sqlite"):
        pytest.skip("concurrency is settled by PostgreSQL's unique index; SQLite serialises writers")
    first, second = submission(), submission()
    second.document_entries[0].external_identifiers[1].value = first.document_entries[0].unique_id or ""

    outcomes = race(database, caller, settings, first, second)
    assert outcomes == {"first": "registered", "second": ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY.value}
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(RegistryObjectRow).where(
            RegistryObjectRow.unique_id == first.document_entries[0].unique_id)) == 1
