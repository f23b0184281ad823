"""XDS.b metadata validation of a submission, before any database access.

`validate_submission` checks what ITI TF-3 4.1 (submission rules) and 4.2
(metadata attributes, Tables 4.2.3.2-1, 4.2.3.3-1, 4.2.3.4-1; optionality in
Table 4.3.1-3, Register column) demand of one SubmitObjectsRequest taken
alone, and reports every problem found at once. What needs the registry's
content (duplicates in the registry, association ends outside the message) is
checked by the ITI-42 service.

Error codes (ITI TF-3 Table 4.2.4.1-2): XDSRegistryMetadataError (structure,
attributes), XDSRegistryDuplicateUniqueIdInMessage, XDSPatientIdDoesNotMatch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from hub.errors import DuplicateUniqueIdInMessage, PatientIdDoesNotMatch, RegistryMetadataError, XdsError, XdsErrorList
from registry.model import Association, ExtrinsicObject, RegistryObject, RegistryPackage, SubmitObjectsRequest
from registry.vocabulary import (
    DOCUMENT_ENTRY_TYPES,
    ON_DEMAND_DOCUMENT_ENTRY,
    RELATIONSHIP_TYPES,
    REPLACING_TYPES,
    SUBMISSION_SET_STATUS_SLOT,
    AssociationType,
    DocumentEntryScheme,
    FolderScheme,
    SubmissionSetScheme,
)

Check = Callable[[str], str | None]   # returns what is wrong with a value, or None

# -- value syntax ---------------------------------------------------------------
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_DTM = re.compile(r"^[0-9]{4}([0-9]{2}){0,5}$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
# CX with only an ISO assigning authority: ID^^^&OID&ISO (ITI TF-3 4.2.3.2.16)
_PATIENT_ID = re.compile(r"^([^\^&]+)\^\^\^&([^&\^]+)&ISO$")
_MIME = re.compile(r"^[\w!#$&.+^-]+/[\w!#$&.+^-]+$")
_LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")   # RFC 5646 tag shape (ITI TF-3 4.2.3.2.12)
OID_MAX = 64            # ITI TF-3 4.2.3.2.26 / 4.2.3.3.12: OIDs up to 64 characters
EXTENSION_MAX = 16      # ITI TF-3 4.2.3.2.26: document uniqueId extension up to 16 characters
UNIQUE_ID_MAX = 128     # ITI TF-3 4.2.3.2.26: a document uniqueId is at most 128 bytes


def check_oid(value: str) -> str | None:
    if len(value) > OID_MAX:
        return f"{value!r} is longer than {OID_MAX} characters"
    return None if _OID.fullmatch(value) else f"{value!r} is not an OID"


def check_document_unique_id(value: str) -> str | None:
    """OID or OID^extension (ITI TF-3 4.2.3.2.26)."""
    if len(value.encode()) > UNIQUE_ID_MAX:
        return f"{value!r} is longer than {UNIQUE_ID_MAX} bytes"
    oid, caret, extension = value.partition("^")
    if caret and not 0 < len(extension) <= EXTENSION_MAX:
        return f"extension of {value!r} must have 1 to {EXTENSION_MAX} characters"
    return check_oid(oid)


def check_dtm(value: str) -> str | None:
    """HL7 V2 DTM, UTC, truncated precision allowed: YYYY[MM[DD[hh[mm[ss]]]]] (ITI TF-3 4.2.3.1.5)."""
    if not _DTM.fullmatch(value):
        return f"{value!r} is not a DTM (YYYY[MM[DD[hh[mm[ss]]]]])"
    try:   # pad truncated precision to a full date-time so the calendar is checked too
        datetime.strptime(value + "0101000000"[len(value) - 4:], "%Y%m%d%H%M%S")
    except ValueError:
        return f"{value!r} is not a valid date/time"
    return None


def check_patient_id(value: str) -> str | None:
    match = _PATIENT_ID.fullmatch(value)
    return check_oid(match.group(2)) if match else f"{value!r} is not ID^^^&OID&ISO (ITI TF-3 4.2.3.2.16)"


def _matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else f"{value!r} is not {what}"
    return check


check_hash = _matches(_SHA1, "a SHA-1 in 40 hexadecimal digits")
check_size = _matches(re.compile(r"^[0-9]+$"), "a non-negative integer")
check_mime = _matches(_MIME, "a MIME type")
check_language = _matches(_LANGUAGE, "a language tag (RFC 5646)")
UUID_PREFIX = "urn:uuid:"
_UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


def is_uuid_urn(value: str) -> bool:
    """A urn:uuid in the RFC 4122 (section 3) hyphenated form."""
    return _UUID_URN.fullmatch(value) is not None


# -- rule tables ----------------------------------------------------------------
class CodeRule(NamedTuple):
    """A coded attribute stored as a Classification: how many it needs and may have."""
    scheme: str
    label: str
    minimum: int = 1
    maximum: int | None = 1


class SlotRule(NamedTuple):
    """A single-valued slot; `stable_only`: required of stable entries only (Table 4.3.1-3)."""
    name: str
    required: bool = False
    stable_only: bool = False
    check: Check | None = None


class IdentifierRule(NamedTuple):
    scheme: str
    label: str
    check: Check


class ObjectRules(NamedTuple):
    """Everything one kind of object must carry (ITI TF-3 4.2.3.2 to 4.2.3.4)."""
    label: str
    identifiers: tuple[IdentifierRule, ...]
    codes: tuple[CodeRule, ...]
    slots: tuple[SlotRule, ...]
    author_scheme: str | None = None
    title_required: bool = False


DOCUMENT = ObjectRules(
    "DocumentEntry",
    identifiers=(IdentifierRule(DocumentEntryScheme.UNIQUE_ID, "uniqueId", check_document_unique_id),
                 IdentifierRule(DocumentEntryScheme.PATIENT_ID, "patientId", check_patient_id)),
    codes=(CodeRule(DocumentEntryScheme.CLASS_CODE, "classCode"), CodeRule(DocumentEntryScheme.TYPE_CODE, "typeCode"),
           CodeRule(DocumentEntryScheme.FORMAT_CODE, "formatCode"),
           CodeRule(DocumentEntryScheme.CONFIDENTIALITY_CODE, "confidentialityCode", 1, None),
           CodeRule(DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE, "healthcareFacilityTypeCode"),
           CodeRule(DocumentEntryScheme.PRACTICE_SETTING_CODE, "practiceSettingCode"),
           CodeRule(DocumentEntryScheme.EVENT_CODE, "eventCodeList", 0, None)),
    # (name, required, required of stable entries only, value check)
    slots=(SlotRule("creationTime", True, True, check_dtm), SlotRule("languageCode", True, False, check_language),
           SlotRule("sourcePatientId", True), SlotRule("repositoryUniqueId", True, False, check_oid),
           SlotRule("hash", True, True, check_hash), SlotRule("size", True, True, check_size),
           SlotRule("serviceStartTime", check=check_dtm), SlotRule("serviceStopTime", check=check_dtm),
           SlotRule("legalAuthenticator")),
    author_scheme=DocumentEntryScheme.AUTHOR,
)
SUBMISSION_SET = ObjectRules(
    "SubmissionSet",
    identifiers=(IdentifierRule(SubmissionSetScheme.UNIQUE_ID, "uniqueId", check_oid),
                 IdentifierRule(SubmissionSetScheme.SOURCE_ID, "sourceId", check_oid),
                 IdentifierRule(SubmissionSetScheme.PATIENT_ID, "patientId", check_patient_id)),
    codes=(CodeRule(SubmissionSetScheme.CONTENT_TYPE_CODE, "contentTypeCode"),),
    slots=(SlotRule("submissionTime", required=True, check=check_dtm),),
    author_scheme=SubmissionSetScheme.AUTHOR,
)
FOLDER = ObjectRules(
    "Folder",
    identifiers=(IdentifierRule(FolderScheme.UNIQUE_ID, "uniqueId", check_oid),
                 IdentifierRule(FolderScheme.PATIENT_ID, "patientId", check_patient_id)),
    codes=(CodeRule(FolderScheme.CODE_LIST, "codeList", 1, None),),
    slots=(SlotRule("lastUpdateTime", check=check_dtm),),   # set by the registry (ITI TF-3 4.2.3.4.5)
    title_required=True,                                    # Folder title is R (ITI TF-3 Table 4.3.1-3)
)
# ITI TF-3 4.2.3.1.4: an author names at least a person, an institution or a telecom address.
AUTHOR_SLOTS = ("authorPerson", "authorInstitution", "authorTelecommunication")
LIMITED_METADATA_NODES = (DocumentEntryScheme.LIMITED_METADATA, SubmissionSetScheme.LIMITED_METADATA,
                          FolderScheme.LIMITED_METADATA)
SUBMISSION_SET_STATUSES = ("Original", "Reference")
KNOWN_ASSOCIATION_TYPES = frozenset(t.value for t in AssociationType)
RELATIONSHIPS = frozenset(t.value for t in RELATIONSHIP_TYPES)
REPLACING = frozenset(t.value for t in REPLACING_TYPES)


# -- the checks ---------------------------------------------------------------------
class _Validation:
    """One pass over a submission, collecting every problem in `errors`."""

    def __init__(self, request: SubmitObjectsRequest) -> None:
        self.request = request
        self.errors: list[XdsError] = []
        self.documents = {d.id for d in request.document_entries}
        self.folders = {f.id for f in request.folders}
        self.sets = {s.id for s in request.submission_sets}
        self.in_message = {o.id for o in request.objects}
        self.members: set[str] = set()   # new objects the SubmissionSet holds as Original

    def meta(self, location: str, message: str) -> None:
        self.errors.append(RegistryMetadataError(message, location))

    def run(self) -> list[XdsError]:
        request = self.request
        if len(self.sets) != 1:
            self.meta("SubmitObjectsRequest", f"a submission holds exactly one SubmissionSet, found "
                                              f"{len(self.sets)} (ITI TF-3 4.1.4)")
        self.check_ids()
        for doc in request.document_entries:
            self.check_document(doc)
        for package in request.packages:
            self.check_package(package)
        for assoc in request.associations:
            self.check_structure(assoc, "Association")
        self.check_unique_ids_and_patients()
        self.check_associations()
        return self.errors

    # -- objects (ITI TF-3 4.2.3) ------------------------------------------------------
    def check_structure(self, obj: RegistryObject, label: str) -> None:
        """Nested objects describe their parent (ITI TF-3 4.2.3.1); no limited metadata (ITI TF-3 4.1.1)."""
        for c in obj.classifications:
            if c.classified_object != obj.id:
                self.meta(c.id, f"{label} {obj.id}: Classification {c.id} classifies {c.classified_object!r}, "
                                "not its parent object (ITI TF-3 4.2.3.1)")
        for e in obj.external_identifiers:
            if e.registry_object != obj.id:
                self.meta(e.id, f"{label} {obj.id}: ExternalIdentifier {e.id} names {e.registry_object!r}, "
                                "not its parent object (ITI TF-3 4.2.3.1)")
        if any(obj.has_node(node) for node in LIMITED_METADATA_NODES):
            self.meta(obj.id, f"{label} {obj.id}: limited metadata is not accepted by an XDS Document Registry "
                              "(ITI TF-3 4.1.1)")

    def check_codes(self, obj: RegistryObject, rules: ObjectRules) -> None:
        what = f"{rules.label} {obj.id}:"
        for rule in rules.codes:
            found = obj.classified_by(rule.scheme)
            if len(found) < rule.minimum:
                self.meta(obj.id, f"{what} {rule.label} is required (ITI TF-3 4.2.3)")
            if rule.maximum is not None and len(found) > rule.maximum:
                self.meta(obj.id, f"{what} {rule.label} may appear only {rule.maximum} time(s)")
            for c in found:
                coding = c.slots.get("codingScheme", [])
                if not c.node_representation.strip():
                    self.meta(c.id, f"{what} {rule.label} {c.id} has no code (nodeRepresentation)")
                if len(coding) != 1 or not coding[0].strip():
                    self.meta(c.id, f"{what} {rule.label} {c.id} needs exactly one codingScheme slot value "
                                    "(ITI TF-3 4.2.3.1.7)")
        for author in obj.classified_by(rules.author_scheme) if rules.author_scheme else []:
            if not any(v.strip() for name in AUTHOR_SLOTS for v in author.slots.get(name, [])):
                self.meta(author.id, f"{what} author {author.id} names no authorPerson, authorInstitution or "
                                     "authorTelecommunication (ITI TF-3 4.2.3.1.4)")

    def check_slots(self, obj: RegistryObject, rules: ObjectRules, stable: bool) -> None:
        what = f"{rules.label} {obj.id}:"
        for rule in rules.slots:
            values = obj.slots.get(rule.name)
            if values is None or not [v for v in values if v.strip()]:
                if rule.required and (stable or not rule.stable_only):
                    self.meta(obj.id, f"{what} slot {rule.name} is required (ITI TF-3 4.2.3)")
                continue
            if len(values) != 1:
                self.meta(obj.id, f"{what} slot {rule.name} takes one value, got {len(values)}")
            for value in values:
                problem = rule.check(value.strip()) if rule.check else None
                if problem:
                    self.meta(obj.id, f"{what} {rule.name} {problem}")
        if rules.title_required and not (obj.name or "").strip():
            self.meta(obj.id, f"{what} title (rim:Name) is required (ITI TF-3 Table 4.3.1-3)")

    def check_identifiers(self, obj: RegistryObject, rules: ObjectRules) -> None:
        for rule in rules.identifiers:
            found = [e for e in obj.external_identifiers if e.scheme == rule.scheme]
            if not found:
                self.meta(obj.id, f"{rules.label} {obj.id}: {rule.label} is required (ITI TF-3 4.2.3)")
                continue
            if len(found) > 1:
                self.meta(obj.id, f"{rules.label} {obj.id}: {rule.label} appears {len(found)} times")
            problem = rule.check(found[0].value)
            if problem:
                self.meta(found[0].id, f"{rules.label} {obj.id}: {rule.label} {problem}")

    def check_object(self, obj: RegistryObject, rules: ObjectRules, stable: bool = True) -> None:
        self.check_structure(obj, rules.label)
        self.check_identifiers(obj, rules)
        self.check_codes(obj, rules)
        self.check_slots(obj, rules, stable)

    def check_document(self, doc: ExtrinsicObject) -> None:
        if doc.object_type not in DOCUMENT_ENTRY_TYPES:
            self.meta(doc.id, f"ExtrinsicObject {doc.id}: objectType {doc.object_type!r} is not a stable or "
                              "on-demand DocumentEntry type (ITI TF-3 4.2.5.2)")
        self.check_object(doc, DOCUMENT, stable=doc.object_type != ON_DEMAND_DOCUMENT_ENTRY)
        problem = check_mime(doc.mime_type) if doc.mime_type else "mimeType is required (ITI TF-3 4.2.3.2.13)"
        if problem:
            self.meta(doc.id, f"DocumentEntry {doc.id}: {problem}")

    def check_package(self, package: RegistryPackage) -> None:
        if package.is_submission_set and package.is_folder:
            self.meta(package.id, f"RegistryPackage {package.id} is classified both as SubmissionSet and Folder")
        elif package.is_submission_set or package.is_folder:
            self.check_object(package, SUBMISSION_SET if package.is_submission_set else FOLDER)
        else:
            self.meta(package.id, f"RegistryPackage {package.id} is classified neither as SubmissionSet nor "
                                  "as Folder (ITI TF-3 4.2.1.2)")

    # -- the submission as a whole -------------------------------------------------------
    def check_ids(self) -> None:
        """Every id once in the message; urn:uuid ids well formed, others symbolic (ITI TF-3 4.2.3.1.1)."""
        ids = [o.id for o in self.request.objects]
        for obj in self.request.objects:
            ids += [c.id for c in obj.classifications] + [e.id for e in obj.external_identifiers]
        for ident, count in Counter(ids).items():
            if count > 1:
                self.meta(ident, f"id {ident} is used by {count} objects of the submission")
            if ident.startswith(UUID_PREFIX) and not is_uuid_urn(ident):
                self.meta(ident, f"id {ident} starts with urn:uuid: but is not a UUID")

    def check_unique_ids_and_patients(self) -> None:
        """uniqueIds once (ITI TF-3 4.2.3.1.6); one patient, the SubmissionSet's (ITI TF-2b 3.42.4.1.3.3)."""
        identified: list[ExtrinsicObject | RegistryPackage] = [*self.request.document_entries,
                                                               *self.request.packages]
        for unique_id, count in Counter(o.unique_id for o in identified if o.unique_id).items():
            if count > 1:
                self.errors.append(DuplicateUniqueIdInMessage(
                    f"uniqueId {unique_id} is used {count} times in the submission", unique_id))
        sets = self.request.submission_sets
        reference = sets[0].patient_id if len(sets) == 1 else None
        for obj in identified:
            if reference and obj.patient_id and obj.patient_id != reference:
                self.errors.append(PatientIdDoesNotMatch(
                    f"{obj.kind.value} {obj.id} is for patient {obj.patient_id}, the SubmissionSet for "
                    f"{reference}", obj.id))

    # -- associations (ITI TF-3 4.2.2) -----------------------------------------------------
    def check_associations(self) -> None:
        """Association rules of ITI TF-3 4.2.2 and membership of new objects (ITI TF-3 4.1.4)."""
        associations = self.request.associations
        for assoc in associations:
            kind = assoc.association_type
            for end in (assoc.source, assoc.target):
                if end not in self.in_message and not is_uuid_urn(end):
                    self.meta(assoc.id, f"Association {assoc.id}: {end!r} is neither an object of the submission "
                                        "nor a urn:uuid of the registry (ITI TF-3 4.2.3.1.1)")
            if kind not in KNOWN_ASSOCIATION_TYPES:
                self.meta(assoc.id, f"Association {assoc.id}: associationType {kind!r} is not supported "
                                    "(ITI TF-3 4.2.2)")
            elif kind == AssociationType.HAS_MEMBER.value:
                self.check_has_member(assoc)
            elif kind in RELATIONSHIPS:
                self.check_relationship(assoc)
        for new in sorted((self.documents | self.folders) - self.members):
            self.meta(new, f"{new} is not a member of the SubmissionSet: a HasMember association with "
                           "SubmissionSetStatus Original is required (ITI TF-3 4.1.4)")
        replaced = Counter(a.target for a in associations if a.association_type in REPLACING)
        for target, count in replaced.items():
            if count > 1:
                self.meta(target, f"DocumentEntry {target} is replaced {count} times in one submission "
                                  "(ITI TF-3 4.2.2.2.2)")

    def check_relationship(self, assoc: Association) -> None:
        """RPLC, APND, XFRM, XFRM_RPLC, signs: from a new DocumentEntry to one of the registry (ITI TF-3 4.2.2.2)."""
        name = assoc.association_type.rsplit(":", 1)[-1]
        if assoc.source not in self.documents:
            self.meta(assoc.id, f"Association {assoc.id}: the source of a {name} association must be a new "
                                "DocumentEntry of the submission (ITI TF-3 4.2.2.2)")
        if assoc.target in self.in_message and assoc.association_type != AssociationType.SIGNS.value:
            self.meta(assoc.id, f"Association {assoc.id}: the target of a {name} association must be a "
                                "DocumentEntry already in the registry (ITI TF-3 4.2.2.2)")

    def check_has_member(self, assoc: Association) -> None:
        """SubmissionSet and Folder membership (ITI TF-3 4.2.2.1)."""
        where, target, new_target = f"Association {assoc.id}:", assoc.target, assoc.target in self.in_message
        if assoc.source not in self.sets:
            if assoc.source in self.in_message and assoc.source not in self.folders:
                self.meta(assoc.id, f"{where} HasMember source {assoc.source} is neither the SubmissionSet nor "
                                    "a Folder (ITI TF-3 4.2.2.1)")
            elif new_target and target not in self.documents:   # ITI TF-3 4.2.2.1.3; existing folders: ITI-42
                self.meta(assoc.id, f"{where} a Folder may only contain DocumentEntries")
            return
        status = assoc.slots.get(SUBMISSION_SET_STATUS_SLOT)
        if not status and target in self.documents:
            self.meta(assoc.id, f"{where} SubmissionSet HasMember DocumentEntry needs the SubmissionSetStatus "
                                "slot (ITI TF-3 4.2.2.1.2)")
        state = status[0] if status and len(status) == 1 else ("Original" if status is None else "")
        if state not in SUBMISSION_SET_STATUSES:
            self.meta(assoc.id, f"{where} SubmissionSetStatus must be Original or Reference")
        elif (state == "Original") != new_target:
            self.meta(assoc.id, f"{where} SubmissionSetStatus {state} names {target}, which is "
                                f"{'' if new_target else 'not '}in the submission (ITI TF-3 4.2.2.1.2)")
        elif state == "Original" and (target in self.documents or target in self.folders):
            self.members.add(target)
        if target in self.sets:
            self.meta(assoc.id, f"{where} a SubmissionSet cannot contain a SubmissionSet")


def validate_submission(request: SubmitObjectsRequest, now: datetime) -> None:
    """Raise XdsErrorList with every problem of `request` (ITI TF-3 4.1, 4.2).

    `now` is the registry's clock (UTC), part of the signature for time rules
    of local policy. ITI TF-3 sets none: a creationTime ahead of the registry's
    clock (a source with a skewed clock, a scheduled report) is accepted.
    """
    errors = _Validation(request).run()
    if errors:
        raise XdsErrorList(errors)
