"""One registry, many repositories: a hub forwards ITI-43 and RAD-69 for another repository of its domain.

Two real hubs on loopback. Hub A is the registry of the affinity domain and
a repository; hub B is a repository (and imaging document source) that
registers with A's registry. A maps B's repositoryUniqueId to B's URL with
the bundle `xdshub org add` wrote at B for A. A consumer known only to A
finds B's documents in A's registry and retrieves them, and B's DICOM
instances, through A, byte for byte. B stopped, a bundle with the wrong CA,
and a repository that never answers each give an XDSRepositoryError for
those documents only, within seconds; every answer validates against the
schemas.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.client import HubClient
from registry.ebrim import render_adhoc_query_request
from registry.vocabulary import ACTION_STORED_QUERY, ResponseStatus
from repository.consumer import Outgoing, Retrieved, imaging_request, provide, retrieve, retrieve_imaging
from repository.model import DocumentRequest
from tests.factories.dicom import make_study
from tests.factories.metadata import PDF_BYTES, entry_for, kos_entry, submission
from tests.functional.conftest import RunningHub, audit_records, new_hub, register, serving, write_study, xdshub_command
from tests.functional.test_repository_tls import find_documents, parts_of
from tests.schema_validation import assert_valid_mtom

pytestmark = pytest.mark.functional

HUB_A_AT_B = "1.3.6.1.4.1.21367.2026.971"          # hub A as an organisation of hub B
HUB_B_AT_A = "1.3.6.1.4.1.21367.2026.972"          # hub B as an organisation of hub A (it registers there)
REPOSITORY_A = "1.3.6.1.4.1.21367.2026.971.1"
REPOSITORY_B = "1.3.6.1.4.1.21367.2026.972.1"
WRONG_CA = "1.3.6.1.4.1.21367.2026.973.1"          # mapped to B, with a bundle whose ca.crt is another CA
SILENT = "1.3.6.1.4.1.21367.2026.974.1"            # mapped to a port that accepts and never answers
UNMAPPED = "1.3.6.1.4.1.21367.2026.975.1"
SILENT_TIMEOUT = 2
QUICK = 10.0                                         # seconds: "quickly", with room for a loaded machine


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Domain:
    a: RunningHub
    b: RunningHub
    report_a: bytes                     # a document of A's repository
    report_b: bytes                     # a document of B's repository
    uid_a: str
    uid_b: str
    patient: str
    study_uid: str
    series: dict[str, list[str]]        # series UID -> SOP Instance UIDs (B's study)
    instances: dict[str, bytes]         # SOP Instance UID -> file bytes as imported at B
    b_serving: ExitStack = field(default_factory=ExitStack)

    def consumer(self) -> HubClient:
        """A consumer of A only: its bundle from A, A's URL."""
        return HubClient(self.a.bundle("Org B"), base_url=self.a.url)

    def start_b(self) -> None:
        assert self.b.log is not None
        self.b_serving = ExitStack()
        self.b_serving.enter_context(serving(self.b.data_dir, self.b.settings, self.b.log))

    def stop_b(self) -> None:
        self.b_serving.close()


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*xdshub_command(), *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def silent_listener() -> socket.socket:
    """A TCP port that takes connections (the kernel's backlog) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def map_repositories(a: RunningHub, b: RunningHub, silent_port: int) -> None:
    """A's hub.toml: B's repository by the bundle B issued to A, and two routes that cannot work."""
    peers = a.data_dir / "peers"
    run_cli(b.data_dir, "org", "add", "Hub A", "--oid", HUB_A_AT_B, "--out", str(peers / "hub-b"))
    shutil.copytree(peers / "hub-b", peers / "hub-b-wrong-ca")
    shutil.copy(a.ca, peers / "hub-b-wrong-ca" / "ca.crt")      # A's own CA did not sign B's server certificate
    with a.settings.toml_path.open("a") as toml:
        toml.write(f'\n[repositories."{REPOSITORY_B}"]\nurl = "{b.url}"\nbundle = "peers/hub-b"\n'
                   f'\n[repositories."{WRONG_CA}"]\nurl = "{b.url}"\nbundle = "peers/hub-b-wrong-ca"\n'
                   f'\n[repositories."{SILENT}"]\nurl = "https://127.0.0.1:{silent_port}"\n'
                   f'bundle = "peers/hub-b"\ntimeout = {SILENT_TIMEOUT}\n')


def store_study_at_b(b: RunningHub, folder: Path, patient: str) -> tuple[str, dict[str, list[str]], dict[str, bytes],
                                                                         bytes]:
    """A DICOM study imported at B (`xdshub import`), and its manifest (`xdshub manifest`)."""
    folder.mkdir()
    datasets = make_study(n_series=2, per_series=2, patient_id=patient, issuer="1.3.6.1.4.1.21367.2026.77")
    instances, series = write_study(folder, datasets)
    study_uid = str(datasets[0].StudyInstanceUID)
    run_cli(b.data_dir, "import", str(folder), "--org", b.oids["Org A"])
    run_cli(b.data_dir, "manifest", study_uid, "--out", str(folder / "manifest.dcm"))
    return study_uid, series, instances, (folder / "manifest.dcm").read_bytes()


def provided(client: HubClient, patient: str, content: bytes, repository: str, *, kos: bool = False) -> str:
    entry = (kos_entry(content, patient, repository_unique_id=repository) if kos
             else entry_for(content, patient, repository_unique_id=repository))
    answer = provide(client, submission(patient, entries=[entry]),
                     {entry.id: Outgoing.of(content, "application/dicom" if kos else "application/pdf")})
    assert answer.body.get("status") == ResponseStatus.SUCCESS.value
    return entry.unique_id or ""


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Domain]:
    root = tmp_path_factory.mktemp("domain")
    a = new_hub(root / "a", repository_unique_id=REPOSITORY_A)
    b_at_a = register(a.settings, "Hub B", HUB_B_AT_A, root / "b-at-a")
    b = new_hub(root / "b", repository_unique_id=REPOSITORY_B, registry_url=f"{a.url}/xds/registry",
                registry_bundle=b_at_a)
    silent = silent_listener()
    map_repositories(a, b, silent.getsockname()[1])
    patient = f"P{uuid.uuid4().hex[:8]}^^^&1.3.6.1.4.1.21367.2026.77&ISO"
    study_uid, series, instances, manifest = store_study_at_b(b, root / "study", patient.split("^")[0])
    assert a.log is not None
    with ExitStack() as stack:
        stack.callback(silent.close)
        stack.enter_context(serving(a.data_dir, a.settings, a.log))
        found = Domain(a, b, b"report of hub A " + PDF_BYTES, b"report of hub B " + PDF_BYTES, "", "", patient,
                       study_uid, series, instances)
        found.start_b()
        stack.callback(lambda: found.stop_b())
        with HubClient(a.bundle("Org A"), base_url=a.url) as source_a, \
                HubClient(b.bundle("Org A"), base_url=b.url) as source_b:
            found.uid_a = provided(source_a, patient, found.report_a, REPOSITORY_A)
            found.uid_b = provided(source_b, patient, found.report_b, REPOSITORY_B)   # registered at A
            provided(source_b, patient, manifest, REPOSITORY_B, kos=True)
        yield found


def errors_of(got: Retrieved) -> list[tuple[str, str, str]]:
    """(errorCode, location, codeContext) of each RegistryError of the answer."""
    return [(e.get("errorCode", ""), e.get("location", ""), e.get("codeContext", ""))
            for e in got.answer.body.iter("{*}RegistryError")]


def checked(got: Retrieved) -> Retrieved:
    """The answer, valid; closed (its spooled parts removed) when it is not, or when the schemas are absent and
    the test is skipped."""
    try:
        assert got.answer.status == 200
        assert_valid_mtom(got.answer.envelope, parts_of(got))
    except BaseException:
        got.close()
        raise
    return got


def test_a_document_of_the_other_repository_is_found_and_retrieved_through_the_own_hub(domain: Domain) -> None:
    with domain.consumer() as consumer:
        # A's registry names B's repository for B's report ...
        found = consumer.soap("/xds/registry", ACTION_STORED_QUERY,
                              render_adhoc_query_request(find_documents(domain.patient)))
        repositories = {e.findtext("{*}Slot[@name='repositoryUniqueId']/{*}ValueList/{*}Value")
                        for e in found.body.iter("{*}ExtrinsicObject")}
        assert {REPOSITORY_A, REPOSITORY_B} <= repositories
        # ... and A fetches it from B.
        got = checked(retrieve(consumer, [DocumentRequest(REPOSITORY_B, domain.uid_b)]))
        try:
            assert got.status == ResponseStatus.SUCCESS.value, errors_of(got)
            assert sha256(got.read(domain.uid_b)) == sha256(domain.report_b)
        finally:
            got.close()
        # One request, one document of each repository: both returned, in the order asked.
        got = checked(retrieve(consumer, [DocumentRequest(REPOSITORY_A, domain.uid_a),
                                          DocumentRequest(REPOSITORY_B, domain.uid_b)]))
        try:
            assert got.status == ResponseStatus.SUCCESS.value, errors_of(got)
            assert got.parsed is not None
            assert [(d.repository_unique_id, d.document_unique_id) for d in got.parsed.documents] == \
                [(REPOSITORY_A, domain.uid_a), (REPOSITORY_B, domain.uid_b)]
            assert sha256(got.read(domain.uid_a)) == sha256(domain.report_a)
            assert sha256(got.read(domain.uid_b)) == sha256(domain.report_b)
        finally:
            got.close()

    # Each side audits its half: A the consumer, listing the forwarded document; B hub A.
    consumer_oid = domain.a.oids["Org B"]
    at_a = [r for r in audit_records(domain.a, event_type="ITI-43", organisation_oid=consumer_oid)
            if domain.uid_b in r.message]
    assert len(at_a) == 2 and all(r.patient_id == domain.patient for r in at_a)
    assert domain.uid_a in at_a[-1].message
    at_b = [r for r in audit_records(domain.b, event_type="ITI-43") if domain.uid_b in r.message]
    assert [r.organisation_oid for r in at_b] == [HUB_A_AT_B, HUB_A_AT_B]


def test_instances_of_the_other_imaging_source_are_retrieved_through_the_own_hub(domain: Domain) -> None:
    with domain.consumer() as consumer:
        got = checked(retrieve_imaging(consumer, imaging_request(REPOSITORY_B, domain.study_uid, domain.series)))
        try:
            assert got.status == ResponseStatus.SUCCESS.value, errors_of(got)
            assert {uid: sha256(got.read(uid)) for uid in domain.instances} == \
                {uid: sha256(data) for uid, data in domain.instances.items()}
        finally:
            got.close()
    (record,) = audit_records(domain.a, event_type="RAD-69", organisation_oid=domain.a.oids["Org B"])
    assert record.study_uid == domain.study_uid and all(uid in record.message for uid in domain.instances)
    assert [r.organisation_oid for r in audit_records(domain.b, event_type="RAD-69")] == [HUB_A_AT_B]


def test_what_the_other_repository_does_not_hold_is_its_own_answer(domain: Domain) -> None:
    with domain.consumer() as consumer:
        got = checked(retrieve(consumer, [DocumentRequest(REPOSITORY_B, "1.2.3.404"),
                                          DocumentRequest(UNMAPPED, domain.uid_b),
                                          DocumentRequest(REPOSITORY_B, domain.uid_b)]))
        try:
            assert got.status == ResponseStatus.PARTIAL_SUCCESS.value
            assert [(code, location) for code, location, _ in errors_of(got)] == \
                [("XDSUnknownRepositoryId", domain.uid_b), ("XDSMissingDocument", "1.2.3.404")]
            assert errors_of(got)[1][2].startswith(f"repository {REPOSITORY_B}: ")
            assert got.read(domain.uid_b) == domain.report_b
        finally:
            got.close()


def test_a_bundle_with_another_ca_is_a_clear_repository_error(domain: Domain) -> None:
    with domain.consumer() as consumer:
        got = checked(retrieve(consumer, [DocumentRequest(WRONG_CA, domain.uid_b),
                                          DocumentRequest(REPOSITORY_A, domain.uid_a)]))
        try:
            assert got.status == ResponseStatus.PARTIAL_SUCCESS.value
            ((code, location, context),) = errors_of(got)
            assert (code, location) == ("XDSRepositoryError", domain.uid_b)
            assert f"repository {WRONG_CA}:" in context and "TLS handshake" in context
            assert "peers/hub-b-wrong-ca" in context
            assert got.read(domain.uid_a) == domain.report_a
        finally:
            got.close()


def test_a_repository_that_never_answers_is_given_up_after_its_timeout(domain: Domain) -> None:
    with domain.consumer() as consumer:
        started = time.monotonic()
        got = checked(retrieve(consumer, [DocumentRequest(SILENT, "1.2.3.1"), DocumentRequest(SILENT, "1.2.3.2")]))
        elapsed = time.monotonic() - started
        try:
            assert got.status == ResponseStatus.FAILURE.value
            assert [(code, location) for code, location, _ in errors_of(got)] == \
                [("XDSRepositoryError", "1.2.3.1"), ("XDSRepositoryError", "1.2.3.2")]
            assert f"did not answer within {SILENT_TIMEOUT} s" in errors_of(got)[0][2]
        finally:
            got.close()
    assert SILENT_TIMEOUT <= elapsed < SILENT_TIMEOUT + QUICK


def test_the_other_hub_stopped_only_its_documents_fail_quickly(domain: Domain) -> None:
    domain.stop_b()
    try:
        with domain.consumer() as consumer:
            started = time.monotonic()
            got = checked(retrieve(consumer, [DocumentRequest(REPOSITORY_A, domain.uid_a),
                                              DocumentRequest(REPOSITORY_B, domain.uid_b)]))
            elapsed = time.monotonic() - started
            try:
                assert got.status == ResponseStatus.PARTIAL_SUCCESS.value
                ((code, location, context),) = errors_of(got)
                assert (code, location) == ("XDSRepositoryError", domain.uid_b)
                assert f"repository {REPOSITORY_B}:" in context and "cannot be reached" in context
                assert got.read(domain.uid_a) == domain.report_a
            finally:
                got.close()
            assert elapsed < QUICK
            images = checked(retrieve_imaging(consumer, imaging_request(REPOSITORY_B, domain.study_uid,
                                                                        domain.series)))
            try:
                assert images.status == ResponseStatus.FAILURE.value
                assert {(code, location) for code, location, _ in errors_of(images)} == \
                    {("XDSRepositoryError", uid) for uid in domain.instances}
            finally:
                images.close()
    finally:
        domain.start_b()
    # B back: full answers again.
    with domain.consumer() as consumer:
        got = checked(retrieve(consumer, [DocumentRequest(REPOSITORY_B, domain.uid_b)]))
        try:
            assert got.status == ResponseStatus.SUCCESS.value and got.read(domain.uid_b) == domain.report_b
        finally:
            got.close()
