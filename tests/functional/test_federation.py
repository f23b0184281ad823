"""Three hubs on loopback, each its own community with its own data dir, port, PKI and organisations.

Hubs A and B each register hub C as an organisation (`org add`); C adds them as peers from those bundles. At A and at
B, Org A publishes a report (ITI-41) and a DICOM study (RAD-68) of one patient, known there under the local ids A-1
and B-7, both linked to the affinity domain id P (`POST /api/patients`). A consumer of hub C alone then finds all
four documents with one ITI-18 query for P (C asks A and B with ITI-38), each stamped with its community, and
retrieves the reports (ITI-43 routed as ITI-39) and the instances (RAD-69 routed as RAD-75) byte for byte. With B
stopped, C answers with A's documents and names B as an unavailable community, within the peer timeout; B
restarted, the full answer is back. Peers that answer garbage, never answer, or present a certificate from an
untrusted CA are in tests/unit/hub/federation/test_initiating.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from hub.client import HubClient, SoapAnswer
from hub.db import Database
from hub.federation.peers import add_peer
from hub.soap.envelope import serialize
from registry.vocabulary import ACTION_STORED_QUERY, ResponseStatus
from repository.consumer import Outgoing, provide
from repository.model import DocumentRequest, ImagingRequest, SeriesRequest, StudyRequest
from repository.vocabulary import ACTION_RETRIEVE, ACTION_RETRIEVE_IMAGING
from repository.xdsb import render_imaging_request, render_retrieve_request
from tests.factories.dicom import make_study
from tests.factories.metadata import PDF_BYTES, entry_for, submission
from tests.functional.conftest import RunningHub, kill_hard, new_hub, register, serving, write_study, xdshub_command
from tests.functional.test_xca_responding import objects_of, query, status_of
from tests.schema_validation import assert_valid

pytestmark = pytest.mark.functional

DOMAIN = "1.3.6.1.4.1.21367.2026.777"
PATIENT = f"FED-{uuid.uuid4().hex[:6]}^^^&{DOMAIN}&ISO"
ISSUER = "1.3.6.1.4.1.21367.2026.77"                      # the sites' own patient id authority
LOCAL = {"a": "A-1", "b": "B-7"}
COMMUNITY = {name: f"urn:oid:1.3.6.1.4.1.21367.2026.7{n}0" for n, name in enumerate("abc", start=1)}
REPOSITORY = {name: f"1.3.6.1.4.1.21367.2026.7{n}0.1" for n, name in enumerate("abc", start=1)}
HUB_C_OID = "1.3.6.1.4.1.21367.2026.730"
PEER_TIMEOUT = 4


@dataclass
class Published:
    report_uid: str
    report: bytes
    study_uid: str
    instances: dict[str, bytes]                # SOP Instance UID -> bytes
    series: dict[str, list[str]]               # series UID -> SOP Instance UIDs


@dataclass
class Federation:
    hubs: dict[str, RunningHub]
    stack: ExitStack
    published: dict[str, Published] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        hub = self.hubs[name]
        assert hub.log is not None
        self.processes[name] = self.stack.enter_context(serving(hub.data_dir, hub.settings, hub.log))

    def stop(self, name: str) -> None:
        kill_hard(self.processes.pop(name))

    def consumer(self) -> HubClient:
        hub = self.hubs["c"]
        return HubClient(hub.bundle("Org A"), base_url=hub.url)


def _publish(hub: RunningHub, site: str, folder: Path) -> Published:
    """Org A at `site` links its local id to the domain's, provides a report and publishes a study."""
    local = f"{LOCAL[site]}^^^&{ISSUER}&ISO"
    with HubClient(hub.bundle("Org A"), base_url=hub.url) as source:
        linked = source.api("POST", "/api/patients", {"local_id": local, "domain_id": PATIENT}, scope="xds:register")
        assert linked.status_code in (200, 201), linked.text
        report_bytes = PDF_BYTES + f"% report from {site}\n".encode()
        report = entry_for(report_bytes, local, repository_unique_id=REPOSITORY[site])
        answer = provide(source, submission(local, entries=[report]),
                         {report.id: Outgoing.of(report_bytes, "application/pdf")})
        assert answer.body.get("status") == ResponseStatus.SUCCESS.value, serialize(answer.envelope)
        datasets = make_study(n_series=1, per_series=2, patient_id=LOCAL[site], issuer=ISSUER)
        instances, series = write_study(folder, datasets)
        imported = subprocess.run([*xdshub_command(), "import", str(folder), "--org", hub.oids["Org A"],
                                   "--data-dir", str(hub.data_dir)], capture_output=True, text=True, timeout=120)
        assert imported.returncode == 0, imported.stderr
        study_uid = str(datasets[0].StudyInstanceUID)
        published = source.api("POST", f"/api/studies/{study_uid}/publish", scope="xds:register")
        assert published.status_code == 201, published.text
        assert published.json()["patient_id"] == local     # the instances keep the site's id ...
    return Published(report.unique_id or "", report_bytes, study_uid, instances, series)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    hubs = {name: new_hub(root / name, home_community_id=COMMUNITY[name], repository_unique_id=REPOSITORY[name],
                          peer_timeout_seconds=PEER_TIMEOUT) for name in "abc"}
    database = Database(hubs["c"].settings.database_url)
    try:
        with database.session() as session:
            for site in "ab":
                bundle = register(hubs[site].settings, "Hub C", HUB_C_OID, root / f"c-at-{site}",
                                  ["xds:query", "xds:retrieve"])
                add_peer(session, hubs["c"].settings, f"hub-{site}", COMMUNITY[site], bundle)
    finally:
        database.dispose()
    with ExitStack() as stack:
        federated = Federation(hubs, stack)
        for name in "abc":
            federated.start(name)
        for site in "ab":
            folder = root / f"study-{site}"
            folder.mkdir()
            federated.published[site] = _publish(hubs[site], site, folder)
        yield federated


def _find(client: HubClient) -> SoapAnswer:
    answer = client.soap("/xds/registry", ACTION_STORED_QUERY, query(PATIENT))
    assert_valid(answer.envelope)
    return answer


def _homes(answer: SoapAnswer) -> dict[str, set[str]]:
    """homeCommunityId -> the uniqueIds of the documents it holds, from the answer's ExtrinsicObjects."""
    found: dict[str, set[str]] = {}
    for element in objects_of(answer):
        if etree.QName(element).localname == "ExtrinsicObject":
            unique = element.find("{*}ExternalIdentifier[@identificationScheme="
                                  "'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab']")
            assert unique is not None
            found.setdefault(element.get("home", ""), set()).add(unique.get("value", ""))
    return found


def test_one_query_at_c_finds_the_patient_at_a_and_b(federation: Federation) -> None:
    with federation.consumer() as client:
        answer = _find(client)
    assert status_of(answer) == ResponseStatus.SUCCESS.value, serialize(answer.envelope)
    homes = _homes(answer)
    assert set(homes) == {COMMUNITY["a"], COMMUNITY["b"]}
    for site in "ab":
        assert federation.published[site].report_uid in homes[COMMUNITY[site]]
        assert len(homes[COMMUNITY[site]]) == 2                     # the report and the study's manifest


def test_documents_and_instances_are_retrieved_through_c_byte_for_byte(federation: Federation) -> None:
    with federation.consumer() as client:
        for site in "ab":
            published = federation.published[site]
            request = DocumentRequest(REPOSITORY[site], published.report_uid, COMMUNITY[site])
            answer = client.mtom("/xds/repository", ACTION_RETRIEVE, render_retrieve_request([request]))
            try:
                assert status_of(answer) == ResponseStatus.SUCCESS.value, serialize(answer.envelope)
                (document,) = answer.body.findall("{*}DocumentResponse")
                assert document.findtext("{*}HomeCommunityId") == COMMUNITY[site]
                content_id = document.find("{*}Document/{*}Include").get("href", "")[4:]
                assert answer.attachments[content_id].open().read() == published.report
            finally:
                answer.close()
            studies = [StudyRequest(published.study_uid, tuple(
                SeriesRequest(series_uid, tuple(DocumentRequest(REPOSITORY[site], uid, COMMUNITY[site])
                                                for uid in uids))
                for series_uid, uids in published.series.items()))]
            imaging = client.mtom("/xds/imaging", ACTION_RETRIEVE_IMAGING,
                                  render_imaging_request(ImagingRequest(tuple(studies), ("1.2.840.10008.1.2.1",))))
            try:
                assert status_of(imaging) == ResponseStatus.SUCCESS.value, serialize(imaging.envelope)
                got = {}
                for document in imaging.body.findall("{*}DocumentResponse"):
                    content_id = document.find("{*}Document/{*}Include").get("href", "")[4:]
                    got[document.findtext("{*}DocumentUniqueId")] = hashlib.sha256(
                        imaging.attachments[content_id].open().read()).hexdigest()
                assert got == {uid: hashlib.sha256(data).hexdigest() for uid, data in published.instances.items()}
            finally:
                imaging.close()


def test_a_stopped_community_is_named_and_the_others_still_answer(federation: Federation) -> None:
    federation.stop("b")
    try:
        with federation.consumer() as client:
            started = time.monotonic()
            answer = _find(client)
            waited = time.monotonic() - started
        assert status_of(answer) == ResponseStatus.PARTIAL_SUCCESS.value, serialize(answer.envelope)
        assert set(_homes(answer)) == {COMMUNITY["a"]}
        errors = answer.body.findall("{*}RegistryErrorList/{*}RegistryError")
        assert [(e.get("errorCode"), e.get("location")) for e in errors] == \
            [("XDSUnavailableCommunity", COMMUNITY["b"])]
        assert waited < 60                               # it did not hang (a refused connection fails at once)
    finally:
        federation.start("b")
    with federation.consumer() as client:
        assert set(_homes(_find(client))) == {COMMUNITY["a"], COMMUNITY["b"]}
