"""The contents queries (ITI TF-2a 3.18.4.1.2.3.7.4, .10-.13).

GetAll, GetSubmissionSetAndContents, GetFolderAndContents,
GetFoldersForDocument, GetRelatedDocuments.
"""

from __future__ import annotations

from sqlalchemy import select

from registry.queries.base import (
    QueryContext,
    R,
    StoredQueryHandler,
    associations_among,
    ids_of,
    members_of,
    status_in,
)
from registry.queries.find import DOC_CONFIDENTIALITY, DOC_FORMAT, DOC_STATUS, DOC_TYPE, HOME, document_filters
from registry.queries.get_objects import DOC_UNIQUE_ID, DOC_UUID, FOLDER_UNIQUE_ID, FOLDER_UUID, by_uuid_or_unique_id
from registry.queries.params import Kind, Param
from registry.vocabulary import RELATIONSHIP_TYPES, AssociationType, ObjectKind, StoredQueryId

DOCUMENT_FILTERS = (DOC_FORMAT, DOC_CONFIDENTIALITY, DOC_TYPE)


class GetAll(StoredQueryHandler):
    """Everything of one patient: submission sets, documents, folders and the associations among them."""

    query_id = StoredQueryId.GET_ALL
    parameters = (
        Param("$patientId", Kind.PATIENT_ID, required=True, single_value=True),
        DOC_STATUS,
        Param("$XDSSubmissionSetStatus", required=True),
        Param("$XDSFolderStatus", required=True),
        *DOCUMENT_FILTERS,
        HOME,
    )

    def run(self, ctx: QueryContext) -> None:
        p = ctx.params
        patient = p.value("$patientId")
        ctx.fetch_ids(ids_of(ObjectKind.SUBMISSION_SET).where(
            R.patient_id == patient, status_in(p.values("$XDSSubmissionSetStatus"))))
        ctx.fetch_ids(ids_of(ObjectKind.DOCUMENT_ENTRY).where(
            R.patient_id == patient, status_in(p.values(DOC_STATUS.name)), *document_filters(p)))
        ctx.fetch_ids(ids_of(ObjectKind.FOLDER).where(
            R.patient_id == patient, status_in(p.values("$XDSFolderStatus"))))
        if ctx.ids:
            ctx.fetch_ids(associations_among(list(ctx.ids)))


class GetSubmissionSetAndContents(StoredQueryHandler):
    query_id = StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS
    parameters = (Param("$XDSSubmissionSetEntryUUID", Kind.UUID), Param("$XDSSubmissionSetUniqueId"),
                  *DOCUMENT_FILTERS, Param("$MetadataLevel"), HOME)

    def run(self, ctx: QueryContext) -> None:
        given = ctx.params.exactly_one_of("$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId")
        column = R.id if given == "$XDSSubmissionSetEntryUUID" else R.unique_id
        sets = ctx.fetch_ids(ids_of(ObjectKind.SUBMISSION_SET).where(column.in_(ctx.params.values(given))))
        if not sets:
            return
        ctx.fetch_ids(members_of(sets, ObjectKind.DOCUMENT_ENTRY).where(*document_filters(ctx.params)))
        ctx.fetch_ids(members_of(sets, ObjectKind.FOLDER))
        # HasMember from the set to what is returned, and any association among the members.
        ctx.fetch_ids(associations_among(list(ctx.ids)))


class GetFolderAndContents(StoredQueryHandler):
    query_id = StoredQueryId.GET_FOLDER_AND_CONTENTS
    parameters = (FOLDER_UUID, FOLDER_UNIQUE_ID, *DOCUMENT_FILTERS, HOME)

    def run(self, ctx: QueryContext) -> None:
        folders = ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.FOLDER, FOLDER_UUID, FOLDER_UNIQUE_ID))
        if not folders:
            return
        documents = ctx.fetch_ids(members_of(folders, ObjectKind.DOCUMENT_ENTRY)
                                  .where(*document_filters(ctx.params)))
        if documents:
            ctx.fetch_ids(associations_among([*folders, *documents], [AssociationType.HAS_MEMBER.value])
                          .where(R.source_object.in_(folders)))


class GetFoldersForDocument(StoredQueryHandler):
    query_id = StoredQueryId.GET_FOLDERS_FOR_DOCUMENT
    parameters = (DOC_UUID, DOC_UNIQUE_ID, HOME)

    def run(self, ctx: QueryContext) -> None:
        documents = list(ctx.session.scalars(
            by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, DOC_UUID, DOC_UNIQUE_ID)
            .where(ctx.visibility.clause())))
        if not documents:
            return
        containing = select(R.source_object).where(
            R.kind == ObjectKind.ASSOCIATION.value,
            R.association_type == AssociationType.HAS_MEMBER.value,
            R.target_object.in_(documents))
        ctx.fetch_ids(ids_of(ObjectKind.FOLDER).where(R.id.in_(containing)))


class GetRelatedDocuments(StoredQueryHandler):
    """The document, the documents related to it by $AssociationTypes (either way), and those associations."""

    query_id = StoredQueryId.GET_RELATED_DOCUMENTS
    parameters = (DOC_UUID, DOC_UNIQUE_ID, Param("$AssociationTypes", required=True),
                  Param("$MetadataLevel"), HOME)

    def run(self, ctx: QueryContext) -> None:
        types = [t for t in ctx.params.values("$AssociationTypes") if t in {r.value for r in RELATIONSHIP_TYPES}]
        documents = list(ctx.session.scalars(
            by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, DOC_UUID, DOC_UNIQUE_ID)
            .where(ctx.visibility.clause())))
        if not documents or not types:
            return
        related = ctx.session.execute(
            select(R.id, R.source_object, R.target_object).where(
                R.kind == ObjectKind.ASSOCIATION.value, R.association_type.in_(types),
                (R.source_object.in_(documents)) | (R.target_object.in_(documents)),
                ctx.visibility.clause(),
            ).limit(ctx.limit + 1)
        ).all()
        if not related:
            return  # ITI TF-2a 3.18.4.1.2.3.7.12: nothing related, nothing returned
        others = {end for _, source, target in related for end in (source, target)}
        found = set(ctx.fetch_ids(ids_of(ObjectKind.DOCUMENT_ENTRY).where(R.id.in_(others | set(documents)))))
        ctx.add(assoc for assoc, source, target in related if source in found and target in found)
