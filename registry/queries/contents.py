"""The contents queries (ITI TF-2a 3.18.4.1.2.3.7.4, .10-.13).

GetAll, GetSubmissionSetAndContents, GetFolderAndContents,
GetFoldersForDocument, GetRelatedDocuments. Each returns the objects found
and the associations among them that the caller may see (both ends visible).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import aliased

from registry.queries.base import (
    HAS_MEMBER,
    QueryContext,
    R,
    StoredQueryHandler,
    associations_among,
    ids_of,
    members_of,
    status_in,
)
from registry.queries.find import (
    DOC_CONFIDENTIALITY,
    DOC_FORMAT,
    DOC_STATUS,
    DOC_TYPE,
    HOME,
    METADATA_LEVEL,
    document_filters,
)
from registry.queries.get_objects import (
    DOC_UNIQUE_ID,
    DOC_UUID,
    FOLDER_UNIQUE_ID,
    FOLDER_UUID,
    by_uuid_or_unique_id,
)
from registry.queries.params import Kind, Param
from registry.tables import RegistryObjectRow
from registry.vocabulary import RELATIONSHIP_TYPES, ObjectKind, StoredQueryId

# formatCode, confidentialityCode and objectType narrow the documents of the contents queries.
DOCUMENT_FILTERS = (DOC_FORMAT, DOC_CONFIDENTIALITY, DOC_TYPE)
# These queries name one object: one value, not a list (ITI TF-2a 3.18.4.1.2.3.7.10-.13).
ONE_DOC_UUID = Param(DOC_UUID.name, Kind.UUID, multiple=False)
ONE_DOC_UNIQUE_ID = Param(DOC_UNIQUE_ID.name, multiple=False)
ONE_FOLDER_UUID = Param(FOLDER_UUID.name, Kind.UUID, multiple=False)
ONE_FOLDER_UNIQUE_ID = Param(FOLDER_UNIQUE_ID.name, multiple=False)
SET_UUID = Param("$XDSSubmissionSetEntryUUID", Kind.UUID, multiple=False)
SET_UNIQUE_ID = Param("$XDSSubmissionSetUniqueId", multiple=False)


def set_links_to_associations(ctx: QueryContext, sets: list[str]) -> None:
    """Second pass: the sets' HasMember links to associations already found (a set that files a
    document into a folder also holds that folder link; ITI TF-2a 3.18.4.1.2.3.7.10)."""
    if sets:
        ctx.fetch_associations(associations_among(list(ctx.ids), [HAS_MEMBER]).where(R.source_object.in_(sets)))


class GetAll(StoredQueryHandler):
    """Everything of one patient: submission sets, documents, folders and the associations among them."""

    query_id = StoredQueryId.GET_ALL
    parameters = (
        Param("$patientId", Kind.PATIENT_ID, required=True, multiple=False),
        DOC_STATUS,
        Param("$XDSSubmissionSetStatus", Kind.STATUS, required=True),
        Param("$XDSFolderStatus", Kind.STATUS, required=True),
        *DOCUMENT_FILTERS,
        METADATA_LEVEL,
        HOME,
    )

    def select(self, ctx: QueryContext) -> None:
        p = ctx.params
        patient = p.value("$patientId")
        sets = ctx.fetch_ids(ids_of(ObjectKind.SUBMISSION_SET).where(
            R.patient_id == patient, status_in(p.values("$XDSSubmissionSetStatus"))))
        ctx.fetch_ids(ids_of(ObjectKind.DOCUMENT_ENTRY).where(
            R.patient_id == patient, status_in(p.values(DOC_STATUS.name)), *document_filters(p)))
        ctx.fetch_ids(ids_of(ObjectKind.FOLDER).where(
            R.patient_id == patient, status_in(p.values("$XDSFolderStatus"))))
        if ctx.ids:
            ctx.fetch_associations(associations_among(list(ctx.ids)))
            set_links_to_associations(ctx, sets)


class GetSubmissionSetAndContents(StoredQueryHandler):
    """The set, its member documents (filtered) and folders, and the associations among them,
    including the set's HasMember links to member associations (ITI TF-2a 3.18.4.1.2.3.7.10)."""

    query_id = StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS
    parameters = (SET_UUID, SET_UNIQUE_ID, *DOCUMENT_FILTERS, METADATA_LEVEL, HOME)
    one_of = ((SET_UUID.name, SET_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        sets = ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.SUBMISSION_SET, SET_UUID, SET_UNIQUE_ID))
        if not sets:
            return
        ctx.fetch_ids(members_of(sets, ObjectKind.DOCUMENT_ENTRY).where(*document_filters(ctx.params)))
        ctx.fetch_ids(members_of(sets, ObjectKind.FOLDER))
        ctx.fetch_associations(associations_among(list(ctx.ids)))
        set_links_to_associations(ctx, sets)


class GetFolderAndContents(StoredQueryHandler):
    """The folder, its member documents (filtered) and those HasMember associations."""

    query_id = StoredQueryId.GET_FOLDER_AND_CONTENTS
    parameters = (ONE_FOLDER_UUID, ONE_FOLDER_UNIQUE_ID, *DOCUMENT_FILTERS, METADATA_LEVEL, HOME)
    one_of = ((ONE_FOLDER_UUID.name, ONE_FOLDER_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        folders = ctx.fetch_ids(by_uuid_or_unique_id(ctx, ObjectKind.FOLDER, ONE_FOLDER_UUID, ONE_FOLDER_UNIQUE_ID))
        if not folders:
            return
        documents = ctx.fetch_ids(members_of(folders, ObjectKind.DOCUMENT_ENTRY)
                                  .where(*document_filters(ctx.params)))
        if documents:
            ctx.fetch_associations(associations_among([*folders, *documents], [HAS_MEMBER])
                                   .where(R.source_object.in_(folders)))


class GetFoldersForDocument(StoredQueryHandler):
    """The folders holding one document (ITI TF-2a 3.18.4.1.2.3.7.11)."""

    query_id = StoredQueryId.GET_FOLDERS_FOR_DOCUMENT
    parameters = (ONE_DOC_UUID, ONE_DOC_UNIQUE_ID, HOME)
    one_of = ((ONE_DOC_UUID.name, ONE_DOC_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        documents = list(ctx.session.scalars(
            by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, ONE_DOC_UUID, ONE_DOC_UNIQUE_ID)
            .where(ctx.visibility.clause())))
        if not documents:
            return
        link = aliased(RegistryObjectRow, name="folder_link")
        containing = select(link.source_object).where(
            link.kind == ObjectKind.ASSOCIATION.value, link.association_type == HAS_MEMBER,
            link.target_object.in_(documents))
        ctx.fetch_ids(ids_of(ObjectKind.FOLDER).where(R.id.in_(containing)))


class GetRelatedDocuments(StoredQueryHandler):
    """The document, the documents related to it by $AssociationTypes (either way), and those associations.

    ITI TF-2a 3.18.4.1.2.3.7.12: when nothing is related, nothing is returned.
    """

    query_id = StoredQueryId.GET_RELATED_DOCUMENTS
    parameters = (ONE_DOC_UUID, ONE_DOC_UNIQUE_ID,
                  Param("$AssociationTypes", Kind.ASSOCIATION_TYPE, required=True), METADATA_LEVEL, HOME)
    one_of = ((ONE_DOC_UUID.name, ONE_DOC_UNIQUE_ID.name),)

    def select(self, ctx: QueryContext) -> None:
        relationships = {r.value for r in RELATIONSHIP_TYPES}
        types = [t for t in ctx.params.values("$AssociationTypes") if t in relationships]
        documents = list(ctx.session.scalars(
            by_uuid_or_unique_id(ctx, ObjectKind.DOCUMENT_ENTRY, ONE_DOC_UUID, ONE_DOC_UNIQUE_ID)
            .where(ctx.visibility.clause())))
        if not documents or not types:
            return
        related = ctx.session.execute(
            select(R.id, R.source_object, R.target_object).where(
                R.kind == ObjectKind.ASSOCIATION.value, R.association_type.in_(types),
                R.source_object.in_(documents) | R.target_object.in_(documents),
                ctx.visibility.association_clause(),
            ).order_by(R.registered_at, R.id).limit(ctx.limit + 1)
        ).all()
        ends = [end for _, source, target in related for end in (source, target)
                if end is not None and end not in documents]
        others: set[str] = set(ctx.session.scalars(
            ids_of(ObjectKind.DOCUMENT_ENTRY).where(R.id.in_(ends), ctx.visibility.clause()))) if ends else set()
        if not others:
            return
        found = {*documents, *others}
        ctx.add(documents)
        ctx.add(end for end in ends if end in others)
        ctx.add(assoc for assoc, source, target in related if source in found and target in found)
