"""The Get queries by id (ITI TF-2a 3.18.4.1.2.3.7.5-.9).

GetDocuments, GetFolders, GetAssociations, GetDocumentsAndAssociations,
GetSubmissionSets. Objects are returned whatever their status.
"""

from __future__ import annotations

from sqlalchemy import Select, select

from registry.queries.base import (
    QueryContext,
    R,
    StoredQueryHandler,
    associations_touching,
    ids_of,
    visible_ids,
)
from registry.queries.find import HOME, METADATA_LEVEL
from registry.queries.params import Kind, Param
from registry.vocabulary import AssociationType, ObjectKind, StoredQueryId

DOC_UUID = Param("$XDSDocumentEntryEntryUUID", Kind.UUID)
DOC_UNIQUE_ID = Param("$XDSDocumentEntryUniqueId")
FOLDER_UUID = Param("$XDSFolderEntryUUID", Kind.UUID)
FOLDER_UNIQUE_ID = Param("$XDSFolderUniqueId")
UUIDS = Param("$uuid", Kind.UUID, required=True)


def by_uuid_or_unique_id(ctx: QueryContext, kind: ObjectKind, uuid_param: Param, unique_param: Param
                         ) -> Select[str]:
    """Objects of `kind` named by entryUUID or by uniqueId, whichever of the two parameters is given.

    The handler declares the pair in `one_of`, so exactly one of them is present here.
    """
    by_uuid = ctx.params.has(uuid_param.name)
    column = R.id if by_uuid else R.unique_id
    return ids_of(kind).where(column.in_(ctx.params.values(uuid_param.name if by_uuid else unique_param.name)))


class GetDocuments(StoredQueryHandler):
    query_id = StoredQueryId.GET_DOCUMENTS
    parameters = (DOC_UUID, DOC_UNIQUE_ID, METADATA_LEVEL, HOME)
    one_of = ((DOC_UUID.name, DOC_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, DOC_UUID, DOC_UNIQUE_ID))


class GetFolders(StoredQueryHandler):
    query_id = StoredQueryId.GET_FOLDERS
    parameters = (FOLDER_UUID, FOLDER_UNIQUE_ID, HOME)
    one_of = ((FOLDER_UUID.name, FOLDER_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.FOLDER, FOLDER_UUID, FOLDER_UNIQUE_ID))


class GetAssociations(StoredQueryHandler):
    """Associations whose source or target is one of $uuid."""

    query_id = StoredQueryId.GET_ASSOCIATIONS
    parameters = (UUIDS, HOME)

    def select(self, ctx: QueryContext) -> None:
        ctx.fetch_associations(associations_touching(ctx.params.values(UUIDS.name)))


class GetDocumentsAndAssociations(StoredQueryHandler):
    """The documents and every association that has one of them as source or target."""

    query_id = StoredQueryId.GET_DOCUMENTS_AND_ASSOCIATIONS
    parameters = (DOC_UUID, DOC_UNIQUE_ID, METADATA_LEVEL, HOME)
    one_of = ((DOC_UUID.name, DOC_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        documents = ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, DOC_UUID, DOC_UNIQUE_ID))
        if documents:
            ctx.fetch_associations(associations_touching(documents))


class GetSubmissionSets(StoredQueryHandler):
    """The SubmissionSets holding any of $uuid (documents or folders), and those HasMember associations."""

    query_id = StoredQueryId.GET_SUBMISSION_SETS
    parameters = (UUIDS, HOME)

    def select(self, ctx: QueryContext) -> None:
        members = visible_ids(ctx, ctx.params.values(UUIDS.name))
        if not members:
            return
        associations = ctx.session.execute(
            select(R.id, R.source_object).where(
                R.kind == ObjectKind.ASSOCIATION.value,
                R.association_type == AssociationType.HAS_MEMBER.value,
                R.target_object.in_(members), ctx.visibility.association_clause(),
            ).order_by(R.registered_at, R.id).limit(ctx.limit + 1)
        ).all()
        sets = ctx.fetch_ids(ids_of(ObjectKind.SUBMISSION_SET).where(
            R.id.in_([source for _, source in associations])))
        ctx.add(assoc for assoc, source in associations if source in sets)
