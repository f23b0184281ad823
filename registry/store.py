"""Mapping between model objects and registry rows (the query columns).

`row_for` extracts every column and code row a stored query filters on;
`object_for` rebuilds the model object from a row's content. ITI-42 writes
with the first, ITI-18 reads with the second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

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


def code_values(obj: AnyObject) -> list[dict[str, str]]:
    """The registry_codes rows (scheme, code, coding_scheme) of an object."""
    rows: list[dict[str, str]] = []

    def add(scheme: str, code: str, coding_scheme: str = "") -> None:
        rows.append({"scheme": scheme, "code": code, "coding_scheme": coding_scheme})

    if isinstance(obj, ExtrinsicObject):
        for scheme in DOCUMENT_CODE_SCHEMES:
            for code in obj.codes(scheme):
                add(scheme.value, code.code, code.scheme)
        for ref in obj.slot("urn:ihe:iti:xds:2013:referenceIdList"):
            add(REFERENCE_ID, ref)
    elif isinstance(obj, RegistryPackage):
        package_scheme: str = (SubmissionSetScheme.CONTENT_TYPE_CODE.value if obj.is_submission_set
                               else FolderScheme.CODE_LIST.value)
        for code in obj.codes(package_scheme):
            add(package_scheme, code.code, code.scheme)
    for author_scheme in AUTHOR_SCHEMES:
        for author in obj.classified_by(author_scheme):
            for person in author.slots.get("authorPerson", []):
                add(AUTHOR_PERSON, person)
    return rows


def object_columns(obj: AnyObject, submitter_org_id: int | None, restricted: bool,
                   now: datetime | None = None) -> dict[str, Any]:
    """Every registry_objects column of `obj`: what the stored queries filter on, and its content."""
    values: dict[str, Any] = {
        "id": obj.id,
        "kind": obj.kind.value,
        "object_type": obj.object_type,
        "lid": obj.lid or obj.id,
        "version": int(obj.version or 1),
        "status": obj.status or AvailabilityStatus.APPROVED.value,
        "home": obj.home,
        "submitter_org_id": submitter_org_id,
        "restricted": restricted,
        "content": obj.to_dict(),
        "registered_at": now or datetime.now(UTC),
    }
    if isinstance(obj, ExtrinsicObject):
        size = obj.slot_value("size")
        values.update(
            unique_id=obj.unique_id,
            patient_id=obj.patient_id,
            mime_type=obj.mime_type,
            creation_time=pad_dtm(obj.slot_value("creationTime")),
            service_start_time=pad_dtm(obj.slot_value("serviceStartTime")),
            service_stop_time=pad_dtm(obj.slot_value("serviceStopTime")),
            hash=obj.slot_value("hash"),
            size=int(size) if size and size.isdigit() else None,
            repository_unique_id=obj.slot_value("repositoryUniqueId"),
        )
    elif isinstance(obj, RegistryPackage):
        values.update(unique_id=obj.unique_id, patient_id=obj.patient_id)
        if obj.is_submission_set:
            values.update(submission_time=pad_dtm(obj.slot_value("submissionTime")),
                          source_id=obj.external_id(SubmissionSetScheme.SOURCE_ID))
        else:
            values.update(last_update_time=pad_dtm(obj.slot_value("lastUpdateTime")))
    elif isinstance(obj, Association):
        values.update(association_type=obj.association_type, source_object=obj.source,
                      target_object=obj.target)
    return values


def row_for(obj: AnyObject, submitter_org_id: int | None, restricted: bool,
            now: datetime | None = None) -> RegistryObjectRow:
    """The ORM row (with its code rows) that stores `obj`."""
    row = RegistryObjectRow(**object_columns(obj, submitter_org_id, restricted, now))
    row.codes = [RegistryCodeRow(**values) for values in code_values(obj)]
    return row


def insert_objects(session: Session, objects: list[tuple[AnyObject, bool]], submitter_org_id: int | None,
                   now: datetime) -> None:
    """Insert many objects (each with its restricted flag) in two executemany statements.

    A unique-constraint violation (a concurrent submission of the same uniqueId)
    surfaces here as sqlalchemy IntegrityError, for the caller to map.
    """
    if not objects:
        return
    session.execute(insert(RegistryObjectRow),
                    [object_columns(obj, submitter_org_id, restricted, now) for obj, restricted in objects])
    codes = [{"object_id": obj.id, **values} for obj, _ in objects for values in code_values(obj)]
    if codes:
        session.execute(insert(RegistryCodeRow), codes)


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
