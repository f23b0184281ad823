"""The registry endpoint as a consumer sees it: SOAP 1.2 in, schema-valid SOAP out.

Runs the whole app (security, SOAP codec, registry, database) through Flask's
test client with the verified client certificate placed in the WSGI environ
exactly where the TLS server puts it; tests/functional/test_mtls.py and
test_registry_tls.py cover the same path through the real HTTPS server.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hub.db import Database
from registry.builders import DocumentSpec, document_entry, has_member, submission_set
from registry.ebrim import render_adhoc_query_request, render_submit_objects_request
from registry.model import Code, StoredQuery, SubmitObjectsRequest
from registry.tables import RegistryObjectRow
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY, ResponseStatus, StoredQueryId
from tests.functional.soap_support import Party, app_with_two_parties, body_of, error_codes, fault_reason, post_soap
from tests.schema_validation import assert_valid

PATIENT = "PAT-7^^^&1.3.6.1.4.1.21367.2026.10&ISO"
APPROVED = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[Flask, Database, Party, Party]]:
    with app_with_two_parties(tmp_path / "hub", database_url, "xds:query xds:register",
                              max_body_bytes=256 * 1024) as opened:
        yield opened


def submission(patient: str = PATIENT, confidentiality: str = "N", unique_id: str | None = None
               ) -> SubmitObjectsRequest:
    content = b"report"
    entry = document_entry(DocumentSpec(
        unique_id=unique_id or f"2.25.{uuid.uuid4().int}", patient_id=patient,
        hash=hashlib.sha1(content).hexdigest(), size=len(content), repository_unique_id="1.2.3.4",
        confidentiality=(Code(confidentiality, "2.16.840.1.113883.5.25"),)))
    package = submission_set(f"2.25.{uuid.uuid4().int}", patient, "1.3.6.1.4.1.21367.2026.101", "20261128120000")
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)])


def find_documents(patient: str = PATIENT, return_type: str = "LeafClass") -> StoredQuery:
    return StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, return_type, {
        "$XDSDocumentEntryPatientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]})


def count_objects(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(RegistryObjectRow)) or 0)


def test_register_then_query_round_trip(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, org_b = hub
    request = submission()
    status, envelope, _ = post_soap(app, ACTION_REGISTER, render_submit_objects_request(request),
                                    party=org_a, token=org_a.token(app))
    assert status == 200
    assert_valid(envelope)
    assert body_of(envelope).get("status") == ResponseStatus.SUCCESS.value
    assert count_objects(database) == 3

    status, envelope, _ = post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()),
                                    party=org_b, token=org_b.token(app))
    assert status == 200
    assert_valid(envelope)
    found = body_of(envelope).findall(".//{*}ExtrinsicObject")
    assert [e.find("{*}ExternalIdentifier[@value]") is not None for e in found] == [True]
    unique_ids = {i.get("value") for i in body_of(envelope).iter("{*}ExternalIdentifier")}
    assert request.document_entries[0].unique_id in unique_ids

    _, envelope, _ = post_soap(app, ACTION_STORED_QUERY,
                               render_adhoc_query_request(find_documents(return_type="ObjectRef")),
                               party=org_b, token=org_b.token(app))
    assert_valid(envelope)
    assert len(body_of(envelope).findall(".//{*}ObjectRef")) == 1


def test_restricted_entries_are_seen_only_by_their_submitter(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, org_b = hub
    post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission(confidentiality="R")),
              party=org_a, token=org_a.token(app))
    query = render_adhoc_query_request(find_documents())
    _, mine, _ = post_soap(app, ACTION_STORED_QUERY, query, party=org_a, token=org_a.token(app))
    _, theirs, _ = post_soap(app, ACTION_STORED_QUERY, query, party=org_b, token=org_b.token(app))
    assert len(body_of(mine).findall(".//{*}ExtrinsicObject")) == 1
    assert body_of(theirs).findall(".//{*}ExtrinsicObject") == []


def test_duplicate_unique_id_is_refused_and_nothing_changes(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, _ = hub
    token = org_a.token(app)
    post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission(unique_id="2.25.777")),
              party=org_a, token=token)
    before = count_objects(database)
    status, envelope, _ = post_soap(app, ACTION_REGISTER,
                                    render_submit_objects_request(submission(unique_id="2.25.777")),
                                    party=org_a, token=token)
    assert status == 200
    assert_valid(envelope)
    assert body_of(envelope).get("status") == ResponseStatus.FAILURE.value
    assert error_codes(envelope) == ["XDSDuplicateUniqueIdInRegistry"]
    assert count_objects(database) == before


def test_malformed_patient_id_gets_a_registry_error(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, _ = hub
    status, envelope, _ = post_soap(app, ACTION_REGISTER,
                                    render_submit_objects_request(submission(patient="not-a-cx-id")),
                                    party=org_a, token=org_a.token(app))
    assert status == 200
    assert_valid(envelope)
    assert "XDSRegistryMetadataError" in error_codes(envelope)
    assert count_objects(database) == 0


def test_unknown_stored_query(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, _ = hub
    query = StoredQuery("urn:uuid:00000000-0000-0000-0000-000000000000", "LeafClass", {})
    _, envelope, _ = post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(query), party=org_a,
                               token=org_a.token(app))
    assert_valid(envelope)
    assert error_codes(envelope) == ["XDSUnknownStoredQuery"]


# -- security on the SOAP path: 401 / 403 as SOAP faults ------------------------------------------

def test_no_certificate_is_401(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, _ = hub
    status, envelope, headers = post_soap(app, ACTION_STORED_QUERY,
                                          render_adhoc_query_request(find_documents()), party=None,
                                          token=org_a.token(app))
    assert status == 401
    assert_valid(envelope)
    assert "Bearer" in headers["WWW-Authenticate"]


def test_no_token_is_401(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, _ = hub
    status, envelope, _ = post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()),
                                    party=org_a, token=None)
    assert status == 401
    assert_valid(envelope)


def test_wrong_scope_is_403(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, _ = hub
    status, envelope, _ = post_soap(app, ACTION_REGISTER, render_submit_objects_request(submission()),
                                    party=org_a, token=org_a.token(app, "xds:query"))
    assert status == 403
    assert_valid(envelope)
    assert "xds:register" in fault_reason(envelope)
    assert count_objects(database) == 0


def test_token_presented_with_another_certificate_is_403(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, org_b = hub
    status, envelope, _ = post_soap(app, ACTION_STORED_QUERY, render_adhoc_query_request(find_documents()),
                                    party=org_b, token=org_a.token(app))
    assert status == 403
    assert_valid(envelope)


# -- bad input: a clear fault, no stack trace, nothing stored -------------------------------------

def test_external_entity_is_refused(hub: tuple[Flask, Database, Party, Party], tmp_path: Path) -> None:
    app, database, org_a, _ = hub
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    raw = (f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
           'xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
           f'<a:Action>{ACTION_REGISTER}</a:Action><a:MessageID>urn:uuid:1</a:MessageID></s:Header>'
           '<s:Body><x>&x;</x></s:Body></s:Envelope>').encode()
    status, envelope, _ = post_soap(app, ACTION_REGISTER, party=org_a, token=org_a.token(app), raw=raw)
    assert status == 400
    assert_valid(envelope)
    assert "TOP-SECRET" not in fault_reason(envelope)
    assert count_objects(database) == 0


def test_body_over_the_limit_is_413(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, database, org_a, _ = hub
    raw = b"<x>" + b"a" * (300 * 1024) + b"</x>"
    status, envelope, _ = post_soap(app, ACTION_REGISTER, party=org_a, token=org_a.token(app), raw=raw)
    assert status == 413
    assert_valid(envelope)
    assert count_objects(database) == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "reason"),
    [
        (b"not xml at all", None, 400, "not well-formed"),
        (b"<e:Envelope xmlns:e='http://schemas.xmlsoap.org/soap/envelope/'><e:Body/></e:Envelope>",
         "text/xml", 400, "SOAP 1.1"),
        (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><x/></s:Body></s:Envelope>",
         None, 400, "Action header is required"),
    ],
    ids=["not-xml", "soap-1.1", "no-ws-addressing"],
)
def test_malformed_requests_get_faults(hub: tuple[Flask, Database, Party, Party], raw: bytes,
                                       content_type: str | None, status: int, reason: str) -> None:
    app, database, org_a, _ = hub
    got, envelope, _ = post_soap(app, ACTION_REGISTER, party=org_a, token=org_a.token(app), raw=raw,
                                 content_type=content_type)
    assert got == status
    assert_valid(envelope)
    assert reason in fault_reason(envelope)
    assert count_objects(database) == 0


def test_unknown_action_is_action_not_supported(hub: tuple[Flask, Database, Party, Party]) -> None:
    app, _, org_a, _ = hub
    from lxml import etree

    status, envelope, _ = post_soap(app, "urn:example:Nope", etree.Element("{urn:x}Nope"), party=org_a,
                                    token=org_a.token(app))
    assert status == 400
    assert_valid(envelope)
    assert envelope.findtext(".//{*}Subcode/{*}Value") == "a:ActionNotSupported"


# -- the real sample requests, sent as they are --------------------------------------------------

def _sample(name: str) -> bytes:
    from tests.conftest import require_samples

    return (require_samples() / name).read_bytes()


@pytest.mark.parametrize(
    ("sample", "action", "expected"),
    [
        # IHE's example FindDocuments: its patient id value is not quoted (ITI TF-2a 3.18.4.1.2.3.5
        # requires 'quotes'), so the registry answers XDSRegistryMetadataError rather than guess.
        ("iti18/ihe-StoredQuery-request-soap.xml", ACTION_STORED_QUERY, "XDSRegistryMetadataError"),
        # IHE's example ITI-42: short-form association type and a sourceId that is not an OID,
        # both refused as metadata errors (details in tests/unit/registry/test_samples.py).
        ("iti42/ihe-RegisterDocumentSet-request-soap.xml", ACTION_REGISTER, "XDSRegistryMetadataError"),
    ],
)
def test_sample_envelopes_get_registry_answers(hub: tuple[Flask, Database, Party, Party], sample: str,
                                               action: str, expected: str) -> None:
    app, database, org_a, _ = hub
    status, envelope, _ = post_soap(app, action, party=org_a, token=org_a.token(app), raw=_sample(sample))
    assert status == 200
    assert_valid(envelope)
    assert expected in error_codes(envelope)
    assert count_objects(database) == 0


def test_nist_query_without_message_id_is_refused(hub: tuple[Flask, Database, Party, Party]) -> None:
    # WS-Addressing 1.0 core 3.4 and ITI TF-2x V.3.1: a request expecting a reply carries a MessageID.
    app, _, org_a, _ = hub
    status, envelope, _ = post_soap(app, ACTION_STORED_QUERY, party=org_a, token=org_a.token(app),
                                    raw=_sample("iti18/nist-soap-sq-req.xml"))
    assert status == 400
    assert_valid(envelope)
    assert envelope.findtext(".//{*}Subcode/{*}Value") == "a:MessageAddressingHeaderRequired"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("iti18/nist-sq-req-bad-pid-format.xml", ["XDSRegistryMetadataError"]),
        # The NIST query body inside a complete envelope: valid, nothing registered, so no results.
        ("iti18/nist-soap-sq-req.xml", []),
    ],
)
def test_sample_query_bodies(hub: tuple[Flask, Database, Party, Party], sample: str, expected: list[str]) -> None:
    app, _, org_a, _ = hub
    from hub.soap.envelope import parse_xml

    root = parse_xml(_sample(sample))
    body = root if root.tag.endswith("AdhocQueryRequest") else root.find(".//{*}AdhocQueryRequest")
    status, envelope, _ = post_soap(app, ACTION_STORED_QUERY, body, party=org_a, token=org_a.token(app))
    assert status == 200
    assert_valid(envelope)
    assert error_codes(envelope) == expected
    assert body_of(envelope).get("status") == (ResponseStatus.FAILURE if expected else ResponseStatus.SUCCESS).value
