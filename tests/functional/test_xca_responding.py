"""The XCA / XCA-I responding gateway through the real `xdshub serve` over mutual TLS.

Org A provides a report (ITI-41) and publishes an imported study (RAD-68); a
peer hub, registered at this hub as an organisation the way `xdshub org add`
does, finds them with ITI-38, retrieves the report with ITI-39 and the
study's instances with RAD-75, every object and document stamped with this
hub's homeCommunityId and every byte compared. Foreign communities, scopes,
the public sample requests, the schemas and the audit trail are checked too.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from lxml import etree

from hub.audit import events
from hub.audit.events import Party
from hub.audit.message import Outcome, render_audit_message
from hub.audit.tables import AuditRecord
from hub.client import HubClient, SoapAnswer, read_answer
from hub.federation.xca import (
    ACTION_CROSS_GATEWAY_QUERY,
    ACTION_CROSS_GATEWAY_QUERY_RESPONSE,
    ACTION_CROSS_GATEWAY_RETRIEVE,
    ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
    ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING_RESPONSE,
    ACTION_CROSS_GATEWAY_RETRIEVE_RESPONSE,
)
from hub.soap.envelope import parse_xml, render_envelope, serialize
from registry.ebrim import render_adhoc_query_request
from registry.model import StoredQuery
from registry.vocabulary import ACTION_STORED_QUERY, ErrorCode, ResponseStatus, ReturnType, StoredQueryId
from repository.consumer import Outgoing, provide
from repository.model import DocumentRequest, ImagingRequest, SeriesRequest, StudyRequest
from repository.xdsb import RetrieveAnswer, parse_retrieve_response, render_imaging_request, render_retrieve_request
from tests.factories.dicom import make_study
from tests.factories.metadata import PDF_BYTES, entry_for, submission
from tests.functional.conftest import RunningHub, audit_records, register, write_study, xdshub_command
from tests.schema_validation import assert_valid, assert_valid_mtom
from tests.unit.hub.audit.test_message import assert_valid as assert_valid_audit

pytestmark = pytest.mark.functional

PEER_OID = "1.3.6.1.4.1.21367.2026.903"          # the peer hub, as an organisation of this hub
FOREIGN = "urn:oid:1.3.6.1.4.1.21367.2026.999"    # a community this hub is not
ISSUER = "1.3.6.1.4.1.21367.2026.77"
APPROVED = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
STAMPED = ("ExtrinsicObject", "RegistryPackage", "Association", "ObjectRef")


@dataclass
class Shared:
    """What Org A put into the hub: a report and a published study."""

    patient_id: str
    report_uid: str
    study_uid: str
    study_patient_id: str
    instances: dict[str, bytes]          # SOP Instance UID -> bytes as imported
    series: dict[str, list[str]]         # series UID -> SOP Instance UIDs
    manifest_uid: str


@pytest.fixture(scope="module")
def peer_bundle(running_hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle `xdshub org add` writes at this hub for a peer hub (what that hub's `peer add` reads)."""
    return register(running_hub.settings, "Peer Hub C", PEER_OID, tmp_path_factory.mktemp("peer") / "bundle")


@pytest.fixture
def peer(running_hub: RunningHub, peer_bundle: Path) -> Iterator[HubClient]:
    with HubClient(peer_bundle, base_url=running_hub.url) as client:
        yield client


@pytest.fixture(scope="module")
def shared(running_hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    folder = tmp_path_factory.mktemp("xca-study")
    with HubClient(running_hub.bundle("Org A"), base_url=running_hub.url) as source:
        patient_id = f"XCA{uuid.uuid4().hex[:8]}^^^&{ISSUER}&ISO"
        report = entry_for(PDF_BYTES, patient_id)
        answer = provide(source, submission(patient_id, entries=[report]),
                         {report.id: Outgoing.of(PDF_BYTES, "application/pdf")})
        assert answer.body.get("status") == ResponseStatus.SUCCESS.value, serialize(answer.envelope)

        datasets = make_study(n_series=2, per_series=2, patient_id=f"S{uuid.uuid4().hex[:8]}", issuer=ISSUER)
        instances, series = write_study(folder, datasets)
        imported = subprocess.run([*xdshub_command(), "import", str(folder), "--org", running_hub.oids["Org A"],
                                   "--data-dir", str(running_hub.data_dir)], capture_output=True, text=True,
                                  timeout=120)
        assert imported.returncode == 0, imported.stderr
        study_uid = str(datasets[0].StudyInstanceUID)
        published = source.api("POST", f"/api/studies/{study_uid}/publish", scope="xds:register")
        assert published.status_code == 201, published.text
    return Shared(patient_id, report.unique_id or "", study_uid, published.json()["patient_id"], instances, series,
                  published.json()["manifest_uid"])


# -- helpers ---------------------------------------------------------------------------------------------------

def query(patient_id: str, query_id: StoredQueryId = StoredQueryId.FIND_DOCUMENTS,
          return_type: ReturnType = ReturnType.LEAF_CLASS, home: str | None = None) -> etree._Element:
    if query_id == StoredQueryId.GET_ALL:
        parameters = {"$patientId": [[f"'{patient_id}'"]], "$XDSDocumentEntryStatus": [[APPROVED]],
                      "$XDSSubmissionSetStatus": [[APPROVED]], "$XDSFolderStatus": [[APPROVED]]}
    else:
        parameters = {"$XDSDocumentEntryPatientId": [[f"'{patient_id}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]}
    return render_adhoc_query_request(StoredQuery(query_id.value, return_type.value, parameters, home=home))


def objects_of(answer: SoapAnswer) -> list[etree._Element]:
    object_list = answer.body.find("{*}RegistryObjectList")
    assert object_list is not None
    return [e for e in object_list if isinstance(e.tag, str)]


def status_of(answer: SoapAnswer) -> str:
    """The status of an AdhocQueryResponse, or of a RetrieveDocumentSetResponse's RegistryResponse."""
    response = answer.body.find("{*}RegistryResponse")
    return (response if response is not None else answer.body).get("status", "")


def error_codes(answer: SoapAnswer) -> list[str]:
    return [e.get("errorCode", "") for e in answer.body.iter("{*}RegistryError")]


@dataclass
class Retrieved:
    answer: SoapAnswer
    parsed: RetrieveAnswer

    def parts(self) -> dict[str, bytes]:
        return {cid: attachment.open().read() for cid, attachment in self.answer.attachments.items()}

    def documents(self) -> dict[str, bytes]:
        parts = self.parts()
        return {d.document_unique_id: parts[d.content_id or ""] for d in self.parsed.documents}


def retrieved(answer: SoapAnswer) -> Retrieved:
    assert answer.status == 200, serialize(answer.envelope)
    return Retrieved(answer, parse_retrieve_response(answer.body))


def imaging(study_uid: str, series: dict[str, list[str]], repository: str, home: str | None) -> ImagingRequest:
    return ImagingRequest((StudyRequest(study_uid, tuple(
        SeriesRequest(series_uid, tuple(DocumentRequest(repository, uid, home) for uid in uids))
        for series_uid, uids in series.items())),), (EXPLICIT_LE,))


def post_raw(hub: RunningHub, client: HubClient, path: str, data: bytes, action: str, scope: str) -> SoapAnswer:
    response = client.http.post(f"{hub.url}{path}", data=data, timeout=30, stream=True, headers={
        "Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"',
        "Authorization": f"Bearer {client.token(scope)}"})
    with response:
        return read_answer(response)


# -- ITI-38 ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("return_type", [ReturnType.LEAF_CLASS, ReturnType.OBJECT_REF])
def test_cross_gateway_query_stamps_home_on_every_object(running_hub: RunningHub, shared: Shared, peer: HubClient,
                                                         return_type: ReturnType) -> None:
    home = running_hub.settings.home_community_id
    answer = peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY,
                       query(shared.patient_id, StoredQueryId.GET_ALL, return_type), scope="xds:query")
    assert answer.status == 200 and answer.action == ACTION_CROSS_GATEWAY_QUERY_RESPONSE
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.SUCCESS.value
    found = objects_of(answer)
    kinds = {etree.QName(e).localname for e in found}
    expected = {"ObjectRef"} if return_type == ReturnType.OBJECT_REF else \
        {"ExtrinsicObject", "RegistryPackage", "Association"}
    assert kinds == expected and len(found) == 3     # submission set, report, HasMember
    assert [e.get("home") for e in found if etree.QName(e).localname in STAMPED] == [home] * len(found)


def test_cross_gateway_query_finds_the_published_manifest(running_hub: RunningHub, shared: Shared,
                                                          peer: HubClient) -> None:
    home = running_hub.settings.home_community_id
    answer = peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY, query(shared.study_patient_id, home=home),
                       scope="xds:query")
    assert_valid(answer.envelope)
    (entry,) = answer.body.iter("{*}ExtrinsicObject")
    assert entry.get("home") == home and entry.get("mimeType") == "application/dicom"
    assert f"{shared.study_uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID".encode() in serialize(entry)


def test_cross_gateway_query_for_another_community_is_unknown_community(running_hub: RunningHub, shared: Shared,
                                                                        peer: HubClient) -> None:
    answer = peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY, query(shared.patient_id, home=FOREIGN),
                       scope="xds:query")
    assert answer.status == 200
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.FAILURE.value
    assert error_codes(answer) == [ErrorCode.UNKNOWN_COMMUNITY.value]
    assert objects_of(answer) == []


# -- ITI-39 ----------------------------------------------------------------------------------------------------

def test_cross_gateway_retrieve_gives_the_document_byte_for_byte(running_hub: RunningHub, shared: Shared,
                                                                 peer: HubClient) -> None:
    home, repository = running_hub.settings.home_community_id, running_hub.settings.repository_unique_id
    got = retrieved(peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, render_retrieve_request(
        [DocumentRequest(repository, shared.report_uid, home)]), scope="xds:retrieve"))
    try:
        assert got.answer.action == ACTION_CROSS_GATEWAY_RETRIEVE_RESPONSE
        assert_valid_mtom(got.answer.envelope, got.parts())
        assert got.parsed.status == ResponseStatus.SUCCESS.value
        assert got.documents() == {shared.report_uid: PDF_BYTES}
        assert [d.home_community_id for d in got.parsed.documents] == [home]
    finally:
        got.answer.close()


def test_cross_gateway_retrieve_refuses_other_communities_one_by_one(running_hub: RunningHub, shared: Shared,
                                                                     peer: HubClient) -> None:
    home, repository = running_hub.settings.home_community_id, running_hub.settings.repository_unique_id
    got = retrieved(peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, render_retrieve_request([
        DocumentRequest(repository, shared.report_uid, home),
        DocumentRequest(repository, "1.2.3.4.5", FOREIGN),
        DocumentRequest(repository, "1.2.3.4.6"),
    ]), scope="xds:retrieve"))
    try:
        assert_valid_mtom(got.answer.envelope, got.parts())
        assert got.parsed.status == ResponseStatus.PARTIAL_SUCCESS.value
        assert got.parsed.error_codes == [ErrorCode.UNKNOWN_COMMUNITY.value, ErrorCode.MISSING_HOME_COMMUNITY_ID.value]
        assert got.documents() == {shared.report_uid: PDF_BYTES}
    finally:
        got.answer.close()

    only_foreign = retrieved(peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, render_retrieve_request(
        [DocumentRequest(repository, shared.report_uid, FOREIGN)]), scope="xds:retrieve"))
    assert_valid(only_foreign.answer.envelope)
    assert only_foreign.parsed.status == ResponseStatus.FAILURE.value
    assert only_foreign.parsed.error_codes == [ErrorCode.UNKNOWN_COMMUNITY.value]
    assert only_foreign.parsed.documents == []


# -- RAD-75 ----------------------------------------------------------------------------------------------------

def test_cross_gateway_retrieve_imaging_gives_every_instance(running_hub: RunningHub, shared: Shared,
                                                             peer: HubClient) -> None:
    home, repository = running_hub.settings.home_community_id, running_hub.settings.repository_unique_id
    got = retrieved(peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING, render_imaging_request(
        imaging(shared.study_uid, shared.series, repository, home)), scope="xds:retrieve"))
    try:
        assert got.answer.action == ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING_RESPONSE
        assert_valid_mtom(got.answer.envelope, got.parts())
        assert got.parsed.status == ResponseStatus.SUCCESS.value
        assert got.documents() == shared.instances
        assert {d.home_community_id for d in got.parsed.documents} == {home}
    finally:
        got.answer.close()


def test_cross_gateway_retrieve_imaging_refuses_another_community(running_hub: RunningHub, shared: Shared,
                                                                  peer: HubClient) -> None:
    home, repository = running_hub.settings.home_community_id, running_hub.settings.repository_unique_id
    (first_series, uids), *_ = shared.series.items()
    request = imaging(shared.study_uid, {first_series: uids}, repository, home)
    foreign = imaging(shared.study_uid, {first_series: ["1.2.3.4.7"]}, repository, FOREIGN)
    mixed = ImagingRequest(request.studies + foreign.studies, request.transfer_syntaxes)
    got = retrieved(peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
                              render_imaging_request(mixed), scope="xds:retrieve"))
    try:
        assert_valid_mtom(got.answer.envelope, got.parts())
        assert got.parsed.status == ResponseStatus.PARTIAL_SUCCESS.value
        assert got.parsed.error_codes == [ErrorCode.UNKNOWN_COMMUNITY.value]
        assert got.documents() == {uid: shared.instances[uid] for uid in uids}
    finally:
        got.answer.close()


# -- security --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "action", "body", "granted", "needed"), [
    ("/xca/query", ACTION_CROSS_GATEWAY_QUERY, lambda: query("P^^^&1.2.3&ISO"), "xds:retrieve", "xds:query"),
    ("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE,
     lambda: render_retrieve_request([DocumentRequest("1.2.3", "1.2.3.4")]), "xds:query", "xds:retrieve"),
    ("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING,
     lambda: render_imaging_request(imaging("1.2.3", {"1.2.3.1": ["1.2.3.1.1"]}, "1.2.3", None)), "xds:query",
     "xds:retrieve"),
])
def test_each_action_needs_its_scope(running_hub: RunningHub, peer: HubClient, path: str, action: str,
                                     body: object, granted: str, needed: str) -> None:
    data = serialize(render_envelope(action, body()))   # type: ignore[operator]
    answer = post_raw(running_hub, peer, path, data, action, granted)
    assert answer.status == 403
    assert_valid(answer.envelope)
    assert needed in serialize(answer.envelope).decode()


def test_an_xds_action_is_not_served_at_the_gateway(running_hub: RunningHub, peer: HubClient) -> None:
    data = serialize(render_envelope(ACTION_STORED_QUERY, query("P^^^&1.2.3&ISO")))
    answer = post_raw(running_hub, peer, "/xca/query", data, ACTION_STORED_QUERY, "xds:query")
    assert answer.status == 400
    assert_valid(answer.envelope)
    assert answer.envelope.findtext(".//{*}Subcode/{*}Value") == "a:ActionNotSupported"


@pytest.mark.parametrize("path", ["/xca/query", "/xca/retrieve"])
def test_the_gateway_refuses_a_caller_without_certificate(running_hub: RunningHub, path: str) -> None:
    response = requests.post(f"{running_hub.url}{path}", data=b"x", timeout=30, verify=str(running_hub.ca),
                             headers={"Content-Type": "application/soap+xml"})
    assert response.status_code == 401


# -- the public sample requests, as they are ----------------------------------------------------------------------

def _sample(name: str) -> bytes:
    from tests.conftest import require_samples

    return (require_samples() / name).read_bytes()


@pytest.mark.samples
@pytest.mark.parametrize(("sample", "path", "action", "scope", "expected"), [
    # IHE's skeleton: an empty AdhocQueryRequest (no AdhocQuery), a metadata error.
    ("iti38/ihe-XCA-query-request.xml", "/xca/query", ACTION_CROSS_GATEWAY_QUERY, "xds:query",
     [ErrorCode.REGISTRY_METADATA_ERROR.value]),
    # Both retrieve samples ask other communities (urn:oid:1.2.3.4, urn:oid:1.2.3.5) for two documents each.
    ("iti39/ihe-XCA-retrieve-request.xml", "/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, "xds:retrieve",
     [ErrorCode.UNKNOWN_COMMUNITY.value] * 2),
    ("iti39/nist-soap-xcr-req.xml", "/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, "xds:retrieve",
     [ErrorCode.UNKNOWN_COMMUNITY.value] * 2),
])
def test_sample_envelopes_get_gateway_answers(running_hub: RunningHub, peer: HubClient, sample: str, path: str,
                                              action: str, scope: str, expected: list[str]) -> None:
    answer = post_raw(running_hub, peer, path, _sample(sample), action, scope)
    assert answer.status == 200, serialize(answer.envelope)
    assert_valid(answer.envelope)
    assert status_of(answer) == ResponseStatus.FAILURE.value
    assert error_codes(answer) == expected


@pytest.mark.samples
def test_nist_query_sample_without_message_id_is_refused_and_its_body_answered(running_hub: RunningHub,
                                                                               peer: HubClient) -> None:
    # WS-Addressing 1.0 core 3.4 and ITI TF-2x V.3.1: a request expecting a reply carries a MessageID
    # (the registry refuses the ITI-18 NIST sample the same way).
    raw = _sample("iti38/nist-soap-xcq-req.xml")
    refused = post_raw(running_hub, peer, "/xca/query", raw, ACTION_CROSS_GATEWAY_QUERY, "xds:query")
    assert refused.status == 400
    assert_valid(refused.envelope)
    assert refused.envelope.findtext(".//{*}Subcode/{*}Value") == "a:MessageAddressingHeaderRequired"
    # Its FindDocuments, in a complete envelope: a patient nobody registered, so Success and no objects.
    body = parse_xml(raw).find(".//{*}AdhocQueryRequest")
    assert body is not None
    answer = peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY, body, scope="xds:query")
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.SUCCESS.value and objects_of(answer) == []


@pytest.mark.samples
@pytest.mark.parametrize("sample", ["iti39/ihe-XCA-retrieve-request.xml", "iti39/nist-soap-xcr-req.xml",
                                    "rad69/nist-rad69-request-with-homeCommunityId.xml"])
def test_sample_bodies_for_this_community_name_the_unknown_documents(running_hub: RunningHub, peer: HubClient,
                                                                      sample: str) -> None:
    root = parse_xml(_sample(sample))
    body = root if not root.tag.endswith("Envelope") else next(iter(root.find("{*}Body")))  # type: ignore[arg-type]
    for home in body.iter("{urn:ihe:iti:xds-b:2007}HomeCommunityId"):
        home.text = running_hub.settings.home_community_id
    action = ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING if sample.startswith("rad69") else ACTION_CROSS_GATEWAY_RETRIEVE
    answer = peer.mtom("/xca/retrieve", action, body, scope="xds:retrieve")
    assert answer.status == 200
    assert_valid(answer.envelope)
    assert status_of(answer) == ResponseStatus.FAILURE.value
    codes = set(error_codes(answer))
    # The samples' repositories are not this one (XDSUnknownRepositoryId), unless one happens to be.
    assert codes <= {ErrorCode.UNKNOWN_REPOSITORY_ID.value, ErrorCode.MISSING_DOCUMENT.value} and codes


# -- audit -----------------------------------------------------------------------------------------------------

def test_each_transaction_is_audited_by_the_responding_gateway(running_hub: RunningHub, shared: Shared,
                                                               peer: HubClient) -> None:
    home, repository = running_hub.settings.home_community_id, running_hub.settings.repository_unique_id
    peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY, query(shared.patient_id), scope="xds:query")
    peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE, render_retrieve_request(
        [DocumentRequest(repository, shared.report_uid, home)]), scope="xds:retrieve").close()
    (first_series, uids), *_ = shared.series.items()
    peer.mtom("/xca/retrieve", ACTION_CROSS_GATEWAY_RETRIEVE_IMAGING, render_imaging_request(
        imaging(shared.study_uid, {first_series: uids}, repository, home)), scope="xds:retrieve").close()
    peer.soap("/xca/query", ACTION_CROSS_GATEWAY_QUERY, query(shared.patient_id, home=FOREIGN), scope="xds:query")

    trail = audit_records(running_hub, organisation_oid=PEER_OID)
    by_type: dict[str, list[AuditRecord]] = {}
    for record in trail:
        by_type.setdefault(record.event_type, []).append(record)
    assert {"ITI-38", "ITI-39", "RAD-75"} <= set(by_type)
    for record in trail:
        assert_valid_audit(record.message.encode())
    report = [r for r in by_type["ITI-39"] if shared.report_uid in r.message]
    assert report and all(r.event_id == "110106" and r.patient_id == shared.patient_id for r in report)
    assert base64.b64encode(home.encode()).decode() in report[-1].message   # ihe:homeCommunityID detail
    assert any(r.study_uid == shared.study_uid and r.event_id == "110106" for r in by_type["RAD-75"])
    queries = [r for r in by_type["ITI-38"] if r.patient_id == shared.patient_id]
    assert {r.outcome for r in queries} >= {int(Outcome.SUCCESS), int(Outcome.MINOR_FAILURE)}
    assert all(r.event_id == "110112" for r in queries)


@pytest.mark.schemas
@pytest.mark.parametrize(("transaction", "build"), [
    ("ITI-38", lambda party, hub: events.stored_query(
        requestor=party, hub=hub, outcome=Outcome.SUCCESS, time=datetime.now(UTC), source_id="https://hub",
        query_id=StoredQueryId.FIND_DOCUMENTS.value, query_xml=b"<q/>", patient_id="P^^^&1.2.3&ISO",
        home_community_id=FOREIGN, transaction="ITI-38")),
    ("ITI-39", lambda party, hub: events.retrieve(
        requestor=party, hub=hub, outcome=Outcome.MINOR_FAILURE, time=datetime.now(UTC), source_id="https://hub",
        documents=[("1.2.3.4", "1.2.3", FOREIGN)], patient_id="P^^^&1.2.3&ISO", transaction="ITI-39")),
    ("RAD-75", lambda party, hub: events.retrieve_imaging(
        requestor=party, hub=hub, outcome=Outcome.SUCCESS, time=datetime.now(UTC), source_id="https://hub",
        studies=[("1.2.3", [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.1.1")])], patient_id=None,
        transaction="RAD-75")),
])
def test_responding_gateway_audit_messages_are_valid(transaction: str, build: object) -> None:
    event = build(Party(PEER_OID, "192.0.2.1", "Peer Hub C", "client-c"),   # type: ignore[operator]
                  Party("https://hub/xca/retrieve", "hub"))
    root = etree.fromstring(render_audit_message(event))
    assert_valid_audit(root)
    assert root.find("EventIdentification/EventTypeCode").get("csd-code") == transaction  # type: ignore[union-attr]


def test_audit_builders_refuse_a_transaction_they_do_not_describe() -> None:
    party = Party(PEER_OID)
    with pytest.raises(ValueError, match="ITI-39"):
        events.stored_query(requestor=party, hub=party, outcome=Outcome.SUCCESS, time=datetime.now(UTC),
                            source_id="s", query_id="q", query_xml=b"", patient_id=None, home_community_id=None,
                            transaction="ITI-39")
    with pytest.raises(ValueError, match="RAD-75"):
        events.retrieve(requestor=party, hub=party, outcome=Outcome.SUCCESS, time=datetime.now(UTC), source_id="s",
                        documents=[], patient_id=None, transaction="RAD-75")
