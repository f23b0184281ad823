"""ITI-43 Retrieve Document Set, Document Repository side (ITI TF-2b 3.43.4.1.3).

Each DocumentRequest is answered on its own: a repositoryUniqueId that is not
this repository is XDSUnknownRepositoryId, a document this repository does
not hold is XDSMissingDocument; the response is Success, PartialSuccess or
Failure accordingly (ITI TF-2b 3.43.4.2.3). The registry's confidentiality
rule applies: a restricted document is answered only to the organisation
that submitted it, and to others exactly like a missing one, so its
existence does not leak. Bytes are not read here: each document is opened
from the blob store when the response streams it.

A repositoryUniqueId that hub.toml maps to another repository of the
affinity domain is not answered here but forwarded there
(`repository.forwarding`); the answers are merged into one response, in the
order of the requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import MissingDocument, RepositoryError, UnknownRepositoryId
from hub.security.identity import Caller
from hub.settings import Settings
from registry.tables import RegistryObjectRow
from registry.vocabulary import ObjectKind
from repository.blobstore import BlobStore
from repository.forwarding import Forwarder, merge_results
from repository.model import DocumentRequest, RetrievedDocument, RetrieveResult
from repository.tables import StoredDocument
from repository.visibility import batches


def retrieve_documents(session: Session, store: BlobStore, requests: Sequence[DocumentRequest], caller: Caller,
                       settings: Settings, forwarder: Forwarder | None = None) -> RetrieveResult:
    """Answer each DocumentRequest: here, from the repository `forwarder` maps it to, else with an error."""
    far = [r for r in requests if forwarder.handles(r)] if forwarder is not None else []
    if forwarder is None or not far:
        return _retrieve_here(session, store, requests, caller, settings)
    # Forwarded first, so that no database transaction is held open while the far hub answers.
    forwarded = forwarder.retrieve(far)
    try:
        forwarded = _with_patients(session, forwarded)
        result = _retrieve_here(session, store, [r for r in requests if not forwarder.handles(r)], caller,
                                settings)
    except BaseException:
        forwarded.release()
        raise
    return merge_results(requests, result, forwarded)


def _with_patients(session: Session, result: RetrieveResult) -> RetrieveResult:
    """Forwarded documents with the patient the local registry (when it is this hub) has for them: the audit
    record names the patient even though the bytes came from elsewhere."""
    patients: dict[str | None, str | None] = {}
    for batch in batches(sorted({d.document_unique_id for d in result.documents})):
        patients.update(session.execute(
            select(RegistryObjectRow.unique_id, RegistryObjectRow.patient_id)
            .where(RegistryObjectRow.kind == ObjectKind.DOCUMENT_ENTRY.value, RegistryObjectRow.unique_id.in_(batch))
        ).all())
    result.documents = [replace(d, patient_id=patients.get(d.document_unique_id) or None) for d in result.documents]
    return result


def _retrieve_here(session: Session, store: BlobStore, requests: Sequence[DocumentRequest], caller: Caller,
                   settings: Settings) -> RetrieveResult:
    result = RetrieveResult()
    wanted = {r.document_unique_id for r in requests if r.repository_unique_id == settings.repository_unique_id}
    rows = {row.unique_id: row for row in session.scalars(
        select(StoredDocument).where(StoredDocument.unique_id.in_(sorted(wanted))))} if wanted else {}
    for request in requests:
        uid = request.document_unique_id
        if request.repository_unique_id != settings.repository_unique_id:
            result.errors.append(UnknownRepositoryId(
                f"repositoryUniqueId {request.repository_unique_id} is not this repository "
                f"({settings.repository_unique_id})", uid))
            continue
        row = rows.get(uid)
        if row is None or (row.restricted and row.submitter_org_id != caller.organisation_id):
            result.errors.append(MissingDocument(f"document {uid} is not in this repository", uid))
            continue
        if not store.exists(row.sha256):
            result.errors.append(RepositoryError(f"document {uid} is registered but its content is unavailable", uid))
            continue
        result.documents.append(RetrievedDocument(
            repository_unique_id=settings.repository_unique_id, document_unique_id=uid, mime_type=row.mime_type,
            size=row.size, open=partial(store.open, row.sha256),
            home_community_id=settings.home_community_id if request.home_community_id else None,
            patient_id=row.patient_id or None))
    return result
