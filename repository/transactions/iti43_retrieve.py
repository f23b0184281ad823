"""ITI-43 Retrieve Document Set, Document Repository side (ITI TF-2b 3.43.4.1.3).

Each DocumentRequest is answered on its own: a repositoryUniqueId that is not
this repository is XDSUnknownRepositoryId, a document this repository does
not hold is XDSMissingDocument; the response is Success, PartialSuccess or
Failure accordingly (ITI TF-2b 3.43.4.2.3). The registry's confidentiality
rule applies: a restricted document is answered only to the organisation
that submitted it, and to others exactly like a missing one, so its
existence does not leak. Bytes are not read here: each document is opened
from the blob store when the response streams it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import MissingDocument, RepositoryError, UnknownRepositoryId
from hub.security.identity import Caller
from hub.settings import Settings
from repository.blobstore import BlobStore
from repository.model import DocumentRequest, RetrievedDocument, RetrieveResult
from repository.tables import StoredDocument


def retrieve_documents(session: Session, store: BlobStore, requests: Sequence[DocumentRequest], caller: Caller,
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
