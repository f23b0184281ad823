"""The compliance console through HTTP: login, lockout, roles, CSRF, timeline, detail, reports, exports."""

from __future__ import annotations

import csv
import io
from html import escape
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select, update

from hub.audit import events
from hub.audit.message import Outcome
from hub.audit.tables import AuditRecord, AuditVerification
from hub.console.web import LOGIN_COOKIE, SESSION_COOKIE
from hub.organisations import add_organisation
from tests.unit.hub.console.conftest import HUB, NOW, Console, hidden

PATIENT = "P1^^^&1.2.3.4&ISO"
OTHER = "P2^^^&1.2.3.4&ISO"
ORG_OID = "1.2.3.4.5"


def _records(console: Console, **where: object) -> list[AuditRecord]:
    with console.database.session() as session:
        query = select(AuditRecord).order_by(AuditRecord.seq)
        for name, value in where.items():
            query = query.where(getattr(AuditRecord, name) == value)
        return list(session.scalars(query))


def _retrieve(patient: str = PATIENT, outcome: Outcome = Outcome.SUCCESS, document: str = "1.2.3.4.99.1"):  # type: ignore[no-untyped-def]
    return events.retrieve(requestor=events.Party(user_id=ORG_OID, address="192.0.2.1", alternative_id="client-a"),
                           hub=HUB, outcome=outcome, time=NOW, source_id="https://localhost",
                           documents=[(document, "1.2.3.4.1", None)], patient_id=patient)


def _organisation(console: Console) -> None:
    with console.database.session() as session:
        add_organisation(session, console.settings, "Radiology Partners", ORG_OID, None)


# -- login ----------------------------------------------------------------------------------------------------

def test_pages_need_a_login_and_come_back_after_it(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    page = browser.get("/audit/disclosures?patient_id=x")
    assert page.status_code == 302
    target = parse_qs(urlsplit(page.headers["Location"]).query)["next"][0]
    assert target == "/audit/disclosures?patient_id=x"
    done = browser.login(next_path="/audit/disclosures%3Fpatient_id%3Dx")
    assert done.status_code == 303 and done.headers["Location"] == "/audit/disclosures?patient_id=x"


def test_the_session_cookie_is_host_only_secure_httponly_and_strict(console: Console) -> None:
    console.add_user()
    done = console.browser().login()
    cookie = next(c for c in done.headers.getlist("Set-Cookie") if c.startswith(SESSION_COOKIE))
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"))
    assert "Domain" not in cookie


def test_a_login_is_audited_either_way_and_says_little_on_failure(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    refused = browser.login(password="not the password")
    assert refused.status_code == 401 and "Wrong name or password." in refused.get_data(as_text=True)
    unknown = browser.login(name="mallory")
    assert unknown.status_code == 401 and "Wrong name or password." in unknown.get_data(as_text=True)
    assert browser.login().status_code == 303
    logins = _records(console, event_id="110114")
    assert [(r.user_id, r.outcome) for r in logins] == [("alice", 4), ("mallory", 4), ("alice", 0)]
    assert all(r.event_type == "110122" for r in logins)
    assert "wrong password" in logins[0].message and "unknown console account" in logins[1].message


def test_lockout_after_repeated_failures_even_with_the_right_password(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    for _ in range(console.settings.console_lockout_attempts):
        assert browser.login(password="not the password").status_code == 401
    locked = browser.login()
    assert locked.status_code == 401 and "locked" in locked.get_data(as_text=True)
    assert browser.get("/audit").status_code == 302
    assert "account locked" in _records(console, event_id="110114")[-1].message


def test_a_login_form_without_its_token_is_refused(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    browser.get("/audit/login")
    refused = browser.post("/audit/login", data={"name": "alice", "password": "correct horse battery",
                                                 "login_token": "forged"})
    assert refused.status_code == 400 and browser.client.get_cookie(SESSION_COOKIE) is None
    fresh = console.browser()      # no login cookie at all: a form posted from another site
    assert fresh.post("/audit/login", data={"name": "alice", "password": "correct horse battery",
                                            "login_token": "x"}).status_code == 400
    assert _records(console, event_id="110114") == []


def test_after_login_only_console_paths_are_followed(console: Console) -> None:
    console.add_user()
    for target in ("https://evil.example/audit", "//evil.example/audit", "/other", "/\\evil.example"):
        done = console.browser().login(next_path=target)
        assert done.headers["Location"] == "/audit/", target


def test_roles_clinician_is_refused_admin_manages_accounts(console: Console) -> None:
    console.add_user("carol", "clinician")
    console.add_user("alice", "compliance")
    console.add_user("root", "admin")
    clinician = console.browser()
    clinician.login("carol")
    assert clinician.get("/audit").status_code == 403
    compliance = console.browser()
    compliance.login("alice")
    assert compliance.get("/audit").status_code == 200 and compliance.get("/audit/users").status_code == 403
    admin = console.browser()
    admin.login("root")
    assert "carol" in admin.get("/audit/users").get_data(as_text=True)


def test_an_admin_unlocks_an_account_with_the_form_only(console: Console) -> None:
    console.add_user("alice", "compliance")
    console.add_user("root", "admin")
    for _ in range(console.settings.console_lockout_attempts):
        console.browser().login(password="not the password")
    admin = console.browser()
    admin.login("root")
    page = admin.get("/audit/users")
    assert "locked" in page.get_data(as_text=True)
    assert admin.post("/audit/users/alice/unlock").status_code == 400          # no CSRF token
    assert console.browser().login().status_code == 401
    assert admin.post("/audit/users/alice/unlock", data={"csrf_token": hidden(page, "csrf_token")}).status_code == 303
    assert console.browser().login().status_code == 303
    (change,) = _records(console, event_type="110137")
    assert change.user_id == "root" and "alice" in change.message


def test_logout_needs_the_sessions_token_and_ends_the_session(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    browser.login()
    assert browser.post("/audit/logout", data={"csrf_token": "forged"}).status_code == 400
    assert browser.get("/audit").status_code == 200                # still signed in
    token = browser.csrf()
    assert browser.post("/audit/logout", data={"csrf_token": token}).status_code == 303
    assert browser.get("/audit").status_code == 302
    assert [r.event_type for r in _records(console, event_id="110114")] == ["110122", "110123"]


def test_pages_forbid_framing_scripts_and_caching(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    login = browser.get("/audit/login")
    assert browser.client.get_cookie(LOGIN_COOKIE) is not None
    browser.login()
    for page in (login, browser.get("/audit")):
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


# -- the trail ------------------------------------------------------------------------------------------------

def test_timeline_filters_and_every_view_is_itself_audited(console: Console) -> None:
    _organisation(console)
    console.record(_retrieve(PATIENT), _retrieve(OTHER))
    console.add_user()
    browser = console.browser()
    browser.login()
    page = browser.get("/audit", query_string={"patient_id": PATIENT}).get_data(as_text=True)
    assert escape(PATIENT) in page and escape(OTHER) not in page and "Radiology Partners" in page
    assert "Retrieve Document Set" in page
    reads = _records(console, event_id="110101")
    assert reads[-1].user_id == "alice" and "patient_id" in reads[-1].message


def test_bad_filters_answer_400_and_record_nothing(console: Console) -> None:
    console.add_user()
    browser = console.browser()
    browser.login()
    before = len(_records(console))
    for query in ("since=yesterday", "outcome=3", "cursor=abc"):
        page = browser.get(f"/audit?{query}")
        assert page.status_code == 400 and "text/html" in page.content_type, query
    assert len(_records(console)) == before


def test_record_detail_shows_participants_objects_and_the_message(console: Console) -> None:
    console.record(_retrieve())
    console.add_user()
    browser = console.browser()
    browser.login()
    page = browser.get("/audit/records/1").get_data(as_text=True)
    assert "1.2.3.4.99.1" in page and "client-a" in page and "Report Number" in page
    assert "&lt;AuditMessage" in page                          # the XML shown, escaped
    assert browser.get("/audit/records/99999").status_code == 404


def test_hostile_values_are_escaped(console: Console) -> None:
    console.record(_retrieve(patient='<script>alert("x")</script>^^^&1.2&ISO'))
    console.add_user()
    browser = console.browser()
    browser.login()
    for path in ("/audit", "/audit/records/1"):
        page = browser.get(path).get_data(as_text=True)
        assert "<script>" not in page and "&lt;script&gt;" in page


def test_csv_export_holds_every_matching_record(console: Console) -> None:
    console.record(*(_retrieve(PATIENT, document=f"1.2.3.4.99.{n}") for n in range(120)), _retrieve(OTHER))
    console.add_user()
    browser = console.browser()
    browser.login()
    export = browser.get("/audit/export.csv", query_string={"patient_id": PATIENT})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert len(rows) == 120 and {row["patient_id"] for row in rows} == {PATIENT}


def test_disclosure_report_names_recipients_and_counts_refusals(console: Console) -> None:
    _organisation(console)
    console.record(_retrieve(PATIENT), _retrieve(PATIENT, Outcome.SERIOUS_FAILURE), _retrieve(OTHER))
    console.add_user()
    browser = console.browser()
    browser.login()
    page = browser.get("/audit/disclosures", query_string={"patient_id": PATIENT}).get_data(as_text=True)
    assert "1 disclosure(s)" in page and "1 refused attempt(s)" in page
    assert "Radiology Partners" in page and "1.2.3.4.99.1" in page
    export = browser.get("/audit/disclosures.csv", query_string={"patient_id": PATIENT})
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert len(rows) == 2 and "Radiology Partners" in rows[1]
    assert browser.get("/audit/disclosures.csv").status_code == 400


def test_chain_status_shows_intact_then_broken_after_tampering(console: Console) -> None:
    console.record(_retrieve(), _retrieve(OTHER))
    console.add_user()
    browser = console.browser()
    browser.login()
    page = browser.get("/audit").get_data(as_text=True)
    assert "Audit chain intact" in page
    with console.database.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(patient_id="someone else"))
    token = hidden(browser.get("/audit"), "csrf_token")
    assert browser.post("/audit/verify").status_code == 400              # CSRF
    assert browser.post("/audit/verify", data={"csrf_token": token}).status_code == 303
    page = browser.get("/audit").get_data(as_text=True)
    assert "Audit chain BROKEN" in page and "record 2: edited" in page
    with console.database.session() as session:
        assert session.scalars(select(AuditVerification.problem)).all()[-1].startswith("record 2")
