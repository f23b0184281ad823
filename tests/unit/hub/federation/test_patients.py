"""Patient identity rules: CX form, idempotent links, conflicts, translation, the "known" rule, re-homing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from hub.db import Database
from hub.errors import UnknownPatientId
from hub.federation.patients import (
    PatientLinkConflict,
    PatientLinkError,
    check_cx,
    is_known,
    link_patient,
    links_of,
    to_domain,
)
from hub.settings import Settings
from registry.builders import has_member
from registry.model import StoredQuery, SubmitObjectsRequest
from registry.tables import RegistryObjectRow
from registry.transactions.iti18_query import run_stored_query
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import DocumentEntryScheme, FolderScheme, StoredQueryId, SubmissionSetScheme
from tests.factories.registry_rows import caller_for, document_object, folder_object, quoted, submission_set_object

DOMAIN_OID = "1.3.6.1.4.1.21367.2026.500"
P = f"P-1^^^&{DOMAIN_OID}&ISO"
A_OID, B_OID = "1.3.6.1.4.1.21367.2026.101", "1.3.6.1.4.1.21367.2026.102"
A_1 = f"A-1^^^&{A_OID}&ISO"
B_7 = f"B-7^^^&{B_OID}&ISO"
APPROVED = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"


@pytest.fixture
def orgs(organisation_factory: Any) -> tuple[int, int]:
    return organisation_factory("Org A", A_OID), organisation_factory("Org B", B_OID)


@pytest.fixture
def closed(settings: Settings) -> Settings:
    return replace(settings, affinity_domain_oid=DOMAIN_OID)


def submission(patient: str, with_folder: bool = False) -> SubmitObjectsRequest:
    package, entry = submission_set_object(patient), document_object(patient)
    objects: list[Any] = [package, entry, has_member(package.id, entry.id)]
    if with_folder:
        folder = folder_object(patient)
        objects += [folder, has_member(package.id, folder.id), has_member(folder.id, entry.id)]
    return SubmitObjectsRequest(objects)


def find_documents(patient: str) -> StoredQuery:
    return StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, "ObjectRef", {
        "$XDSDocumentEntryPatientId": [[quoted(patient)]], "$XDSDocumentEntryStatus": [[APPROVED]]})


@pytest.mark.parametrize("value", [
    "", None, 7, "A-1", "A-1^^^&1.2.3&L", "A-1^^^&not.an.oid&ISO", "A-1^^^1.2.3&ISO", "A-1^^^&1.2.3",
    "A\x001^^^&1.2.3&ISO", "A^B^^^&1.2.3&ISO", "X" * 250 + "^^^&1.2.3&ISO",
])
def test_ids_must_be_cx_with_an_oid_and_type_iso(value: object) -> None:
    with pytest.raises(PatientLinkError):
        check_cx("local_id", value)


def test_a_link_translates_the_organisations_id_only_and_again_is_idempotent(database: Database,
                                                                               orgs: tuple[int, int]) -> None:
    org_a, org_b = orgs
    with database.session() as session:
        made = link_patient(session, org_a, A_1, P)
        assert made.created and made.rehomed == 0
    with database.session() as session:
        again = link_patient(session, org_a, A_1, P)
        assert not again.created and again.link.domain_id == P
        assert to_domain(session, org_a, A_1) == P
        assert to_domain(session, org_b, A_1) == A_1          # another organisation's local id is not A's
        assert to_domain(session, org_a, B_7) == B_7          # unlinked ids pass unchanged
        assert to_domain(session, org_a, P) == P
        assert [(link.local_id, link.domain_id) for link in links_of(session, org_a)] == [(A_1, P)]
        assert links_of(session, org_b) == [] and links_of(session, org_a, B_7) == []


def test_relinking_a_local_id_to_another_patient_is_a_conflict(database: Database, orgs: tuple[int, int]) -> None:
    org_a, org_b = orgs
    with database.session() as session:
        link_patient(session, org_a, A_1, P)
    with database.session() as session, pytest.raises(PatientLinkConflict, match="already linked"):
        link_patient(session, org_a, A_1, f"P-2^^^&{DOMAIN_OID}&ISO")
    with database.session() as session:
        assert to_domain(session, org_a, A_1) == P
        link_patient(session, org_b, A_1, f"P-2^^^&{DOMAIN_OID}&ISO")   # B's own namespace: its own link


@pytest.mark.parametrize(("local", "domain", "error", "match"), [
    (P, f"P-9^^^&{DOMAIN_OID}&ISO", PatientLinkConflict, "domain id"),          # a domain id used as a local id
    (B_7, A_1, PatientLinkConflict, "local id of this organisation"),           # a chain A-1 -> P
])
def test_ids_of_the_other_side_are_refused(database: Database, orgs: tuple[int, int], local: str, domain: str,
                                           error: type[Exception], match: str) -> None:
    org_a, _ = orgs
    with database.session() as session:
        link_patient(session, org_a, A_1, P)
    with database.session() as session, pytest.raises(error, match=match):
        link_patient(session, org_a, local, domain)


def test_with_an_affinity_domain_the_domain_id_must_be_of_it(database: Database, orgs: tuple[int, int]) -> None:
    org_a, _ = orgs
    with database.session() as session:
        with pytest.raises(PatientLinkError, match="not an id of the affinity domain"):
            link_patient(session, org_a, A_1, B_7, affinity_domain_oid=DOMAIN_OID)
        with pytest.raises(PatientLinkConflict, match="affinity domain's assigning authority"):
            link_patient(session, org_a, f"X^^^&{DOMAIN_OID}&ISO", P, affinity_domain_oid=DOMAIN_OID)
        assert link_patient(session, org_a, P, P, affinity_domain_oid=DOMAIN_OID).created   # "A uses P itself"


def test_known_is_everything_when_open_and_linked_or_registered_when_closed(
        database: Database, orgs: tuple[int, int], settings: Settings, closed: Settings) -> None:
    org_a, _ = orgs
    registered = f"R-5^^^&{DOMAIN_OID}&ISO"
    with database.session() as session:
        assert is_known(session, B_7, settings) and is_known(session, P, settings)
        assert not is_known(session, P, closed)
        link_patient(session, org_a, A_1, P)
        register_document_set(session, submission(registered), caller_for(org_a, A_OID), settings)
    with database.session() as session:
        assert is_known(session, P, closed)
        assert is_known(session, registered, closed)                  # it already has entries
        assert not is_known(session, A_1, closed)                     # not the domain's assigning authority
        assert not is_known(session, f"Q-1^^^&{DOMAIN_OID}&ISO", closed)


def test_submissions_store_the_domain_id_and_keep_the_source_patient_id(
        database: Database, orgs: tuple[int, int], closed: Settings) -> None:
    org_a, _ = orgs
    request = submission(A_1, with_folder=True)
    with database.session() as session:
        link_patient(session, org_a, A_1, P)
        register_document_set(session, request, caller_for(org_a, A_OID), closed)
    schemes = {DocumentEntryScheme.PATIENT_ID.value, SubmissionSetScheme.PATIENT_ID.value,
               FolderScheme.PATIENT_ID.value}
    with database.session() as session:
        rows = session.scalars(select(RegistryObjectRow).where(RegistryObjectRow.kind != "Association")).all()
        assert sorted(r.kind for r in rows) == ["DocumentEntry", "Folder", "SubmissionSet"]
        assert {r.patient_id for r in rows} == {P}
        stored = [i for r in rows for i in r.content["external_identifiers"] if i["scheme"] in schemes]
        assert len(stored) == 3 and {i["value"] for i in stored} == {P}
        (entry,) = [r for r in rows if r.kind == "DocumentEntry"]
        assert entry.content["slots"]["sourcePatientId"] == [A_1]
    # the caller's request is left as it was given
    assert {o.patient_id for o in request.objects if not hasattr(o, "association_type")} == {A_1}


def test_an_unknown_patient_is_refused_and_nothing_is_stored(database: Database, orgs: tuple[int, int],
                                                             closed: Settings) -> None:
    org_a, _ = orgs
    with database.session() as session:
        for patient in (A_1, f"Q-1^^^&{DOMAIN_OID}&ISO"):   # unlinked local id; domain id nobody linked
            with pytest.raises(UnknownPatientId) as refused:
                register_document_set(session, submission(patient), caller_for(org_a, A_OID), closed)
            assert refused.value.code.value == "XDSUnknownPatientId"
        assert session.scalars(select(RegistryObjectRow)).all() == []


def test_queries_translate_and_refuse_unknown_patients(database: Database, orgs: tuple[int, int],
                                                       settings: Settings, closed: Settings) -> None:
    org_a, org_b = orgs
    with database.session() as session:
        link_patient(session, org_a, A_1, P)
        link_patient(session, org_b, B_7, P)
        register_document_set(session, submission(A_1), caller_for(org_a, A_OID), settings)
        register_document_set(session, submission(B_7), caller_for(org_b, B_OID), settings)
    with database.session() as session:
        for caller, patient in ((caller_for(org_a, A_OID), A_1), (caller_for(org_b, B_OID), P),
                                (caller_for(org_b, B_OID), B_7)):
            assert len(run_stored_query(session, find_documents(patient), caller, closed).refs) == 2
        assert run_stored_query(session, find_documents(A_1), caller_for(org_b, B_OID), settings).refs == []
        with pytest.raises(UnknownPatientId):
            run_stored_query(session, find_documents(A_1), caller_for(org_b, B_OID), closed)
        get_all = StoredQuery(StoredQueryId.GET_ALL.value, "ObjectRef", {
            "$patientId": [[quoted(A_1)]], "$XDSDocumentEntryStatus": [[APPROVED]],
            "$XDSSubmissionSetStatus": [[APPROVED]], "$XDSFolderStatus": [[APPROVED]]})
        assert len(run_stored_query(session, get_all, caller_for(org_a, A_OID), closed).refs) == 6


def test_a_link_rehomes_the_organisations_earlier_entries(database: Database, orgs: tuple[int, int],
                                                          settings: Settings) -> None:
    org_a, org_b = orgs
    with database.session() as session:
        register_document_set(session, submission(A_1, with_folder=True), caller_for(org_a, A_OID), settings)
        register_document_set(session, submission(A_1), caller_for(org_b, B_OID), settings)   # B, A's namespace
    with database.session() as session:
        assert link_patient(session, org_a, A_1, P).rehomed == 3
    with database.session() as session:
        rows = session.scalars(select(RegistryObjectRow).where(RegistryObjectRow.patient_id.is_not(None))).all()
        assert sorted((r.submitter_org_id == org_a, r.patient_id) for r in rows) == [
            (False, A_1), (False, A_1), (True, P), (True, P), (True, P)]
        moved = [r for r in rows if r.submitter_org_id == org_a]
        assert all(i["value"] == P for r in moved for i in r.content["external_identifiers"]
                   if i["scheme"] in (DocumentEntryScheme.PATIENT_ID.value, SubmissionSetScheme.PATIENT_ID.value,
                                      FolderScheme.PATIENT_ID.value))
        # later submissions about them name the same patient, and a query for P finds them
        assert len(run_stored_query(session, find_documents(P), caller_for(org_b, B_OID), settings).refs) == 1
