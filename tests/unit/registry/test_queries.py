"""ITI-18 stored queries over registered metadata (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from hub.db import Database
from hub.errors import TooManyResults, UnknownStoredQuery, XdsError
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import Code, StoredQuery
from registry.transactions.iti18_query import QueryResult, run_stored_query
from registry.vocabulary import (
    ON_DEMAND_DOCUMENT_ENTRY,
    AssociationType,
    AvailabilityStatus,
    ObjectKind,
    StoredQueryId,
)
from tests.factories.metadata import (
    OTHER_PATIENT,
    PATIENT,
    RESTRICTED,
    add_to_folder,
    document,
    replacement,
    submission,
)
from tests.unit.registry.conftest import Register, caller_for

APPROVED = f"('{AvailabilityStatus.APPROVED.value}')"
DEPRECATED = f"('{AvailabilityStatus.DEPRECATED.value}')"
CT = Code("CT", "1.2.840.10008.2.16.4", "CT")
MR = Code("MR", "1.2.840.10008.2.16.4", "MR")


@pytest.fixture
def query(database: Database, caller: Caller, settings: Settings) -> Callable[..., QueryResult]:
    def run(query_id: StoredQueryId | str, params: dict[str, object], who: Caller | None = None,
            return_type: str = "ObjectRef", limit: int | None = None) -> QueryResult:
        raw = {k: (v if isinstance(v, list) and v and isinstance(v[0], list) else [v if isinstance(v, list) else [v]])
               for k, v in params.items()}
        qid = query_id.value if isinstance(query_id, StoredQueryId) else query_id
        used = replace(settings, max_query_results=limit) if limit else settings
        with database.session() as session:
            return run_stored_query(session, StoredQuery(qid, return_type, raw), who or caller, used)  # type: ignore[arg-type]
    return run


def find(patient: str = PATIENT, /, **extra: object) -> dict[str, object]:
    return {"$XDSDocumentEntryPatientId": f"'{patient}'", "$XDSDocumentEntryStatus": APPROVED, **extra}


def test_find_documents_by_patient_and_status(register: Register, query: Callable[..., QueryResult]) -> None:
    mine = submission(documents=2)
    register(mine)
    register(submission(OTHER_PATIENT))
    result = query(StoredQueryId.FIND_DOCUMENTS, find())
    assert sorted(result.refs) == sorted(d.id for d in mine.document_entries)
    leaf = query(StoredQueryId.FIND_DOCUMENTS, find(), return_type="LeafClass")
    assert {o.unique_id for o in leaf.objects} == {d.unique_id for d in mine.document_entries}  # type: ignore[union-attr]


def test_event_codes_and_between_slots_or_within(register: Register, query: Callable[..., QueryResult]) -> None:
    ct = document(event_codes=(CT,))
    ct_mr = document(event_codes=(CT, MR))
    register(submission(entries=[ct, ct_mr]))
    either = query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryEventCodeList": [[
        f"('CT^^{CT.scheme}','MR^^{MR.scheme}')"]]}))
    both = query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryEventCodeList": [
        [f"('CT^^{CT.scheme}')"], [f"('MR^^{MR.scheme}')"]]}))
    wrong_scheme = query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryEventCodeList": "('CT^^9.9')"}))
    assert set(either.refs) == {ct.id, ct_mr.id}
    assert both.refs == [ct_mr.id]
    assert wrong_scheme.refs == []


def test_creation_time_range_from_inclusive_to_exclusive(register: Register,
                                                         query: Callable[..., QueryResult]) -> None:
    early, late = document(creation_time="20260101"), document(creation_time="20260301120000")
    register(submission(entries=[early, late]))
    assert set(query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryCreationTimeFrom": "20260101"})
                     ).refs) == {early.id, late.id}
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryCreationTimeFrom": "202601010001"})
                 ).refs == [late.id]
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryCreationTimeTo": "20260301120000"})
                 ).refs == [early.id]


def test_author_person_like_and_class_code(register: Register, query: Callable[..., QueryResult]) -> None:
    house = document(author_person="^House^Gregory")
    curie = document(class_code=Code("IMAGES", "1.3.6.1.4.1.19376.1.2.6.1"))
    register(submission(entries=[house, curie]))
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryAuthorPerson": "('%House%')"})).refs \
        == [house.id]
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{
        "$XDSDocumentEntryClassCode": "('IMAGES^^1.3.6.1.4.1.19376.1.2.6.1')"})).refs == [curie.id]


def test_entry_type_defaults_to_stable(register: Register, query: Callable[..., QueryResult],
                                       database: Database) -> None:
    stable = document()
    register(submission(entries=[stable]))
    assert query(StoredQueryId.FIND_DOCUMENTS, find()).refs == [stable.id]
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{
        "$XDSDocumentEntryType": f"('{ON_DEMAND_DOCUMENT_ENTRY}')"})).refs == []


def test_replaced_document_is_deprecated_and_related(register: Register,
                                                     query: Callable[..., QueryResult]) -> None:
    original = submission()
    register(original)
    old = original.document_entries[0]
    request, new = replacement(old.id)
    register(request)
    assert query(StoredQueryId.FIND_DOCUMENTS, find()).refs == [new.id]
    assert query(StoredQueryId.FIND_DOCUMENTS, find(**{"$XDSDocumentEntryStatus": DEPRECATED})).refs == [old.id]
    related = query(StoredQueryId.GET_RELATED_DOCUMENTS, {
        "$XDSDocumentEntryEntryUUID": f"'{old.id}'",
        "$AssociationTypes": f"('{AssociationType.RPLC.value}')"}, return_type="LeafClass")
    kinds = sorted(o.kind.value for o in related.objects)
    assert kinds == ["Association", "DocumentEntry", "DocumentEntry"]


def test_restricted_entries_visible_only_to_their_submitter(register: Register,
                                                           query: Callable[..., QueryResult],
                                                           organisation_factory: Callable[..., int]) -> None:
    secret = document(confidentiality=(RESTRICTED,))
    register(submission(entries=[secret]))
    other = caller_for(organisation_factory("Org B", "1.2.3.4.6"), "1.2.3.4.6")
    assert query(StoredQueryId.FIND_DOCUMENTS, find()).refs == [secret.id]
    assert query(StoredQueryId.FIND_DOCUMENTS, find(), who=other).refs == []
    assert query(StoredQueryId.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": f"('{secret.id}')"}, who=other
                 ).refs == []
    assert query(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": f"('{secret.id}')"}, who=other).refs == []


def test_get_documents_by_uuid_or_unique_id(register: Register, query: Callable[..., QueryResult]) -> None:
    request = submission(documents=2)
    register(request)
    first, second = request.document_entries
    assert query(StoredQueryId.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": f"('{first.unique_id}')"}).refs \
        == [first.id]
    assert set(query(StoredQueryId.GET_DOCUMENTS, {
        "$XDSDocumentEntryEntryUUID": f"('{first.id}','{second.id}')"}).refs) == {first.id, second.id}


def test_submission_set_and_contents(register: Register, query: Callable[..., QueryResult]) -> None:
    request = submission(documents=2, folders=1)
    register(request)
    ss = request.submission_sets[0]
    result = query(StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS,
                   {"$XDSSubmissionSetEntryUUID": f"'{ss.id}'"}, return_type="LeafClass")
    kinds = sorted(o.kind.value for o in result.objects)
    # the set, two documents, the folder, 3 HasMember from the set and 2 from the folder
    assert kinds.count("DocumentEntry") == 2
    assert kinds.count("Folder") == 1 and kinds.count("SubmissionSet") == 1
    assert kinds.count("Association") == 5
    sets = query(StoredQueryId.GET_SUBMISSION_SETS, {"$uuid": f"('{request.document_entries[0].id}')"})
    assert ss.id in sets.refs and len(sets.refs) == 2  # the set and its HasMember association


def test_folders_and_contents(register: Register, query: Callable[..., QueryResult]) -> None:
    request = submission(documents=1, folders=1)
    register(request)
    folder, doc = request.folders[0], request.document_entries[0]
    later = submission()
    register(later)
    register(add_to_folder(folder.id, later.document_entries[0].id))
    contents = query(StoredQueryId.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": f"'{folder.id}'"})
    assert folder.id in contents.refs and doc.id in contents.refs and later.document_entries[0].id in contents.refs
    assert query(StoredQueryId.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": f"'{doc.id}'"}).refs \
        == [folder.id]
    found = query(StoredQueryId.FIND_FOLDERS, {"$XDSFolderPatientId": f"'{PATIENT}'", "$XDSFolderStatus": APPROVED,
                                               "$XDSFolderCodeList": "('RAD^^1.2.3.99')"})
    assert found.refs == [folder.id]
    assert query(StoredQueryId.GET_FOLDERS, {"$XDSFolderUniqueId": f"'{folder.unique_id}'"}).refs == [folder.id]


def test_find_submission_sets_and_get_all(register: Register, query: Callable[..., QueryResult]) -> None:
    request = submission(documents=2)
    register(request)
    ss = request.submission_sets[0]
    sets = query(StoredQueryId.FIND_SUBMISSION_SETS, {
        "$XDSSubmissionSetPatientId": f"'{PATIENT}'", "$XDSSubmissionSetStatus": APPROVED,
        "$XDSSubmissionSetSourceId": "('1.3.6.1.4.1.21367.2026.9')"})
    assert sets.refs == [ss.id]
    everything = query(StoredQueryId.GET_ALL, {
        "$patientId": f"'{PATIENT}'", "$XDSDocumentEntryStatus": APPROVED,
        "$XDSSubmissionSetStatus": APPROVED, "$XDSFolderStatus": APPROVED}, return_type="LeafClass")
    assert sorted(o.kind.value for o in everything.objects) == sorted(
        [ObjectKind.SUBMISSION_SET.value] + [ObjectKind.DOCUMENT_ENTRY.value] * 2
        + [ObjectKind.ASSOCIATION.value] * 2)


def test_find_documents_by_reference_id(register: Register, query: Callable[..., QueryResult]) -> None:
    study = "1.2.3.4.5.6^^^^urn:ihe:iti:xds:2016:studyInstanceUID"
    tagged = document(reference_ids=(study,))
    register(submission(entries=[tagged, document()]))
    result = query(StoredQueryId.FIND_DOCUMENTS_BY_REFERENCE_ID,
                   find(**{"$XDSDocumentEntryReferenceIdList": f"('{study}')"}))
    assert result.refs == [tagged.id]


def test_too_many_results_is_refused(register: Register, query: Callable[..., QueryResult]) -> None:
    register(submission(documents=4))
    assert len(query(StoredQueryId.FIND_DOCUMENTS, find(), limit=4).refs) == 4
    with pytest.raises(TooManyResults):
        query(StoredQueryId.FIND_DOCUMENTS, find(), limit=3)


@pytest.mark.parametrize(
    ("query_id", "params", "code"),
    [
        ("urn:uuid:00000000-0000-0000-0000-000000000000", {}, "XDSUnknownStoredQuery"),
        (StoredQueryId.FIND_DOCUMENTS, {"$XDSDocumentEntryStatus": APPROVED}, "XDSStoredQueryMissingParam"),
        (StoredQueryId.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": "'bad'", "$XDSDocumentEntryStatus": APPROVED},
         "XDSRegistryMetadataError"),
        (StoredQueryId.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": "('urn:uuid:1')",
                                       "$XDSDocumentEntryUniqueId": "('1.2')"}, "XDSStoredQueryParamNumber"),
        (StoredQueryId.GET_DOCUMENTS, {}, "XDSStoredQueryMissingParam"),
        (StoredQueryId.FIND_DOCUMENTS, {**find(), "$XDSDocumentEntryClassCode": [["('a')"], ["('b')"]]},
         "XDSStoredQueryParamNumber"),
    ],
    ids=["unknown-query", "missing-patient", "bad-patient", "exclusive", "neither", "repeated-class-code"],
)
def test_query_errors(query: Callable[..., QueryResult], query_id: StoredQueryId | str,
                      params: dict[str, object], code: str) -> None:
    with pytest.raises(XdsError) as info:
        query(query_id, params)
    assert info.value.code.value == code
    if code == "XDSUnknownStoredQuery":
        assert isinstance(info.value, UnknownStoredQuery)

