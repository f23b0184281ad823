"""ITI-42 and ITI-18 through the real `xdshub serve` over mutual TLS with OAuth tokens."""

from __future__ import annotations

import uuid

import pytest
import requests

from hub.client import HubClient
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY, ResponseStatus
from tests.functional.conftest import RunningHub
from tests.functional.test_registry_soap import find_documents, submission
from tests.schema_validation import assert_valid

pytestmark = pytest.mark.functional


def test_register_at_one_organisation_find_at_another(running_hub: RunningHub) -> None:
    patient = f"TLS-{uuid.uuid4().hex[:8]}^^^&1.3.6.1.4.1.21367.2026.10&ISO"
    source = HubClient(running_hub.bundle("Org A"), base_url=running_hub.url)
    consumer = HubClient(running_hub.bundle("Org B"), base_url=running_hub.url)
    request = submission(patient=patient)

    answer = source.soap("/xds/registry", ACTION_REGISTER, render_submit_objects_request(request))
    assert answer.status == 200
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.SUCCESS.value

    answer = consumer.soap("/xds/registry", ACTION_STORED_QUERY,
                           render_adhoc_query_request(find_documents(patient)))
    assert_valid(answer.envelope)
    ids = {e.get("value") for e in answer.body.iter("{*}ExternalIdentifier")}
    assert request.document_entries[0].unique_id in ids

    metrics = requests.get(f"{running_hub.url}/metrics", verify=str(running_hub.ca), timeout=10).text
    assert 'xdshub_transactions_total{outcome="success",transaction="ITI-42"}' in metrics
    assert 'xdshub_transactions_total{outcome="success",transaction="ITI-18"}' in metrics


def test_readyz_over_tls(running_hub: RunningHub) -> None:
    response = requests.get(f"{running_hub.url}/readyz", verify=str(running_hub.ca), timeout=10)
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "storage": "ok"}
