"""Builders of well-formed XDS.b metadata as model objects.

Used where the hub itself is a Document Source: the demo, the benchmarks and,
in later issues, the imaging document source publishing KOS manifests. Each
builder fills what ITI TF-3 4.2.3 requires; callers name what differs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from registry.model import Association, Classification, Code, ExternalIdentifier, ExtrinsicObject, RegistryPackage
from registry.vocabulary import (
    STABLE_DOCUMENT_ENTRY,
    AssociationType,
    DocumentEntryScheme,
    FolderScheme,
    SubmissionSetScheme,
)


def new_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _code(scheme: str, owner: str, code: Code) -> Classification:
    return Classification(id=new_id(), classified_object=owner, scheme=scheme, node_representation=code.code,
                          name=code.display or code.code, slots={"codingScheme": [code.scheme]})


def code_classification(scheme: str, owner: str, code: Code) -> Classification:
    """An external classification carrying a coded value (ITI TF-3 4.2.3.1.2)."""
    return _code(scheme, owner, code)


def _ident(scheme: str, owner: str, value: str, name: str) -> ExternalIdentifier:
    return ExternalIdentifier(id=new_id(), registry_object=owner, scheme=scheme, value=value, name=name)


@dataclass
class DocumentSpec:
    """What varies between document entries; defaults are a plausible radiology report."""

    unique_id: str
    patient_id: str
    hash: str
    size: int
    repository_unique_id: str
    title: str = "Radiology report"
    mime_type: str = "application/pdf"
    creation_time: str = "20260101120000"
    class_code: Code = Code("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports")
    type_code: Code = Code("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study")
    format_code: Code = Code("urn:ihe:rad:PDF", "1.3.6.1.4.1.19376.1.2.3", "PDF report")
    confidentiality: tuple[Code, ...] = (Code("N", "2.16.840.1.113883.5.25", "Normal"),)
    event_codes: tuple[Code, ...] = ()
    facility_type: Code = Code("22232009", "2.16.840.1.113883.6.96", "Hospital")
    practice_setting: Code = Code("394914008", "2.16.840.1.113883.6.96", "Radiology")
    author_person: str = "^Curie^Marie^^^Dr"
    author_institution: str = "Demo Radiology^^^^^^^^^1.2.3.4"
    language: str = "en-US"
    reference_ids: tuple[str, ...] = ()
    entry_id: str = field(default_factory=new_id)


def document_entry(spec: DocumentSpec) -> ExtrinsicObject:
    eid = spec.entry_id
    entry = ExtrinsicObject(
        id=eid, object_type=STABLE_DOCUMENT_ENTRY, mime_type=spec.mime_type, name=spec.title,
        slots={
            "creationTime": [spec.creation_time],
            "hash": [spec.hash],
            "size": [str(spec.size)],
            "languageCode": [spec.language],
            "repositoryUniqueId": [spec.repository_unique_id],
            "sourcePatientId": [spec.patient_id],
        },
    )
    if spec.reference_ids:
        entry.slots["urn:ihe:iti:xds:2013:referenceIdList"] = list(spec.reference_ids)
    author = Classification(id=new_id(), classified_object=eid, scheme=DocumentEntryScheme.AUTHOR.value,
                            slots={"authorPerson": [spec.author_person],
                                   "authorInstitution": [spec.author_institution]})
    entry.classifications = [
        author,
        _code(DocumentEntryScheme.CLASS_CODE, eid, spec.class_code),
        *[_code(DocumentEntryScheme.CONFIDENTIALITY_CODE, eid, c) for c in spec.confidentiality],
        *[_code(DocumentEntryScheme.EVENT_CODE, eid, c) for c in spec.event_codes],
        _code(DocumentEntryScheme.FORMAT_CODE, eid, spec.format_code),
        _code(DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE, eid, spec.facility_type),
        _code(DocumentEntryScheme.PRACTICE_SETTING_CODE, eid, spec.practice_setting),
        _code(DocumentEntryScheme.TYPE_CODE, eid, spec.type_code),
    ]
    entry.external_identifiers = [
        _ident(DocumentEntryScheme.PATIENT_ID, eid, spec.patient_id, "XDSDocumentEntry.patientId"),
        _ident(DocumentEntryScheme.UNIQUE_ID, eid, spec.unique_id, "XDSDocumentEntry.uniqueId"),
    ]
    return entry


def submission_set(unique_id: str, patient_id: str, source_id: str, submission_time: str,
                   content_type: Code = Code("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study"),
                   author_institution: str = "Demo Radiology^^^^^^^^^1.2.3.4") -> RegistryPackage:
    sid = new_id()
    package = RegistryPackage(id=sid, name="Submission", slots={"submissionTime": [submission_time]})
    package.classifications = [
        Classification(id=new_id(), classified_object=sid, scheme=SubmissionSetScheme.AUTHOR.value,
                       slots={"authorInstitution": [author_institution]}),
        _code(SubmissionSetScheme.CONTENT_TYPE_CODE, sid, content_type),
        Classification(id=new_id(), classified_object=sid, node=SubmissionSetScheme.NODE.value),
    ]
    package.external_identifiers = [
        _ident(SubmissionSetScheme.UNIQUE_ID, sid, unique_id, "XDSSubmissionSet.uniqueId"),
        _ident(SubmissionSetScheme.SOURCE_ID, sid, source_id, "XDSSubmissionSet.sourceId"),
        _ident(SubmissionSetScheme.PATIENT_ID, sid, patient_id, "XDSSubmissionSet.patientId"),
    ]
    return package


def folder(unique_id: str, patient_id: str, codes: tuple[Code, ...], title: str = "Imaging",
           last_update_time: str | None = None) -> RegistryPackage:
    """An XDSFolder (ITI TF-3 4.2.3.4): uniqueId, patientId, codeList and the folder node.

    lastUpdateTime is the registry's to set; it is given only to build stored rows.
    """
    fid = new_id()
    package = RegistryPackage(id=fid, name=title)
    if last_update_time:
        package.slots["lastUpdateTime"] = [last_update_time]
    package.classifications = [
        *[_code(FolderScheme.CODE_LIST, fid, code) for code in codes],
        Classification(id=new_id(), classified_object=fid, node=FolderScheme.NODE.value),
    ]
    package.external_identifiers = [
        _ident(FolderScheme.UNIQUE_ID, fid, unique_id, "XDSFolder.uniqueId"),
        _ident(FolderScheme.PATIENT_ID, fid, patient_id, "XDSFolder.patientId"),
    ]
    return package


def has_member(source: str, target: str, status: str = "Original") -> Association:
    return Association(id=new_id(), association_type=AssociationType.HAS_MEMBER.value, source=source,
                       target=target, slots={"SubmissionSetStatus": [status]})


def relationship(kind: AssociationType, source: str, target: str) -> Association:
    return Association(id=new_id(), association_type=kind.value, source=source, target=target)
