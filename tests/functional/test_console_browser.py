"""The compliance console in a real browser: headless Chromium (Debian `chromium`) driven by Playwright
against `xdshub serve` over TLS: log in, see the chain's status, filter, open a record, export CSV, read a
patient's disclosure report, log out, and be locked out after repeated failures.

Chromium trusts the hub's development certificate by pinning its public key
(--ignore-certificate-errors-spki-list), not by ignoring certificate errors.
Screenshots of each screen go to $XDSHUB_TEST_ARTIFACTS/console (else the
test's temporary folder).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.audit import events
from hub.audit.message import Outcome
from hub.audit.record import record
from hub.console.accounts import add_user
from hub.db import Database
from tests.functional.browser_support import launch_chromium, sync_api
from tests.functional.conftest import RunningHub, new_hub, serving

pytestmark = pytest.mark.functional

PASSWORD = "correct horse battery"
PATIENT = "PAT-7^^^&1.3.6.1.4.1.21367.2026.901&ISO"
OTHER = "PAT-8^^^&1.3.6.1.4.1.21367.2026.901&ISO"



def _seed(hub: RunningHub) -> None:
    """A compliance account, and retrievals by Org A of two patients' documents (one refused)."""
    database = Database(hub.settings.database_url)
    org_a = events.Party(user_id=hub.oids["Org A"], address="192.0.2.10", alternative_id="client-a")
    repository = events.Party(user_id=f"{hub.url}/xds/repository", address="127.0.0.1")
    try:
        with database.session() as session:
            add_user(session, "alice", "compliance", PASSWORD)
            for patient, outcome, document in ((PATIENT, Outcome.SUCCESS, "1.2.3.4.5.6.1"),
                                               (OTHER, Outcome.SUCCESS, "1.2.3.4.5.6.2"),
                                               (PATIENT, Outcome.SERIOUS_FAILURE, "1.2.3.4.5.6.3")):
                record(session, events.retrieve(
                    requestor=org_a, hub=repository, outcome=outcome, time=datetime.now(UTC), source_id=hub.url,
                    documents=[(document, hub.settings.repository_unique_id, None)], patient_id=patient),
                    hub.settings)
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def console_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    hub = new_hub(tmp_path_factory.mktemp("console") / "var", console_lockout_attempts=3)
    _seed(hub)
    assert hub.log is not None
    with serving(hub.data_dir, hub.settings, hub.log):
        yield hub


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("XDSHUB_TEST_ARTIFACTS") or tmp_path) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(console_hub: RunningHub, tmp_path: Path) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright, console_hub.settings.path(console_hub.settings.server_cert))
        context = browser.new_context(accept_downloads=True, base_url=console_hub.url)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def _login(page, name: str = "alice", password: str = PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_log_in_filter_open_a_record_export_and_report(page, console_hub: RunningHub,  # type: ignore[no-untyped-def]
                                                       artifacts: Path) -> None:
    expect = sync_api.expect
    page.goto("/audit")
    expect(page).to_have_url(f"{console_hub.url}/audit/login?next=/audit")
    page.screenshot(path=str(artifacts / "01-login.png"))
    _login(page)
    expect(page.locator("#chain-status")).to_contain_text("Audit chain intact")
    expect(page.locator("#records")).to_contain_text("Retrieve Document Set")
    page.screenshot(path=str(artifacts / "02-timeline.png"), full_page=True)

    page.fill("input[name=patient_id]", PATIENT)
    page.select_option("select[name=outcome]", "0")
    page.click("#filters button[type=submit]")
    rows = page.locator("#records tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(PATIENT)
    page.screenshot(path=str(artifacts / "03-filtered.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#export-csv")
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["patient_id"], r["outcome"]) for r in exported] == [(PATIENT, "0")]

    rows.first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("Audit record")
    expect(page.locator("#objects")).to_contain_text("1.2.3.4.5.6.1")
    expect(page.locator("#participants")).to_contain_text("client-a")
    page.screenshot(path=str(artifacts / "04-record.png"), full_page=True)

    page.click("text=Disclosure report")
    page.fill("input[name=patient_id]", PATIENT)
    page.click("form.filters button[type=submit]")
    expect(page.locator("#summary")).to_contain_text("1 disclosure(s)")
    expect(page.locator("#summary")).to_contain_text("1 refused attempt(s)")
    expect(page.locator("#disclosures")).to_contain_text("Org A")
    page.screenshot(path=str(artifacts / "05-disclosures.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export-disclosures")
    report = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(report) == 2 and "1.2.3.4.5.6.1" in ",".join(report[1])

    page.click("text=Log out")
    expect(page).to_have_url(f"{console_hub.url}/audit/login")
    page.goto("/audit")
    expect(page.locator("h1")).to_have_text("Log in")


def test_wrong_passwords_lock_the_account(page, console_hub: RunningHub,  # type: ignore[no-untyped-def]
                                          artifacts: Path) -> None:
    expect = sync_api.expect
    database = Database(console_hub.settings.database_url)
    try:
        with database.session() as session:
            add_user(session, "bob", "compliance", PASSWORD)
    finally:
        database.dispose()
    page.goto("/audit/login")
    for _ in range(console_hub.settings.console_lockout_attempts):
        _login(page, "bob", "not the password")
        expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
    _login(page, "bob", PASSWORD)
    expect(page.locator("#login-error")).to_contain_text("locked")
    page.screenshot(path=str(artifacts / "06-locked.png"))
