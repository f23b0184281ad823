"""GET /api/audit: an organisation's own audit records, filtered and paged, for the audit:read scope."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from flask import Flask

from hub.db import Database
from hub.organisations import add_organisation
from registry.ebrim import render_adhoc_query_request
from registry.vocabulary import ACTION_STORED_QUERY
from tests.functional.soap_support import Party, post_soap
from tests.functional.test_registry_soap import PATIENT, find_documents, hub

__all__ = ["hub"]

Hub = tuple[Flask, Database, Party, Party]


@pytest.fixture
def auditor(hub: Hub) -> Party:
    app, database = hub[0], hub[1]
    settings = app.config["XDSHUB_SETTINGS"]
    with database.session() as session:
        new = add_organisation(session, settings, "Auditing Org", "1.3.6.1.4.1.21367.2026.199",
                               "xds:query audit:read")
    return Party.from_pem("Auditing Org", "1.3.6.1.4.1.21367.2026.199", new.organisation_id, new.client_id,
                          new.client_secret, new.cert_pem)


def get(app: Flask, party: Party, token: str, query: str = "") -> tuple[int, dict]:
    response = app.test_client().get(f"/api/audit{query}", environ_base=party.environ(),
                                     headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json()


def test_filters_and_pages_through_the_callers_own_records(hub: Hub, auditor: Party) -> None:
    app = hub[0]
    token = auditor.token(app)
    for patient in (PATIENT, "OTHER-1^^^&1.2.3&ISO", PATIENT):
        post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents(patient)), party=auditor,
                  token=token)
    post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()), party=hub[2],
              token=hub[2].token(app))   # another organisation's query: not ours to see

    status, body = get(app, auditor, token, "?" + urlencode({"event_type": "ITI-18", "patient_id": PATIENT,
                                                             "limit": 1}))
    assert status == 200
    first = body["records"]
    assert [r["patient_id"] for r in first] == [PATIENT] and body["next"]
    status, body = get(app, auditor, token, body["next"].removeprefix("/api/audit"))
    assert [r["patient_id"] for r in body["records"]] == [PATIENT] and body["next"] is None
    assert body["records"][0]["seq"] < first[0]["seq"]   # newest first

    status, body = get(app, auditor, token, "?event_type=ITI-18")
    assert {r["organisation"] for r in body["records"]} == {auditor.oid}
    assert len(body["records"]) == 3

    one = app.test_client().get(f"/api/audit/{first[0]['seq']}", environ_base=auditor.environ(),
                                headers={"Authorization": f"Bearer {token}"})
    assert one.status_code == 200 and one.get_json()["message"].startswith("<AuditMessage")


@pytest.mark.parametrize("query, status, detail", [
    ("?outcome=3", 400, "outcome must be one of"),
    ("?since=yesterday", 400, "ISO 8601"),
    ("?colour=blue", 400, "unknown parameter(s) colour"),
    ("?organisation=1.3.6.1.4.1.21367.2026.101", 403, "only the records of its own calls"),
])
def test_bad_requests_are_problem_documents(hub: Hub, auditor: Party, query: str, status: int,
                                            detail: str) -> None:
    answered, body = get(hub[0], auditor, auditor.token(hub[0]), query)
    assert answered == status and detail in body["detail"]


def test_the_audit_read_scope_is_required(hub: Hub) -> None:
    app, org_a = hub[0], hub[2]
    status, body = get(app, org_a, org_a.token(app))
    assert status == 403 and "audit:read" in body["detail"]


def test_reading_the_trail_is_itself_recorded(hub: Hub, auditor: Party) -> None:
    app = hub[0]
    token = auditor.token(app)
    assert get(app, auditor, token)[0] == 200
    status, body = get(app, auditor, token, "?event_id=110101")
    assert status == 200 and body["records"][0]["event_type"] == "110101"
    assert body["records"][0]["organisation"] == auditor.oid
