"""GET /fhir/AuditEvent (ITI-81): searchset Bundles of FHIR R4 AuditEvents that a FHIR library parses.

fhir.resources (R4B models; AuditEvent is unchanged from R4) validates every
answer, so a field in the wrong shape fails the test.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from fhir.resources.R4B.bundle import Bundle
from flask import Flask

from hub.db import Database
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY
from tests.functional.soap_support import Party, post_soap
from tests.functional.test_audit_api import auditor
from tests.functional.test_registry_soap import PATIENT, find_documents, hub, submission

__all__ = ["auditor", "hub"]

Hub = tuple[Flask, Database, Party, Party]


def search(app: Flask, party: Party, token: str, **params: str) -> tuple[int, dict]:
    response = app.test_client().get(f"/fhir/AuditEvent?{urlencode(params)}", environ_base=party.environ(),
                                     headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json(force=True)


def test_search_answers_parseable_bundles(hub: Hub, auditor: Party) -> None:
    app = hub[0]
    token = auditor.token(app)
    post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()), party=auditor, token=token)
    post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission()), party=auditor,
              token=auditor.token(app, "xds:query"))   # refused: wrong scope, a security alert

    status, body = search(app, auditor, token, patient=PATIENT, subtype="urn:ihe:event-type-code|ITI-18")
    assert status == 200
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset" and len(bundle.entry) == 1
    event = bundle.entry[0].resource
    assert event.type.code == "110112" and event.subtype[0].code == "ITI-18" and event.outcome == "0"
    requestor = next(a for a in event.agent if a.requestor)
    assert requestor.who.identifier.value == auditor.oid
    assert PATIENT in {e.what.identifier.value for e in event.entity}

    status, body = search(app, auditor, token, outcome="8")
    alerts = Bundle.model_validate(body).entry
    assert [e.resource.type.code for e in alerts] == ["110113"]

    status, body = search(app, auditor, token, date="ge2000-01-01", _count="1")
    first = Bundle.model_validate(body)
    next_link = next(link.url for link in first.link if link.relation == "next")
    second = app.test_client().get(next_link, environ_base=auditor.environ(),
                                   headers={"Authorization": f"Bearer {token}"})
    assert Bundle.model_validate(second.get_json(force=True)).entry[0].resource.id != first.entry[0].resource.id


@pytest.mark.parametrize("params, status", [
    ({"date": "ge-yesterday"}, 400), ({"outcome": "3"}, 400), ({"colour": "blue"}, 400),
    ({"agent": "1.3.6.1.4.1.21367.2026.101"}, 403),
])
def test_bad_searches_are_refused(hub: Hub, auditor: Party, params: dict[str, str], status: int) -> None:
    assert search(hub[0], auditor, auditor.token(hub[0]), **params)[0] == status


def test_without_the_audit_scope_nothing_is_answered(hub: Hub) -> None:
    assert search(hub[0], hub[2], hub[2].token(hub[0]))[0] == 403
