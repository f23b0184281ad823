"""The share-link viewer in a real browser: headless Chromium (Debian `chromium`) driven by Playwright against
`xdshub serve` over TLS.

One hub for the module holds a CT study of two series (16-bit gradients
with a disc that grows from slice to slice, Rescale Intercept -1024, so a
window change changes the pixels), stored through `repository.ingest`; the
links are made by "Org A" through `POST /api/shares` with its client
certificate and token. The tests open a link at desktop size (study header,
thumbnails, images stepped by keyboard and button, window by preset and by
dragging, zoom and fit, the ZIP download), at phone size, in the states a
link stops opening in (expired, revoked, locked by wrong passcodes, unknown),
behind a passcode, and from the EMR launch (IHE Invoke Image Display) of a
signed-in clinician.

Chromium trusts the hub's development certificate by pinning its public key
(--ignore-certificate-errors-spki-list), not by ignoring certificate errors.
Screenshots of each screen go to $XDSHUB_TEST_ARTIFACTS/viewer (else the
module's temporary folder).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageStat
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import select

from hub.client import HubClient
from hub.console.accounts import add_user
from hub.db import Database
from hub.shares.tables import ShareLink
from hub.tables import Organisation
from repository.blobstore import open_blob_store
from repository.ingest import Sender, ingest
from tests.factories.dicom import instance_bytes, make_instance
from tests.functional.browser_support import launch_chromium, sync_api
from tests.functional.conftest import RunningHub, new_hub, serving

pytestmark = pytest.mark.functional

PASSWORD = "correct horse battery"
PASSCODE = "open sesame"
ATTEMPTS = 3                          # share_passcode_attempts of the hub under test
SERIES = (("CT chest", 10), ("CT chest lung kernel", 4))     # description, instances
SIZE = 128
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}



def ct_slice(number: int, slices: int) -> np.ndarray:
    """Stored values 0..2000: a left-to-right gradient with a bright disc whose radius follows the slice."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    gradient = x * (1400 / (SIZE - 1))
    radius = SIZE * (0.1 + 0.3 * (number + 1) / slices)
    disc = (x - SIZE / 2) ** 2 + (y - SIZE / 2) ** 2 <= radius ** 2
    return np.where(disc, 1500 + 50 * (y % 8), gradient).astype(np.uint16)


def _study() -> list[bytes]:
    study_uid = generate_uid()
    files = []
    for number, (description, count) in enumerate(SERIES, start=1):
        series_uid = generate_uid()
        for index in range(count):
            ds = make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="VIEW-1", rows=SIZE,
                               columns=SIZE, series_number=number, instance_number=index + 1)
            ds.SeriesDescription = description
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
            ds.PixelData = ct_slice(index, count).tobytes()
            files.append(instance_bytes(ds))
    return files


def _seed(hub: RunningHub) -> str:
    """The study, sent by Org A, and a clinician account of Org A; the Study Instance UID."""
    database = Database(hub.settings.database_url)
    store = open_blob_store(hub.settings.storage_url)
    files = _study()
    try:
        with database.session() as session:
            org_a = session.scalar(select(Organisation).where(Organisation.oid == hub.oids["Org A"]))
            assert org_a is not None
            for data in files:
                ingest(session, store, io.BytesIO(data), Sender(org_a.id, org_a.oid))
            clinician = add_user(session, "dr-rivera", "clinician", PASSWORD)
            clinician.organisation_id = org_a.id
            session.commit()
    finally:
        database.dispose()
    return str(dcmread(io.BytesIO(files[0]), stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def viewer_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, str]]:
    hub = new_hub(tmp_path_factory.mktemp("viewer") / "var", share_passcode_attempts=ATTEMPTS)
    study_uid = _seed(hub)
    assert hub.log is not None
    with serving(hub.data_dir, hub.settings, hub.log):
        yield hub, study_uid


@pytest.fixture(scope="module")
def org_a(viewer_hub: tuple[RunningHub, str]) -> Iterator[HubClient]:
    hub, _ = viewer_hub
    with HubClient(hub.bundle("Org A"), base_url=hub.url) as client:
        yield client


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("XDSHUB_TEST_ARTIFACTS")
    folder = Path(root) / "viewer" if root else tmp_path_factory.mktemp("viewer-screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(viewer_hub: tuple[RunningHub, str]) -> Iterator[Any]:
    hub, _ = viewer_hub
    with sync_api.sync_playwright() as playwright:
        launched = launch_chromium(playwright, hub.settings.path(hub.settings.server_cert))
        try:
            yield launched
        finally:
            launched.close()


def _context(browser: Any, hub: RunningHub, **options: Any) -> Any:
    options.setdefault("viewport", DESKTOP)
    return browser.new_context(accept_downloads=True, base_url=hub.url, **options)


@pytest.fixture
def page(browser: Any, viewer_hub: tuple[RunningHub, str]) -> Iterator[Any]:
    context = _context(browser, viewer_hub[0])
    try:
        yield context.new_page()
    finally:
        context.close()


def share(client: HubClient, study_uid: str, **fields: Any) -> tuple[str, str]:
    """A new share link of the study: its id and its path (/s/<token>)."""
    response = client.api("POST", "/api/shares", {"study_uid": study_uid, **fields}, scope="share:create")
    assert response.status_code == 201, response.text
    return response.json()["id"], urlsplit(response.json()["url"]).path


def _instance_order(page: Any, path: str) -> list[list[str]]:
    """The SOP Instance UIDs of each series, in the order the viewer steps through them (from study.json)."""
    study = page.evaluate("url => fetch(url).then(r => r.json())", f"{path}/study.json")
    return [[i["uid"] for i in series["instances"]] for series in study["series"]]


def _shown_index(page: Any, count: int) -> int:
    """The image the overlay names (from 0), once it shows "Image i / count"."""
    overlay = page.locator("#overlay")
    sync_api.expect(overlay).to_contain_text(re.compile(rf"Image \d+ / {count}"))
    found = re.search(rf"Image (\d+) / {count}", overlay.text_content() or "")
    assert found is not None
    return int(found.group(1)) - 1


def _expect_shown(page: Any, uid: str, index: int, count: int) -> str:
    """Wait until image `index` (instance `uid`) is shown and named by the overlay; its frame URL."""
    sync_api.expect(page.locator("#overlay")).to_contain_text(f"Image {index + 1} / {count}")
    sync_api.expect(page.locator("#image")).to_have_attribute("data-shown", re.compile(re.escape(uid)))
    page.wait_for_function("() => { const i = document.getElementById('image'); "
                           "return !i.hidden && i.complete && i.naturalWidth > 0; }")
    return str(page.get_attribute("#image", "data-shown"))


def _image_shot(page: Any, path: Path) -> Image.Image:
    page.locator("#image").screenshot(path=str(path))
    return Image.open(path).convert("L")


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two grey screenshots, 0..255."""
    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


def _window_in(url: str) -> str | None:
    found = re.search(r"[?&]window=([^&]+)", url)
    return found.group(1) if found else None


def _drag(page: Any, dx: float, dy: float) -> None:
    box = page.locator("#viewport").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=8)
    page.mouse.up()


def test_desktop_view_step_window_zoom_and_download(page: Any, viewer_hub: tuple[RunningHub, str],
                                                    org_a: HubClient, artifacts: Path) -> None:
    expect = sync_api.expect
    _, study_uid = viewer_hub
    _, path = share(org_a, study_uid, recipient="Dr Second Opinion")
    response = page.goto(path)
    assert response is not None and response.status == 200
    expect(page.locator("#patient-name")).to_have_text("DOE JANE")
    expect(page.locator("#study-description")).to_have_text("CT chest")
    expect(page.locator("#series-list .series-button")).to_have_count(len(SERIES))
    page.wait_for_function("() => [...document.querySelectorAll('#series-list img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    order = _instance_order(page, path)
    count = len(order[0])
    index = _shown_index(page, count)
    first = _expect_shown(page, order[0][index], index, count)
    assert _window_in(first) is None
    page.screenshot(path=str(artifacts / "01-desktop-viewer.png"))

    page.locator("#viewport").focus()
    page.keyboard.press("ArrowDown")
    after_key = _expect_shown(page, order[0][index + 1], index + 1, count)
    page.click("#next")
    after_button = _expect_shown(page, order[0][index + 2], index + 2, count)
    page.keyboard.press("ArrowUp")
    _expect_shown(page, order[0][index + 1], index + 1, count)
    assert len({first, after_key, after_button}) == 3
    index += 1
    default_shot = _image_shot(page, artifacts / "02-image-default-window.png")

    page.select_option("#preset", "40,400")
    expect(page.locator("#image")).to_have_attribute("data-shown", re.compile("window=40,400$"))
    preset_url = _expect_shown(page, order[0][index], index, count)
    expect(page.locator("#overlay")).to_have_text(f"CT chest · Image {index + 1} / {count} · W 400 L 40")
    preset_shot = _image_shot(page, artifacts / "03-image-soft-tissue.png")
    assert _difference(default_shot, preset_shot) > 10
    page.screenshot(path=str(artifacts / "04-desktop-soft-tissue.png"))

    page.click("[data-mode=window]")
    _drag(page, 80, 40)
    window = re.search(r"W (\d+) L (-?\d+)", page.locator("#overlay").text_content() or "")
    assert window is not None and (window.group(1), window.group(2)) != ("400", "40")
    expect(page.locator("#image")).to_have_attribute(
        "data-shown", re.compile(re.escape(f"window={window.group(2)},{window.group(1)}")))
    dragged_url = _expect_shown(page, order[0][index], index, count)
    assert preset_shot.size == _image_shot(page, artifacts / "05-image-dragged-window.png").size
    dragged_shot = Image.open(artifacts / "05-image-dragged-window.png").convert("L")
    assert _difference(preset_shot, dragged_shot) > 2
    fetched = [page.evaluate("url => fetch(url).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))",
                             url) for url in (preset_url, dragged_url)]
    pixels = [np.asarray(Image.open(io.BytesIO(bytes(data))).convert("L"), dtype=np.int16) for data in fetched]
    assert np.abs(pixels[0] - pixels[1]).mean() > 2

    page.click("[data-mode=zoom]")
    expect(page.locator("[data-mode=zoom]")).to_have_class(re.compile(r"\bactive\b"))
    _drag(page, 0, -80)
    expect(page.locator("#overlay")).to_contain_text(re.compile(r"Zoom \d+\.\dx"))
    scale = re.search(r"scale\(([\d.]+)\)", page.get_attribute("#image", "style") or "")
    assert scale is not None and float(scale.group(1)) > 1.5
    page.screenshot(path=str(artifacts / "06-desktop-zoomed.png"))
    page.click("#fit")
    expect(page.locator("#overlay")).not_to_contain_text("Zoom")
    assert "scale(1)" in (page.get_attribute("#image", "style") or "")

    with page.expect_download() as download:
        page.click("#download")
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
        dicomdir = dcmread(io.BytesIO(archive.read("DICOMDIR")))
    assert "DICOMDIR" in names and len(names) == 1 + sum(n for _, n in SERIES)
    assert len([r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]) == len(names) - 1


def test_phone_width(browser: Any, viewer_hub: tuple[RunningHub, str], org_a: HubClient, artifacts: Path) -> None:
    expect = sync_api.expect
    hub, study_uid = viewer_hub
    _, path = share(org_a, study_uid)
    context = _context(browser, hub, **PHONE)
    try:
        phone = context.new_page()
        phone.goto(path)
        expect(phone.locator("#patient-name")).to_have_text("DOE JANE")
        order = _instance_order(phone, path)
        count = len(order[0])
        index = _shown_index(phone, count)
        _expect_shown(phone, order[0][index], index, count)
        expect(phone.locator("[data-mode=scroll]")).to_have_class(re.compile(r"\bactive\b"))   # coarse pointer
        assert phone.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth")
        box = phone.locator("#image").bounding_box()
        assert box is not None and box["width"] >= 300 and box["height"] >= 200
        for selector in ("#next", "#download", "#series-list .series-button"):
            button = phone.locator(selector).first.bounding_box()
            assert button is not None and button["x"] >= 0 and button["x"] + button["width"] <= 390, selector
        phone.screenshot(path=str(artifacts / "07-phone-viewer.png"))
        phone.tap("#next")
        _expect_shown(phone, order[0][index + 1], index + 1, count)
    finally:
        context.close()


def _expect_gone(page: Any, response: Any, code: int, status: str, screenshot: Path) -> None:
    assert response is not None and response.status == code
    sync_api.expect(page.locator("main.notice")).to_have_attribute("data-status", status)
    assert page.locator("#image").count() == 0
    page.screenshot(path=str(screenshot))


def test_expired_revoked_and_unknown_links(page: Any, viewer_hub: tuple[RunningHub, str], org_a: HubClient,
                                           artifacts: Path) -> None:
    hub, study_uid = viewer_hub
    expired_id, expired = share(org_a, study_uid)
    database = Database(hub.settings.database_url)
    try:
        with database.session() as session:
            link = session.get(ShareLink, expired_id)
            assert link is not None
            link.expires_at = datetime.now(UTC) - timedelta(hours=1)
            session.commit()
    finally:
        database.dispose()
    _expect_gone(page, page.goto(expired), 410, "expired", artifacts / "08-expired.png")
    sync_api.expect(page.locator("main.notice")).to_contain_text("This link has expired.")

    revoked_id, revoked = share(org_a, study_uid)
    page.goto(revoked)
    sync_api.expect(page.locator("#image")).to_have_attribute("data-shown", re.compile("/frames/1.jpg"))
    assert org_a.api("DELETE", f"/api/shares/{revoked_id}", scope="share:create").status_code == 204
    assert page.evaluate("url => fetch(url).then(r => r.status)", f"{revoked}/study.json") == 410
    _expect_gone(page, page.reload(), 410, "revoked", artifacts / "09-revoked.png")
    sync_api.expect(page.locator("main.notice")).to_contain_text("withdrawn")

    _expect_gone(page, page.goto("/s/" + "A" * 43), 404, "unknown", artifacts / "10-unknown.png")


def _enter(page: Any, passcode: str) -> Any:
    page.fill("#passcode", passcode)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value


def test_a_passcode_link_asks_for_the_passcode(page: Any, viewer_hub: tuple[RunningHub, str], org_a: HubClient,
                                                artifacts: Path) -> None:
    _, study_uid = viewer_hub
    _, protected = share(org_a, study_uid, passcode=PASSCODE)
    response = page.goto(protected)
    assert response is not None and response.status == 200
    sync_api.expect(page.locator("h1")).to_have_text("This shared study is protected")
    sync_api.expect(page.locator("#passcode")).to_be_focused()
    assert page.locator("#image").count() == 0
    assert page.evaluate("url => fetch(url).then(r => r.status)", f"{protected}/study.json") == 403
    page.screenshot(path=str(artifacts / "11-passcode.png"))


# The passcode form's POST carries `Origin: null` in Chromium (the page's Referrer-Policy is no-referrer), so
# the viewer trusts Sec-Fetch-Site: this test is what found that.
def test_wrong_passcodes_lock_the_link_and_the_right_one_opens(
        page: Any, viewer_hub: tuple[RunningHub, str], org_a: HubClient, artifacts: Path) -> None:
    expect = sync_api.expect
    _, study_uid = viewer_hub
    _, locked = share(org_a, study_uid, passcode=PASSCODE)
    page.goto(locked)
    for left in range(ATTEMPTS - 1, 0, -1):
        assert _enter(page, "not the passcode").status == 401
        expect(page.locator(".error")).to_contain_text(f"{left} attempt(s) left")
    page.screenshot(path=str(artifacts / "12-passcode-wrong.png"))
    _expect_gone(page, _enter(page, "not the passcode"), 410, "locked", artifacts / "13-locked.png")
    _expect_gone(page, page.goto(locked), 410, "locked", artifacts / "14-locked-reopened.png")

    _, protected = share(org_a, study_uid, passcode=PASSCODE)
    page.goto(protected)
    assert _enter(page, "wrong once").status == 401
    assert _enter(page, PASSCODE).status == 200
    expect(page.locator("#patient-name")).to_have_text("DOE JANE")
    expect(page.locator("#image")).to_have_attribute("data-shown", re.compile("/frames/1.jpg"))
    page.goto(protected)        # the visit goes on: no passcode asked again
    expect(page.locator("h1")).to_have_count(0)
    expect(page.locator("#image")).to_have_attribute("data-shown", re.compile("/frames/1.jpg"))
    page.screenshot(path=str(artifacts / "15-passcode-opened.png"))


def test_invoke_image_display_opens_the_viewer_for_a_clinician(
        page: Any, viewer_hub: tuple[RunningHub, str], artifacts: Path) -> None:
    expect = sync_api.expect
    hub, study_uid = viewer_hub
    page.goto(f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study_uid}")
    expect(page).to_have_url(re.compile(r"/audit/login\?next="))
    page.fill("input[name=name]", "dr-rivera")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(rf"^{re.escape(hub.url)}/s/[A-Za-z0-9_-]+$"))
    expect(page.locator("#patient-name")).to_have_text("DOE JANE")
    expect(page.locator("#study-description")).to_have_text("CT chest")
    expect(page.locator("#image")).to_have_attribute("data-shown", re.compile("/frames/1.jpg"))
    page.screenshot(path=str(artifacts / "16-launch-viewer.png"))
