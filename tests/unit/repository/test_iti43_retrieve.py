"""ITI-43 Retrieve Document Set: found, missing, another repository, and the confidentiality rule."""

from __future__ import annotations

from hub.db import Database
from hub.security.identity import Caller
from hub.settings import Settings
from registry.vocabulary import ErrorCode, ResponseStatus
from repository.blobstore import BlobStore
from repository.model import DocumentRequest
from repository.transactions.iti43_retrieve import retrieve_documents
from tests.factories.metadata import PDF_BYTES, RESTRICTED, entry_for, submission
from tests.unit.repository.conftest import Provide


def retrieve(database: Database, store: BlobStore, settings: Settings, who: Caller,
             *requests: DocumentRequest) -> tuple[ResponseStatus, dict[str, bytes], list[str]]:
    with database.session() as session:
        result = retrieve_documents(session, store, list(requests), who, settings)
    contents = {}
    for document in result.documents:
        with document.open() as stream:
            contents[document.document_unique_id] = stream.read()
        assert document.size == len(contents[document.document_unique_id])
    return result.status, contents, [e.code.value for e in result.errors]


def test_several_documents_in_one_request(provide: Provide, database: Database, store: BlobStore,
                                          settings: Settings, caller: Caller) -> None:
    first, second = entry_for(PDF_BYTES), entry_for(b"second")
    provide(submission(entries=[first, second]), {first.id: PDF_BYTES, second.id: b"second"})
    repo = settings.repository_unique_id
    status, contents, errors = retrieve(database, store, settings, caller,
                                        DocumentRequest(repo, first.unique_id or ""),
                                        DocumentRequest(repo, second.unique_id or ""))
    assert status == ResponseStatus.SUCCESS and errors == []
    assert contents == {first.unique_id: PDF_BYTES, second.unique_id: b"second"}


def test_missing_and_foreign_repository_make_a_partial_success(provide: Provide, database: Database,
                                                               store: BlobStore, settings: Settings,
                                                               caller: Caller) -> None:
    entry = entry_for(PDF_BYTES)
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES})
    repo = settings.repository_unique_id
    status, contents, errors = retrieve(database, store, settings, caller,
                                        DocumentRequest(repo, entry.unique_id or ""),
                                        DocumentRequest(repo, "1.2.3.404"),
                                        DocumentRequest("1.2.3.999", entry.unique_id or ""))
    assert status == ResponseStatus.PARTIAL_SUCCESS
    assert list(contents) == [entry.unique_id]
    assert errors == [ErrorCode.MISSING_DOCUMENT, ErrorCode.UNKNOWN_REPOSITORY_ID]


def test_nothing_found_is_a_failure(database: Database, store: BlobStore, settings: Settings,
                                    caller: Caller) -> None:
    status, contents, errors = retrieve(database, store, settings, caller,
                                        DocumentRequest(settings.repository_unique_id, "1.2.3.404"))
    assert (status, contents, errors) == (ResponseStatus.FAILURE, {}, [ErrorCode.MISSING_DOCUMENT])


def test_a_restricted_document_is_missing_to_other_organisations(provide: Provide, database: Database,
                                                                  store: BlobStore, settings: Settings,
                                                                  caller: Caller, other_caller: Caller) -> None:
    entry = entry_for(PDF_BYTES, confidentiality=(RESTRICTED,))
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES})
    request = DocumentRequest(settings.repository_unique_id, entry.unique_id or "")
    assert retrieve(database, store, settings, other_caller, request)[2] == [ErrorCode.MISSING_DOCUMENT]
    assert retrieve(database, store, settings, caller, request)[1] == {entry.unique_id: PDF_BYTES}


def test_a_lost_blob_is_a_repository_error_not_a_crash(provide: Provide, database: Database, store: BlobStore,
                                                       settings: Settings, caller: Caller) -> None:
    entry = entry_for(PDF_BYTES)
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES})
    for address, _ in list(store.listing()):
        store.delete(address)
    request = DocumentRequest(settings.repository_unique_id, entry.unique_id or "")
    assert retrieve(database, store, settings, caller, request)[2] == [ErrorCode.REPOSITORY_ERROR]


def test_home_community_id_is_answered_when_asked(provide: Provide, database: Database, store: BlobStore,
                                                  settings: Settings, caller: Caller) -> None:
    entry = entry_for(PDF_BYTES)
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES})
    with database.session() as session:
        result = retrieve_documents(session, store, [DocumentRequest(settings.repository_unique_id,
                                                                     entry.unique_id or "", "urn:oid:1.2")],
                                    caller, settings)
    assert result.documents[0].home_community_id == settings.home_community_id
