"""Who sees what (restricted rows), and the bounded result (XDSTooManyResults, ITI TF-2a 3.18.4.1.3)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from hub.db import Database
from hub.errors import TooManyResults
from registry.vocabulary import AssociationType, StoredQueryId
from tests.factories.registry_rows import APPROVED, PATIENT, RegistryRows, quoted

FIND = {"$XDSDocumentEntryPatientId": quoted(PATIENT), "$XDSDocumentEntryStatus": quoted(APPROVED)}
GET_ALL = {"$patientId": quoted(PATIENT), "$XDSDocumentEntryStatus": quoted(APPROVED),
           "$XDSSubmissionSetStatus": quoted(APPROVED), "$XDSFolderStatus": quoted(APPROVED)}




def test_restricted_document_only_for_its_submitter(reg: RegistryRows) -> None:
    public = reg.document()
    secret = reg.document(restricted=True)
    theirs = reg.document(restricted=True, by_b=True)
    assert reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND) == [public.id, secret.id]
    assert reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND, as_b=True) == [public.id, theirs.id]
    by_uuid = {"$XDSDocumentEntryEntryUUID": quoted(public.id, secret.id, theirs.id)}
    assert reg.refs(StoredQueryId.GET_DOCUMENTS, by_uuid) == [public.id, secret.id]
    assert reg.refs(StoredQueryId.GET_DOCUMENTS, by_uuid, as_b=True) == [public.id, theirs.id]


def test_associations_need_both_ends_visible(reg: RegistryRows) -> None:
    """An association row that is not itself restricted still hides when an end is."""
    public, secret = reg.document(), reg.document(restricted=True)
    link = reg.relate(AssociationType.APND, secret.id, public.id)   # restricted=False on purpose
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(public.id)}) == [link.id]
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(public.id)}, as_b=True) == []
    assert reg.refs(StoredQueryId.GET_DOCUMENTS_AND_ASSOCIATIONS,
                    {"$XDSDocumentEntryEntryUUID": quoted(public.id)}, as_b=True) == [public.id]
    related = {"$XDSDocumentEntryEntryUUID": quoted(public.id), "$AssociationTypes": quoted(AssociationType.APND.value)}
    assert reg.refs(StoredQueryId.GET_RELATED_DOCUMENTS, related) == [public.id, secret.id, link.id]
    assert reg.refs(StoredQueryId.GET_RELATED_DOCUMENTS, related, as_b=True) == []


def test_submission_set_links_follow_their_member(reg: RegistryRows) -> None:
    """A visible set's HasMember to a restricted document is hidden with the document: the
    link would otherwise hand out the restricted entry's entryUUID."""
    doc, secret = reg.document(), reg.document(restricted=True)
    ss, [link, secret_link] = reg.submission(doc, secret)     # both links stored unrestricted
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(ss.id)}) == [link.id, secret_link.id]
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(ss.id)}, as_b=True) == [link.id]
    assert reg.refs(StoredQueryId.GET_SUBMISSION_SETS, {"$uuid": quoted(doc.id)}, as_b=True) == [ss.id, link.id]
    assert reg.refs(StoredQueryId.GET_SUBMISSION_SETS, {"$uuid": quoted(secret.id)}) == [ss.id, secret_link.id]


def test_links_to_hidden_links_are_hidden(reg: RegistryRows) -> None:
    """A set's HasMember to a folder link is an association whose target is an association:
    when the folder link hides (restricted document), the set's link to it hides too."""
    folder, secret = reg.folder(), reg.document(restricted=True)
    ss, _ = reg.submission(folder, secret)
    filing = reg.member(folder.id, secret.id, restricted=True)
    to_filing = reg.member(ss.id, filing.id)                   # stored unrestricted on purpose
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(filing.id)}) == [to_filing.id]
    assert reg.refs(StoredQueryId.GET_ASSOCIATIONS, {"$uuid": quoted(filing.id)}, as_b=True) == []
    contents = {"$XDSSubmissionSetEntryUUID": quoted(ss.id)}
    assert to_filing.id in reg.refs(StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS, contents)
    assert not {filing.id, to_filing.id, secret.id} & set(
        reg.refs(StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS, contents, as_b=True))


def test_contents_queries_hide_restricted_members(reg: RegistryRows) -> None:
    public, secret = reg.document(), reg.document(restricted=True)
    folder = reg.folder()
    ss, [to_public, to_secret, to_folder] = reg.submission(public, secret, folder)
    # `to_secret` is stored unrestricted on purpose: the association clause alone must hide it.
    filed_public = reg.member(folder.id, public.id)
    filed_secret = reg.member(folder.id, secret.id, restricted=True)
    mine = reg.refs(StoredQueryId.GET_ALL, GET_ALL)
    theirs = reg.refs(StoredQueryId.GET_ALL, GET_ALL, as_b=True)
    assert secret.id in mine and filed_secret.id in mine
    assert set(mine) - set(theirs) == {secret.id, filed_secret.id, to_secret.id}
    contents = reg.refs(StoredQueryId.GET_SUBMISSION_SET_AND_CONTENTS,
                        {"$XDSSubmissionSetEntryUUID": quoted(ss.id)}, as_b=True)
    assert contents == [ss.id, public.id, folder.id, to_public.id, to_folder.id, filed_public.id]
    assert reg.refs(StoredQueryId.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": quoted(folder.id)}, as_b=True) \
        == [folder.id, public.id, filed_public.id]
    assert reg.refs(StoredQueryId.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": quoted(secret.id)},
                    as_b=True) == []
    assert reg.refs(StoredQueryId.GET_SUBMISSION_SETS, {"$uuid": quoted(secret.id)}, as_b=True) == []


def test_restricted_folder_and_set_are_hidden(reg: RegistryRows) -> None:
    folder = reg.folder(restricted=True)
    assert reg.refs(StoredQueryId.GET_FOLDERS, {"$XDSFolderEntryUUID": quoted(folder.id)}) == [folder.id]
    assert reg.refs(StoredQueryId.GET_FOLDERS, {"$XDSFolderEntryUUID": quoted(folder.id)}, as_b=True) == []
    found = reg.refs(StoredQueryId.FIND_FOLDERS, {"$XDSFolderPatientId": quoted(PATIENT),
                                                  "$XDSFolderStatus": quoted(APPROVED)}, as_b=True)
    assert found == []


# -- XDSTooManyResults --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("query", "params", "matches"),
    [
        (StoredQueryId.FIND_DOCUMENTS, FIND, 3),
        (StoredQueryId.GET_ALL, GET_ALL, 7),                 # set, 3 documents, 3 HasMember
    ],
)
def test_too_many_results(reg: RegistryRows, query: StoredQueryId, params: dict[str, str], matches: int) -> None:
    reg.submission(reg.document(), reg.document(), reg.document())
    assert len(reg.refs(query, params, limit=matches)) == matches
    with pytest.raises(TooManyResults) as info:
        reg.refs(query, params, limit=matches - 1)
    assert info.value.code.value == "XDSTooManyResults"


def test_too_many_results_counts_what_the_caller_sees(reg: RegistryRows) -> None:
    reg.document()
    reg.document(restricted=True, by_b=True)
    assert len(reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND, limit=1)) == 1
    with pytest.raises(TooManyResults):
        reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND, limit=1, as_b=True)


def test_limit_is_applied_in_sql_and_content_loaded_only_when_returned(reg: RegistryRows,
                                                                      database: Database) -> None:
    for _ in range(6):
        reg.document()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append(statement.lower())

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with pytest.raises(TooManyResults):
            reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND, limit=2, leaf=True)
        reg.refs(StoredQueryId.FIND_DOCUMENTS, FIND, limit=6)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().startswith("select")]
    assert selects and all("limit" in s for s in selects)
    assert not any("content" in s.split("from")[0] for s in selects)   # ObjectRef / refused: no content read
