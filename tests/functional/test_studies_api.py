"""POST /api/studies/<uid>/publish and GET /api/inventory through the app, with certificates and tokens."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from hub.audit.tables import AuditRecord
from hub.db import Database
from repository.blobstore import open_blob_store
from repository.ingest import Sender, ingest
from tests.factories.dicom import instance_bytes, make_study
from tests.functional.soap_support import Party, app_with_two_parties

ISSUER = "1.3.6.1.4.1.21367.2026.77"


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[Flask, Database, Party, Party]]:
    with app_with_two_parties(tmp_path / "hub", database_url, "xds:register dicomweb:read") as opened:
        yield opened


def _store(app: Flask, database: Database, party: Party, **attributes: str) -> str:
    """A two-instance CT study sent by `party`, with `attributes` on each instance; its Study Instance UID."""
    settings = app.config["XDSHUB_SETTINGS"]
    store = open_blob_store(settings.storage_url)
    study = make_study(n_series=1, per_series=2, patient_id="P-" + party.name[-1], issuer=ISSUER)
    with database.session() as session:
        for dataset in study:
            for keyword, value in attributes.items():
                setattr(dataset, keyword, value)
            ingest(session, store, io.BytesIO(instance_bytes(dataset)), Sender(party.organisation_id, party.oid))
    return str(study[0].StudyInstanceUID)


def _call(app: Flask, party: Party, method: str, path: str, scope: str):  # type: ignore[no-untyped-def]
    return app.test_client().open(path, method=method, environ_base=party.environ(),
                                  headers={"Authorization": f"Bearer {party.token(app, scope)}"})


def test_publish_now_and_again_replaces_the_manifest(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, _ = hub
    study = _store(app, database, org_a)
    first = _call(app, org_a, "POST", f"/api/studies/{study}/publish", "xds:register")
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.json["instances"] == 2 and first.json["replaced"] is None
    second = _call(app, org_a, "POST", f"/api/studies/{study}/publish", "xds:register")
    assert second.status_code == 201 and second.json["replaced"] == first.json["entry_uuid"]
    with database.session() as session:
        audited = session.scalars(select(AuditRecord.event_type).where(AuditRecord.event_type == "RAD-68")).all()
    assert len(audited) == 2


def test_only_the_sender_may_publish_and_others_see_no_study(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, org_b = hub
    study = _store(app, database, org_a)
    assert _call(app, org_b, "POST", f"/api/studies/{study}/publish", "xds:register").status_code == 404
    assert _call(app, org_a, "POST", "/api/studies/1.2.3.404/publish", "xds:register").status_code == 404
    assert _call(app, org_a, "POST", f"/api/studies/{study}/publish", "dicomweb:read").status_code == 403
    assert app.test_client().post(f"/api/studies/{study}/publish").status_code == 401


def test_inventory_counts_the_callers_instances_by_service_line(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, org_b = hub
    _store(app, database, org_a, InstitutionName="St. Mary", InstitutionalDepartmentName="Radiology",
           StationName="CT01", StudyDate="20261103")
    _store(app, database, org_a, InstitutionName="St. Mary", InstitutionalDepartmentName="Emergency",
           StationName="CT02", StudyDate="20261120")
    _store(app, database, org_b, InstitutionName="Riverside")
    answer = _call(app, org_a, "GET", "/api/inventory?by=department,month", "dicomweb:read")
    assert answer.status_code == 200
    rows = {(r["department"], r["month"]): (r["studies"], r["instances"]) for r in answer.json["rows"]}
    assert rows == {("Radiology", "2026-11"): (1, 2), ("Emergency", "2026-11"): (1, 2)}
    assert answer.json["totals"]["instances"] == 4 and answer.json["totals"]["bytes"] > 0
    everything = _call(app, org_a, "GET", "/api/inventory", "dicomweb:read").json
    assert {r["station"] for r in everything["rows"]} == {"CT01", "CT02"}
    assert {r["manufacturer"] for r in everything["rows"]} == {"xdshub tests"}
    exported = _call(app, org_a, "GET", "/api/inventory?by=institution,modality&format=csv", "dicomweb:read")
    assert exported.mimetype == "text/csv"
    assert list(csv.reader(io.StringIO(exported.get_data(as_text=True)))) == [
        ["institution", "modality", "studies", "instances", "bytes"],
        ["St. Mary", "CT", "2", "4", str(answer.json["totals"]["bytes"])]]


@pytest.mark.parametrize("query", ["by=colour", "since=2026-13", "format=xml", "limit=3"])
def test_bad_inventory_requests_are_400(hub: tuple[Flask, Database, Party, Party], query: str) -> None:
    app, _, org_a, _ = hub
    answer = _call(app, org_a, "GET", f"/api/inventory?{query}", "dicomweb:read")
    assert answer.status_code == 400 and answer.json["detail"]
