"""The XDS.b stored queries (ITI TF-2a 3.18.4.1.2.3.7), dispatched by query id.

Each query is a `StoredQueryHandler` subclass declaring its id and its
parameters (`Param`: name, kind, required, multiple, AND between slots) and
running as `run(session, params, visibility, limit) -> ids`; pairs of which
exactly one must be given are declared in `one_of`. `HANDLERS` maps query ids
to instances (no if-chains). Families: find.py, get_objects.py, contents.py.
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
from registry.queries.params import Kind, Param, Parameters

HANDLERS: dict[str, StoredQueryHandler] = {
    handler.query_id.value: handler
    for handler in (
        FindDocuments(), FindDocumentsByReferenceId(), FindSubmissionSets(), FindFolders(),
        GetAll(), GetDocuments(), GetFolders(), GetAssociations(), GetDocumentsAndAssociations(),
        GetSubmissionSets(), GetSubmissionSetAndContents(), GetFolderAndContents(),
        GetFoldersForDocument(), GetRelatedDocuments(),
    )
}


def handler_for(query_id: str) -> StoredQueryHandler | None:
    """The stored query registered under `query_id` (an AdhocQuery/@id), if any."""
    return HANDLERS.get(query_id)


__all__ = ["HANDLERS", "Kind", "Param", "Parameters", "QueryContext", "StoredQueryHandler", "Visibility",
           "handler_for"]
