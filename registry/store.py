"""Mapping between model objects and registry rows (the query columns).

`row_for` extracts every column and code row a stored query filters on;
`object_for` rebuilds the model object from a row's content. ITI-42 writes
with the first, ITI-18 reads with the second.
"""

from __future__ import annotations

from datetime import UTC, datetime

from registry.model import AnyObject, Association, ExtrinsicObject, RegistryPackage, object_from_dict
from registry.tables import AUTHOR_PERSON, REFERENCE_ID, RegistryCodeRow, RegistryObjectRow
from registry.vocabulary import (
    AvailabilityStatus,
    DocumentEntryScheme,
    FolderScheme,
    ObjectKind,
    SubmissionSetScheme,
)

# Schemes whose codes are stored for matching (ITI TF-2a 3.18.4.1.2.3.7.1 parameters).
DOCUMENT_CODE_SCHEMES = (
    DocumentEntryScheme.CLASS_CODE,
    DocumentEntryScheme.TYPE_CODE,
    DocumentEntryScheme.PRACTICE_SETTING_CODE,
    DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE,
    DocumentEntryScheme.EVENT_CODE,
    DocumentEntryScheme.CONFIDENTIALITY_CODE,
    DocumentEntryScheme.FORMAT_CODE,
)
AUTHOR_SCHEMES = (DocumentEntryScheme.AUTHOR, SubmissionSetScheme.AUTHOR)


def pad_dtm(value: str | None) -> str | None:
    """An HL7 DTM (YYYY[MM[DD[hh[mm[ss]]]]]) padded to 14 digits for range comparison.

    ITI TF-3 4.2.3.1.5: times are UTC, truncated precision is allowed. Padding
    with zeros makes lexical order equal time order for the range parameters.
    """
    if not value:
        return None
    digits = value.strip()
    return (digits + "00000000000000")[:14] if digits.isdigit() else None


def _codes(obj: AnyObject) -> list[RegistryCodeRow]:
    rows: list[RegistryCodeRow] = []
    if isinstance(obj, ExtrinsicObject):
        for scheme in DOCUMENT_CODE_SCHEMES:
            for code in obj.codes(scheme):
                rows.append(RegistryCodeRow(scheme=scheme.value, code=code.code, coding_scheme=code.scheme))
        for ref in obj.slot("urn:ihe:iti:xds:2013:referenceIdList"):
            rows.append(RegistryCodeRow(scheme=REFERENCE_ID, code=ref, coding_scheme=""))
    elif isinstance(obj, RegistryPackage):
        package_scheme: str = (SubmissionSetScheme.CONTENT_TYPE_CODE.value if obj.is_submission_set
                               else FolderScheme.CODE_LIST.value)
        for code in obj.codes(package_scheme):
            rows.append(RegistryCodeRow(scheme=package_scheme, code=code.code, coding_scheme=code.scheme))
    for author_scheme in AUTHOR_SCHEMES:
        for author in obj.classified_by(author_scheme):
            for person in author.slots.get("authorPerson", []):
                rows.append(RegistryCodeRow(scheme=AUTHOR_PERSON, code=person, coding_scheme=""))
    return rows


def row_for(obj: AnyObject, submitter_org_id: int | None, restricted: bool,
            now: datetime | None = None) -> RegistryObjectRow:
    """The row (with its code rows) that stores `obj`."""
    now = now or datetime.now(UTC)
    row = RegistryObjectRow(
        id=obj.id,
        kind=obj.kind.value,
        object_type=obj.object_type,
        lid=obj.lid or obj.id,
        version=int(obj.version or 1),
        status=obj.status or AvailabilityStatus.APPROVED.value,
        home=obj.home,
        submitter_org_id=submitter_org_id,
        restricted=restricted,
        content=obj.to_dict(),
        registered_at=now,
    )
    if isinstance(obj, ExtrinsicObject):
        row.unique_id = obj.unique_id
        row.patient_id = obj.patient_id
        row.mime_type = obj.mime_type
        row.creation_time = pad_dtm(obj.slot_value("creationTime"))
        row.service_start_time = pad_dtm(obj.slot_value("serviceStartTime"))
        row.service_stop_time = pad_dtm(obj.slot_value("serviceStopTime"))
        row.hash = obj.slot_value("hash")
        size = obj.slot_value("size")
        row.size = int(size) if size and size.isdigit() else None
        row.repository_unique_id = obj.slot_value("repositoryUniqueId")
    elif isinstance(obj, RegistryPackage):
        row.unique_id = obj.unique_id
        row.patient_id = obj.patient_id
        if obj.is_submission_set:
            row.submission_time = pad_dtm(obj.slot_value("submissionTime"))
            row.source_id = obj.external_id(SubmissionSetScheme.SOURCE_ID)
        else:
            row.last_update_time = pad_dtm(obj.slot_value("lastUpdateTime"))
    elif isinstance(obj, Association):
        row.association_type = obj.association_type
        row.source_object = obj.source
        row.target_object = obj.target
    row.codes = _codes(obj)
    return row


def object_for(row: RegistryObjectRow) -> AnyObject:
    """The model object a row stores, with its current status (and lastUpdateTime)."""
    return object_from_columns(row.content, row.status, row.kind, row.last_update_time)


# The columns `object_from_columns` needs, for queries that load no whole rows.
OBJECT_COLUMNS = (RegistryObjectRow.id, RegistryObjectRow.content, RegistryObjectRow.status,
                  RegistryObjectRow.kind, RegistryObjectRow.last_update_time)


def object_from_columns(content: dict, status: str, kind: str, last_update_time: str | None) -> AnyObject:
    obj = object_from_dict(content)
    obj.status = status
    if kind == ObjectKind.FOLDER.value and last_update_time:
        obj.slots["lastUpdateTime"] = [last_update_time]
    return obj
