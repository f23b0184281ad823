"""The Get-by-id stored queries (ITI TF-2a 3.18.4.1.2.3.7.5-.9) over directly inserted rows."""

from __future__ import annotations

from registry.model import Association, RegistryPackage
from registry.vocabulary import AssociationType, ObjectKind, StoredQueryId
from tests.factories.registry_rows import DEPRECATED, RegistryRows, quoted


def test_get_documents_by_uuid_or_unique_id_whatever_the_status(reg: RegistryRows) -> None:
    first, old = reg.document(), reg.document(status=DEPRECATED)
    reg.document()
    query = StoredQueryId.GET_DOCUMENTS
    assert reg.refs(query, {"$XDSDocumentEntryEntryUUID": quoted(first.id, old.id)}) == [first.id, old.id]
    assert reg.refs(query, {"$XDSDocumentEntryUniqueId": quoted(old.unique_id or "")}) == [old.id]
    assert reg.refs(query, {"$XDSDocumentEntryEntryUUID": quoted("urn:uuid:00000000-0000-0000-0000-0")}) == []
    [leaf] = reg.query(query, {"$XDSDocumentEntryEntryUUID": quoted(old.id)}, leaf=True).objects
    assert leaf.status == DEPRECATED


def test_get_documents_ignores_other_kinds(reg: RegistryRows) -> None:
    folder = reg.folder()
    assert reg.refs(StoredQueryId.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": quoted(folder.id)}) == []


def test_get_folders(reg: RegistryRows) -> None:
    first, second = reg.folder(), reg.folder()
    query = StoredQueryId.GET_FOLDERS
    assert reg.refs(query, {"$XDSFolderEntryUUID": quoted(first.id, second.id)}) == [first.id, second.id]
    assert reg.refs(query, {"$XDSFolderUniqueId": quoted(second.unique_id or "")}) == [second.id]
    [leaf] = reg.query(query, {"$XDSFolderEntryUUID": quoted(first.id)}, leaf=True).objects
    assert isinstance(leaf, RegistryPackage) and leaf.is_folder
    assert leaf.slot_value("lastUpdateTime") == "20260115093000"


def test_get_associations_either_end(reg: RegistryRows) -> None:
    doc, new = reg.document(), reg.document()
    ss, [membership] = reg.submission(doc)
    replaced = reg.relate(AssociationType.RPLC, new.id, doc.id)
    reg.member(reg.folder().id, new.id)
    query = StoredQueryId.GET_ASSOCIATIONS
    assert reg.refs(query, {"$uuid": quoted(doc.id)}) == [membership.id, replaced.id]
    assert reg.refs(query, {"$uuid": quoted(ss.id)}) == [membership.id]
    objects = reg.query(query, {"$uuid": quoted(doc.id)}, leaf=True).objects
    assert all(isinstance(o, Association) for o in objects)
    assert {o.association_type for o in objects} == {  # type: ignore[union-attr]
        AssociationType.HAS_MEMBER.value, AssociationType.RPLC.value}


def test_get_documents_and_associations(reg: RegistryRows) -> None:
    doc, other = reg.document(), reg.document()
    _, [membership] = reg.submission(doc)
    reg.submission(other)
    result = reg.query(StoredQueryId.GET_DOCUMENTS_AND_ASSOCIATIONS,
                       {"$XDSDocumentEntryUniqueId": quoted(doc.unique_id or "")})
    assert result.refs == [doc.id, membership.id]


def test_get_submission_sets_of_documents_and_folders(reg: RegistryRows) -> None:
    doc, folder, unrelated = reg.document(), reg.folder(), reg.document()
    ss, [doc_link, folder_link] = reg.submission(doc, folder)
    reg.submission(unrelated)
    query = StoredQueryId.GET_SUBMISSION_SETS
    assert reg.refs(query, {"$uuid": quoted(doc.id)}) == [ss.id, doc_link.id]
    assert set(reg.refs(query, {"$uuid": quoted(doc.id, folder.id)})) == {ss.id, doc_link.id, folder_link.id}
    kinds = [o.kind for o in reg.query(query, {"$uuid": quoted(folder.id)}, leaf=True).objects]
    assert kinds == [ObjectKind.SUBMISSION_SET, ObjectKind.ASSOCIATION]


def test_get_submission_sets_ignores_folder_membership(reg: RegistryRows) -> None:
    doc = reg.document()
    reg.member(reg.folder().id, doc.id)       # a HasMember whose source is a folder, not a set
    assert reg.refs(StoredQueryId.GET_SUBMISSION_SETS, {"$uuid": quoted(doc.id)}) == []


def test_home_community_id_is_accepted(reg: RegistryRows) -> None:
    doc = reg.document()
    assert reg.refs(StoredQueryId.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": quoted(doc.id),
                                                  "$homeCommunityId": "'urn:oid:1.3.6.1.4.1.21367.2026.1'"}) \
        == [doc.id]
