"""`xdshub demo`: the README's main job on the embedded default (SQLite, local folder).

Initialises a data dir, registers two demo organisations (their client bundles
under DIR/orgs/), starts the real HTTPS server, and once it answers: stores
synthetic CT and MR studies of demo patients (real DICOM, through the ingest
service) and publishes their manifests (RAD-68), provides a PDF report per
study with ITI-41 over mutual TLS with a certificate-bound token; then, as the
other organisation, finds them (ITI-18) and retrieves a report (ITI-43) and
a study's images (RAD-69). A compliance account, `compliance`, gets a new
random password at every start, printed with the console's address.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import sys
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from hub.client import HubClient, wait_until_healthy
from hub.db import Database
from hub.settings import Settings
from hub.tables import Organisation
from registry.builders import DocumentSpec, document_entry, has_member, submission_set
from registry.model import Code, StoredQuery, SubmitObjectsRequest
from registry.vocabulary import ACTION_STORED_QUERY, ResponseStatus, StoredQueryId

DEMO_ORGS = (
    ("St. Mary Radiology", "1.3.6.1.4.1.21367.2026.100"),
    ("Riverside Clinic", "1.3.6.1.4.1.21367.2026.200"),
)
PATIENT_AUTHORITY = "1.3.6.1.4.1.21367.2026.10"
DEMO_CONSOLE_ACCOUNT = "compliance"
DEMO_STUDIES = (
    ("DEMO-1001", "CT chest", Code("CT", "1.2.840.10008.2.16.4", "Computed Tomography")),
    ("DEMO-1001", "MR brain", Code("MR", "1.2.840.10008.2.16.4", "Magnetic Resonance")),
    ("DEMO-1002", "CT abdomen", Code("CT", "1.2.840.10008.2.16.4", "Computed Tomography")),
)


def _say(text: str) -> None:
    print(text, flush=True)


def ensure_organisations(settings: Settings) -> list[Path]:
    """The demo organisations and their bundles (made once, reused afterwards)."""
    from hub.organisations import DEFAULT_SCOPES, add_organisation, write_bundle

    bundles = []
    database = Database(settings.database_url)
    try:
        for name, oid in DEMO_ORGS:
            folder = settings.data_dir / "orgs" / name.lower().replace(" ", "-").replace(".", "")
            bundles.append(folder)
            with database.session() as session:
                exists = session.scalar(select(Organisation).where(Organisation.oid == oid))
                if exists is not None and (folder / "client.json").exists():
                    continue
                if exists is not None:
                    raise SystemExit(f"demo organisation {name} exists but its bundle {folder} is gone; "
                                     f"remove {settings.data_dir} to start afresh")
                new = add_organisation(session, settings, name, oid, DEFAULT_SCOPES)
            write_bundle(folder, settings, new)
    finally:
        database.dispose()
    return bundles


def ensure_console_account(settings: Settings) -> str:
    """The demo's compliance account, with a fresh random password (returned); audited like `xdshub user`."""
    from hub.audit import commands
    from hub.console.accounts import add_user, find_user, set_password

    password = secrets.token_urlsafe(12)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            account = find_user(session, DEMO_CONSOLE_ACCOUNT)
            if account is None:
                account = add_user(session, DEMO_CONSOLE_ACCOUNT, "compliance", password)
                change = "created"
            else:
                set_password(account, password)
                change = "given a new password"
            commands.account_changed(session, settings, account.name, account.role, change)
    finally:
        database.dispose()
    return password


def report_submission(patient: str, title: str, modality: Code, study_uid: str, content: bytes,
                      source_oid: str, repository_unique_id: str) -> SubmitObjectsRequest:
    """An imaging report (PDF) for a study: DocumentEntry, SubmissionSet, HasMember."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    entry = document_entry(DocumentSpec(
        unique_id=f"2.25.{uuid.uuid4().int}", patient_id=patient, hash=hashlib.sha1(content).hexdigest(),
        size=len(content), repository_unique_id=repository_unique_id, title=f"{title} report",
        creation_time=now, event_codes=(modality,),
        reference_ids=(f"{study_uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID",)))
    package = submission_set(f"2.25.{uuid.uuid4().int}", patient, source_oid, now)
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)])


def report_pdf(title: str, patient: str) -> bytes:
    """A minimal one-line PDF report."""
    text = f"{title}: no acute findings. Patient {patient.split('^')[0]}."
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
            b"/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>>>endobj\n"
            + f"4 0 obj<</Length {len(stream)}>>stream\n".encode() + stream + b"\nendstream endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def ingest_and_publish(settings: Settings, number: str, title: str, modality: Code) -> tuple[str, dict[str, list[str]]]:
    """A synthetic study of the first organisation stored and its manifest published (RAD-68)."""
    from hub.audit import commands
    from hub.audit.events import Party
    from repository.blobstore import open_blob_store
    from repository.ingest import Sender, ingest_instance
    from repository.publishing import publish_study
    from repository.registration import registry_for
    from repository.synthetic import SyntheticPatient, synthetic_study

    database, store = Database(settings.database_url), open_blob_store(settings.storage_url)
    patient = SyntheticPatient(number, PATIENT_AUTHORITY, "DEMO^PATIENT", "19700101", "O")
    series: dict[str, list[str]] = {}
    try:
        with database.session() as session:
            organisation = session.scalar(select(Organisation).where(Organisation.oid == DEMO_ORGS[0][1]))
            assert organisation is not None
            sender = Sender(organisation.id, organisation.oid)
            party = Party(user_id=organisation.oid, name=organisation.name)
            for data in synthetic_study(patient, modality.code, title, accession=f"ACC-{uuid.uuid4().hex[:6]}"):
                instance = ingest_instance(session, store, io.BytesIO(data), sender)
                commands.instance_imported(session, settings, party, instance)
                series.setdefault(instance.series_instance_uid, []).append(instance.sop_instance_uid)
                study_uid = instance.study_instance_uid
        session = database.new_session()
        try:
            published = publish_study(session, store, registry_for(settings), settings, study_uid)
        finally:
            session.close()
    finally:
        database.dispose()
    _say(f"demo: {title} for {number}: {published.instance_count} instances stored, "
         f"manifest {published.unique_id} published (RAD-68)")
    return study_uid, series


def share_first_study(settings: Settings, source: HubClient) -> None:
    """A share link to the first demo study, made through POST /api/shares (a new one at every start: the
    URL is given out only once)."""
    from repository.tables import DicomInstance

    database = Database(settings.database_url)
    try:
        with database.session() as session:
            study_uid = session.scalar(select(DicomInstance.study_instance_uid).where(
                DicomInstance.study_description == DEMO_STUDIES[0][1]).limit(1))
    finally:
        database.dispose()
    if study_uid is None:
        return
    answer = source.api("POST", "/api/shares", {"study_uid": study_uid, "expires_in": 24 * 3600,
                                                "recipient": "demo referring physician"}, scope="share:create")
    if answer.status_code != 201:
        _say(f"demo: the share link could not be made: {answer.status_code} {answer.text[:200]}")
        return
    _say(f"demo: share link to {DEMO_STUDIES[0][1]} (24 h, no account needed; the browser will ask to accept "
         f"the demo CA's certificate): {answer.json()['url']}")


def seed(settings: Settings, bundles: list[Path], url: str) -> None:
    """Store studies and reports as the first organisation; find and retrieve them as the second."""
    from registry.ebrim import render_adhoc_query_request
    from repository.consumer import Outgoing, imaging_request, provide, retrieve, retrieve_imaging
    from repository.model import DocumentRequest

    if not wait_until_healthy(url, settings.path(settings.ca_cert)):
        _say("demo: the server did not come up; nothing was stored")
        return
    source, consumer = HubClient(bundles[0], base_url=url), HubClient(bundles[1], base_url=url)
    marker = settings.data_dir / "demo-seeded.2"
    if not marker.exists():
        studies = []
        for number, title, modality in DEMO_STUDIES:
            study_uid, series = ingest_and_publish(settings, number, title, modality)
            studies.append((study_uid, series))
            patient = f"{number}^^^&{PATIENT_AUTHORITY}&ISO"
            content = report_pdf(title, patient)
            request = report_submission(patient, title, modality, study_uid, content, DEMO_ORGS[0][1],
                                        settings.repository_unique_id)
            answer = provide(source, request, {request.document_entries[0].id: Outgoing.of(content,
                                                                                           "application/pdf")})
            status = answer.body.get("status", "").rsplit(":", 1)[-1]
            _say(f"demo: ITI-41 {title} report for {number} by {DEMO_ORGS[0][0]}: {status}")
            report_uid = request.document_entries[0].unique_id or ""
            got = retrieve(consumer, [DocumentRequest(settings.repository_unique_id, report_uid)])
            _say(f"demo: ITI-43 that report by {DEMO_ORGS[1][0]}: {got.status.rsplit(':', 1)[-1]}, "
                 f"{len(got.read(report_uid)) if report_uid in got.files else 0} bytes")
            got.close()
        study_uid, series = studies[0]
        images = retrieve_imaging(consumer, imaging_request(settings.repository_unique_id, study_uid, series))
        _say(f"demo: RAD-69 {DEMO_STUDIES[0][1]} by {DEMO_ORGS[1][0]}: {images.status.rsplit(':', 1)[-1]}, "
             f"{len(images.files)} instances")
        images.close()
        marker.write_text(datetime.now(UTC).isoformat())
    query = StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, "LeafClass", {
        "$XDSDocumentEntryPatientId": [[f"'DEMO-1001^^^&{PATIENT_AUTHORITY}&ISO'"]],
        "$XDSDocumentEntryStatus": [["('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"]],
    })
    answer = consumer.soap("/xds/registry", ACTION_STORED_QUERY, render_adhoc_query_request(query))
    found = len(answer.body.findall(".//{*}ExtrinsicObject"))
    ok = answer.body.get("status") == ResponseStatus.SUCCESS.value
    _say(f"demo: ITI-18 FindDocuments for DEMO-1001 by {DEMO_ORGS[1][0]}: "
         f"{'Success' if ok else 'Failure'}, {found} documents (manifests and reports)")
    share_first_study(settings, source)
    _say(f"demo: ready. Open {url}/healthz, {url}/metrics, {url}/.well-known/oauth-authorization-server")
    _say(f"demo: every call above is in the audit trail: xdshub audit verify --data-dir {settings.data_dir}")
    source.close()
    consumer.close()


def run_demo(data_dir: Path | str | None = None, port: int | None = None) -> None:
    from hub.server import serve
    from hub.setup import initialise

    data_dir = Path(data_dir or "var/demo")
    settings = initialise(data_dir)
    if port:
        settings = replace(settings, port=port)
    bundles = ensure_organisations(settings)
    password = ensure_console_account(settings)
    url = f"https://127.0.0.1:{settings.port}"
    _say(f"xdshub demo: serving on {url}")
    _say(f"  compliance console: {url}/audit  (account {DEMO_CONSOLE_ACCOUNT}, password {password}; "
         "a new one at every start)")
    _say(f"  data dir: {settings.data_dir}   CA: {settings.path(settings.ca_cert)}")
    _say(f"  organisation bundles: {', '.join(str(b) for b in bundles)}")
    _say("  press Ctrl-C to stop")
    threading.Thread(target=seed, args=(settings, bundles, url), daemon=True).start()
    serve(settings, host="127.0.0.1", port=settings.port)
    sys.exit(0)
