"""The contents stored queries (ITI TF-2a 3.18.4.1.2.3.7.4, .10-.13) over directly inserted rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from registry.model import Association, Code, ExtrinsicObject, RegistryPackage
from registry.vocabulary import ON_DEMAND_DOCUMENT_ENTRY, AssociationType, StoredQueryId
from tests.factories.registry_rows import (
    APPROVED,
    DEPRECATED,
    OTHER_PATIENT,
    PATIENT,
    RegistryRows,
    coded,
    quoted,
)

PDF = Code("urn:ihe:rad:PDF", "1.3.6.1.4.1.19376.1.2.3", "PDF report")
KOS = Code("1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1", "KOS")
NORMAL = Code("N", "2.16.840.1.113883.5.25", "Normal")
LOW = Code("L", "2.16.840.1.113883.5.25", "Low")




@dataclass
class Record:
    """One patient's record: a set with a report, a KOS manifest and a folder holding the report."""

    ss: RegistryPackage
    report: ExtrinsicObject
    manifest: ExtrinsicObject
    folder: RegistryPackage
    set_links: list[Association]
    folder_link: Association


@pytest.fixture
def record(reg: RegistryRows) -> Record:
    report = reg.document(format_code=PDF, confidentiality=(NORMAL,))
    manifest = reg.document(format_code=KOS, confidentiality=(LOW,))
    folder = reg.folder()
    ss, links = reg.submission(report, manifest, folder)
    folder_link = reg.member(folder.id, report.id)
    return Record(ss, report, manifest, folder, links, folder_link)


def test_get_all(reg: RegistryRows, record: Record) -> None:
    reg.submission(reg.document(OTHER_PATIENT), patient_id=OTHER_PATIENT)
    old = reg.document(status=DEPRECATED)
    query = StoredQueryId.GET_ALL
    base = {"$patientId": quoted(PATIENT), "$XDSDocumentEntryStatus": quoted(APPROVED),
            "$XDSSubmissionSetStatus": quoted(APPROVED), "$XDSFolderStatus": quoted(APPROVED)}
    assert reg.refs(query, base) == [record.ss.id, record.report.id, record.manifest.id, record.folder.id,
                                     *[a.id for a in record.set_links], record.folder_link.id]
    with_old = reg.refs(query, {**base, "$XDSDocumentEntryStatus": quoted(APPROVED, DEPRECATED)})
    assert old.id in with_old
    # formatCode narrows the documents, and the associations follow the documents returned
    assert reg.refs(query, {**base, "$XDSDocumentEntryFormatCode": coded(KOS)}) == [
        record.ss.id, record.manifest.id, record.folder.id, record.set_links[1].id, record.set_links[2].id]
    confidential = reg.refs(query, {**base, "$XDSDocumentEntryConfidentialityCode": coded(NORMAL)})
    assert record.report.id in confidential and record.manifest.id not in confidential
    leaf = reg.query(query, base, leaf=True).objects
    assert [o.id for o in leaf] == reg.refs(query, base)


def test_get_all_returns_set_links_to_folder_links(reg: RegistryRows, record: Record) -> None:
    """A later set that files a document into the folder holds the folder link: GetAll returns
    that HasMember (association to association) with everything else of the patient."""
    addendum = reg.document()
    later, [to_addendum] = reg.submission(addendum)
    filing = reg.member(record.folder.id, addendum.id)
    to_filing = reg.member(later.id, filing.id)
    found = reg.refs(StoredQueryId.GET_ALL, {
        "$patientId": quoted(PATIENT), "$XDSDocumentEntryStatus": quoted(APPROVED),
        "$XDSSubmissionSetStatus": quoted(APPROVED), "$XDSFolderStatus": quoted(APPROVED)})
    assert {later.id, addendum.id, to_addendum.id, filing.id, to_filing.id} <= set(found)
    assert found[-1] == to_filing.id


def test_get_all_entry_type(reg: RegistryRows) -> None:
    stable, on_demand = reg.document(), reg.document(object_type=ON_DEMAND_DOCUMENT_ENTRY)
    base = {"$patientId": quoted(PATIENT), "$XDSDocumentEntryStatus": quoted(APPROVED),
            "$XDSSubmissionSetStatus": quoted(APPROVED), "$XDSFolderStatus": quoted(APPROVED)}
    assert reg.refs(StoredQueryId.GET_ALL, base) == [stable.id]
    assert reg.refs(StoredQueryId.GET_ALL, {**base, "$XDSDocumentEntryType": quoted(ON_DEMAND_DOCUMENT_ENTRY)}) \
        == [on_demand.id]


def test_get_submission_set_and_contents(reg: RegistryRows, record: Record) -> None:
    query = StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS
    expected = [record.ss.id, record.report.id, record.manifest.id, record.folder.id,
                *[a.id for a in record.set_links], record.folder_link.id]
    assert reg.refs(query, {"$XDSSubmissionSetEntryUUID": quoted(record.ss.id)}) == expected
    assert reg.refs(query, {"$XDSSubmissionSetUniqueId": quoted(record.ss.unique_id or "")}) == expected
    assert reg.refs(query, {"$XDSSubmissionSetEntryUUID": quoted(record.ss.id),
                            "$XDSDocumentEntryFormatCode": coded(PDF)}) == [
        record.ss.id, record.report.id, record.folder.id, record.set_links[0].id, record.set_links[2].id,
        record.folder_link.id]
    assert reg.refs(query, {"$XDSSubmissionSetEntryUUID": quoted(record.ss.id),
                            "$XDSDocumentEntryConfidentialityCode": coded(LOW)})[:3] == [
        record.ss.id, record.manifest.id, record.folder.id]
    assert reg.refs(query, {"$XDSSubmissionSetEntryUUID": quoted(record.ss.id),
                            "$XDSDocumentEntryType": quoted(ON_DEMAND_DOCUMENT_ENTRY)})[:2] == [
        record.ss.id, record.folder.id]


def test_submission_set_membership_of_an_association(reg: RegistryRows, record: Record) -> None:
    """A later set files a new document in the existing folder: its HasMember to that folder link
    is returned with the link; the older folder link, whose document is not in this set, is not."""
    addendum = reg.document()
    later, [to_folder, to_addendum] = reg.submission(record.folder, addendum)
    filing = reg.member(record.folder.id, addendum.id)
    to_filing = reg.member(later.id, filing.id)
    found = reg.refs(StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetEntryUUID": quoted(later.id)})
    assert found == [later.id, addendum.id, record.folder.id, to_folder.id, to_addendum.id, filing.id,
                     to_filing.id]
    assert record.folder_link.id not in found


def test_get_folder_and_contents(reg: RegistryRows, record: Record) -> None:
    later = reg.document(format_code=KOS)
    later_link = reg.member(record.folder.id, later.id)
    query = StoredQueryId.GET_FOLDER_AND_CONTENTS
    assert reg.refs(query, {"$XDSFolderEntryUUID": quoted(record.folder.id)}) == [
        record.folder.id, record.report.id, later.id, record.folder_link.id, later_link.id]
    assert reg.refs(query, {"$XDSFolderUniqueId": quoted(record.folder.unique_id or ""),
                            "$XDSDocumentEntryFormatCode": coded(KOS)}) == [record.folder.id, later.id, later_link.id]
    assert reg.refs(query, {"$XDSFolderEntryUUID": quoted(record.folder.id),
                            "$XDSDocumentEntryConfidentialityCode": coded(LOW)}) == [record.folder.id]


def test_get_folders_for_document(reg: RegistryRows, record: Record) -> None:
    second = reg.folder()
    reg.member(second.id, record.report.id)
    query = StoredQueryId.GET_FOLDERS_FOR_DOCUMENT
    assert reg.refs(query, {"$XDSDocumentEntryEntryUUID": quoted(record.report.id)}) \
        == [record.folder.id, second.id]
    assert reg.refs(query, {"$XDSDocumentEntryUniqueId": quoted(record.manifest.unique_id or "")}) == []


@pytest.mark.parametrize("kind", [AssociationType.RPLC, AssociationType.APND, AssociationType.XFRM,
                                  AssociationType.XFRM_RPLC, AssociationType.SIGNS])
def test_get_related_documents_both_ways(reg: RegistryRows, kind: AssociationType) -> None:
    original = reg.document(status=DEPRECATED if kind in (AssociationType.RPLC, AssociationType.XFRM_RPLC)
                            else APPROVED)
    newer = reg.document()
    link = reg.relate(kind, newer.id, original.id)
    reg.relate(AssociationType.APND if kind is not AssociationType.APND else AssociationType.SIGNS,
               reg.document().id, original.id)     # another relationship type: not asked for
    query = StoredQueryId.GET_RELATED_DOCUMENTS
    types = {"$AssociationTypes": quoted(kind.value)}
    assert reg.refs(query, {"$XDSDocumentEntryEntryUUID": quoted(original.id), **types}) \
        == [original.id, newer.id, link.id]
    assert reg.refs(query, {"$XDSDocumentEntryUniqueId": quoted(newer.unique_id or ""), **types}) \
        == [newer.id, original.id, link.id]


def test_get_related_documents_several_types(reg: RegistryRows) -> None:
    original, replacement, addendum = reg.document(status=DEPRECATED), reg.document(), reg.document()
    rplc = reg.relate(AssociationType.RPLC, replacement.id, original.id)
    apnd = reg.relate(AssociationType.APND, addendum.id, original.id)
    found = reg.query(StoredQueryId.GET_RELATED_DOCUMENTS, {
        "$XDSDocumentEntryEntryUUID": quoted(original.id),
        "$AssociationTypes": quoted(AssociationType.RPLC.value, AssociationType.APND.value)}, leaf=True)
    assert [o.id for o in found.objects] == [original.id, replacement.id, addendum.id, rplc.id, apnd.id]


def test_get_related_documents_with_nothing_related_is_empty(reg: RegistryRows) -> None:
    lonely = reg.document()
    _, [membership] = reg.submission(lonely)
    assert membership  # HasMember is not a relationship
    assert reg.refs(StoredQueryId.GET_RELATED_DOCUMENTS, {
        "$XDSDocumentEntryEntryUUID": quoted(lonely.id),
        "$AssociationTypes": quoted(AssociationType.RPLC.value, AssociationType.HAS_MEMBER.value)}) == []
