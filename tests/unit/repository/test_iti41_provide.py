"""ITI-41 Provide and Register: stored, checked, registered together, or nothing at all."""

from __future__ import annotations

import hashlib

import pytest
from lxml import etree
from sqlalchemy import select

from hub.db import Database
from hub.errors import XdsError, XdsErrorList
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import ExtrinsicObject
from registry.tables import RegistryObjectRow
from registry.vocabulary import ErrorCode
from repository.blobstore import BlobStore
from repository.model import DocumentContent, ProvideRequest
from repository.registration import LocalRegistry
from repository.tables import StoredDocument
from repository.transactions.iti41_provide import provide_and_register
from repository.xdsb import parse_provide_request
from tests.conftest import require_samples
from tests.factories.metadata import (
    OTHER_PATIENT,
    PDF_BYTES,
    RESTRICTED,
    entry_for,
    submission,
)
from tests.unit.repository.conftest import BytesContent, Provide, blob_files, counts, read_blob


def codes(exc: XdsError | XdsErrorList) -> list[str]:
    errors = exc.errors if isinstance(exc, XdsErrorList) else [exc]
    return [e.code.value for e in errors]


def stored_entry(database: Database, unique_id: str) -> RegistryObjectRow:
    with database.session() as session:
        row = session.scalar(select(RegistryObjectRow).where(RegistryObjectRow.unique_id == unique_id))
        assert row is not None
        session.expunge(row)
        return row


def test_documents_are_stored_stamped_and_registered(provide: Provide, database: Database, store: BlobStore,
                                                     settings: Settings) -> None:
    report, image = PDF_BYTES, bytes(range(256)) * 40
    entries = [entry_for(report), entry_for(image, mime_type="image/jpeg")]
    provide(submission(entries=entries), {entries[0].id: report, entries[1].id: image})

    with database.session() as session:
        rows = {r.unique_id: r for r in session.scalars(select(StoredDocument))}
    for entry, content in zip(entries, (report, image), strict=True):
        row = rows[entry.unique_id or ""]
        assert (row.sha1, row.size) == (hashlib.sha1(content).hexdigest(), len(content))
        assert read_blob(store, row.sha256) == content
        registered = stored_entry(database, entry.unique_id or "")
        assert registered.repository_unique_id == settings.repository_unique_id
        assert (registered.hash, registered.size) == (row.sha1, row.size)
    assert len(blob_files(store)) == 2


def test_hash_and_size_are_filled_in_when_the_source_leaves_them_out(provide: Provide, database: Database) -> None:
    entry = entry_for(PDF_BYTES)
    del entry.slots["hash"], entry.slots["size"], entry.slots["repositoryUniqueId"]
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES}, inline=True)
    registered = stored_entry(database, entry.unique_id or "")
    assert (registered.hash, registered.size) == (hashlib.sha1(PDF_BYTES).hexdigest(), len(PDF_BYTES))


def _refused(provide: Provide, database: Database, store: BlobStore, entries: list[ExtrinsicObject],
             documents: dict[str, bytes], **kwargs: object) -> list[str]:
    with pytest.raises((XdsError, XdsErrorList)) as caught:
        provide(submission(entries=entries), documents, **kwargs)
    assert counts(database) == {"repository_documents": 0, "manifest_references": 0, "dicom_instances": 0,
                                "registry_objects": 0}
    assert blob_files(store) == []
    return codes(caught.value)


def test_wrong_hash_is_refused_and_nothing_is_kept(provide: Provide, database: Database,
                                                   store: BlobStore) -> None:
    entry = entry_for(PDF_BYTES, hash=hashlib.sha1(b"other bytes").hexdigest())
    assert _refused(provide, database, store, [entry], {entry.id: PDF_BYTES}) == [ErrorCode.NON_IDENTICAL_HASH]


def test_wrong_size_is_refused(provide: Provide, database: Database, store: BlobStore) -> None:
    entry = entry_for(PDF_BYTES, size=len(PDF_BYTES) + 1)
    assert _refused(provide, database, store, [entry], {entry.id: PDF_BYTES}) == [ErrorCode.NON_IDENTICAL_SIZE]


def test_a_foreign_repository_unique_id_is_refused(provide: Provide, database: Database,
                                                   store: BlobStore) -> None:
    entry = entry_for(PDF_BYTES, repository_unique_id="1.2.3.999")
    assert _refused(provide, database, store, [entry], {entry.id: PDF_BYTES}) == \
        [ErrorCode.REPOSITORY_METADATA_ERROR]


def test_an_entry_without_its_document_is_missing_document(provide: Provide, database: Database,
                                                            store: BlobStore) -> None:
    with_doc, without = entry_for(PDF_BYTES), entry_for(b"never sent")
    assert _refused(provide, database, store, [with_doc, without], {with_doc.id: PDF_BYTES}) == \
        [ErrorCode.MISSING_DOCUMENT]


def test_a_document_without_its_entry_and_a_stray_part_are_missing_metadata(
        provide: Provide, database: Database, store: BlobStore) -> None:
    entry = entry_for(PDF_BYTES)
    found = _refused(provide, database, store, [entry], {entry.id: PDF_BYTES, "urn:uuid:nobody": b"x"},
                     extra_parts={"stray@test": b"y"})
    assert sorted(found) == [ErrorCode.MISSING_DOCUMENT_METADATA] * 2


def test_a_registry_refusal_reclaims_the_stored_blobs(provide: Provide, database: Database,
                                                      store: BlobStore) -> None:
    # Two patients in one submission: the registry refuses (XDSPatientIdDoesNotMatch) after the
    # repository stored both documents; neither may stay.
    first, second = entry_for(PDF_BYTES), entry_for(b"second document", OTHER_PATIENT)
    found = _refused(provide, database, store, [first, second], {first.id: PDF_BYTES, second.id: b"second document"})
    assert ErrorCode.PATIENT_ID_DOES_NOT_MATCH in found


def test_a_refused_submission_keeps_blobs_other_documents_share(provide: Provide, database: Database,
                                                               store: BlobStore) -> None:
    kept = entry_for(PDF_BYTES)
    provide(submission(entries=[kept]), {kept.id: PDF_BYTES})
    again = entry_for(PDF_BYTES, unique_id=kept.unique_id)  # same bytes, duplicate uniqueId: refused
    with pytest.raises((XdsError, XdsErrorList)):
        provide(submission(entries=[again]), {again.id: PDF_BYTES})
    assert len(blob_files(store)) == 1
    with database.session() as session:
        (row,) = session.scalars(select(StoredDocument))
    assert read_blob(store, row.sha256) == PDF_BYTES


def test_restricted_documents_carry_the_rule_to_the_repository(provide: Provide, database: Database) -> None:
    entry = entry_for(PDF_BYTES, confidentiality=(RESTRICTED,))
    provide(submission(entries=[entry]), {entry.id: PDF_BYTES})
    with database.session() as session:
        (row,) = session.scalars(select(StoredDocument))
    assert row.restricted


def _sample_body(relative: str) -> etree._Element:
    root = etree.parse(str(require_samples() / relative), etree.XMLParser(resolve_entities=False,
                                                                           no_network=True)).getroot()
    found = root.find("{http://www.w3.org/2003/05/soap-envelope}Body")
    return next(child for child in found if isinstance(child.tag, str)) if found is not None else root


def test_the_ihe_inline_sample_reaches_the_registry_which_refuses_its_metadata(
        database: Database, store: BlobStore, caller: Caller, settings: Settings) -> None:
    # The IHE example's metadata is refused by the registry (sourceId not an OID, 'HasMember' short
    # form; see tests/unit/registry/test_samples.py); its stored document must not stay.
    request = parse_provide_request(_sample_body("iti41/ihe-PnR-request-soap.xml"))
    assert request.documents[0].inline
    session = database.new_session()
    with pytest.raises(XdsErrorList) as caught:
        provide_and_register(session, store, LocalRegistry(settings), request, {}, caller, settings)
    session.close()
    assert "sourceId '3670984664' is not an OID" in str(caught.value)
    assert blob_files(store) == []


def test_the_nist_sample_with_its_documents_attached_is_stored_and_registered(
        database: Database, store: BlobStore, caller: Caller, settings: Settings) -> None:
    request = parse_provide_request(_sample_body("iti41/nist-soap-pnr.xml"))
    contents = {"Document01": b"first document", "Document02": b"second document"}
    session = database.new_session()
    try:
        provide_and_register(session, store, LocalRegistry(settings),
                             ProvideRequest(request.submission, [DocumentContent(i, f"{i}@x") for i in contents]),
                             {f"{i}@x": BytesContent(data) for i, data in contents.items()}, caller, settings)
    finally:
        session.close()
    with database.session() as session:
        stored = {row.sha1 for row in session.scalars(select(StoredDocument))}
    assert stored == {hashlib.sha1(data).hexdigest() for data in contents.values()}


def test_the_nist_sample_without_documents_is_missing_document(database: Database, store: BlobStore,
                                                               caller: Caller, settings: Settings) -> None:
    request = parse_provide_request(_sample_body("iti41/nist-soap-pnr.xml"))
    session = database.new_session()
    with pytest.raises(XdsErrorList) as caught:
        provide_and_register(session, store, LocalRegistry(settings), request, {}, caller, settings)
    session.close()
    assert codes(caught.value) == [ErrorCode.MISSING_DOCUMENT.value] * 2
