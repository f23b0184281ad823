"""Patient identity across organisations, through the whole app: `/api/patients`, ITI-42, ITI-18, RAD-68 and
`xdshub patient`.

Org A knows the patient as A-1, Org B as B-7; both link their id to the affinity domain id P. Each registers
under its own id, and a query for P, or for either local id by its organisation, finds both entries.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from lxml import etree
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.cli import main
from hub.db import Database
from hub.settings import load_settings
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY, DocumentEntryScheme, ResponseStatus
from repository.blobstore import open_blob_store
from repository.ingest import Sender, ingest
from tests.factories.dicom import instance_bytes, make_study
from tests.functional.soap_support import ORGANISATIONS, Party, app_with_two_parties, body_of, error_codes, post_soap
from tests.functional.test_registry_soap import count_objects, find_documents, submission
from tests.schema_validation import assert_valid

DOMAIN_OID = "1.3.6.1.4.1.21367.2026.500"
P = f"P-1^^^&{DOMAIN_OID}&ISO"
A_1 = f"A-1^^^&{ORGANISATIONS[0][1]}&ISO"
B_7 = f"B-7^^^&{ORGANISATIONS[1][1]}&ISO"
SCOPES = "xds:query xds:register"

Hub = tuple[Flask, Database, Party, Party]


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    with app_with_two_parties(tmp_path / "hub", database_url, SCOPES) as opened:
        yield opened


@pytest.fixture
def closed_hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    with app_with_two_parties(tmp_path / "hub", database_url, SCOPES, affinity_domain_oid=DOMAIN_OID) as opened:
        yield opened


def link(app: Flask, party: Party, body: Any, scope: str = "xds:register") -> Any:
    return app.test_client().post("/api/patients", json=body, environ_base=party.environ(),
                                  headers={"Authorization": f"Bearer {party.token(app, scope)}"})


def _answered(app: Flask, party: Party, action: str, body: etree._Element) -> etree._Element:
    status, envelope, _ = post_soap(app, action, body, party=party, token=party.token(app))
    assert status == 200
    assert_valid(envelope)
    return envelope


def register(app: Flask, party: Party, patient: str) -> etree._Element:
    return _answered(app, party, ACTION_REGISTER, render_submit_objects_request(submission(patient)))


def query(app: Flask, party: Party, patient: str) -> etree._Element:
    return _answered(app, party, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents(patient)))


def found(envelope: etree._Element) -> list[tuple[str | None, list[str]]]:
    """(patientId, sourcePatientId) of each DocumentEntry of a LeafClass answer."""
    assert body_of(envelope).get("status") == ResponseStatus.SUCCESS.value, error_codes(envelope)
    entries = []
    for entry in body_of(envelope).iter("{*}ExtrinsicObject"):
        patient = next(i.get("value") for i in entry.iter("{*}ExternalIdentifier")
                       if i.get("identificationScheme") == DocumentEntryScheme.PATIENT_ID.value)
        source = [v.text or "" for s in entry.iter("{*}Slot") if s.get("name") == "sourcePatientId"
                  for v in s.iter("{*}Value")]
        entries.append((patient, source))
    return sorted(entries)


def test_a_query_for_the_domain_id_or_a_local_id_finds_every_providers_entries(hub: Hub) -> None:
    app, database, org_a, org_b = hub
    made = link(app, org_a, {"local_id": A_1, "domain_id": P})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.json["local_id"] == A_1 and made.json["domain_id"] == P and made.json["created_at"]
    assert link(app, org_a, {"local_id": A_1, "domain_id": P}).status_code == 200     # the same link: no change
    assert link(app, org_b, {"local_id": B_7, "domain_id": P}).status_code == 201
    for party, patient in ((org_a, A_1), (org_b, B_7)):
        assert body_of(register(app, party, patient)).get("status") == ResponseStatus.SUCCESS.value

    both = [(P, [A_1]), (P, [B_7])]
    assert found(query(app, org_a, P)) == both
    assert found(query(app, org_b, P)) == both
    assert found(query(app, org_a, A_1)) == both          # A's local id, translated
    assert found(query(app, org_b, B_7)) == both
    assert found(query(app, org_b, A_1)) == []            # A's id means nothing to B (open domain: no error)

    with database.session() as session:
        records = session.scalars(select(AuditRecord).where(AuditRecord.event_id == "110110")).all()
        assert sorted((r.organisation_oid, r.patient_id) for r in records) == [(org_a.oid, P), (org_b.oid, P)]
        assert all(r.action == "C" for r in records)

    listed = app.test_client().get("/api/patients", query_string={"local_id": A_1}, environ_base=org_a.environ(),
                                   headers={"Authorization": f"Bearer {org_a.token(app, 'xds:register')}"})
    assert listed.status_code == 200
    assert [(p["local_id"], p["domain_id"]) for p in listed.json["patients"]] == [(A_1, P)]
    theirs = app.test_client().get("/api/patients", query_string={"local_id": A_1}, environ_base=org_b.environ(),
                                   headers={"Authorization": f"Bearer {org_b.token(app, 'xds:register')}"})
    assert theirs.json["patients"] == []


def test_entries_registered_before_the_link_are_found_under_the_domain_id(hub: Hub) -> None:
    app, _, org_a, org_b = hub
    register(app, org_a, A_1)
    assert found(query(app, org_b, P)) == []
    assert link(app, org_a, {"local_id": A_1, "domain_id": P}).status_code == 201
    assert found(query(app, org_b, P)) == [(P, [A_1])]


def test_a_published_study_manifest_is_registered_under_the_domain_id(hub: Hub) -> None:
    app, database, org_a, org_b = hub
    issuer = "1.3.6.1.4.1.21367.2026.77"
    study = make_study(n_series=1, per_series=2, patient_id="CT-9", issuer=issuer)
    store = open_blob_store(app.config["XDSHUB_SETTINGS"].storage_url)
    with database.session() as session:
        for dataset in study:
            ingest(session, store, io.BytesIO(instance_bytes(dataset)), Sender(org_a.organisation_id, org_a.oid))
    local = f"CT-9^^^&{issuer}&ISO"
    assert link(app, org_a, {"local_id": local, "domain_id": P}).status_code == 201
    published = app.test_client().post(f"/api/studies/{study[0].StudyInstanceUID}/publish",
                                       environ_base=org_a.environ(),
                                       headers={"Authorization": f"Bearer {org_a.token(app, 'xds:register')}"})
    assert published.status_code == 201, published.get_data(as_text=True)
    assert found(query(app, org_b, P)) == [(P, [local])]


def test_with_an_affinity_domain_unknown_patients_are_refused(closed_hub: Hub) -> None:
    app, database, org_a, org_b = closed_hub
    for patient in (A_1, f"Q-1^^^&{DOMAIN_OID}&ISO"):          # unlinked local id; domain id nobody linked
        refused = register(app, org_a, patient)
        assert body_of(refused).get("status") == ResponseStatus.FAILURE.value
        assert error_codes(refused) == ["XDSUnknownPatientId"]
        answered = query(app, org_b, patient)
        assert body_of(answered).get("status") == ResponseStatus.FAILURE.value
        assert error_codes(answered) == ["XDSUnknownPatientId"]
    assert count_objects(database) == 0

    outside = link(app, org_a, {"local_id": A_1, "domain_id": B_7})
    assert outside.status_code == 400 and DOMAIN_OID in outside.json["detail"]
    assert link(app, org_a, {"local_id": A_1, "domain_id": P}).status_code == 201
    assert body_of(register(app, org_a, A_1)).get("status") == ResponseStatus.SUCCESS.value
    assert found(query(app, org_b, P)) == [(P, [A_1])]
    assert error_codes(query(app, org_b, B_7)) == ["XDSUnknownPatientId"]   # B has not linked B-7


@pytest.mark.parametrize(("body", "detail"), [
    ({"local_id": "A-1", "domain_id": P}, "local_id"),
    ({"local_id": A_1, "domain_id": "P-1^^^&1.2.3&L"}, "domain_id"),
    ({"local_id": A_1, "domain_id": "P-1^^^&x.y&ISO"}, "domain_id"),
    ({"local_id": A_1}, "domain_id is required"),
    ({"local_id": 7, "domain_id": P}, "local_id"),
    ({"local_id": A_1, "domain_id": P, "name": "Doe"}, "unknown field"),
    (["not", "an", "object"], "JSON object"),
])
def test_bad_links_are_400(hub: Hub, body: Any, detail: str) -> None:
    app, _, org_a, _ = hub
    answer = link(app, org_a, body)
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json"
    assert detail in answer.json["detail"]


def test_a_conflicting_link_is_409_and_changes_nothing(hub: Hub) -> None:
    app, _, org_a, org_b = hub
    assert link(app, org_a, {"local_id": A_1, "domain_id": P}).status_code == 201
    other = f"P-2^^^&{DOMAIN_OID}&ISO"
    conflict = link(app, org_a, {"local_id": A_1, "domain_id": other})
    assert conflict.status_code == 409 and P in conflict.json["detail"]
    assert link(app, org_b, {"local_id": A_1, "domain_id": other}).status_code == 201   # B's own link
    register(app, org_a, A_1)
    assert found(query(app, org_b, P)) == [(P, [A_1])]


def test_links_need_a_certificate_a_token_and_the_register_scope(hub: Hub) -> None:
    app, _, org_a, _ = hub
    body = {"local_id": A_1, "domain_id": P}
    assert app.test_client().post("/api/patients", json=body).status_code == 401
    assert app.test_client().post("/api/patients", json=body, environ_base=org_a.environ()).status_code == 401
    assert app.test_client().get("/api/patients").status_code == 401
    assert link(app, org_a, body, scope="xds:query").status_code == 403


# -- xdshub patient ---------------------------------------------------------------------------------------------

def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_the_command_line_links_lists_and_refuses(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    oid = ORGANISATIONS[0][1]
    assert run("init", "--data-dir", str(data_dir)).exit_code == 0
    added = run("org", "add", "Org A", "--oid", oid, "--data-dir", str(data_dir), "--out", str(tmp_path / "org-a"))
    assert added.exit_code == 0, added.output

    made = run("patient", "link", A_1, P, "--org", oid, "--data-dir", str(data_dir))
    assert made.exit_code == 0, made.output
    assert f"{A_1} at {oid} linked to {P}" in made.output
    again = run("patient", "link", A_1, P, "--org", oid, "--data-dir", str(data_dir))
    assert again.exit_code == 0 and "already linked" in again.output
    for args, message in [
        ((A_1, f"P-2^^^&{DOMAIN_OID}&ISO", "--org", oid), "already linked to"),
        (("A-1", P, "--org", oid), "is not a patient id"),
        ((A_1, P, "--org", "1.2.3.404"), "no organisation 1.2.3.404"),
    ]:
        refused = run("patient", "link", *args, "--data-dir", str(data_dir))
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert "Traceback" not in refused.output

    listed = run("patient", "list", "--org", oid, "--data-dir", str(data_dir))
    assert listed.exit_code == 0 and listed.output.splitlines() == [f"{A_1}\t{P}"]

    database = Database(load_settings(data_dir, environ={}).database_url)
    try:
        with database.session() as session:
            (record,) = session.scalars(select(AuditRecord).where(AuditRecord.event_id == "110110"))
            assert record.patient_id == P and A_1.replace("&", "&amp;") in record.message
    finally:
        database.dispose()
