"""Retrieve forwarding inside one affinity domain: the [repositories] table, and ITI-43 / RAD-69 sent on.

The far hub is a fake transport here (tests/functional/test_repository_forwarding.py runs two real hubs):
each test hands the Forwarder the answer, or the exception, a real HubClient would give.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from lxml import etree

from hub.client import SoapAnswer
from hub.db import Database
from hub.errors import MissingDocument, SenderFault, XdsError
from hub.security.identity import Caller
from hub.settings import Settings, load_settings
from hub.soap.envelope import NS_SOAP12, render_envelope
from hub.soap.mtom import Attachment, OutgoingPart
from registry.ebrim import render_registry_response
from registry.transactions.iti42_register import register_document_set
from registry.vocabulary import ErrorCode, ResponseStatus
from repository.blobstore import BlobStore
from repository.forwarding import Forwarder, Route, RouteError, repository_routes
from repository.model import DocumentRequest, ImagingRequest, RetrievedDocument, RetrieveResult
from repository.transactions.iti43_retrieve import retrieve_documents
from repository.transactions.rad69_retrieve_imaging import retrieve_imaging
from repository.vocabulary import ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING, ACTION_RETRIEVE_RESPONSE
from repository.xdsb import parse_imaging_request, parse_retrieve_request, render_retrieve_response
from tests.factories.metadata import PATIENT, PDF_BYTES, entry_for, submission
from tests.unit.repository.conftest import Provide

FAR = "1.3.6.1.4.1.21367.2026.2.1"
FARTHER = "1.3.6.1.4.1.21367.2026.3.1"
UNMAPPED = "1.3.6.1.4.1.21367.2026.4.1"
HOME = "urn:oid:1.3.6.1.4.1.21367.2026.1"
BUNDLE_FILES = ("client.crt", "client.key", "ca.crt")


def make_bundle(folder: Path, base_url: str = "https://far.example:8443") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        (folder / name).write_text("PEM")
    (folder / "client.json").write_text(json.dumps({"base_url": base_url, "client_id": "c", "client_secret": "s"}))
    return folder


def with_table(settings: Settings, table: Any) -> Settings:
    return replace(settings, extra={"repositories": table})


# -- the [repositories] table -----------------------------------------------------------------------------------

def test_routes_resolve_bundles_against_the_data_dir(tmp_path: Path) -> None:
    make_bundle(tmp_path / "peers" / "far", base_url="https://far.example:8443/")
    make_bundle(tmp_path / "elsewhere" / "farther")
    (tmp_path / "hub.toml").write_text(
        f'[repositories."{FAR}"]\nbundle = "peers/far"\n\n'
        f'[repositories."{FARTHER}"]\nurl = "https://farther.example:9443/"\n'
        f'bundle = "{tmp_path / "elsewhere" / "farther"}"\ntimeout = 5\n')
    routes = repository_routes(load_settings(tmp_path, environ={}))
    assert routes == {
        FAR: Route(FAR, "https://far.example:8443", tmp_path / "peers" / "far", 30.0),
        FARTHER: Route(FARTHER, "https://farther.example:9443", tmp_path / "elsewhere" / "farther", 5.0),
    }


def test_no_table_no_routes(settings: Settings) -> None:
    assert repository_routes(settings) == {}


@pytest.mark.parametrize(("table", "complaint"), [
    ("not a table", "must be a table of tables"),
    ({"not-an-oid": {"bundle": "far"}}, "must be a repositoryUniqueId"),
    ({"1.3.6.1.4.1.21367.2026.1.1": {"bundle": "far"}}, "this hub's own repositoryUniqueId"),
    ({FAR: "https://far.example"}, "must be a table with bundle"),
    ({FAR: {"bundle": "far", "urll": "https://far.example"}}, "unknown key(s) urll"),
    ({FAR: {"url": "https://far.example"}}, "bundle must name a folder"),
    ({FAR: {"bundle": "nowhere"}}, "lacks client.crt, client.key, ca.crt, client.json"),
    ({FAR: {"bundle": "far", "url": "http://far.example"}}, "must be an https:// base URL"),
    ({FAR: {"bundle": "far", "url": "https://far.example/?x=1"}}, "must be an https:// base URL"),
    ({FAR: {"bundle": "far", "url": 8443}}, "url must be a string"),
    ({FAR: {"bundle": "far", "timeout": 0}}, "timeout must be a number of seconds"),
    ({FAR: {"bundle": "far", "timeout": "30"}}, "timeout must be a number of seconds"),
    ({FAR: {"bundle": "far", "timeout": True}}, "timeout must be a number of seconds"),
])
def test_a_malformed_entry_is_named(settings: Settings, table: Any, complaint: str) -> None:
    make_bundle(settings.data_dir / "far")
    with pytest.raises(RouteError) as raised:
        repository_routes(with_table(settings, table))
    assert complaint in str(raised.value)
    if isinstance(table, dict):
        assert f'[repositories."{next(iter(table))}"]' in str(raised.value)


def test_without_url_the_bundle_must_name_one(settings: Settings) -> None:
    folder = make_bundle(settings.data_dir / "far")
    (folder / "client.json").write_text("{}")
    with pytest.raises(RouteError, match="no url, and .*client.json names no base_url"):
        repository_routes(with_table(settings, {FAR: {"bundle": "far"}}))


# -- a fake far hub ---------------------------------------------------------------------------------------------

def spooled(content_id: str, data: bytes) -> Attachment:
    file = tempfile.TemporaryFile()
    file.write(data)
    return Attachment(content_id, "application/octet-stream", len(data), file, sha1="", sha256="")


def far_answer(repository: str, documents: dict[str, bytes], errors: list[XdsError] | None = None,
               mime_type: str = "application/pdf", extra_parts: dict[str, bytes] | None = None) -> SoapAnswer:
    """What a far repository answers: a RetrieveDocumentSetResponse and its MTOM parts, spooled."""
    answered = [RetrievedDocument(repository, uid, mime_type, len(data), io.BytesIO) for uid, data in
                documents.items()]
    content_ids = [f"part{n}@far" for n in range(len(answered))]
    body = render_retrieve_response(RetrieveResult(answered, errors or []), content_ids)
    parts = {cid: spooled(cid, data) for cid, data in zip(content_ids, documents.values(), strict=True)}
    parts.update({cid: spooled(cid, data) for cid, data in (extra_parts or {}).items()})
    return SoapAnswer(200, render_envelope(ACTION_RETRIEVE_RESPONSE, body), parts)


@dataclass
class FarHub:
    """A transport standing in for HubClient: records each call, answers with `reply`."""

    reply: Callable[[str, str, etree._Element], SoapAnswer] | BaseException
    calls: list[tuple[str, str, etree._Element, str | None]] = field(default_factory=list)
    closed: int = 0

    def mtom(self, path: str, action: str, body: etree._Element, parts: tuple[OutgoingPart, ...] = (),
             scope: str | None = None) -> SoapAnswer:
        self.calls.append((path, action, body, scope))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply(path, action, body)

    def close(self) -> None:
        self.closed += 1


def route(repository: str, timeout: float = 30.0) -> Route:
    return Route(repository, f"https://{repository}.example:8443", Path(f"/bundles/{repository}"), timeout)


def forwarder(hubs: dict[str, FarHub]) -> Forwarder:
    return Forwarder({rid: route(rid) for rid in hubs}, HOME, connect=lambda r: hubs[r.repository_unique_id])


def read_all(result: RetrieveResult) -> dict[str, bytes]:
    contents = {}
    for document in result.documents:
        with document.open() as stream:
            contents[document.document_unique_id] = stream.read()
        assert document.size == len(contents[document.document_unique_id])
    return contents


def codes(result: RetrieveResult) -> list[tuple[str, str]]:
    return [(e.code.value, e.location) for e in result.errors]


# -- ITI-43 ---------------------------------------------------------------------------------------------------

def test_documents_are_asked_per_repository_and_streamed_from_the_spooled_parts() -> None:
    answers: list[SoapAnswer] = []

    def answer(repository: str) -> Callable[[str, str, etree._Element], SoapAnswer]:
        def reply(path: str, action: str, body: etree._Element) -> SoapAnswer:
            asked = parse_retrieve_request(body)
            answers.append(far_answer(repository, {r.document_unique_id: f"{r.document_unique_id} bytes".encode()
                                                   for r in asked}))
            return answers[-1]
        return reply

    hubs = {FAR: FarHub(answer(FAR)), FARTHER: FarHub(answer(FARTHER))}
    result = forwarder(hubs).retrieve([DocumentRequest(FAR, "1.1", HOME), DocumentRequest(FARTHER, "2.1"),
                                       DocumentRequest(FAR, "1.2")])
    assert result.status == ResponseStatus.SUCCESS
    assert read_all(result) == {"1.1": b"1.1 bytes", "1.2": b"1.2 bytes", "2.1": b"2.1 bytes"}
    # one ITI-43 per repository, as this hub (scope xds:retrieve), without the consumer's HomeCommunityId
    (path, action, body, scope), = hubs[FAR].calls
    assert (path, action, scope) == ("/xds/repository", ACTION_RETRIEVE, "xds:retrieve")
    assert parse_retrieve_request(body) == [DocumentRequest(FAR, "1.1"), DocumentRequest(FAR, "1.2")]
    assert [r.document_unique_id for r in parse_retrieve_request(hubs[FARTHER].calls[0][2])] == ["2.1"]
    # the answer names this hub's community where the consumer named one
    assert {d.document_unique_id: d.home_community_id for d in result.documents} == \
        {"1.1": HOME, "1.2": None, "2.1": None}
    # streamed once, the spooled files are gone; releasing again is harmless
    result.release()
    assert all(a.file.closed for answer in answers for a in answer.attachments.values())


def test_a_client_is_kept_for_the_next_call_and_dropped_after_a_failure() -> None:
    made: list[FarHub] = []

    def connect(r: Route) -> FarHub:
        made.append(FarHub(lambda path, action, body: far_answer(FAR, {"1.1": b"x"})))
        return made[-1]

    forward = Forwarder({FAR: route(FAR)}, HOME, connect=connect)
    for _ in range(2):
        forward.retrieve([DocumentRequest(FAR, "1.1")]).release()
    assert len(made) == 1 and made[0].closed == 0
    made[0].reply = requests.ConnectionError("refused")
    forward.retrieve([DocumentRequest(FAR, "1.1")])
    assert made[0].closed == 1
    forward.retrieve([DocumentRequest(FAR, "1.1")]).release()
    assert len(made) == 2


def ssl_error() -> requests.exceptions.SSLError:
    return requests.exceptions.SSLError("certificate verify failed: unable to get local issuer certificate")


def token_refused() -> requests.HTTPError:
    response = requests.Response()
    response.status_code = 401
    return requests.HTTPError("401 Client Error", response=response)


@pytest.mark.parametrize(("failure", "reason"), [
    (requests.exceptions.ConnectionError("Connection refused"), "cannot be reached: Connection refused"),
    (ssl_error(), "the TLS handshake with https://1.3.6.1.4.1.21367.2026.2.1.example:8443 failed"),
    (requests.exceptions.ConnectTimeout("slow"), "did not answer within 30 s"),
    (urllib3.exceptions.ReadTimeoutError(None, "/xds/repository", "read timed out"), "did not answer within 30 s"),
    (token_refused(), "refused this hub's token request (HTTP 401"),
    (SenderFault("multipart body is truncated: the stream ends inside part 2"),
     "answered a malformed message: multipart body is truncated"),
    (urllib3.exceptions.ProtocolError("Connection broken"), "the connection to"),
    (KeyError("access_token"), "answered something unusable: KeyError"),
])
def test_a_far_hub_failing_makes_each_of_its_documents_a_repository_error(failure: Exception,
                                                                           reason: str) -> None:
    hubs = {FAR: FarHub(failure), FARTHER: FarHub(lambda path, action, body: far_answer(FARTHER, {"2.1": b"ok"}))}
    result = forwarder(hubs).retrieve([DocumentRequest(FAR, "1.1"), DocumentRequest(FAR, "1.2"),
                                       DocumentRequest(FARTHER, "2.1")])
    assert result.status == ResponseStatus.PARTIAL_SUCCESS
    assert read_all(result) == {"2.1": b"ok"}
    assert codes(result) == [("XDSRepositoryError", "1.1"), ("XDSRepositoryError", "1.2")]
    for error in result.errors:
        assert error.message.startswith(f"repository {FAR}: ")
        assert reason in error.message


def fault_answer() -> SoapAnswer:
    fault = etree.Element(f"{{{NS_SOAP12}}}Fault")
    code = etree.SubElement(fault, f"{{{NS_SOAP12}}}Code")
    etree.SubElement(code, f"{{{NS_SOAP12}}}Value").text = "s:Sender"
    reason = etree.SubElement(fault, f"{{{NS_SOAP12}}}Reason")
    etree.SubElement(reason, f"{{{NS_SOAP12}}}Text").text = "token expired"
    return SoapAnswer(401, render_envelope("http://www.w3.org/2005/08/addressing/soap/fault", fault))


def bodiless_answer() -> SoapAnswer:
    envelope = render_envelope(ACTION_RETRIEVE_RESPONSE, None)
    return SoapAnswer(200, envelope)


@pytest.mark.parametrize(("answer", "reason"), [
    (fault_answer, "answered HTTP 401 with a SOAP fault: token expired"),
    (lambda: SoapAnswer(200, render_envelope(ACTION_RETRIEVE_RESPONSE,
                                             render_registry_response(ResponseStatus.SUCCESS, []))),
     "answered HTTP 200 with RegistryResponse, not a retrieve response"),
    (bodiless_answer, "without a SOAP body"),
    (lambda: SoapAnswer(200, etree.fromstring(b"<html><body>proxy error</body></html>")), "without a SOAP body"),
])
def test_an_answer_that_is_no_retrieve_response_is_a_repository_error(answer: Callable[[], SoapAnswer],
                                                                      reason: str) -> None:
    hub = FarHub(lambda path, action, body: answer())
    result = forwarder({FAR: hub}).retrieve([DocumentRequest(FAR, "1.1")])
    assert result.status == ResponseStatus.FAILURE
    assert codes(result) == [("XDSRepositoryError", "1.1")]
    assert reason in result.errors[0].message
    assert hub.closed == 1


def test_the_far_repositorys_errors_are_passed_on_and_gaps_filled() -> None:
    answer = far_answer(FAR, {"1.1": b"one", "9.9": b"not asked"},
                        [MissingDocument("document 1.2 is not in this repository", "1.2")],
                        extra_parts={"stray@far": b"stray"})
    result = forwarder({FAR: FarHub(lambda path, action, body: answer)}).retrieve(
        [DocumentRequest(FAR, "1.1"), DocumentRequest(FAR, "1.2"), DocumentRequest(FAR, "1.3")])
    # the parts of what was not asked for are freed at once, the others once streamed
    assert answer.attachments["part1@far"].file.closed and answer.attachments["stray@far"].file.closed
    assert not answer.attachments["part0@far"].file.closed
    assert read_all(result) == {"1.1": b"one"}
    assert answer.attachments["part0@far"].file.closed
    assert codes(result) == [("XDSMissingDocument", "1.2"), ("XDSRepositoryError", "1.3")]
    assert result.errors[0].message == f"repository {FAR}: document 1.2 is not in this repository"
    assert "answered nothing for document 1.3" in result.errors[1].message


def test_a_document_without_its_part_or_with_a_hostile_mime_type_is_an_error() -> None:
    no_part = far_answer(FAR, {"1.1": b"one"})
    no_part.close()
    no_part.attachments.clear()
    hostile = far_answer(FAR, {"1.2": b"two"}, mime_type="text/plain\r\nX-Injected: yes")
    answers = iter([no_part, hostile])
    forward = forwarder({FAR: FarHub(lambda path, action, body: next(answers))})
    missing_part = forward.retrieve([DocumentRequest(FAR, "1.1")])
    assert codes(missing_part) == [("XDSRepositoryError", "1.1")]
    assert "without its content (no MIME part <part0@far>)" in missing_part.errors[0].message
    bad_type = forward.retrieve([DocumentRequest(FAR, "1.2")])
    assert codes(bad_type) == [("XDSRepositoryError", "1.2")]
    assert "unusable mimeType" in bad_type.errors[0].message


def test_an_unknown_error_code_from_afar_becomes_a_repository_error() -> None:
    strange = XdsError("odd", "1.1", ErrorCode.REGISTRY_ERROR)
    answer = far_answer(FAR, {}, [strange])
    for element in answer.body.iter("{*}RegistryError"):
        element.set("errorCode", "VendorSpecificError")
    result = forwarder({FAR: FarHub(lambda path, action, body: answer)}).retrieve([DocumentRequest(FAR, "1.1")])
    assert codes(result) == [("XDSRepositoryError", "1.1")]
    assert result.errors[0].message == f"repository {FAR}: VendorSpecificError: odd"


def test_retrieve_merges_local_forwarded_and_unknown_in_request_order(
        provide: Provide, database: Database, store: BlobStore, settings: Settings, caller: Caller) -> None:
    local = entry_for(PDF_BYTES)
    provide(submission(entries=[local]), {local.id: PDF_BYTES})
    far_entry = entry_for(b"far bytes", repository_unique_id=FAR)
    with database.session() as session:   # this hub is the registry of the domain: it knows the far document
        register_document_set(session, submission(entries=[far_entry]), caller, settings)
    far_uid = far_entry.unique_id or ""
    hub = FarHub(lambda path, action, body: far_answer(FAR, {far_uid: b"far bytes"}))
    here = settings.repository_unique_id
    with database.session() as session:
        asked = [DocumentRequest(FAR, far_uid), DocumentRequest(UNMAPPED, "4.4"),
                 DocumentRequest(here, local.unique_id or "")]
        result = retrieve_documents(session, store, asked, caller, settings, forwarder({FAR: hub}))
    assert [(d.repository_unique_id, d.document_unique_id) for d in result.documents] == \
        [(FAR, far_uid), (here, local.unique_id)]
    assert read_all(result) == {far_uid: b"far bytes", local.unique_id: PDF_BYTES}
    assert codes(result) == [("XDSUnknownRepositoryId", "4.4")]
    assert result.status == ResponseStatus.PARTIAL_SUCCESS
    # the audit record will name the patient the registry has for the forwarded document
    assert result.documents[0].patient_id == PATIENT
    assert [r.document_unique_id for r in parse_retrieve_request(hub.calls[0][2])] == [far_uid]


def test_without_mapped_documents_nothing_is_forwarded(database: Database, store: BlobStore, settings: Settings,
                                                      caller: Caller) -> None:
    hub = FarHub(AssertionError("not to be called"))
    with database.session() as session:
        result = retrieve_documents(session, store, [DocumentRequest(UNMAPPED, "4.4")], caller, settings,
                                    forwarder({FAR: hub}))
    assert codes(result) == [("XDSUnknownRepositoryId", "4.4")] and hub.calls == []


# -- RAD-69 ---------------------------------------------------------------------------------------------------

def imaging(*instances: tuple[str, str, str, str]) -> ImagingRequest:
    """(study, series, repository, instance) ... as a request in their order."""
    from repository.model import SeriesRequest, StudyRequest

    studies: dict[str, dict[str, list[DocumentRequest]]] = {}
    for study, series, repository, uid in instances:
        studies.setdefault(study, {}).setdefault(series, []).append(DocumentRequest(repository, uid, HOME))
    return ImagingRequest(tuple(StudyRequest(study, tuple(SeriesRequest(se, tuple(docs)) for se, docs in s.items()))
                                for study, s in studies.items()), ("1.2.840.10008.1.2.1",))


def test_imaging_requests_are_split_by_repository_keeping_studies_and_series() -> None:
    forward = forwarder({FAR: FarHub(AssertionError())})
    request = imaging(("9.1", "9.1.1", FAR, "9.1.1.1"), ("9.1", "9.1.1", "1.2.3", "9.1.1.2"),
                      ("9.1", "9.1.2", FAR, "9.1.2.1"), ("9.2", "9.2.1", "1.2.3", "9.2.1.1"))
    here, elsewhere = forward.split_imaging(request)
    assert here == imaging(("9.1", "9.1.1", "1.2.3", "9.1.1.2"), ("9.2", "9.2.1", "1.2.3", "9.2.1.1"))
    assert elsewhere == imaging(("9.1", "9.1.1", FAR, "9.1.1.1"), ("9.1", "9.1.2", FAR, "9.1.2.1"))
    assert forward.split_imaging(imaging(("9.2", "9.2.1", "1.2.3", "9.2.1.1")))[1] is None


def test_rad69_is_forwarded_with_the_consumers_transfer_syntaxes(database: Database, store: BlobStore,
                                                                  settings: Settings, caller: Caller) -> None:
    def reply(path: str, action: str, body: etree._Element) -> SoapAnswer:
        asked = parse_imaging_request(body)
        return far_answer(FAR, {d.document_unique_id: b"DICM" + d.document_unique_id.encode()
                                for s in asked.studies for se in s.series for d in se.documents},
                          mime_type="application/dicom")

    hub = FarHub(reply)
    request = imaging(("9.1", "9.1.1", FAR, "9.1.1.1"), ("9.1", "9.1.1", settings.repository_unique_id, "9.1.1.2"),
                      ("9.2", "9.2.1", FAR, "9.2.1.1"))
    with database.session() as session:
        result = retrieve_imaging(session, store, request, caller, settings, forwarder({FAR: hub}))
    (path, action, body, scope), = hub.calls
    assert (path, action, scope) == ("/xds/imaging", ACTION_RETRIEVE_IMAGING, "xds:retrieve")
    sent = parse_imaging_request(body)
    assert sent.transfer_syntaxes == ("1.2.840.10008.1.2.1",)
    assert [(s.study_instance_uid, [d.home_community_id for se in s.series for d in se.documents])
            for s in sent.studies] == [("9.1", [None]), ("9.2", [None])]
    assert read_all(result) == {"9.1.1.1": b"DICM9.1.1.1", "9.2.1.1": b"DICM9.2.1.1"}
    # the audit record lists the forwarded instances under their studies
    assert {d.document_unique_id: d.study_instance_uid for d in result.documents} == \
        {"9.1.1.1": "9.1", "9.2.1.1": "9.2"}
    assert codes(result) == [("XDSMissingDocument", "9.1.1.2")]
