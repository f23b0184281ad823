"""`xdshub demo`: the README's main job on the embedded default (SQLite, local folder).

Initialises a data dir, registers two demo organisations (their client bundles
under DIR/orgs/), starts the real HTTPS server, and once it answers registers
synthetic imaging reports for demo patients through ITI-42 over mutual TLS
with a certificate-bound token, then finds them from the other organisation
with ITI-18. Everything goes through the same wire path a provider uses.
"""

from __future__ import annotations

import hashlib
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
from registry.vocabulary import ACTION_REGISTER, ACTION_STORED_QUERY, ResponseStatus, StoredQueryId

DEMO_ORGS = (
    ("St. Mary Radiology", "1.3.6.1.4.1.21367.2026.100"),
    ("Riverside Clinic", "1.3.6.1.4.1.21367.2026.200"),
)
PATIENT_AUTHORITY = "1.3.6.1.4.1.21367.2026.10"
DEMO_STUDIES = (
    ("DEMO-1001", "CT chest", Code("CT", "1.2.840.10008.2.16.4", "Computed Tomography")),
    ("DEMO-1001", "MR brain", Code("MR", "1.2.840.10008.2.16.4", "Magnetic Resonance")),
    ("DEMO-1002", "US abdomen", Code("US", "1.2.840.10008.2.16.4", "Ultrasound")),
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


def demo_submission(patient: str, title: str, modality: Code, source_oid: str,
                    repository_unique_id: str) -> SubmitObjectsRequest:
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    content = f"{title} report for {patient}".encode()
    study_uid = f"2.25.{uuid.uuid4().int}"
    entry = document_entry(DocumentSpec(
        unique_id=f"2.25.{uuid.uuid4().int}", patient_id=patient, hash=hashlib.sha1(content).hexdigest(),
        size=len(content), repository_unique_id=repository_unique_id, title=f"{title} report",
        creation_time=now, event_codes=(modality,),
        reference_ids=(f"{study_uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID",)))
    package = submission_set(f"2.25.{uuid.uuid4().int}", patient, source_oid, now)
    return SubmitObjectsRequest([package, entry, has_member(package.id, entry.id)])


def seed(settings: Settings, bundles: list[Path], url: str) -> None:
    """Register the demo studies as the first organisation; find them as the second."""
    from registry.ebrim import render_adhoc_query_request, render_submit_objects_request

    if not wait_until_healthy(url, settings.path(settings.ca_cert)):
        _say("demo: the server did not come up; nothing was registered")
        return
    source, consumer = HubClient(bundles[0], base_url=url), HubClient(bundles[1], base_url=url)
    marker = settings.data_dir / "demo-seeded"
    if not marker.exists():
        for number, title, modality in DEMO_STUDIES:
            patient = f"{number}^^^&{PATIENT_AUTHORITY}&ISO"
            request = demo_submission(patient, title, modality, DEMO_ORGS[0][1], settings.repository_unique_id)
            answer = source.soap("/xds/registry", ACTION_REGISTER, render_submit_objects_request(request))
            status = answer.body.get("status", "").rsplit(":", 1)[-1]
            _say(f"demo: ITI-42 {title} for {number} by {DEMO_ORGS[0][0]}: {status}")
        marker.write_text(datetime.now(UTC).isoformat())
    query = StoredQuery(StoredQueryId.FIND_DOCUMENTS.value, "LeafClass", {
        "$XDSDocumentEntryPatientId": [[f"'DEMO-1001^^^&{PATIENT_AUTHORITY}&ISO'"]],
        "$XDSDocumentEntryStatus": [["('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"]],
    })
    answer = consumer.soap("/xds/registry", ACTION_STORED_QUERY, render_adhoc_query_request(query))
    found = len(answer.body.findall(".//{*}ExtrinsicObject"))
    ok = answer.body.get("status") == ResponseStatus.SUCCESS.value
    _say(f"demo: ITI-18 FindDocuments for DEMO-1001 by {DEMO_ORGS[1][0]}: "
         f"{'Success' if ok else 'Failure'}, {found} documents")
    _say(f"demo: ready. Open {url}/healthz, {url}/metrics, {url}/.well-known/oauth-authorization-server")


def run_demo(data_dir: Path | str | None = None, port: int | None = None) -> None:
    from hub.server import serve
    from hub.setup import initialise

    data_dir = Path(data_dir or "var/demo")
    settings = initialise(data_dir)
    if port:
        settings = replace(settings, port=port)
    bundles = ensure_organisations(settings)
    url = f"https://127.0.0.1:{settings.port}"
    _say(f"xdshub demo: serving on {url}")
    _say(f"  data dir: {settings.data_dir}   CA: {settings.path(settings.ca_cert)}")
    _say(f"  organisation bundles: {', '.join(str(b) for b in bundles)}")
    _say("  press Ctrl-C to stop")
    threading.Thread(target=seed, args=(settings, bundles, url), daemon=True).start()
    serve(settings, host="127.0.0.1", port=settings.port)
    sys.exit(0)
