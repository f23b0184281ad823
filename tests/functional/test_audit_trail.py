"""Every SOAP transaction and every refusal leaves one audit record, in the chain, schema-valid.

Driven through the Flask app with the hub's own PKI and tokens (see
test_registry_soap); the records are read back from the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from lxml import etree
from sqlalchemy import select, update

from hub.audit.tables import AuditRecord
from hub.audit.verify import verify_chain
from hub.cli import main
from hub.db import Database
from hub.security.pki import load_private_key
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY
from tests.conftest import require_schemas
from tests.functional.soap_support import Party, post_soap
from tests.functional.test_registry_soap import PATIENT, find_documents, hub, submission

__all__ = ["hub"]

Hub = tuple[Flask, Database, Party, Party]


def records(database: Database) -> list[AuditRecord]:
    with database.session() as session:
        rows = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        session.expunge_all()
    return rows


def assert_valid_audit(message: str) -> None:
    schema = etree.XMLSchema(etree.parse(str(require_schemas() / "audit" / "dicom2017c.xsd"),
                                         etree.XMLParser(no_network=True, resolve_entities=False)))
    document = etree.fromstring(message.encode(), etree.XMLParser(no_network=True, resolve_entities=False))
    assert schema.validate(document), schema.error_log


def intact(hub: Hub) -> bool:
    app, database = hub[0], hub[1]
    settings = app.config["XDSHUB_SETTINGS"]
    key = load_private_key(settings.path(settings.signing_key))
    with database.session() as session:
        return verify_chain(session, key.public_key()).intact


def test_register_and_query_are_recorded_with_their_patient(hub: Hub) -> None:
    app, database, org_a, org_b = hub
    token_a, token_b = org_a.token(app), org_b.token(app)
    status, _, _ = post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission()), party=org_a,
                             token=token_a)
    assert status == 200
    status, _, _ = post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()), party=org_b,
                             token=token_b)
    assert status == 200
    by_type = {r.event_type: r for r in records(database)}
    register, query = by_type["ITI-42"], by_type["ITI-18"]
    assert (register.event_id, register.action, register.outcome) == ("110107", "C", 0)
    assert (query.event_id, query.action, query.outcome) == ("110112", "E", 0)
    assert register.patient_id == query.patient_id == PATIENT
    assert (register.organisation_oid, query.organisation_oid) == (org_a.oid, org_b.oid)
    assert "110114" in {r.event_id for r in records(database)}   # the two token requests
    for record in records(database):
        assert_valid_audit(record.message)
    assert intact(hub)


def test_a_refused_registration_is_recorded_as_a_failure(hub: Hub) -> None:
    app, database, org_a, _ = hub
    bad = submission(patient="not a patient id")
    status, _, _ = post_soap(app, ACTION_REGISTER, render_submit_objects_request(bad), party=org_a,
                             token=org_a.token(app))
    assert status == 200
    (failed,) = [r for r in records(database) if r.event_type == "ITI-42"]
    assert failed.outcome == 4
    assert "XDSRegistryMetadataError" in failed.message or "patient" in failed.message
    assert intact(hub)


@pytest.mark.parametrize("case", ["no certificate", "no token", "wrong scope"])
def test_refused_calls_are_security_alerts(hub: Hub, case: str) -> None:
    app, database, org_a, _ = hub
    token = None if case == "no token" else org_a.token(app, "xds:query" if case == "wrong scope" else None)
    status, _, _ = post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission()),
                             party=None if case == "no certificate" else org_a, token=token)
    assert status in (401, 403)
    alerts = [r for r in records(database) if r.event_id == "110113"]
    assert len(alerts) == 1 and alerts[0].outcome == 8
    assert_valid_audit(alerts[0].message)
    assert intact(hub)


def test_audit_verify_command_names_the_edited_record(hub: Hub, tmp_path: Path) -> None:
    app, database, org_a, _ = hub
    post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()), party=org_a,
              token=org_a.token(app))
    data_dir = app.config["XDSHUB_SETTINGS"].data_dir
    runner = CliRunner(env={"XDSHUB_DATABASE_URL": str(database.engine.url.render_as_string(hide_password=False))})
    result = runner.invoke(main, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 2 records" in result.output
    with database.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(patient_id="SOMEONE-ELSE"))
    result = runner.invoke(main, ["audit", "verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "record 2: edited" in result.output
