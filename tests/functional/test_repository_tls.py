"""ITI-41 / RAD-68, ITI-18, ITI-43 and RAD-69 through the real `xdshub serve` over mutual TLS.

One imaging study is put into the hub with `xdshub import`, its manifest built
with `xdshub manifest`; Org A provides the manifest and a PDF report, Org B
finds and retrieves them and the instances, and every byte is compared.
"""

from __future__ import annotations

import io
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
from sqlalchemy import func, select

from hub.client import HubClient
from hub.db import Database
from hub.soap.envelope import render_envelope, serialize
from hub.soap.mtom import OutgoingPart, render_mtom
from registry.ebrim import render_adhoc_query_request
from registry.model import StoredQuery
from registry.vocabulary import ACTION_STORED_QUERY, ErrorCode, ResponseStatus, ReturnType, StoredQueryId
from repository.consumer import Outgoing, Retrieved, imaging_request, provide, retrieve, retrieve_imaging
from repository.model import DocumentRequest
from repository.tables import DicomInstance, StoredDocument
from repository.vocabulary import ACTION_PROVIDE
from repository.xdsb import render_provide_request, render_retrieve_request
from tests.factories.dicom import instance_bytes, make_study
from tests.factories.metadata import PDF_BYTES, entry_for, kos_entry, submission
from tests.functional.conftest import RunningHub, audit_records, write_study, xdshub_command
from tests.schema_validation import assert_valid, assert_valid_mtom

pytestmark = pytest.mark.functional

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


@dataclass
class Study:
    uid: str
    patient_id: str                       # XDS form
    instances: dict[str, bytes]           # SOP Instance UID -> file bytes as imported
    series: dict[str, list[str]]          # series UID -> SOP Instance UIDs
    manifest: bytes


def run_cli(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*xdshub_command(), *args, "--data-dir", str(hub.data_dir)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def study(running_hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> Study:
    folder = tmp_path_factory.mktemp("study")
    patient = f"P{uuid.uuid4().hex[:8]}"
    datasets = make_study(n_series=2, per_series=3, patient_id=patient, issuer="1.3.6.1.4.1.21367.2026.77")
    instances, series = write_study(folder, datasets)
    study_uid = str(datasets[0].StudyInstanceUID)
    imported = run_cli(running_hub, "import", str(folder), "--org", running_hub.oids["Org A"])
    assert imported.returncode == 0, imported.stderr
    assert f"imported: {len(datasets)} instance(s)" in imported.stdout
    out = folder / "manifest.dcm"
    built = run_cli(running_hub, "manifest", study_uid, "--out", str(out))
    assert built.returncode == 0, built.stderr
    return Study(study_uid, f"{patient}^^^&1.3.6.1.4.1.21367.2026.77&ISO", instances, series, out.read_bytes())


@pytest.fixture
def source(running_hub: RunningHub) -> Iterator[HubClient]:
    with HubClient(running_hub.bundle("Org A"), base_url=running_hub.url) as client:
        yield client


@pytest.fixture
def consumer(running_hub: RunningHub) -> Iterator[HubClient]:
    with HubClient(running_hub.bundle("Org B"), base_url=running_hub.url) as client:
        yield client


@dataclass(frozen=True)
class Stored:
    documents: int
    blobs: int


def stored(hub: RunningHub) -> Stored:
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            documents = session.scalar(select(func.count()).select_from(StoredDocument)) or 0
    finally:
        database.dispose()
    blobs = sum(1 for p in (hub.data_dir / "blobs").rglob("*") if p.is_file() and p.parent.name != "tmp")
    return Stored(documents, blobs)


@pytest.fixture
def unchanged(running_hub: RunningHub) -> Iterator[None]:
    """The test must leave no document row and no blob behind."""
    before = stored(running_hub)
    yield
    assert stored(running_hub) == before


def parts_of(retrieved: Retrieved) -> dict[str, bytes]:
    return {cid: attachment.open().read() for cid, attachment in retrieved.answer.attachments.items()}


def find_documents(patient_id: str) -> StoredQuery:
    return StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, ReturnType.LEAF_CLASS.value, {
        "$XDSDocumentEntryPatientId": [[f"'{patient_id}'"]],
        "$XDSDocumentEntryStatus": [["('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"]],
    })


def test_provide_query_and_retrieve_a_study_and_its_report(running_hub: RunningHub, study: Study,
                                                           source: HubClient, consumer: HubClient) -> None:
    kos = kos_entry(study.manifest, study.patient_id)
    report = entry_for(PDF_BYTES, study.patient_id)
    answer = provide(source, submission(study.patient_id, entries=[kos, report]),
                     {kos.id: Outgoing.of(study.manifest, "application/dicom"),
                      report.id: Outgoing.of(PDF_BYTES, "application/pdf")})
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.SUCCESS.value, serialize(answer.envelope)

    # ITI-18 from the other organisation: the manifest carries the study and its modalities.
    found = consumer.soap("/xds/registry", ACTION_STORED_QUERY, render_adhoc_query_request(
        find_documents(study.patient_id)))
    assert_valid(found.envelope)
    entries = {e.get("id"): e for e in found.body.iter("{*}ExtrinsicObject")}
    assert len(entries) == 2
    kos_xml = serialize(next(e for e in entries.values() if e.get("mimeType") == "application/dicom"))
    assert f"{study.uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID".encode() in kos_xml
    assert b'nodeRepresentation="CT"' in kos_xml and b'nodeRepresentation="MR"' in kos_xml

    # ITI-43: both documents in one request, bytes identical.
    repo = running_hub.settings.repository_unique_id
    got = retrieve(consumer, [DocumentRequest(repo, kos.unique_id or ""),
                              DocumentRequest(repo, report.unique_id or "")])
    try:
        assert_valid_mtom(got.answer.envelope, parts_of(got))
        assert got.status == ResponseStatus.SUCCESS.value
        assert got.read(kos.unique_id or "") == study.manifest
        assert got.read(report.unique_id or "") == PDF_BYTES
    finally:
        got.close()

    # RAD-69: every instance the manifest references, as stored (Explicit VR Little Endian accepted).
    manifest = pydicom.dcmread(io.BytesIO(study.manifest))
    referenced = {item.ReferencedSOPInstanceUID
                  for s in manifest.CurrentRequestedProcedureEvidenceSequence
                  for series in s.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert referenced == set(study.instances)
    images = retrieve_imaging(consumer, imaging_request(repo, study.uid, study.series))
    try:
        assert_valid_mtom(images.answer.envelope, parts_of(images))
        assert images.status == ResponseStatus.SUCCESS.value
        assert {uid: images.read(uid) for uid in study.instances} == study.instances
    finally:
        images.close()

    # Each transaction left its audit record: who, which patient, which study.
    trail = audit_records(running_hub, patient_id=study.patient_id)
    assert {("RAD-68", running_hub.oids["Org A"]), ("ITI-18", running_hub.oids["Org B"]),
            ("ITI-43", running_hub.oids["Org B"]), ("RAD-69", running_hub.oids["Org B"])} <= \
        {(r.event_type, r.organisation_oid) for r in trail}
    (imaging,) = [r for r in trail if r.event_type == "RAD-69"]
    assert imaging.study_uid == study.uid and all(uid in imaging.message for uid in study.instances)


def test_rad69_transcodes_to_an_asked_syntax(running_hub: RunningHub, study: Study, consumer: HubClient) -> None:
    series_uid, uids = next(iter(study.series.items()))
    request = imaging_request(running_hub.settings.repository_unique_id, study.uid, {series_uid: uids[:1]},
                              transfer_syntaxes=(IMPLICIT_LE,))
    images = retrieve_imaging(consumer, request)
    try:
        assert images.status == ResponseStatus.SUCCESS.value
        original = pydicom.dcmread(io.BytesIO(study.instances[uids[0]]))
        answered = pydicom.dcmread(io.BytesIO(images.read(uids[0])))
    finally:
        images.close()
    assert answered.file_meta.TransferSyntaxUID == IMPLICIT_LE
    assert answered.SOPInstanceUID == original.SOPInstanceUID
    assert (answered.pixel_array == original.pixel_array).all()


def test_rad69_unknown_and_path_character_uids_are_missing(running_hub: RunningHub, study: Study,
                                                          consumer: HubClient) -> None:
    series_uid, uids = next(iter(study.series.items()))
    request = imaging_request(running_hub.settings.repository_unique_id, study.uid,
                              {series_uid: [uids[0], "../../../etc/passwd", "1.2.3.404"]})
    images = retrieve_imaging(consumer, request)
    try:
        assert images.status == ResponseStatus.PARTIAL_SUCCESS.value
        assert images.error_codes == [ErrorCode.MISSING_DOCUMENT.value] * 2
        assert images.read(uids[0]) == study.instances[uids[0]]
    finally:
        images.close()


def test_retrieve_needs_the_retrieve_scope(running_hub: RunningHub, source: HubClient) -> None:
    token = source.token("xds:query")
    envelope = serialize(render_envelope("urn:ihe:iti:2007:RetrieveDocumentSet", render_retrieve_request(
        [DocumentRequest(running_hub.settings.repository_unique_id, "1.2.3")])))
    response = source.http.post(f"{running_hub.url}/xds/repository", data=envelope, timeout=30, headers={
        "Content-Type": 'application/soap+xml; action="urn:ihe:iti:2007:RetrieveDocumentSet"',
        "Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "xds:retrieve" in response.text


def test_repository_refuses_a_caller_without_certificate(running_hub: RunningHub) -> None:
    response = requests.post(f"{running_hub.url}/xds/repository", data=b"x", timeout=30,
                                           verify=str(running_hub.ca),
                                           headers={"Content-Type": "application/soap+xml"})
    assert response.status_code == 401


# -- bad input: a clear error, and nothing stored -------------------------------------------------------------

def _post_raw(hub: RunningHub, client: HubClient, body: bytes, content_type: str) -> tuple[int, bytes]:
    response = client.http.post(f"{hub.url}/xds/repository", data=body, timeout=60, headers={
        "Content-Type": content_type, "Authorization": f"Bearer {client.token('xds:register')}"})
    return response.status_code, response.content


def _provide_message(client: HubClient, hub: RunningHub, content: bytes, *, cid: str = "doc@test",
                     part_cid: str = "doc@test") -> tuple[bytes, str]:
    entry = entry_for(content)
    body = render_provide_request(submission(entries=[entry]), {entry.id: cid})
    envelope = serialize(render_envelope(ACTION_PROVIDE, body, to=f"{hub.url}/xds/repository"))
    message = render_mtom(envelope, ACTION_PROVIDE,
                          [OutgoingPart(part_cid, "application/pdf", len(content), lambda: io.BytesIO(content))])
    return b"".join(message.chunks()), message.content_type


@pytest.mark.usefixtures("unchanged")
def test_truncated_mtom_is_a_sender_fault(running_hub: RunningHub, source: HubClient) -> None:
    body, content_type = _provide_message(source, running_hub, PDF_BYTES * 100)
    status, answer = _post_raw(running_hub, source, body[: len(body) // 2], content_type)
    assert status == 400 and b"truncated" in answer


@pytest.mark.usefixtures("unchanged")
def test_a_cid_that_points_nowhere_is_missing_document(running_hub: RunningHub, source: HubClient) -> None:
    body, content_type = _provide_message(source, running_hub, PDF_BYTES, cid="nowhere@test", part_cid="doc@test")
    status, answer = _post_raw(running_hub, source, body, content_type)
    assert status == 200
    assert ErrorCode.MISSING_DOCUMENT.value.encode() in answer
    assert ErrorCode.MISSING_DOCUMENT_METADATA.value.encode() in answer   # and the part nobody references


@pytest.mark.usefixtures("unchanged")
def test_a_wrong_hash_is_refused(running_hub: RunningHub, source: HubClient) -> None:
    entry = entry_for(PDF_BYTES, hash="0" * 40)
    answer = provide(source, submission(entries=[entry]), {entry.id: Outgoing.of(PDF_BYTES, "application/pdf")})
    assert_valid(answer.envelope)
    assert answer.body.get("status") == ResponseStatus.FAILURE.value
    assert [e.get("errorCode") for e in answer.body.iter("{*}RegistryError")] == [ErrorCode.NON_IDENTICAL_HASH.value]


@pytest.mark.usefixtures("unchanged")
def test_a_kos_that_is_not_a_kos_is_refused(running_hub: RunningHub, source: HubClient) -> None:
    entry = kos_entry(PDF_BYTES)
    answer = provide(source, submission(entries=[entry]), {entry.id: Outgoing.of(PDF_BYTES, "application/dicom")})
    codes = [e.get("errorCode") for e in answer.body.iter("{*}RegistryError")]
    assert codes == [ErrorCode.REPOSITORY_METADATA_ERROR.value]
    assert b"not a valid imaging manifest" in serialize(answer.envelope)


@pytest.mark.usefixtures("unchanged")
def test_hostile_xml_in_the_mtom_root_is_refused(running_hub: RunningHub, source: HubClient) -> None:
    body, content_type = _provide_message(source, running_hub, PDF_BYTES)
    hostile = body.replace(b"<?xml version='1.0' encoding='UTF-8'?>",
                           b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>', 1)
    assert hostile != body
    status, answer = _post_raw(running_hub, source, hostile, content_type)
    assert status == 400 and b"document type declarations are not allowed" in answer


@pytest.mark.usefixtures("unchanged")
def test_a_body_over_the_limit_is_refused_before_it_is_read(running_hub: RunningHub, source: HubClient) -> None:
    limit = running_hub.settings.max_upload_bytes
    token = source.token("xds:register")
    context = ssl.create_default_context(cafile=str(running_hub.ca))
    bundle = running_hub.bundle("Org A")
    context.load_cert_chain(str(bundle / "client.crt"), str(bundle / "client.key"))
    with socket.create_connection(("127.0.0.1", running_hub.settings.port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"POST /xds/repository HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: multipart/related; boundary=b; type=\"application/xop+xml\"\r\n"
                     f"Content-Length: {limit + 1}\r\n\r\n").encode())
        answer = tls.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom warns of the bad UID we make on purpose
def test_import_refuses_an_instance_uid_with_path_characters(running_hub: RunningHub, tmp_path: Path) -> None:
    (dataset,) = make_study(n_series=1, per_series=1, patient_id="PATH1", issuer="1.2.3")
    dataset.SOPInstanceUID = "1.2.3/../../x"
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(instance_bytes(dataset))
    before = stored(running_hub).blobs
    result = run_cli(running_hub, "import", str(bad), "--org", running_hub.oids["Org A"])
    assert result.returncode == 1 and "refused: 1" in result.stdout, result.stdout + result.stderr
    assert stored(running_hub).blobs == before
    database = Database(running_hub.settings.database_url)
    try:
        with database.session() as session:
            assert session.get(DicomInstance, "1.2.3/../../x") is None
    finally:
        database.dispose()
