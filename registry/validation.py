"""XDS.b metadata validation of a submission, before any database access.

`validate_submission` checks what ITI TF-3 4.1 (submission rules) and 4.2
(metadata attributes, Tables 4.2.3.2-1, 4.2.3.3-1, 4.2.3.4-1) demand of one
SubmitObjectsRequest taken alone, and reports every problem found at once.
What needs the registry's content (duplicates in the registry, targets of
associations that are not in the message) is checked by the ITI-42 service.

Error codes (ITI TF-3 Table 4.2.4.1-2): XDSRegistryMetadataError for
structure and attribute errors, XDSRegistryDuplicateUniqueIdInMessage,
XDSPatientIdDoesNotMatch.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hub.errors import (
    DuplicateUniqueIdInMessage,
    PatientIdDoesNotMatch,
    RegistryMetadataError,
    XdsError,
    XdsErrorList,
)
from registry.model import Association, ExtrinsicObject, RegistryObject, RegistryPackage, SubmitObjectsRequest
from registry.vocabulary import (
    DOCUMENT_ENTRY_TYPES,
    ON_DEMAND_DOCUMENT_ENTRY,
    RELATIONSHIP_TYPES,
    SUBMISSION_SET_STATUS_SLOT,
    AssociationType,
    DocumentEntryScheme,
    FolderScheme,
    SubmissionSetScheme,
)

Check = Callable[[str], str | None]   # returns what is wrong with a value, or None

# -- value syntax ---------------------------------------------------------------
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_DTM = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?)?$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
# CX with only an ISO assigning authority: ID^^^&OID&ISO (ITI TF-3 4.2.3.2.16)
_PATIENT_ID = re.compile(r"^([^\^&]+)\^\^\^&([^&\^]+)&ISO$")
_MIME = re.compile(r"^[\w!#$&.+^-]+/[\w!#$&.+^-]+$")
OID_MAX = 64            # ITI TF-3 4.2.3.2.26 / 4.2.3.3.12: OIDs up to 64 characters
EXTENSION_MAX = 16      # ITI TF-3 4.2.3.2.26: document uniqueId extension up to 16 characters
UNIQUE_ID_MAX = 128


def check_oid(value: str) -> str | None:
    if len(value) > OID_MAX:
        return f"{value!r} is longer than {OID_MAX} characters"
    return None if _OID.match(value) else f"{value!r} is not an OID"


def check_document_unique_id(value: str) -> str | None:
    """OID or OID^extension (ITI TF-3 4.2.3.2.26)."""
    if len(value) > UNIQUE_ID_MAX:
        return f"{value!r} is longer than {UNIQUE_ID_MAX} characters"
    oid, caret, extension = value.partition("^")
    if caret and not 0 < len(extension) <= EXTENSION_MAX:
        return f"extension of {value!r} must have 1 to {EXTENSION_MAX} characters"
    return check_oid(oid)


def check_dtm(value: str) -> str | None:
    """HL7 V2 DTM, UTC, truncated precision allowed: YYYY[MM[DD[hh[mm[ss]]]]] (ITI TF-3 4.2.3.1.5)."""
    if not _DTM.match(value):
        return f"{value!r} is not a DTM (YYYY[MM[DD[hh[mm[ss]]]]])"
    padded = value + "0101000000"[len(value) - 4:] if len(value) < 14 else value
    try:
        datetime.strptime(padded, "%Y%m%d%H%M%S")
    except ValueError:
        return f"{value!r} is not a valid date/time"
    return None


def check_patient_id(value: str) -> str | None:
    match = _PATIENT_ID.match(value)
    if match is None:
        return f"{value!r} is not ID^^^&OID&ISO (ITI TF-3 4.2.3.2.16)"
    return check_oid(match.group(2))


def check_hash(value: str) -> str | None:
    return None if _SHA1.match(value) else f"{value!r} is not a SHA-1 in 40 hexadecimal digits"


def check_size(value: str) -> str | None:
    return None if value.isdigit() else f"{value!r} is not a non-negative integer"


def check_mime(value: str) -> str | None:
    return None if _MIME.match(value) else f"{value!r} is not a MIME type"


# -- rule tables ----------------------------------------------------------------
@dataclass(frozen=True)
class CodeRule:
    """A coded attribute stored as a Classification: how many it needs and may have."""

    scheme: str
    label: str
    minimum: int = 1
    maximum: int | None = 1


@dataclass(frozen=True)
class SlotRule:
    name: str
    required: bool = False
    stable_only: bool = False   # required for stable entries only (ITI TF-3 Table 4.3.1-3)
    single: bool = True
    check: Check | None = None


@dataclass(frozen=True)
class IdentifierRule:
    scheme: str
    label: str
    check: Check


DOCUMENT_CODES = (
    CodeRule(DocumentEntryScheme.CLASS_CODE, "classCode"),
    CodeRule(DocumentEntryScheme.TYPE_CODE, "typeCode"),
    CodeRule(DocumentEntryScheme.FORMAT_CODE, "formatCode"),
    CodeRule(DocumentEntryScheme.CONFIDENTIALITY_CODE, "confidentialityCode", 1, None),
    CodeRule(DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE, "healthcareFacilityTypeCode"),
    CodeRule(DocumentEntryScheme.PRACTICE_SETTING_CODE, "practiceSettingCode"),
    CodeRule(DocumentEntryScheme.EVENT_CODE, "eventCodeList", 0, None),
)
SUBMISSION_SET_CODES = (CodeRule(SubmissionSetScheme.CONTENT_TYPE_CODE, "contentTypeCode"),)
FOLDER_CODES = (CodeRule(FolderScheme.CODE_LIST, "codeList", 1, None),)

DOCUMENT_SLOTS = (
    SlotRule("creationTime", required=True, stable_only=True, check=check_dtm),
    SlotRule("languageCode", required=True),
    SlotRule("sourcePatientId", required=True),
    SlotRule("hash", required=True, stable_only=True, check=check_hash),
    SlotRule("size", required=True, stable_only=True, check=check_size),
    SlotRule("repositoryUniqueId", required=True, stable_only=True, check=check_oid),
    SlotRule("serviceStartTime", check=check_dtm),
    SlotRule("serviceStopTime", check=check_dtm),
    SlotRule("legalAuthenticator"),
)
SUBMISSION_SET_SLOTS = (SlotRule("submissionTime", required=True, check=check_dtm),)
FOLDER_SLOTS = (SlotRule("lastUpdateTime", check=check_dtm),)

DOCUMENT_IDENTIFIERS = (
    IdentifierRule(DocumentEntryScheme.UNIQUE_ID, "uniqueId", check_document_unique_id),
    IdentifierRule(DocumentEntryScheme.PATIENT_ID, "patientId", check_patient_id),
)
SUBMISSION_SET_IDENTIFIERS = (
    IdentifierRule(SubmissionSetScheme.UNIQUE_ID, "uniqueId", check_oid),
    IdentifierRule(SubmissionSetScheme.SOURCE_ID, "sourceId", check_oid),
    IdentifierRule(SubmissionSetScheme.PATIENT_ID, "patientId", check_patient_id),
)
FOLDER_IDENTIFIERS = (
    IdentifierRule(FolderScheme.UNIQUE_ID, "uniqueId", check_oid),
    IdentifierRule(FolderScheme.PATIENT_ID, "patientId", check_patient_id),
)
LIMITED_METADATA_NODES = (DocumentEntryScheme.LIMITED_METADATA, SubmissionSetScheme.LIMITED_METADATA,
                          FolderScheme.LIMITED_METADATA)
SUBMISSION_SET_STATUSES = ("Original", "Reference")
KNOWN_ASSOCIATION_TYPES = frozenset(t.value for t in AssociationType)
UUID_PREFIX = "urn:uuid:"


def is_uuid_urn(value: str) -> bool:
    if not value.startswith(UUID_PREFIX):
        return False
    try:
        uuid.UUID(value[len(UUID_PREFIX):])
    except ValueError:
        return False
    return True


# -- the checks -----------------------------------------------------------------
class _Report:
    def __init__(self) -> None:
        self.errors: list[XdsError] = []

    def metadata(self, obj_id: str, message: str) -> None:
        self.errors.append(RegistryMetadataError(message, obj_id))


def _check_codes(report: _Report, obj: RegistryObject, label: str, rules: tuple[CodeRule, ...]) -> None:
    for rule in rules:
        found = obj.classified_by(rule.scheme)
        if len(found) < rule.minimum:
            report.metadata(obj.id, f"{label} {obj.id}: {rule.label} is required (ITI TF-3 4.2.3)")
        if rule.maximum is not None and len(found) > rule.maximum:
            report.metadata(obj.id, f"{label} {obj.id}: {rule.label} may appear only {rule.maximum} time(s)")
        for c in found:
            coding = c.slots.get("codingScheme", [])
            if not c.node_representation.strip():
                report.metadata(c.id, f"{label} {obj.id}: {rule.label} {c.id} has no code (nodeRepresentation)")
            if len(coding) != 1 or not coding[0].strip():
                report.metadata(c.id, f"{label} {obj.id}: {rule.label} {c.id} needs exactly one codingScheme "
                                      "slot value (ITI TF-3 4.2.3.1.7)")


def _check_slots(report: _Report, obj: RegistryObject, label: str, rules: tuple[SlotRule, ...],
                 stable: bool = True) -> None:
    for rule in rules:
        values = obj.slots.get(rule.name)
        if values is None or not [v for v in values if v.strip()]:
            if rule.required and (stable or not rule.stable_only):
                report.metadata(obj.id, f"{label} {obj.id}: slot {rule.name} is required (ITI TF-3 4.2.3)")
            continue
        if rule.single and len(values) != 1:
            report.metadata(obj.id, f"{label} {obj.id}: slot {rule.name} takes one value, got {len(values)}")
        for value in values:
            problem = rule.check(value.strip()) if rule.check else None
            if problem:
                report.metadata(obj.id, f"{label} {obj.id}: {rule.name} {problem}")


def _check_identifiers(report: _Report, obj: RegistryObject, label: str,
                       rules: tuple[IdentifierRule, ...]) -> None:
    for rule in rules:
        found = [e for e in obj.external_identifiers if e.scheme == rule.scheme]
        if not found:
            report.metadata(obj.id, f"{label} {obj.id}: {rule.label} is required (ITI TF-3 4.2.3)")
            continue
        if len(found) > 1:
            report.metadata(obj.id, f"{label} {obj.id}: {rule.label} appears {len(found)} times")
        problem = rule.check(found[0].value)
        if problem:
            report.metadata(found[0].id, f"{label} {obj.id}: {rule.label} {problem}")


def _check_common(report: _Report, obj: RegistryObject, label: str) -> None:
    if any(obj.has_node(node) for node in LIMITED_METADATA_NODES):
        report.metadata(obj.id, f"{label} {obj.id}: limited metadata is not accepted by an XDS Document "
                                "Registry (ITI TF-3 4.1.1)")


def _check_document(report: _Report, doc: ExtrinsicObject) -> None:
    label = "DocumentEntry"
    if doc.object_type not in DOCUMENT_ENTRY_TYPES:
        report.metadata(doc.id, f"ExtrinsicObject {doc.id}: objectType {doc.object_type!r} is not a stable "
                                "or on-demand DocumentEntry type (ITI TF-3 4.2.5.2)")
    _check_common(report, doc, label)
    _check_identifiers(report, doc, label, DOCUMENT_IDENTIFIERS)
    _check_codes(report, doc, label, DOCUMENT_CODES)
    _check_slots(report, doc, label, DOCUMENT_SLOTS, stable=doc.object_type != ON_DEMAND_DOCUMENT_ENTRY)
    problem = check_mime(doc.mime_type) if doc.mime_type else "mimeType is required (ITI TF-3 4.2.3.2.13)"
    if problem:
        report.metadata(doc.id, f"{label} {doc.id}: {problem}")


def _check_package(report: _Report, package: RegistryPackage) -> None:
    if package.is_submission_set and package.is_folder:
        report.metadata(package.id, f"RegistryPackage {package.id} is classified both as SubmissionSet "
                                    "and as Folder")
    elif package.is_submission_set:
        _check_common(report, package, "SubmissionSet")
        _check_identifiers(report, package, "SubmissionSet", SUBMISSION_SET_IDENTIFIERS)
        _check_codes(report, package, "SubmissionSet", SUBMISSION_SET_CODES)
        _check_slots(report, package, "SubmissionSet", SUBMISSION_SET_SLOTS)
    elif package.is_folder:
        _check_common(report, package, "Folder")
        _check_identifiers(report, package, "Folder", FOLDER_IDENTIFIERS)
        _check_codes(report, package, "Folder", FOLDER_CODES)
        _check_slots(report, package, "Folder", FOLDER_SLOTS)
    else:
        report.metadata(package.id, f"RegistryPackage {package.id} is classified neither as SubmissionSet "
                                    "nor as Folder (ITI TF-3 4.2.1.2)")


def _check_ids(report: _Report, request: SubmitObjectsRequest) -> None:
    """Every id once in the message; urn:uuid ids well formed, others symbolic (ITI TF-3 4.2.3.1.1)."""
    ids = [o.id for o in request.objects]
    for obj in request.objects:
        ids += [c.id for c in obj.classifications] + [e.id for e in obj.external_identifiers]
    for ident, count in Counter(ids).items():
        if count > 1:
            report.metadata(ident, f"id {ident} is used by {count} objects of the submission")
        if ident.startswith(UUID_PREFIX) and not is_uuid_urn(ident):
            report.metadata(ident, f"id {ident} starts with urn:uuid: but is not a UUID")


def _identified(request: SubmitObjectsRequest) -> list[ExtrinsicObject | RegistryPackage]:
    """The objects with a uniqueId and a patientId: DocumentEntries, SubmissionSets, Folders."""
    return [*request.document_entries, *request.packages]


def _check_unique_ids(report: _Report, request: SubmitObjectsRequest) -> None:
    counts = Counter(o.unique_id for o in _identified(request) if o.unique_id)
    for unique_id, count in counts.items():
        if count > 1:
            report.errors.append(DuplicateUniqueIdInMessage(
                f"uniqueId {unique_id} is used {count} times in the submission", unique_id))


def _check_patients(report: _Report, request: SubmitObjectsRequest) -> None:
    """One patient per submission (ITI TF-2b 3.42.4.1.3.3): every patientId equals the SubmissionSet's."""
    sets = request.submission_sets
    reference = sets[0].patient_id if len(sets) == 1 else None
    for obj in _identified(request):
        if reference and obj.patient_id and obj.patient_id != reference:
            report.errors.append(PatientIdDoesNotMatch(
                f"{obj.kind.value} {obj.id} is for patient {obj.patient_id}, the SubmissionSet for {reference}",
                obj.id))


def _check_associations(report: _Report, request: SubmitObjectsRequest) -> None:
    """Association rules of ITI TF-3 4.2.2 and membership of new objects (ITI TF-3 4.1.4)."""
    documents = {d.id for d in request.document_entries}
    folders = {f.id for f in request.folders}
    sets = {s.id for s in request.submission_sets}
    in_message = {o.id for o in request.objects}
    members: set[str] = set()
    for assoc in request.associations:
        where = assoc.id
        kind = assoc.association_type
        for end in (assoc.source, assoc.target):
            if end not in in_message and not is_uuid_urn(end):
                report.metadata(where, f"Association {assoc.id}: {end!r} is neither an object of the submission "
                                       "nor a urn:uuid of the registry (ITI TF-3 4.2.3.1.1)")
        if kind not in KNOWN_ASSOCIATION_TYPES:
            report.metadata(where, f"Association {assoc.id}: associationType {kind!r} is not supported "
                                   "(ITI TF-3 4.2.2)")
        elif kind == AssociationType.HAS_MEMBER.value:
            _check_has_member(report, assoc, sets, folders, documents, in_message, members)
        elif kind in {t.value for t in RELATIONSHIP_TYPES}:
            if assoc.source not in documents:
                report.metadata(where, f"Association {assoc.id}: the source of a {kind.rsplit(':', 1)[-1]} "
                                       "association must be a new DocumentEntry of the submission "
                                       "(ITI TF-3 4.2.2.2)")
            if assoc.target in in_message and kind != AssociationType.SIGNS.value:
                report.metadata(where, f"Association {assoc.id}: the target of a {kind.rsplit(':', 1)[-1]} "
                                       "association must be a DocumentEntry already in the registry")
    for new in sorted((documents | folders) - members):
        report.metadata(new, f"{new} is not a member of the SubmissionSet: a HasMember association with "
                             "SubmissionSetStatus Original is required (ITI TF-3 4.1.4)")


def _check_has_member(report: _Report, assoc: Association, sets: set[str], folders: set[str],
                      documents: set[str], in_message: set[str], members: set[str]) -> None:
    where = assoc.id
    status = assoc.slots.get(SUBMISSION_SET_STATUS_SLOT)
    if assoc.source in sets:
        if assoc.target in documents and not status:
            report.metadata(where, f"Association {assoc.id}: SubmissionSet HasMember DocumentEntry needs the "
                                   "SubmissionSetStatus slot (ITI TF-3 4.2.2.1.2)")
        if status is not None and (len(status) != 1 or status[0] not in SUBMISSION_SET_STATUSES):
            report.metadata(where, f"Association {assoc.id}: SubmissionSetStatus must be Original or Reference")
            return
        state = status[0] if status else "Original"
        if state == "Original" and assoc.target not in in_message:
            report.metadata(where, f"Association {assoc.id}: SubmissionSetStatus Original names {assoc.target}, "
                                   "which is not in the submission")
        if state == "Reference" and assoc.target in in_message:
            report.metadata(where, f"Association {assoc.id}: SubmissionSetStatus Reference names a new object")
        if state == "Original" and (assoc.target in documents or assoc.target in folders):
            members.add(assoc.target)
        if assoc.target in sets:
            report.metadata(where, f"Association {assoc.id}: a SubmissionSet cannot contain a SubmissionSet")
    elif assoc.source in folders or assoc.source not in in_message:
        # Folder HasMember DocumentEntry (ITI TF-3 4.2.2.1.3); an existing folder is checked in the registry.
        if assoc.target in in_message and assoc.target not in documents:
            report.metadata(where, f"Association {assoc.id}: a Folder may only contain DocumentEntries")
    else:
        report.metadata(where, f"Association {assoc.id}: HasMember source {assoc.source} is neither the "
                               "SubmissionSet nor a Folder (ITI TF-3 4.2.2.1)")


def validate_submission(request: SubmitObjectsRequest, now: datetime) -> None:
    """Raise XdsErrorList with every problem of `request` (ITI TF-3 4.1, 4.2).

    `now` is the registry's clock (UTC), part of the signature for time rules
    of local policy. ITI TF-3 sets none: a creationTime ahead of the registry's
    clock (a source with a skewed clock, a scheduled report) is accepted.
    """
    report = _Report()
    sets = request.submission_sets
    if len(sets) != 1:
        report.metadata("SubmitObjectsRequest", f"a submission holds exactly one SubmissionSet, found {len(sets)} "
                                                "(ITI TF-3 4.1.4)")
    _check_ids(report, request)
    for doc in request.document_entries:
        _check_document(report, doc)
    for package in request.packages:
        _check_package(report, package)
    _check_unique_ids(report, request)
    _check_patients(report, request)
    _check_associations(report, request)
    if report.errors:
        raise XdsErrorList(report.errors)
