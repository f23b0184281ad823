"""Stored query errors (ITI TF-2a 3.18.4.1.3): one table per error code, every query covered."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from hub.db import Database
from hub.errors import (
    RegistryMetadataError,
    StoredQueryMissingParam,
    StoredQueryParamNumber,
    UnknownStoredQuery,
    XdsError,
)
from registry.model import StoredQuery
from registry.queries import HANDLERS
from registry.transactions.iti18_query import run_stored_query
from registry.vocabulary import AssociationType, StoredQueryId
from tests.conftest import require_samples
from tests.factories.registry_rows import APPROVED, PATIENT, RawParams, RegistryRows, quoted

Q = StoredQueryId
PID = quoted(PATIENT)
STATUS = quoted(APPROVED)
UUID_A = quoted("urn:uuid:6b1a9c4e-1f4c-4bb2-9d2f-2a8a4b1c0001")
UUID_B = quoted("urn:uuid:6b1a9c4e-1f4c-4bb2-9d2f-2a8a4b1c0002")
RPLC = quoted(AssociationType.RPLC.value)
FIND = {"$XDSDocumentEntryPatientId": PID, "$XDSDocumentEntryStatus": STATUS}
SETS = {"$XDSSubmissionSetPatientId": PID, "$XDSSubmissionSetStatus": STATUS}
FOLDERS = {"$XDSFolderPatientId": PID, "$XDSFolderStatus": STATUS}
ALL = {"$patientId": PID, "$XDSDocumentEntryStatus": STATUS, "$XDSSubmissionSetStatus": STATUS,
       "$XDSFolderStatus": STATUS}




def without(params: RawParams, name: str) -> dict[str, str | list[str]]:
    return {k: v for k, v in params.items() if k != name}  # type: ignore[misc]


def test_every_xds_b_stored_query_is_registered() -> None:
    assert set(HANDLERS) == {q.value for q in StoredQueryId}
    for query_id, handler in HANDLERS.items():
        assert handler.query_id.value == query_id
        names = [p.name for p in handler.parameters]
        assert len(names) == len(set(names)), f"{handler.query_id.name} declares a parameter twice"


def test_unknown_stored_query(reg: RegistryRows) -> None:
    with pytest.raises(UnknownStoredQuery) as info:
        reg.refs("urn:uuid:00000000-0000-0000-0000-000000000000", {})
    assert info.value.code.value == "XDSUnknownStoredQuery"


MISSING = [
    (Q.FIND_DOCUMENTS, without(FIND, "$XDSDocumentEntryPatientId")),
    (Q.FIND_DOCUMENTS, without(FIND, "$XDSDocumentEntryStatus")),
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryStatus": "()"}),
    (Q.FIND_DOCUMENTS_BY_REFERENCE_ID, FIND),
    (Q.FIND_SUBMISSION_SETS, without(SETS, "$XDSSubmissionSetPatientId")),
    (Q.FIND_SUBMISSION_SETS, without(SETS, "$XDSSubmissionSetStatus")),
    (Q.FIND_FOLDERS, without(FOLDERS, "$XDSFolderPatientId")),
    (Q.FIND_FOLDERS, without(FOLDERS, "$XDSFolderStatus")),
    (Q.GET_ALL, without(ALL, "$patientId")),
    (Q.GET_ALL, without(ALL, "$XDSSubmissionSetStatus")),
    (Q.GET_ALL, without(ALL, "$XDSFolderStatus")),
    (Q.GET_DOCUMENTS, {}),
    (Q.GET_FOLDERS, {}),
    (Q.GET_ASSOCIATIONS, {}),
    (Q.GET_DOCUMENTS_AND_ASSOCIATIONS, {}),
    (Q.GET_SUBMISSION_SETS, {}),
    (Q.GET_SUBMISSION_SET_AND_CONTENTS, {}),
    (Q.GET_FOLDER_AND_CONTENTS, {}),
    (Q.GET_FOLDERS_FOR_DOCUMENT, {}),
    (Q.GET_RELATED_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": UUID_A}),
    (Q.GET_RELATED_DOCUMENTS, {"$AssociationTypes": RPLC}),
]


@pytest.mark.parametrize(("query", "params"), MISSING, ids=[f"{q.name}-{i}" for i, (q, _) in enumerate(MISSING)])
def test_missing_parameter(reg: RegistryRows, query: StoredQueryId, params: RawParams) -> None:
    with pytest.raises(StoredQueryMissingParam):
        reg.refs(query, params)


PARAM_NUMBER = [
    # both of two exclusive parameters
    (Q.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": UUID_A, "$XDSDocumentEntryUniqueId": "('1.2.3')"}),
    (Q.GET_DOCUMENTS_AND_ASSOCIATIONS, {"$XDSDocumentEntryEntryUUID": UUID_A, "$XDSDocumentEntryUniqueId": "'1.2'"}),
    (Q.GET_FOLDERS, {"$XDSFolderEntryUUID": UUID_A, "$XDSFolderUniqueId": "('1.2.3')"}),
    (Q.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetEntryUUID": UUID_A, "$XDSSubmissionSetUniqueId": "'1'"}),
    (Q.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": UUID_A, "$XDSFolderUniqueId": "'1.2.3'"}),
    (Q.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": UUID_A, "$XDSDocumentEntryUniqueId": "'1.2'"}),
    (Q.GET_RELATED_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": UUID_A, "$XDSDocumentEntryUniqueId": "'1.2'",
                               "$AssociationTypes": RPLC}),
    # a Slot repeated where only eventCodeList / confidentialityCode (and folder codeList) may be
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryClassCode": ["('a^^1')", "('b^^1')"]}),
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryStatus": [STATUS, STATUS]}),
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryPatientId": [PID, PID]}),
    (Q.FIND_SUBMISSION_SETS, {**SETS, "$XDSSubmissionSetContentType": ["('a^^1')", "('b^^1')"]}),
    (Q.GET_ASSOCIATIONS, {"$uuid": [UUID_A, UUID_B]}),
    # several values where one is allowed
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryPatientId": quoted(PATIENT, PATIENT)}),
    (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryCreationTimeFrom": "(2024, 2025)"}),
    (Q.FIND_SUBMISSION_SETS, {**SETS, "$XDSSubmissionSetAuthorPerson": quoted("%a%", "%b%")}),
    (Q.GET_ALL, {**ALL, "$patientId": quoted(PATIENT, PATIENT)}),
    (Q.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": "('urn:uuid:a', 'urn:uuid:b')"}),
    (Q.GET_RELATED_DOCUMENTS, {"$XDSDocumentEntryUniqueId": "('1.2', '1.3')", "$AssociationTypes": RPLC}),
    (Q.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetEntryUUID": "('urn:uuid:a', 'urn:uuid:b')"}),
    (Q.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetUniqueId": "('1.2', '1.3')"}),
    (Q.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": "('urn:uuid:a', 'urn:uuid:b')"}),
    (Q.GET_FOLDER_AND_CONTENTS, {"$XDSFolderUniqueId": "('1.2', '1.3')"}),
]


@pytest.mark.parametrize(("query", "params"), PARAM_NUMBER,
                         ids=[f"{q.name}-{i}" for i, (q, _) in enumerate(PARAM_NUMBER)])
def test_parameter_number(reg: RegistryRows, query: StoredQueryId, params: RawParams) -> None:
    with pytest.raises(StoredQueryParamNumber) as info:
        reg.refs(query, params)
    assert info.value.code.value == "XDSStoredQueryParamNumber"


def test_parameter_errors_come_before_any_sql(reg: RegistryRows, database: Database) -> None:
    """Multiplicity and exclusivity are checked on the declared parameters, not by running SQL."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with pytest.raises(StoredQueryParamNumber):      # both uuid and uniqueId
            reg.refs(Q.GET_RELATED_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": UUID_A,
                                               "$XDSDocumentEntryUniqueId": "'1.2'", "$AssociationTypes": RPLC})
        with pytest.raises(StoredQueryMissingParam):     # neither
            reg.refs(Q.GET_RELATED_DOCUMENTS, {"$AssociationTypes": RPLC})
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert not [s for s in statements if "registry_objects" in s]


METADATA = {
    "pid-unquoted (NIST)": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryPatientId":
                                               "c4d77e21d0dd487^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"}),
    "pid-no-iso": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryPatientId": "'P1^^^&1.2.3'"}),
    "pid-not-oid": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryPatientId": "'P1^^^&hospital&ISO'"}),
    "pid-plain": (Q.FIND_SUBMISSION_SETS, {**SETS, "$XDSSubmissionSetPatientId": "'12345'"}),
    "pid-get-all": (Q.GET_ALL, {**ALL, "$patientId": "'P1^^^^&1.2.3&ISO'"}),
    "time-iso": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryCreationTimeFrom": "'2024-01-01'"}),
    "time-odd-digits": (Q.FIND_FOLDERS, {**FOLDERS, "$XDSFolderLastUpdateTimeTo": "202401011"}),
    "status-short": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryStatus": "('Approved')"}),
    "entry-type": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryType": "('urn:uuid:not-a-type')"}),
    "uuid": (Q.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": "('1.2.3')"}),
    "association-type": (Q.GET_RELATED_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": UUID_A,
                                                   "$AssociationTypes": "('RPLC')"}),
    "code-without-code": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryClassCode": "('^^1.2.3')"}),
    "unterminated": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryClassCode": "('a^^1.2.3)"}),
    "injection": (Q.FIND_DOCUMENTS, {**FIND, "$XDSDocumentEntryClassCode": "(a' OR 1=1 --)"}),
}


@pytest.mark.parametrize(("query", "params"), METADATA.values(), ids=METADATA.keys())
def test_malformed_values(reg: RegistryRows, query: StoredQueryId, params: RawParams) -> None:
    with pytest.raises(RegistryMetadataError) as info:
        reg.refs(query, params)
    assert info.value.code.value == "XDSRegistryMetadataError"


@pytest.mark.parametrize("return_type", ["RegistryObject", "leafclass", ""])
def test_unknown_return_type(reg: RegistryRows, database: Database, return_type: str) -> None:
    query = StoredQuery(Q.GET_DOCUMENTS.value, return_type, {"$XDSDocumentEntryEntryUUID": [[UUID_A]]})
    with database.session() as session, pytest.raises(RegistryMetadataError):
        run_stored_query(session, query, reg.caller_a, reg.settings)


def test_nist_bad_patient_id_sample(reg: RegistryRows, database: Database) -> None:
    """NIST's request with an unquoted patient id is refused with XDSRegistryMetadataError."""
    from registry.ebrim import parse_adhoc_query_request
    from tests.factories.metadata import read_xml

    sample = require_samples() / "iti18" / "nist-sq-req-bad-pid-format.xml"
    query = parse_adhoc_query_request(read_xml(sample.read_bytes()))
    with database.session() as session, pytest.raises(XdsError) as info:
        run_stored_query(session, query, reg.caller_a, reg.settings)
    assert info.value.code.value == "XDSRegistryMetadataError"
