"""XDS.b metadata validation (ITI TF-3 4.1, 4.2): one table of broken submissions."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.errors import XdsErrorList
from registry.builders import has_member, new_id, relationship
from registry.model import Association, ExtrinsicObject, RegistryPackage, SubmitObjectsRequest
from registry.validation import (
    check_document_unique_id,
    check_dtm,
    check_oid,
    check_patient_id,
    is_uuid_urn,
    validate_submission,
)
from registry.vocabulary import (
    ON_DEMAND_DOCUMENT_ENTRY,
    AssociationType,
    DocumentEntryScheme,
    ErrorCode,
    FolderScheme,
    SubmissionSetScheme,
)
from tests.factories.metadata import OTHER_PATIENT, PATIENT, document, folder, submission, symbolic_ids

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
META = ErrorCode.REGISTRY_METADATA_ERROR


def codes(request: SubmitObjectsRequest) -> list[tuple[ErrorCode, str]]:
    with pytest.raises(XdsErrorList) as caught:
        validate_submission(request, NOW)
    return [(e.code, e.message) for e in caught.value.errors]


def doc_of(request: SubmitObjectsRequest) -> ExtrinsicObject:
    return request.document_entries[0]


def ss_of(request: SubmitObjectsRequest) -> RegistryPackage:
    return request.submission_sets[0]


def drop_scheme(scheme: str) -> Callable[[SubmitObjectsRequest], None]:
    def change(request: SubmitObjectsRequest) -> None:
        for obj in request.objects:
            obj.classifications = [c for c in obj.classifications if c.scheme != scheme]
            obj.external_identifiers = [e for e in obj.external_identifiers if e.scheme != scheme]
    return change


def set_ident(scheme: str, value: str) -> Callable[[SubmitObjectsRequest], None]:
    def change(request: SubmitObjectsRequest) -> None:
        for obj in request.objects:
            for ident in obj.external_identifiers:
                if ident.scheme == scheme:
                    ident.value = value
    return change


def set_slot(name: str, values: list[str], target: str = "doc") -> Callable[[SubmitObjectsRequest], None]:
    def change(request: SubmitObjectsRequest) -> None:
        obj = doc_of(request) if target == "doc" else ss_of(request)
        obj.slots[name] = values
    return change


def drop_slot(name: str, target: str = "doc") -> Callable[[SubmitObjectsRequest], None]:
    def change(request: SubmitObjectsRequest) -> None:
        (doc_of(request) if target == "doc" else ss_of(request)).slots.pop(name)
    return change


def duplicate_class_code(request: SubmitObjectsRequest) -> None:
    doc = doc_of(request)
    extra = next(c for c in doc.classifications if c.scheme == DocumentEntryScheme.CLASS_CODE)
    doc.classifications.append(type(extra)(**{**extra.__dict__, "id": new_id()}))


def no_coding_scheme(request: SubmitObjectsRequest) -> None:
    next(c for c in doc_of(request).classifications if c.scheme == DocumentEntryScheme.TYPE_CODE).slots = {}


def second_submission_set(request: SubmitObjectsRequest) -> None:
    request.objects.extend(submission().submission_sets)


def no_submission_set(request: SubmitObjectsRequest) -> None:
    request.objects = [o for o in request.objects if o not in request.submission_sets]


def unclassified_package(request: SubmitObjectsRequest) -> None:
    package = folder()
    package.classifications = [c for c in package.classifications if c.node is None]
    request.objects.append(package)
    request.objects.append(has_member(ss_of(request).id, package.id))


def same_unique_id_twice(request: SubmitObjectsRequest) -> None:
    first, second = request.document_entries
    second.external_identifiers[1].value = first.unique_id or ""


def other_patient_document(request: SubmitObjectsRequest) -> None:
    set_ident(DocumentEntryScheme.PATIENT_ID, OTHER_PATIENT)(request)


def not_a_member(request: SubmitObjectsRequest) -> None:
    request.objects = [o for o in request.objects
                       if not (isinstance(o, Association) and o.target == doc_of(request).id)]


def bad_status(request: SubmitObjectsRequest) -> None:
    request.associations[0].slots["SubmissionSetStatus"] = ["Copied"]


def missing_status(request: SubmitObjectsRequest) -> None:
    request.associations[0].slots = {}


def original_of_absent(request: SubmitObjectsRequest) -> None:
    request.objects.append(has_member(ss_of(request).id, new_id()))


def reference_of_new(request: SubmitObjectsRequest) -> None:
    request.associations[0].slots["SubmissionSetStatus"] = ["Reference"]


def unknown_association(request: SubmitObjectsRequest) -> None:
    request.objects.append(relationship(AssociationType.RPLC, doc_of(request).id, new_id()))
    request.associations[-1].association_type = "urn:example:Likes"


def rplc_from_existing(request: SubmitObjectsRequest) -> None:
    request.objects.append(relationship(AssociationType.RPLC, new_id(), doc_of(request).id))


def rplc_of_new(request: SubmitObjectsRequest) -> None:
    request.objects.append(relationship(AssociationType.APND, doc_of(request).id, doc_of(request).id))


def dangling_symbolic(request: SubmitObjectsRequest) -> None:
    request.objects.append(relationship(AssociationType.XFRM, doc_of(request).id, "Document99"))


def folder_holds_folder(request: SubmitObjectsRequest) -> None:
    request.objects.append(has_member(request.folders[0].id, ss_of(request).id))


def limited_metadata(request: SubmitObjectsRequest) -> None:
    doc = doc_of(request)
    extra = type(doc.classifications[0])(id=new_id(), classified_object=doc.id,
                                         node=DocumentEntryScheme.LIMITED_METADATA.value)
    doc.classifications.append(extra)


def duplicate_ids(request: SubmitObjectsRequest) -> None:
    doc_of(request).classifications[0].id = doc_of(request).id


def bad_uuid(request: SubmitObjectsRequest) -> None:
    doc_of(request).classifications[0].id = "urn:uuid:not-a-uuid"


def wrong_object_type(request: SubmitObjectsRequest) -> None:
    doc_of(request).object_type = "urn:uuid:00000000-0000-0000-0000-000000000000"


def no_mime(request: SubmitObjectsRequest) -> None:
    doc_of(request).mime_type = ""


def classification_of_another(request: SubmitObjectsRequest) -> None:
    doc_of(request).classifications[1].classified_object = ss_of(request).id


def identifier_of_another(request: SubmitObjectsRequest) -> None:
    ss_of(request).external_identifiers[0].registry_object = doc_of(request).id


def anonymous_author(request: SubmitObjectsRequest) -> None:
    author = doc_of(request).classified_by(DocumentEntryScheme.AUTHOR)[0]
    author.slots = {"authorRole": ["Radiologist"], "authorPerson": [" "]}


def untitled_folder(request: SubmitObjectsRequest) -> None:
    request.folders[0].name = None


def replaced_twice(request: SubmitObjectsRequest) -> None:
    old = new_id()
    request.objects += [relationship(AssociationType.RPLC, d.id, old) for d in request.document_entries]


def package_source_is_document(request: SubmitObjectsRequest) -> None:
    request.objects.append(has_member(doc_of(request).id, request.folders[0].id))


CASES: list[tuple[str, Callable[[SubmitObjectsRequest], None], ErrorCode, str, int, int]] = [
    # case, change, code, message fragment, documents, folders
    ("no submission set", no_submission_set, META, "exactly one SubmissionSet", 1, 0),
    ("two submission sets", second_submission_set, META, "exactly one SubmissionSet", 1, 0),
    ("package neither set nor folder", unclassified_package, META, "neither as SubmissionSet", 1, 0),
    ("document uniqueId missing", drop_scheme(DocumentEntryScheme.UNIQUE_ID), META, "uniqueId is required", 1, 0),
    ("document patientId missing", drop_scheme(DocumentEntryScheme.PATIENT_ID), META, "patientId is required", 1, 0),
    ("classCode missing", drop_scheme(DocumentEntryScheme.CLASS_CODE), META, "classCode is required", 1, 0),
    ("typeCode missing", drop_scheme(DocumentEntryScheme.TYPE_CODE), META, "typeCode is required", 1, 0),
    ("formatCode missing", drop_scheme(DocumentEntryScheme.FORMAT_CODE), META, "formatCode is required", 1, 0),
    ("confidentialityCode missing", drop_scheme(DocumentEntryScheme.CONFIDENTIALITY_CODE), META,
     "confidentialityCode is required", 1, 0),
    ("facility type missing", drop_scheme(DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE), META,
     "healthcareFacilityTypeCode is required", 1, 0),
    ("practice setting missing", drop_scheme(DocumentEntryScheme.PRACTICE_SETTING_CODE), META,
     "practiceSettingCode is required", 1, 0),
    ("classCode twice", duplicate_class_code, META, "classCode may appear only 1", 1, 0),
    ("code without codingScheme", no_coding_scheme, META, "codingScheme", 1, 0),
    ("languageCode missing", drop_slot("languageCode"), META, "languageCode is required", 1, 0),
    ("creationTime missing", drop_slot("creationTime"), META, "creationTime is required", 1, 0),
    ("sourcePatientId missing", drop_slot("sourcePatientId"), META, "sourcePatientId is required", 1, 0),
    ("hash missing", drop_slot("hash"), META, "hash is required", 1, 0),
    ("hash not SHA-1", set_slot("hash", ["abc"]), META, "SHA-1", 1, 0),
    ("size not a number", set_slot("size", ["12kB"]), META, "non-negative integer", 1, 0),
    ("size twice", set_slot("size", ["1", "2"]), META, "takes one value", 1, 0),
    ("repositoryUniqueId missing", drop_slot("repositoryUniqueId"), META, "repositoryUniqueId is required", 1, 0),
    ("creationTime not a DTM", set_slot("creationTime", ["2026-01-01"]), META, "not a DTM", 1, 0),
    ("creationTime month 13", set_slot("creationTime", ["202613"]), META, "not a valid date", 1, 0),
    ("mimeType missing", no_mime, META, "mimeType is required", 1, 0),
    ("objectType unknown", wrong_object_type, META, "objectType", 1, 0),
    ("limited metadata", limited_metadata, META, "limited metadata", 1, 0),
    ("submissionTime missing", drop_slot("submissionTime", "ss"), META, "submissionTime is required", 1, 0),
    ("sourceId missing", drop_scheme(SubmissionSetScheme.SOURCE_ID), META, "sourceId is required", 1, 0),
    ("sourceId not an OID", set_ident(SubmissionSetScheme.SOURCE_ID, "3670984664"), META, "not an OID", 1, 0),
    ("contentTypeCode missing", drop_scheme(SubmissionSetScheme.CONTENT_TYPE_CODE), META,
     "contentTypeCode is required", 1, 0),
    ("set uniqueId with extension", set_ident(SubmissionSetScheme.UNIQUE_ID, "1.2.3^x"), META, "not an OID", 1, 0),
    ("folder codeList missing", drop_scheme(FolderScheme.CODE_LIST), META, "codeList is required", 1, 1),
    ("folder uniqueId missing", drop_scheme(FolderScheme.UNIQUE_ID), META, "uniqueId is required", 1, 1),
    ("patient id without ISO authority", set_ident(DocumentEntryScheme.PATIENT_ID, "PAT-1^^^HOSP"), META,
     "ID^^^&OID&ISO", 1, 0),
    ("patient id authority not an OID", set_ident(DocumentEntryScheme.PATIENT_ID, "P^^^&HOSP&ISO"), META,
     "not an OID", 1, 0),
    ("document for another patient", other_patient_document, ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
     "is for patient", 1, 0),
    ("uniqueId twice in message", same_unique_id_twice, ErrorCode.DUPLICATE_UNIQUE_ID_IN_MESSAGE, "used 2 times",
     2, 0),
    ("id twice in message", duplicate_ids, META, "is used by 2 objects", 1, 0),
    ("malformed urn:uuid", bad_uuid, META, "not a UUID", 1, 0),
    ("document not a member", not_a_member, META, "not a member of the SubmissionSet", 1, 0),
    ("SubmissionSetStatus unknown", bad_status, META, "Original or Reference", 1, 0),
    ("SubmissionSetStatus missing", missing_status, META, "needs the SubmissionSetStatus", 1, 0),
    ("Original of an absent object", original_of_absent, META, "which is not in the submission", 1, 0),
    ("Reference of a new object", reference_of_new, META, "Reference names", 1, 0),
    ("unknown association type", unknown_association, META, "is not supported", 1, 0),
    ("relationship from an existing entry", rplc_from_existing, META, "must be a new DocumentEntry", 1, 0),
    ("relationship to a new entry", rplc_of_new, META, "already in the registry", 1, 0),
    ("dangling symbolic reference", dangling_symbolic, META, "neither an object of the submission", 1, 0),
    ("folder holding a submission set", folder_holds_folder, META, "only contain DocumentEntries", 1, 1),
    ("HasMember from a document", package_source_is_document, META, "neither the SubmissionSet nor a Folder",
     1, 1),
    ("classification of another object", classification_of_another, META, "not its parent object", 1, 0),
    ("external identifier of another object", identifier_of_another, META, "not its parent object", 1, 0),
    ("author naming nobody", anonymous_author, META, "names no authorPerson", 1, 0),
    ("folder without title", untitled_folder, META, "title (rim:Name) is required", 1, 1),
    ("languageCode not a tag", set_slot("languageCode", ["en_US"]), META, "not a language tag", 1, 0),
    ("creationTime in other digits", set_slot("creationTime", ["\u0662\u0660\u0662\u0666"]), META, "not a DTM",
     1, 0),
    ("patient id with a trailing newline", set_ident(DocumentEntryScheme.PATIENT_ID, PATIENT + "\n"), META,
     "ID^^^&OID&ISO", 1, 0),
    ("one entry replaced twice", replaced_twice, META, "replaced 2 times", 2, 0),
]


@pytest.mark.parametrize(("case", "change", "code", "fragment", "documents", "folders"), CASES,
                         ids=[c[0] for c in CASES])
def test_broken_submission_is_refused(case: str, change: Callable[[SubmitObjectsRequest], None], code: ErrorCode,
                                      fragment: str, documents: int, folders: int) -> None:
    request = submission(documents=documents, folders=folders)
    validate_submission(request, NOW)   # the factory's submission is valid ...
    change(request)                     # ... until this case breaks it
    found = codes(request)
    assert any(c == code and fragment in m for c, m in found), found


@pytest.mark.parametrize("documents,folders", [(1, 0), (3, 2), (0, 1)])
def test_valid_submissions_pass(documents: int, folders: int) -> None:
    validate_submission(submission(documents=documents, folders=folders), NOW)


def test_symbolic_ids_are_allowed() -> None:
    validate_submission(symbolic_ids(submission(documents=2, folders=1)), NOW)


def test_on_demand_entry_needs_no_hash_size_creation_time() -> None:
    """ITI TF-3 Table 4.3.1-3: hash, size and creationTime are for stable entries; an on-demand
    entry still names the repository (the On-Demand Document Source) to retrieve it from."""
    doc = document(patient_id=submission().submission_sets[0].patient_id or "")
    doc.object_type = ON_DEMAND_DOCUMENT_ENTRY
    for name in ("hash", "size", "creationTime"):
        doc.slots.pop(name)
    validate_submission(submission(entries=[doc]), NOW)
    doc.slots.pop("repositoryUniqueId")
    assert codes(submission(entries=[doc])) == [
        (META, f"DocumentEntry {doc.id}: slot repositoryUniqueId is required (ITI TF-3 4.2.3)")]


def test_times_ahead_of_the_registry_clock_are_accepted() -> None:
    """ITI TF-3 sets no rule against it (a source's skewed clock, a scheduled report)."""
    request = submission()
    doc_of(request).slots["creationTime"] = ["2031"]
    validate_submission(request, NOW)


def test_every_problem_is_reported_at_once() -> None:
    request = submission()
    drop_scheme(DocumentEntryScheme.CLASS_CODE)(request)
    drop_slot("hash")(request)
    drop_slot("submissionTime", "ss")(request)
    assert len(codes(request)) == 3


@pytest.mark.parametrize(("value", "ok"), [
    ("1.2.840.10008.1", True), ("2.25.329800735698586629295641978511506172918", True), ("1", False),
    ("1.02.3", False), ("3.1", False), ("1.2." + "3" * 62, False), ("urn:oid:1.2.3", False),
])
def test_oid_syntax(value: str, ok: bool) -> None:
    assert (check_oid(value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("1.2.3", True), ("1.2.3^abc", True), ("1.2.3^", False), ("1.2.3^" + "x" * 17, False), ("abc", False),
])
def test_document_unique_id_syntax(value: str, ok: bool) -> None:
    assert (check_document_unique_id(value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("2026", True), ("202602", True), ("20260229", False), ("20240229", True), ("2026020112", True),
    ("20260201126", False), ("20260201240000", False), ("20260201235959", True), ("", False),
])
def test_dtm_syntax(value: str, ok: bool) -> None:
    assert (check_dtm(value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("urn:uuid:2f1e4c3a-1111-4222-8333-444455556666", True), ("urn:uuid:2F1E4C3A-1111-4222-8333-444455556666", True),
    ("urn:uuid:2f1e4c3a111142228333444455556666", False), ("urn:uuid:{2f1e4c3a-1111-4222-8333-444455556666}", False),
    ("urn:uuid:2f1e4c3a-1111-4222-8333-444455556666\n", False), ("2f1e4c3a-1111-4222-8333-444455556666", False),
])
def test_uuid_urn_syntax(value: str, ok: bool) -> None:
    """RFC 4122 section 3: the URN carries the hyphenated hexadecimal form, nothing else."""
    assert is_uuid_urn(value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("X^^^&1.2.3&ISO", True), ("X^^^1.2.3&ISO", False), ("^^^&1.2.3&ISO", False), ("X^^^&1.2.3&ISO^PI", False),
])
def test_patient_id_syntax(value: str, ok: bool) -> None:
    assert (check_patient_id(value) is None) is ok


@pytest.mark.parametrize("module", ["registry/validation.py", "registry/transactions/iti42_register.py"])
def test_services_import_no_lxml(module: str) -> None:
    """Wire formats are parsed at the edge (CONVENTIONS 3): services never import lxml."""
    tree = ast.parse((Path(__file__).parents[3] / module).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [m for m in imported if m.split(".")[0] in ("lxml", "flask")]
