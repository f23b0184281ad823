"""The Find queries: by patient and metadata (ITI TF-2a 3.18.4.1.2.3.7.1-.3, .14).

FindDocuments, FindDocumentsByReferenceId, FindSubmissionSets, FindFolders.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select

from registry.queries.base import (
    QueryContext,
    R,
    StoredQueryHandler,
    author_match,
    codes_match,
    ids_of,
    status_in,
    time_range,
    values_match,
)
from registry.queries.params import Kind, Param, Parameters
from registry.tables import REFERENCE_ID
from registry.vocabulary import (
    STABLE_DOCUMENT_ENTRY,
    DocumentEntryScheme,
    FolderScheme,
    ObjectKind,
    StoredQueryId,
    SubmissionSetScheme,
)

HOME = Param("$homeCommunityId", multiple=False)
METADATA_LEVEL = Param("$MetadataLevel", multiple=False)
DOC_STATUS = Param("$XDSDocumentEntryStatus", Kind.STATUS, required=True)
DOC_FORMAT = Param("$XDSDocumentEntryFormatCode", Kind.CODE)
DOC_CONFIDENTIALITY = Param("$XDSDocumentEntryConfidentialityCode", Kind.CODE, and_slots=True)
DOC_TYPE = Param("$XDSDocumentEntryType", Kind.ENTRY_TYPE)

_DOC_CODE_PARAMS = {
    "$XDSDocumentEntryClassCode": DocumentEntryScheme.CLASS_CODE,
    "$XDSDocumentEntryTypeCode": DocumentEntryScheme.TYPE_CODE,
    "$XDSDocumentEntryPracticeSettingCode": DocumentEntryScheme.PRACTICE_SETTING_CODE,
    "$XDSDocumentEntryHealthcareFacilityTypeCode": DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE,
    "$XDSDocumentEntryEventCodeList": DocumentEntryScheme.EVENT_CODE,
}
_DOC_TIMES = {
    "CreationTime": R.creation_time,
    "ServiceStartTime": R.service_start_time,
    "ServiceStopTime": R.service_stop_time,
}

FIND_DOCUMENTS_PARAMS = (
    Param("$XDSDocumentEntryPatientId", Kind.PATIENT_ID, required=True, multiple=False),
    DOC_STATUS,
    *[Param(name, Kind.CODE, and_slots=name == "$XDSDocumentEntryEventCodeList") for name in _DOC_CODE_PARAMS],
    *[Param(f"$XDSDocumentEntry{t}{edge}", Kind.TIME, multiple=False)
      for t in _DOC_TIMES for edge in ("From", "To")],
    Param("$XDSDocumentEntryAuthorPerson"),
    DOC_FORMAT, DOC_CONFIDENTIALITY, DOC_TYPE,
    Param("$XDSDocumentEntryDocumentAvailability"),
    METADATA_LEVEL,
    HOME,
)


def document_filters(params: Parameters) -> list[ColumnElement[bool]]:
    """formatCode, confidentialityCode and entry type: shared with the contents queries."""
    clauses = []
    clauses += codes_match(DocumentEntryScheme.FORMAT_CODE.value, params.code_slots(DOC_FORMAT.name))
    clauses += codes_match(DocumentEntryScheme.CONFIDENTIALITY_CODE.value,
                           params.code_slots(DOC_CONFIDENTIALITY.name))
    # ITI TF-2a 3.18.4.1.2.3.6.2: without $XDSDocumentEntryType only stable entries match.
    clauses.append(R.object_type.in_(params.values(DOC_TYPE.name) or [STABLE_DOCUMENT_ENTRY]))
    return clauses


def _find_documents(ctx: QueryContext) -> Select[str]:
    p = ctx.params
    statement = ids_of(ObjectKind.DOCUMENT_ENTRY).where(
        R.patient_id == p.value("$XDSDocumentEntryPatientId"), status_in(p.values(DOC_STATUS.name)))
    for name, scheme in _DOC_CODE_PARAMS.items():
        statement = statement.where(*codes_match(scheme.value, p.code_slots(name)))
    for label, column in _DOC_TIMES.items():
        statement = statement.where(*time_range(column, p.value(f"$XDSDocumentEntry{label}From"),
                                                p.value(f"$XDSDocumentEntry{label}To")))
    if p.has("$XDSDocumentEntryAuthorPerson"):
        statement = statement.where(author_match(p.values("$XDSDocumentEntryAuthorPerson")))
    return statement.where(*document_filters(p))


class FindDocuments(StoredQueryHandler):
    query_id = StoredQueryId.FIND_DOCUMENTS
    parameters = FIND_DOCUMENTS_PARAMS

    def select(self, ctx: QueryContext) -> None:
        ctx.fetch_ids(_find_documents(ctx))


class FindDocumentsByReferenceId(StoredQueryHandler):
    """FindDocuments narrowed to entries carrying one of the reference ids (ITI TF-2a 3.18.4.1.2.3.7.14)."""

    query_id = StoredQueryId.FIND_DOCUMENTS_BY_REFERENCE_ID
    parameters = (*FIND_DOCUMENTS_PARAMS, Param("$XDSDocumentEntryReferenceIdList", required=True))

    def select(self, ctx: QueryContext) -> None:
        references = ctx.params.values("$XDSDocumentEntryReferenceIdList")
        ctx.fetch_ids(_find_documents(ctx).where(values_match(REFERENCE_ID, references)))


class FindSubmissionSets(StoredQueryHandler):
    query_id = StoredQueryId.FIND_SUBMISSION_SETS
    parameters = (
        Param("$XDSSubmissionSetPatientId", Kind.PATIENT_ID, required=True, multiple=False),
        Param("$XDSSubmissionSetStatus", Kind.STATUS, required=True),
        Param("$XDSSubmissionSetSourceId"),
        Param("$XDSSubmissionSetSubmissionTimeFrom", Kind.TIME, multiple=False),
        Param("$XDSSubmissionSetSubmissionTimeTo", Kind.TIME, multiple=False),
        Param("$XDSSubmissionSetAuthorPerson", multiple=False),
        Param("$XDSSubmissionSetContentType", Kind.CODE),
        HOME,
    )

    def select(self, ctx: QueryContext) -> None:
        p = ctx.params
        statement = ids_of(ObjectKind.SUBMISSION_SET).where(
            R.patient_id == p.value("$XDSSubmissionSetPatientId"),
            status_in(p.values("$XDSSubmissionSetStatus")),
            *time_range(R.submission_time, p.value("$XDSSubmissionSetSubmissionTimeFrom"),
                        p.value("$XDSSubmissionSetSubmissionTimeTo")),
            *codes_match(SubmissionSetScheme.CONTENT_TYPE_CODE.value,
                         p.code_slots("$XDSSubmissionSetContentType")),
        )
        if p.has("$XDSSubmissionSetSourceId"):
            statement = statement.where(R.source_id.in_(p.values("$XDSSubmissionSetSourceId")))
        if p.has("$XDSSubmissionSetAuthorPerson"):
            statement = statement.where(author_match(p.values("$XDSSubmissionSetAuthorPerson")))
        ctx.fetch_ids(statement)


class FindFolders(StoredQueryHandler):
    query_id = StoredQueryId.FIND_FOLDERS
    parameters = (
        Param("$XDSFolderPatientId", Kind.PATIENT_ID, required=True, multiple=False),
        Param("$XDSFolderStatus", Kind.STATUS, required=True),
        Param("$XDSFolderLastUpdateTimeFrom", Kind.TIME, multiple=False),
        Param("$XDSFolderLastUpdateTimeTo", Kind.TIME, multiple=False),
        Param("$XDSFolderCodeList", Kind.CODE, and_slots=True),
        HOME,
    )

    def select(self, ctx: QueryContext) -> None:
        p = ctx.params
        ctx.fetch_ids(ids_of(ObjectKind.FOLDER).where(
            R.patient_id == p.value("$XDSFolderPatientId"),
            status_in(p.values("$XDSFolderStatus")),
            *time_range(R.last_update_time, p.value("$XDSFolderLastUpdateTimeFrom"),
                        p.value("$XDSFolderLastUpdateTimeTo")),
            *codes_match(FolderScheme.CODE_LIST.value, p.code_slots("$XDSFolderCodeList")),
        ))
