"""The XDS.b stored queries (ITI TF-2a 3.18.4.1.2.3.7), dispatched by query id.

Each query is a `StoredQueryHandler` subclass declaring its id and its
parameters; `HANDLERS` maps ids to instances (no if-chains).
"""

from __future__ import annotations

from registry.queries.base import QueryContext, StoredQueryHandler, Visibility
from registry.queries.contents import (
    GetAll,
    GetFolderAndContents,
    GetFoldersForDocument,
    GetRelatedDocuments,
    GetSubmissionSetAndContents,
)
from registry.queries.find import FindDocuments, FindDocumentsByReferenceId, FindFolders, FindSubmissionSets
from registry.queries.get_objects import (
    GetAssociations,
    GetDocuments,
    GetDocumentsAndAssociations,
    GetFolders,
    GetSubmissionSets,
)

HANDLERS: dict[str, StoredQueryHandler] = {
    handler.query_id.value: handler
    for handler in (
        FindDocuments(), FindDocumentsByReferenceId(), FindSubmissionSets(), FindFolders(),
        GetAll(), GetDocuments(), GetFolders(), GetAssociations(), GetDocumentsAndAssociations(),
        GetSubmissionSets(), GetSubmissionSetAndContents(), GetFolderAndContents(),
        GetFoldersForDocument(), GetRelatedDocuments(),
    )
}

__all__ = ["HANDLERS", "QueryContext", "StoredQueryHandler", "Visibility"]
