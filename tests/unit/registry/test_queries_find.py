"""The Find stored queries (ITI TF-2a 3.18.4.1.2.3.7.1-.3, .14) over directly inserted rows."""

from __future__ import annotations

from typing import Any

import pytest

from registry.model import Code
from registry.vocabulary import ON_DEMAND_DOCUMENT_ENTRY, STABLE_DOCUMENT_ENTRY, StoredQueryId
from tests.factories.registry_rows import (
    APPROVED,
    DEPRECATED,
    OTHER_PATIENT,
    PATIENT,
    SOURCE_ID,
    RegistryRows,
    coded,
    quoted,
)

FIND = StoredQueryId.FIND_DOCUMENTS
CT = Code("CT", "1.2.840.10008.2.16.4", "CT")
MR = Code("MR", "1.2.840.10008.2.16.4", "MR")
US = Code("US", "1.2.840.10008.2.16.4", "US")
NORMAL = Code("N", "2.16.840.1.113883.5.25", "Normal")
VERY = Code("V", "2.16.840.1.113883.5.25", "Very restricted")
IMAGES = Code("IMAGES", "1.3.6.1.4.1.19376.1.2.6.1", "Images")




def find(**extra: Any) -> dict[str, Any]:
    """FindDocuments parameters: the patient and Approved unless `patient` / `status` say otherwise."""
    patient, status = extra.pop("patient", PATIENT), extra.pop("status", (APPROVED,))
    return {"$XDSDocumentEntryPatientId": quoted(patient), "$XDSDocumentEntryStatus": quoted(*status), **extra}


# -- FindDocuments ----------------------------------------------------------------------------

def test_find_documents_by_patient_and_status(reg: RegistryRows) -> None:
    approved = reg.document()
    deprecated = reg.document(status=DEPRECATED)
    reg.document(OTHER_PATIENT)
    assert reg.refs(FIND, find()) == [approved.id]
    assert reg.refs(FIND, find(status=(DEPRECATED,))) == [deprecated.id]
    assert reg.refs(FIND, find(status=(APPROVED, DEPRECATED))) == [approved.id, deprecated.id]


def test_find_documents_leaf_class_rebuilds_the_entries(reg: RegistryRows) -> None:
    doc = reg.document(title="Chest CT report")
    result = reg.query(FIND, find(), leaf=True)
    assert result.return_type == "LeafClass" and result.refs == []
    [entry] = result.objects
    assert entry.id == doc.id and entry.name == "Chest CT report"
    assert entry.unique_id == doc.unique_id and entry.status == APPROVED  # type: ignore[union-attr]


def test_patient_id_in_a_list_is_accepted(reg: RegistryRows) -> None:
    doc = reg.document()
    assert reg.refs(FIND, {**find(), "$XDSDocumentEntryPatientId": f"'{PATIENT}'"}) == [doc.id]


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        ([coded(CT, MR)], {"ct", "ct_mr", "mr"}),        # one slot: OR
        ([coded(CT), coded(MR)], {"ct_mr"}),              # two slots: AND
        ([coded(CT, US), coded(MR)], {"ct_mr"}),          # (CT OR US) AND MR
        ([coded(US)], set()),
        ([quoted("CT^^9.9.9")], set()),                   # same code, other coding scheme
        ([quoted("CT")], {"ct", "ct_mr"}),                # bare code: any coding scheme
    ],
    ids=["or-within-slot", "and-between-slots", "and-of-ors", "no-match", "wrong-scheme", "bare-code"],
)
def test_event_code_list_and_or(reg: RegistryRows, slots: list[str], expected: set[str]) -> None:
    docs = {"ct": reg.document(event_codes=(CT,)), "ct_mr": reg.document(event_codes=(CT, MR)),
            "mr": reg.document(event_codes=(MR,)), "none": reg.document()}
    found = set(reg.refs(FIND, find(**{"$XDSDocumentEntryEventCodeList": slots})))
    assert found == {docs[name].id for name in expected}


def test_confidentiality_codes_and_between_slots(reg: RegistryRows) -> None:
    normal = reg.document(confidentiality=(NORMAL,))
    both = reg.document(confidentiality=(NORMAL, VERY))
    name = "$XDSDocumentEntryConfidentialityCode"
    assert reg.refs(FIND, find(**{name: coded(NORMAL)})) == [normal.id, both.id]
    assert reg.refs(FIND, find(**{name: [coded(NORMAL), coded(VERY)]})) == [both.id]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("$XDSDocumentEntryClassCode", "class_code"),
        ("$XDSDocumentEntryTypeCode", "type_code"),
        ("$XDSDocumentEntryPracticeSettingCode", "practice_setting"),
        ("$XDSDocumentEntryHealthcareFacilityTypeCode", "facility_type"),
        ("$XDSDocumentEntryFormatCode", "format_code"),
    ],
)
def test_single_code_parameters_or_within_slot(reg: RegistryRows, name: str, field: str) -> None:
    wanted = Code("X-1", "1.2.3.4.5.6", "Wanted")
    other = Code("X-2", "1.2.3.4.5.6", "Other")
    hit = reg.document(**{field: wanted})  # type: ignore[arg-type]
    second = reg.document(**{field: other})  # type: ignore[arg-type]
    reg.document()
    assert reg.refs(FIND, find(**{name: coded(wanted)})) == [hit.id]
    assert reg.refs(FIND, find(**{name: coded(wanted, other)})) == [hit.id, second.id]


@pytest.mark.parametrize(
    ("edge", "value", "expected"),
    [
        ("From", "20260101", {"jan1", "jan1_noon", "mar1"}),
        ("From", "20260101120000", {"jan1_noon", "mar1"}),    # From is inclusive
        ("From", "202601011200", {"jan1_noon", "mar1"}),      # truncated precision is padded
        ("From", "20260101120001", {"mar1"}),
        ("To", "20260101120000", {"jan1"}),                   # To is exclusive
        ("To", "20260101120001", {"jan1", "jan1_noon"}),
        ("To", "2026", set()),
        ("To", "2027", {"jan1", "jan1_noon", "mar1"}),
    ],
)
def test_creation_time_range_boundaries(reg: RegistryRows, edge: str, value: str, expected: set[str]) -> None:
    docs = {"jan1": reg.document(creation_time="20260101"),
            "jan1_noon": reg.document(creation_time="20260101120000"),
            "mar1": reg.document(creation_time="20260301")}
    found = set(reg.refs(FIND, find(**{f"$XDSDocumentEntryCreationTime{edge}": value})))
    assert found == {docs[name].id for name in expected}


@pytest.mark.parametrize("slot", ["serviceStartTime", "serviceStopTime"])
def test_service_time_ranges(reg: RegistryRows, slot: str) -> None:
    june = reg.document(slots={slot: ["20250601"]})
    july = reg.document(slots={slot: ["202507011030"]})
    reg.document()   # without the time: never in a range
    name = f"$XDSDocumentEntry{slot[0].upper()}{slot[1:]}"
    assert reg.refs(FIND, find(**{f"{name}From": "20250601", f"{name}To": "202507011030"})) == [june.id]
    assert reg.refs(FIND, find(**{f"{name}From": "20250602"})) == [july.id]
    assert reg.refs(FIND, find(**{f"{name}From": "2025", f"{name}To": "2026"})) == [june.id, july.id]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("%House%", {"house"}),
        ("^House^Gregory%", {"house"}),
        ("%^Curie^%", {"curie", "pierre"}),
        ("^Curie^_arie%", {"curie"}),            # _ is one character
        ("^Curie^Marie^^^Dr", {"curie"}),        # no wildcard: exact
        ("%house%", {"house"}),                  # case does not matter, on SQLite and PostgreSQL alike
        ("%Nobody%", set()),
    ],
)
def test_author_person_like(reg: RegistryRows, pattern: str, expected: set[str]) -> None:
    docs = {"house": reg.document(author_person="^House^Gregory^^^Dr"),
            "curie": reg.document(author_person="^Curie^Marie^^^Dr"),
            "pierre": reg.document(author_person="^Curie^Pierre^^^Dr")}
    found = set(reg.refs(FIND, find(**{"$XDSDocumentEntryAuthorPerson": quoted(pattern)})))
    assert found == {docs[name].id for name in expected}


def test_author_person_values_are_ored(reg: RegistryRows) -> None:
    house = reg.document(author_person="^House^Gregory")
    curie = reg.document(author_person="^Curie^Marie")
    assert reg.refs(FIND, find(**{"$XDSDocumentEntryAuthorPerson": quoted("%House%", "%Curie%")})) \
        == [house.id, curie.id]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (None, {"stable"}),                                           # default: stable only
        ((STABLE_DOCUMENT_ENTRY,), {"stable"}),
        ((ON_DEMAND_DOCUMENT_ENTRY,), {"on_demand"}),
        ((STABLE_DOCUMENT_ENTRY, ON_DEMAND_DOCUMENT_ENTRY), {"stable", "on_demand"}),
    ],
    ids=["default", "stable", "on-demand", "both"],
)
def test_document_entry_type(reg: RegistryRows, types: tuple[str, ...] | None, expected: set[str]) -> None:
    docs = {"stable": reg.document(), "on_demand": reg.document(object_type=ON_DEMAND_DOCUMENT_ENTRY)}
    extra = {"$XDSDocumentEntryType": quoted(*types)} if types else {}
    assert set(reg.refs(FIND, find(**extra))) == {docs[name].id for name in expected}


def test_ignored_and_informational_parameters(reg: RegistryRows) -> None:
    doc = reg.document()
    online = quoted("urn:ihe:iti:2010:DocumentAvailability:Online")
    assert reg.refs(FIND, find(**{"$homeCommunityId": "'urn:oid:1.2.3'", "$MetadataLevel": "1",
                                  "$XDSDocumentEntryDocumentAvailability": online,
                                  "$SomethingUnknown": "'x'"})) == [doc.id]


# -- FindDocumentsByReferenceId ---------------------------------------------------------------

def test_find_documents_by_reference_id(reg: RegistryRows) -> None:
    study = "1.2.3.4.5.6^^^^urn:ihe:iti:xds:2016:studyInstanceUID"
    order = "ORD-7^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:order"
    tagged = reg.document(reference_ids=(study,))
    ordered = reg.document(reference_ids=(order,))
    reg.document()
    query = StoredQueryId.FIND_DOCUMENTS_BY_REFERENCE_ID
    assert reg.refs(query, find(**{"$XDSDocumentEntryReferenceIdList": quoted(study)})) == [tagged.id]
    assert reg.refs(query, find(**{"$XDSDocumentEntryReferenceIdList": quoted(study, order)})) \
        == [tagged.id, ordered.id]


# -- FindSubmissionSets -----------------------------------------------------------------------

def sets(patient: str = PATIENT, **extra: str) -> dict[str, str]:
    return {"$XDSSubmissionSetPatientId": quoted(patient), "$XDSSubmissionSetStatus": quoted(APPROVED), **extra}


def test_find_submission_sets(reg: RegistryRows) -> None:
    january = reg.submission_set(submission_time="20260115093000", author_person="^Curie^Marie")
    february = reg.submission_set(submission_time="20260201", source_id="1.2.3.777",
                                  content_type=Code("11488-4", "2.16.840.1.113883.6.1", "Consult note"))
    reg.submission_set(OTHER_PATIENT)
    reg.document()
    query = StoredQueryId.FIND_SUBMISSION_SETS
    assert reg.refs(query, sets()) == [january.id, february.id]
    assert reg.refs(query, sets(**{"$XDSSubmissionSetSourceId": quoted(SOURCE_ID)})) == [january.id]
    assert reg.refs(query, sets(**{"$XDSSubmissionSetSubmissionTimeFrom": "20260201"})) == [february.id]
    assert reg.refs(query, sets(**{"$XDSSubmissionSetSubmissionTimeTo": "20260201"})) == [january.id]
    assert reg.refs(query, sets(**{"$XDSSubmissionSetAuthorPerson": "'%Curie%'"})) == [january.id]
    assert reg.refs(query, sets(**{"$XDSSubmissionSetContentType": quoted("11488-4^^2.16.840.1.113883.6.1")})) \
        == [february.id]


# -- FindFolders ------------------------------------------------------------------------------

def test_find_folders(reg: RegistryRows) -> None:
    rad = Code("RAD", "1.2.3.99", "Radiology")
    onc = Code("ONC", "1.2.3.99", "Oncology")
    radiology = reg.folder(codes=(rad,), last_update_time="20260110")
    tumour_board = reg.folder(codes=(rad, onc), last_update_time="20260120")
    reg.folder(OTHER_PATIENT)
    old = reg.folder(status=DEPRECATED)
    query = StoredQueryId.FIND_FOLDERS
    base = {"$XDSFolderPatientId": quoted(PATIENT), "$XDSFolderStatus": quoted(APPROVED)}
    assert reg.refs(query, base) == [radiology.id, tumour_board.id]
    assert reg.refs(query, {**base, "$XDSFolderStatus": quoted(DEPRECATED)}) == [old.id]
    assert reg.refs(query, {**base, "$XDSFolderCodeList": coded(onc)}) == [tumour_board.id]
    assert reg.refs(query, {**base, "$XDSFolderCodeList": [coded(rad), coded(onc)]}) == [tumour_board.id]
    assert reg.refs(query, {**base, "$XDSFolderLastUpdateTimeFrom": "20260110",
                            "$XDSFolderLastUpdateTimeTo": "20260120"}) == [radiology.id]
