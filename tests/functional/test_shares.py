"""Share links through the app: /api/shares with certificates and tokens, the viewer at /s/<token> with none,
and the EMR launch (IHE IID) for a clinician."""

from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pydicom import dcmread
from sqlalchemy import select, text, update
from werkzeug.test import TestResponse

from hub.audit.disclosure import disclosures
from hub.audit.tables import AuditRecord
from hub.console.accounts import add_user
from hub.db import Database
from hub.shares.tables import ShareLink, ShareVisit
from repository.blobstore import open_blob_store
from repository.ingest import Sender, ingest
from tests.factories.dicom import instance_bytes, make_study
from tests.functional.soap_support import Party, app_with_two_parties

BASE = "https://localhost"
ISSUER = "1.3.6.1.4.1.21367.2026.77"
PASSWORD = "correct horse battery"
BROWSER = "Mozilla/5.0 (test viewer)"


@dataclass
class Study:
    uid: str
    series: list[str]
    instances: list[str]
    patient_id: str


@dataclass
class Hub:
    app: Flask
    database: Database
    org_a: Party
    org_b: Party

    def call(self, party: Party, method: str, path: str, body: Any = None, scope: str = "share:create") -> TestResponse:
        return self.app.test_client().open(path, method=method, json=body, environ_base=party.environ(),
                                           headers={"Authorization": f"Bearer {party.token(self.app, scope)}"})

    def share(self, party: Party, study: Study, **fields: Any) -> TestResponse:
        return self.call(party, "POST", "/api/shares", {"study_uid": study.uid, **fields})

    def browser(self) -> FlaskClient:
        return self.app.test_client()

    def store(self, party: Party, patient: str = "P-1", per_series: int = 2) -> Study:
        settings = self.app.config["XDSHUB_SETTINGS"]
        store = open_blob_store(settings.storage_url)
        datasets = make_study(n_series=2, per_series=per_series, patient_id=patient, issuer=ISSUER)
        with self.database.session() as session:
            for dataset in datasets:
                dataset.PatientName = "DOE^JANE"
                dataset.PatientBirthDate = "19800214"
                dataset.StudyDescription = "CT chest"
                ingest(session, store, io.BytesIO(instance_bytes(dataset)), Sender(party.organisation_id, party.oid))
        return Study(str(datasets[0].StudyInstanceUID), list(dict.fromkeys(str(d.SeriesInstanceUID) for d in datasets)),
                     [str(d.SOPInstanceUID) for d in datasets], f"{patient}^^^&{ISSUER}&ISO")

    def audit(self, event_id: str) -> list[AuditRecord]:
        with self.database.session() as session:
            return list(session.scalars(select(AuditRecord).where(AuditRecord.event_id == event_id)))


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    with app_with_two_parties(tmp_path / "hub", database_url, "share:create dicomweb:read",
                              share_passcode_attempts=3, share_max_seconds=3600) as (app, database, a, b):
        yield Hub(app, database, a, b)


def _path(url: str) -> str:
    """The path (and query) of a URL the hub gave out, to ask the test client at https://localhost."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _open(browser: FlaskClient, url: str, **kwargs: Any) -> TestResponse:
    return browser.get(_path(url), base_url=BASE, headers={"User-Agent": BROWSER}, **kwargs)


def test_a_link_opens_the_viewer_without_account_or_certificate(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study, expires_in=600, recipient="Dr. Who, St. Elsewhere")
    assert made.status_code == 201, made.get_data(as_text=True)
    url, link_id = made.json["url"], made.json["id"]
    token = url.rsplit("/", 1)[1]
    assert url.startswith("https://127.0.0.1:8443/s/") and len(token) >= 43        # 256 bits, URL-safe base64
    browser = hub.browser()
    page = _open(browser, url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "DOE JANE" in html and "1980-02-14" in html and "CT chest" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    summary = _open(browser, f"{url}/study.json").json
    assert [s["uid"] for s in summary["series"]] == study.series
    assert sum(len(s["instances"]) for s in summary["series"]) == len(study.instances)
    frame = _open(browser, f"{url}/instances/{study.instances[0]}/frames/1.jpg?viewport=64,64&window=100,200")
    assert frame.status_code == 200 and frame.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(frame.get_data())).size[0] <= 64
    assert frame.headers["X-Window"] == "100,200"                  # the window it went through
    default = f"{url}/instances/{study.instances[0]}/frames/1.jpg?viewport=64,64"
    first, cached = _open(browser, default), _open(browser, default)
    assert first.headers["X-Window"] == cached.headers["X-Window"] and first.get_data() == cached.get_data()
    thumbnail = _open(browser, f"{url}/series/{study.series[1]}/thumbnail.jpg")
    assert thumbnail.status_code == 200 and Image.open(io.BytesIO(thumbnail.get_data())).format == "JPEG"
    assert _open(browser, url).status_code == 200            # the same visit: no new use
    listed = hub.call(hub.org_a, "GET", "/api/shares").json["shares"]
    assert [(s["id"], s["uses"], s["status"], s["recipient"]) for s in listed] == \
        [(link_id, 1, "active", "Dr. Who, St. Elsewhere")]
    with hub.database.session() as session:
        stored = session.get(ShareLink, link_id)
        assert stored is not None and token not in stored.token_hash
        dumped = " ".join(str(v) for v in session.execute(text("SELECT * FROM share_links")).one())
        assert token not in dumped


def test_views_and_downloads_are_audited_and_in_the_disclosure_report(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study, recipient="Dr. Who").json
    browser = hub.browser()
    _open(browser, made["url"])
    download = _open(browser, f"{made['url']}/download")
    assert download.status_code == 200 and download.content_type == "application/zip"
    assert "attachment" in download.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(download.get_data()))
    dicomdir = dcmread(io.BytesIO(archive.read("DICOMDIR")))
    assert len([r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]) == 4
    viewed, exported = hub.audit("110103"), hub.audit("110106")
    assert len(viewed) == 1 and len(exported) == 1
    for record in viewed + exported:
        message = record.message.decode() if isinstance(record.message, bytes) else record.message
        assert f"share:{made['id']}" in message and BROWSER in _details(message) and study.uid in message
        assert record.patient_id == study.patient_id
    assert len(hub.audit("110113")) >= 1                         # the link's creation (Security Alert)
    with hub.database.session() as session:
        report = disclosures(session, study.patient_id)
    assert {(d.recipient_kind, d.recipient_id, d.recipient_name) for d in report} == \
        {("share link", made["id"], "Dr. Who")}


def _details(message: str) -> str:
    """The message with its base64 detail values decoded (where the User-Agent is)."""
    import base64
    import re
    return message + " ".join(base64.b64decode(v).decode("utf-8", "replace")
                              for v in re.findall(r'value="([A-Za-z0-9+/=]+)"', message))


def test_the_viewer_reaches_nothing_but_the_shared_study(hub: Hub) -> None:
    study, other = hub.store(hub.org_a), hub.store(hub.org_a, patient="P-2")
    made = hub.share(hub.org_a, study, series_uids=[study.series[0]]).json
    url = made["url"]
    stranger = hub.browser()
    assert _open(stranger, f"{url}/study.json").status_code == 403                 # the page was not opened
    browser = hub.browser()
    assert _open(browser, url).status_code == 200
    summary = _open(browser, f"{url}/study.json").json
    assert [s["uid"] for s in summary["series"]] == [study.series[0]]
    in_series, other_series = study.instances[0], study.instances[-1]
    assert _open(browser, f"{url}/instances/{in_series}/frames/1.jpg").status_code == 200
    assert _open(browser, f"{url}/instances/{other_series}/frames/1.jpg").status_code == 404
    assert _open(browser, f"{url}/instances/{other.instances[0]}/frames/1.jpg").status_code == 404
    assert _open(browser, f"{url}/instances/{in_series}/frames/2.jpg").status_code == 404
    assert _open(browser, f"{url}/series/{study.series[1]}/thumbnail.jpg").status_code == 404
    assert _open(browser, f"{url}/instances/..%2F..%2Fetc%2Fpasswd/frames/1.jpg").status_code == 404
    assert _open(browser, f"{url}/instances/{in_series}/frames/1.jpg?window=abc").status_code == 400
    guessed = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    assert _open(hub.browser(), guessed).status_code == 404
    assert _open(hub.browser(), f"{BASE}/s/short").status_code == 404


def test_the_organisation_must_see_the_study_and_asks_with_its_scope(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    assert hub.share(hub.org_b, study).status_code == 404
    assert hub.share(hub.org_a, study, series_uids=["1.2.3.404"]).status_code == 404
    for body, fragment in (({"study_uid": "1.2.x"}, "study_uid"), ({"study_uid": study.uid, "color": 1}, "unknown"),
                           ({"study_uid": study.uid, "expires_in": -5}, "expires_in"),
                           ({"study_uid": study.uid, "max_uses": "2"}, "max_uses"),
                           ({"study_uid": study.uid, "passcode": "12"}, "passcode"), ({}, "study_uid"),
                           ({"study_uid": study.uid, "series_uids": "1.2"}, "series_uids")):
        answer = hub.call(hub.org_a, "POST", "/api/shares", body)
        assert answer.status_code == 400 and fragment in answer.json["detail"], (body, answer.json)
    assert hub.call(hub.org_a, "POST", "/api/shares", {"study_uid": study.uid}, scope="dicomweb:read").status_code \
        == 403
    assert hub.app.test_client().post("/api/shares", json={"study_uid": study.uid}).status_code == 401
    with hub.database.session() as session:
        assert session.scalar(select(ShareLink.id)) is None


def test_expiry_is_capped_and_an_expired_link_is_gone(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study, expires_in=10 ** 9).json
    expires = datetime.fromisoformat(made["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=3600)
    browser = hub.browser()
    assert _open(browser, made["url"]).status_code == 200
    with hub.database.session() as session:
        session.execute(update(ShareLink).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    gone = _open(browser, made["url"])
    assert gone.status_code == 410 and "expired" in gone.get_data(as_text=True)
    assert _open(browser, f"{made['url']}/study.json").status_code == 410


def test_revoking_ends_the_link_and_its_open_visits_at_once(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study).json
    browser = hub.browser()
    assert _open(browser, made["url"]).status_code == 200
    assert hub.call(hub.org_b, "DELETE", f"/api/shares/{made['id']}").status_code == 404
    assert hub.call(hub.org_a, "DELETE", f"/api/shares/{made['id']}").status_code == 204
    assert _open(browser, f"{made['url']}/study.json").status_code == 410
    page = _open(browser, made["url"])
    assert page.status_code == 410 and "withdrawn" in page.get_data(as_text=True)
    with hub.database.session() as session:
        assert session.scalar(select(ShareVisit.token_hash)) is None
    listed = hub.call(hub.org_a, "GET", "/api/shares").json["shares"]
    assert listed[0]["status"] == "revoked"
    assert hub.call(hub.org_a, "DELETE", "/api/shares/nosuchlink").status_code == 404


def test_a_passcode_is_asked_and_wrong_ones_lock_the_link(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study, passcode="4711-open").json
    browser = hub.browser()
    form = _open(browser, made["url"])
    assert form.status_code == 200 and 'name="passcode"' in form.get_data(as_text=True)
    assert _open(browser, f"{made['url']}/study.json").status_code == 403
    right = browser.post(_path(made["url"]), base_url=BASE, data={"passcode": "4711-open"})
    assert right.status_code == 200 and "DOE JANE" in right.get_data(as_text=True)
    assert _open(browser, f"{made['url']}/study.json").status_code == 200

    locked = hub.share(hub.org_a, study, passcode="4711-open").json
    other = hub.browser()
    first = other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "0000"})
    assert first.status_code == 401 and "2 attempt(s) left" in first.get_data(as_text=True)
    foreign = other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "4711-open"},
                         headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 400
    cross_site = other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "4711-open"},
                            headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"})
    assert cross_site.status_code == 400
    other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "1111"})
    last = other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "2222"})
    assert last.status_code == 410 and "locked" in last.get_data(as_text=True)
    after = other.post(_path(locked["url"]), base_url=BASE, data={"passcode": "4711-open"})
    assert after.status_code == 410
    assert len([r for r in hub.audit("110113") if r.outcome == 4]) >= 3


def test_max_uses_counts_visits_not_images(hub: Hub) -> None:
    study = hub.store(hub.org_a)
    made = hub.share(hub.org_a, study, max_uses=1, show_patient=False).json
    first = hub.browser()
    page = _open(first, made["url"])
    assert page.status_code == 200 and "DOE JANE" not in page.get_data(as_text=True)
    assert _open(first, f"{made['url']}/study.json").json["patient"]["name"] is None
    gone = _open(hub.browser(), made["url"])
    assert gone.status_code == 410 and "used" in gone.get_data(as_text=True)
    for instance in study.instances:
        assert _open(first, f"{made['url']}/instances/{instance}/frames/1.jpg").status_code == 200


@pytest.fixture
def clinician(hub: Hub) -> FlaskClient:
    with hub.database.session() as session:
        user = add_user(session, "carol", "clinician", PASSWORD)
        user.organisation_id = hub.org_a.organisation_id
        add_user(session, "cathy", "compliance", PASSWORD)
    return hub.browser()


def _login(browser: FlaskClient, name: str, next_path: str) -> TestResponse:
    import re
    form = browser.get(f"/audit/login?{urlencode({'next': next_path})}", base_url=BASE).get_data(as_text=True)
    fields = {k: html.unescape(v) for k, v in re.findall(r'name="(next|login_token)" value="([^"]*)"', form)}
    return browser.post("/audit/login", base_url=BASE, data={"name": name, "password": PASSWORD, **fields})


def test_a_clinician_launches_the_viewer_from_the_emr(hub: Hub, clinician: FlaskClient) -> None:
    study = hub.store(hub.org_a)
    hub.store(hub.org_b, patient="P-9")
    launch = f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study.uid}"
    first = clinician.get(launch, base_url=BASE)
    assert first.status_code == 302 and "/audit/login" in first.headers["Location"]
    logged_in = _login(clinician, "carol", launch)
    assert logged_in.status_code == 303 and logged_in.headers["Location"].endswith(launch)
    opened = clinician.get(launch, base_url=BASE)
    assert opened.status_code == 303 and opened.headers["Location"].startswith("/s/")
    viewer = clinician.get(opened.headers["Location"], base_url=BASE)
    assert viewer.status_code == 200 and "CT chest" in viewer.get_data(as_text=True)
    viewed = hub.audit("110103")
    message = viewed[0].message.decode() if isinstance(viewed[0].message, bytes) else viewed[0].message
    assert 'UserID="carol"' in message
    patient = clinician.get("/IHEInvokeImageDisplay?" + urlencode({"requestType": "PATIENT",
                                                                  "patientID": study.patient_id}), base_url=BASE)
    assert patient.status_code == 200 and f"studyUID={study.uid}" in patient.get_data(as_text=True)
    other = clinician.get("/IHEInvokeImageDisplay?requestType=PATIENT&patientID=P-9", base_url=BASE)
    assert other.status_code == 404                                       # Org B's study: not Org A's to see
    assert clinician.get("/IHEInvokeImageDisplay?requestType=SERIES", base_url=BASE).status_code == 400
    assert clinician.get("/IHEInvokeImageDisplay?requestType=STUDY&studyUID=1.2.x", base_url=BASE).status_code == 400


def test_only_clinicians_and_systems_with_a_token_may_launch(hub: Hub, clinician: FlaskClient) -> None:
    study = hub.store(hub.org_a)
    launch = f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study.uid}"
    _login(clinician, "cathy", launch)
    assert clinician.get(launch, base_url=BASE).status_code == 403
    system = hub.call(hub.org_a, "GET", launch, scope="dicomweb:read")
    assert system.status_code == 303 and system.headers["Location"].startswith("/s/")
    assert hub.call(hub.org_b, "GET", launch, scope="dicomweb:read").status_code == 404
