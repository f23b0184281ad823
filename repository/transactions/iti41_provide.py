"""ITI-41 Provide and Register Document Set-b and RAD-68 Provide and Register Imaging Document Set.

Document Repository side (ITI TF-2b 3.41.4.1.3; RAD TF-3 4.68.4.1.3):

1. every DocumentEntry must have its document and every document its entry
   (XDSMissingDocument / XDSMissingDocumentMetadata), and every MIME part
   must be referenced;
2. each document is streamed into the blob store, which computes SHA-256
   (the address), SHA-1 and size on the way; a submitted `hash` or `size`
   that differs is XDSNonIdenticalHash / XDSNonIdenticalSize; the repository
   sets `hash`, `size` and `repositoryUniqueId`;
3. a KOS manifest (RAD-68) is parsed and checked, its study UIDs go to
   referenceIdList and the modalities to eventCodeList, its references are
   recorded for RAD-69;
4. the metadata is registered (in-process, or ITI-42 to the configured
   registry) and the repository rows commit.

All or nothing: on any failure the session is rolled back and the blobs this
submission stored that nothing else references are deleted, so no registry
entry ever points at a missing document and a refused submission leaves no
bytes behind. With a remote registry the rows commit first (the documents
are retrievable once registered) and are removed again if the registry
refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.errors import (
    DuplicateUniqueIdInRegistry,
    MissingDocument,
    MissingDocumentMetadata,
    NonIdenticalHash,
    NonIdenticalSize,
    RepositoryError,
    RepositoryMetadataError,
    XdsError,
    XdsErrorList,
)
from hub.security.identity import Caller
from hub.settings import Settings
from registry.model import ExtrinsicObject
from registry.transactions.iti42_register import is_restricted
from repository.blobstore import BlobStore, BlobStoreError, StoredBlob, open_seekable
from repository.imaging_entries import describe_manifest_entry, is_manifest_entry, modalities_of, reference_rows
from repository.manifest import InvalidManifest, read_manifest
from repository.model import BytesContent, Content, DocumentContent, ProvideRequest
from repository.reclaim import reclaim_unreferenced
from repository.registration import Registry
from repository.tables import ManifestReference, StoredDocument


def _pair(request: ProvideRequest, attachments: Mapping[str, Content]) -> list[tuple[ExtrinsicObject, Content]]:
    """Each DocumentEntry with its bytes; every mismatch is reported at once."""
    entries = {entry.id: entry for entry in request.submission.document_entries}
    documents: dict[str, DocumentContent] = {}
    errors: list[XdsError] = []
    for document in request.documents:
        if document.id not in entries:
            errors.append(MissingDocumentMetadata(f"document {document.id!r} has no DocumentEntry in the metadata",
                                                  document.id))
        elif document.id in documents:
            errors.append(RepositoryMetadataError(f"document {document.id!r} is given twice", document.id))
        documents[document.id] = document
    referenced = {d.content_id for d in request.documents if d.content_id}
    for content_id in sorted(set(attachments) - referenced):
        errors.append(MissingDocumentMetadata(f"MIME part <{content_id}> is not referenced by any document",
                                              content_id))
    pairs: list[tuple[ExtrinsicObject, Content]] = []
    for entry_id, entry in entries.items():
        found = documents.get(entry_id)
        if found is None:
            errors.append(MissingDocument(f"DocumentEntry {entry_id} has no document in the request", entry_id))
        elif found.content_id is not None:
            attachment = attachments.get(found.content_id)
            if attachment is None:
                errors.append(MissingDocument(f"document {entry_id} points to MIME part <{found.content_id}>, "
                                              "which is not in the request", entry_id))
            else:
                pairs.append((entry, attachment))
        else:
            pairs.append((entry, BytesContent(found.inline or b"")))
    if errors:
        raise XdsErrorList(errors)
    return pairs


def _check_and_stamp(entry: ExtrinsicObject, blob: StoredBlob, repository_unique_id: str) -> list[XdsError]:
    """Compare the submitted hash and size with the stored bytes; set them and the repositoryUniqueId."""
    errors: list[XdsError] = []
    where = entry.unique_id or entry.id
    submitted_hash = entry.slot_value("hash")
    if submitted_hash is not None and submitted_hash.strip().lower() != blob.sha1:
        errors.append(NonIdenticalHash(f"hash {submitted_hash!r} differs from the document's SHA-1 {blob.sha1}",
                                       where))
    submitted_size = entry.slot_value("size")
    if submitted_size is not None and submitted_size.strip() != str(blob.size):
        errors.append(NonIdenticalSize(f"size {submitted_size!r} differs from the document's {blob.size} bytes",
                                       where))
    submitted_repository = entry.slot_value("repositoryUniqueId")
    if submitted_repository is not None and submitted_repository.strip() != repository_unique_id:
        errors.append(RepositoryMetadataError(
            f"repositoryUniqueId {submitted_repository!r} is not this repository ({repository_unique_id})", where))
    entry.slots["hash"] = [blob.sha1]
    entry.slots["size"] = [str(blob.size)]
    entry.slots["repositoryUniqueId"] = [repository_unique_id]
    return errors


def _store(store: BlobStore, content: Content, where: str) -> StoredBlob:
    """Stream the content into the store; the content's owner (the MTOM request) closes its file."""
    try:
        return store.put(content.open())
    except BlobStoreError as exc:
        raise RepositoryError(f"document {where} could not be stored: {exc}", where) from None


class Provide:
    """One Provide and Register submission; `run` stores, registers and commits, or leaves nothing."""

    def __init__(self, session: Session, store: BlobStore, registry: Registry, caller: Caller,
                 settings: Settings, before_commit: Callable[[Session], None] | None = None) -> None:
        self.session = session
        self.before_commit = before_commit or (lambda session: None)
        self.store = store
        self.registry = registry
        self.caller = caller
        self.settings = settings
        self.stored: list[str] = []

    def run(self, request: ProvideRequest, attachments: Mapping[str, Content]) -> None:
        pairs = _pair(request, attachments)
        try:
            rows, references = self._store_all(pairs)
            placed = [(row.unique_id, row.sha256) for row in rows]
            if self.registry.in_process:
                self.registry.register(self.session, request.submission, self.caller)
                self._commit(rows, references, self.before_commit)
            else:
                self._commit(rows, references)
                self._register_remotely(request, [unique_id for unique_id, _ in placed])
                self.before_commit(self.session)
                self.session.commit()
        except BaseException:
            self.session.rollback()
            reclaim_unreferenced(self.session, self.store, self.stored)
            self.session.rollback()  # end the read transaction (and SQLite's writer gate)
            raise
        self._ensure_present(pairs, placed)

    def _store_all(self, pairs: list[tuple[ExtrinsicObject, Content]]
                   ) -> tuple[list[StoredDocument], list[ManifestReference]]:
        now = datetime.now(UTC)
        restricted_codes = frozenset(self.settings.restricted_confidentiality_codes)
        rows: list[StoredDocument] = []
        references: list[ManifestReference] = []
        errors: list[XdsError] = []
        for entry, content in pairs:
            where = entry.unique_id or entry.id
            blob = _store(self.store, content, where)
            self.stored.append(blob.sha256)
            errors += _check_and_stamp(entry, blob, self.settings.repository_unique_id)
            if not entry.unique_id:
                continue  # the registry's validation reports the missing uniqueId with the rest
            rows.append(StoredDocument(unique_id=entry.unique_id, sha256=blob.sha256, sha1=blob.sha1, size=blob.size,
                                       mime_type=entry.mime_type, patient_id=entry.patient_id or "",
                                       submitter_org_id=self.caller.organisation_id,
                                       restricted=is_restricted(entry, restricted_codes), stored_at=now))
            if is_manifest_entry(entry) and not errors:
                references += self._manifest(entry, blob)
        if errors:
            raise XdsErrorList(errors)
        return rows, references

    def _manifest(self, entry: ExtrinsicObject, blob: StoredBlob) -> list[ManifestReference]:
        """RAD-68: the KOS must be a valid XDS-I.b manifest (RAD TF-3 4.68.4.1.3)."""
        where = entry.unique_id or entry.id
        try:
            with open_seekable(self.store, blob.sha256) as stream:
                manifest = read_manifest(stream)
        except InvalidManifest as exc:
            raise RepositoryMetadataError(f"document {where} has the KOS formatCode but is not a valid "
                                          f"imaging manifest: {exc}", where) from None
        describe_manifest_entry(entry, manifest, modalities_of(self.session, manifest))
        return reference_rows(entry.unique_id or "", manifest)

    def _commit(self, rows: list[StoredDocument], references: list[ManifestReference],
                before_commit: Callable[[Session], None] | None = None) -> None:
        try:
            self.session.add_all(rows)
            self.session.flush()
        except IntegrityError:
            raise DuplicateUniqueIdInRegistry("a document with this uniqueId is already stored in this repository",
                                              ", ".join(row.unique_id for row in rows)) from None
        self.session.add_all(references)
        if before_commit is not None:
            before_commit(self.session)   # e.g. the audit record, in the same transaction
        self.session.commit()

    def _register_remotely(self, request: ProvideRequest, unique_ids: list[str]) -> None:
        try:
            self.registry.register(self.session, request.submission, self.caller)
        except BaseException:
            self.session.rollback()
            self.session.execute(delete(ManifestReference).where(ManifestReference.manifest_unique_id.in_(unique_ids)))
            self.session.execute(delete(StoredDocument).where(StoredDocument.unique_id.in_(unique_ids)))
            self.session.commit()
            raise

    def _ensure_present(self, pairs: list[tuple[ExtrinsicObject, Content]], placed: list[tuple[str, str]]) -> None:
        """A concurrent failed submission of the same bytes may have reclaimed a shared blob between our
        put and our commit; the rows now reference it, so it is stored again from the request."""
        by_unique_id = {entry.unique_id: content for entry, content in pairs}
        for unique_id, sha256 in placed:
            if not self.store.exists(sha256):
                _store(self.store, by_unique_id[unique_id], unique_id)


def provide_and_register(session: Session, store: BlobStore, registry: Registry, request: ProvideRequest,
                         attachments: Mapping[str, Content], caller: Caller, settings: Settings,
                         before_commit: Callable[[Session], None] | None = None) -> None:
    """Store, register and commit; `before_commit` adds to the final transaction (the audit record)."""
    Provide(session, store, registry, caller, settings, before_commit).run(request, attachments)
