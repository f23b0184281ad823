"""`/s/<token>`: the viewer a share link opens, for a person with no account and no client certificate.

    GET  /s/<token>                                   the passcode form, or the viewer (a visit starts)
    POST /s/<token>                                   the passcode
    GET  /s/<token>/study.json                        the study, its series and instances
    GET  /s/<token>/series/<uid>/thumbnail.jpg        a series' middle image, small
    GET  /s/<token>/instances/<uid>/frames/<n>.jpg    a frame, rendered (`window=center,width`, `viewport=w,h`)
    GET  /s/<token>/instances/<uid>/media             an encapsulated PDF, or a video's MPEG stream
    GET  /s/<token>/download                          the study as a ZIP with a DICOMDIR

Everything but the page itself needs the visit's cookie, and names only
instances of the shared study (and series) the sharing organisation may
see: any other UID answers 404, as does an unknown token. An expired,
withdrawn, locked or used-up link answers a 410 page saying which. Opening
the viewer and downloading are audited (requestor "share:<link id>", the
address and the browser); wrong passcodes and refused openings are Security
Alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, jsonify, render_template, request, stream_with_context
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from hub import get_settings
from hub.audit.events import Party, security_alert, share_exported, share_viewed
from hub.audit.message import AuditEvent, Outcome
from hub.audit.web import hub_party, source_id, write_event
from hub.clock import as_utc
from hub.db import begin_read_only, get_session
from hub.shares.api import link_policy
from hub.shares.content import IMAGE, PDF, VIDEO, SharedStudy, instance_kind, shared_study
from hub.shares.links import (
    ACTIVE,
    GONE_MESSAGES,
    USED_UP,
    LinkGone,
    UnknownLink,
    WrongPasscode,
    check_passcode,
    find_link,
    find_visit,
    is_launch,
    link_status,
    start_visit,
)
from hub.shares.tables import ShareLink, ShareVisit
from repository.dicomweb import render, wado
from repository.dicomweb.errors import DicomwebError
from repository.dicomweb.views import rendered_frame
from repository.study_archive import ArchiveEntry, archive_name, study_zip
from repository.tables import DicomInstance
from repository.views import blob_store

log = logging.getLogger(__name__)

blueprint = Blueprint("viewer", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/viewer/static")

COOKIE_PREFIX = "__Host-xdshub-share-"
THUMBNAIL = (128, 128)
MAX_VIEWPORT = 4096
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",      # the URL holds the token: never send it elsewhere
}
MEDIA_TYPES = {PDF: "application/pdf", VIDEO: "video/mp4"}


# -- who is looking ---------------------------------------------------------------------------------------------

def _cookie(link: ShareLink) -> str:
    return COOKIE_PREFIX + link.id


def _viewer(link: ShareLink) -> Party:
    """The person looking, as an audit participant: "share:<id>" with the recipient label, or for a
    clinician's launch the clinician."""
    user_id = link.created_by if is_launch(link) else f"share:{link.id}"
    return Party(user_id=user_id, address=request.remote_addr, name=link.recipient or None)


def _instances(study: SharedStudy) -> list[tuple[str, str]]:
    return [(i.sop_class_uid, i.sop_instance_uid) for i in study.instances]


def _record(session: Session, build: Callable[..., AuditEvent], study: SharedStudy, outcome: Outcome = Outcome.SUCCESS,
            description: str | None = None) -> None:
    write_event(session, build(viewer=_viewer(study.link), hub=hub_party(), outcome=outcome, time=datetime.now(UTC),
                               source_id=source_id(), study_uid=study.link.study_instance_uid,
                               instances=_instances(study), patient_id=study.patient_id or None,
                               user_agent=request.user_agent.string, description=description))


def _alert(session: Session, link: ShareLink | None, reason: str) -> None:
    requestor = _viewer(link) if link is not None else Party(user_id="unauthenticated", address=request.remote_addr)
    write_event(session, security_alert(requestor=requestor, hub=hub_party(), outcome=Outcome.MINOR_FAILURE,
                                        time=datetime.now(UTC), source_id=source_id(), reason=reason,
                                        transaction=None, path=f"/s/{link.id if link else '<token>'}"))


# -- pages ------------------------------------------------------------------------------------------------------

@blueprint.app_template_filter("dicom_date")
def dicom_date(value: str | None) -> str:
    """A DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    text = (value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


@blueprint.app_template_filter("when")
def when(value: str) -> str:
    """An ISO time as "YYYY-MM-DD HH:MM UTC"."""
    return as_utc(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M UTC")


def _secured(response: Response, cache_control: str) -> Response:
    """Every answer of the viewer carries the security headers, and says how long it may be kept."""
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = cache_control
    return response


def page(template: str, code: int = 200, **context: Any) -> Response:
    return _secured(Response(render_template(template, **context), status=code,
                             content_type="text/html; charset=utf-8"), "no-store")


def _gone(link: ShareLink, status: str) -> Response:
    return page("share_gone.html", 410, heading="Link no longer available", message=GONE_MESSAGES[status],
                status=status)


def _not_found() -> Response:
    return page("share_gone.html", 404, heading="Link not valid",
                message="This link is not valid. Check that it was copied whole.", status="unknown")


def _same_origin() -> bool:
    """A form post from this site. Browsers say so in Sec-Fetch-Site; one that does not sends an Origin,
    which is "null" from our pages (they send no referrer), else must be this host."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme == request.scheme


def _open_viewer(session: Session, link: ShareLink, token: str) -> Response:
    """The viewer page: a live visit continues, else a new visit consumes a use."""
    visit_token = request.cookies.get(_cookie(link))
    visit = find_visit(session, link, visit_token)
    if visit is None:
        status = link_status(link)
        if status != ACTIVE:
            _alert(session, link, f"share link {status}")
            session.commit()
            return _gone(link, status)
        visit_token, visit = start_visit(session, link, link_policy(get_settings()), request.remote_addr or "",
                                         request.user_agent.string)
    study = shared_study(session, link)
    _record(session, share_viewed, study)
    session.commit()
    response = page("share_viewer.html", study=study.summary(), base=f"/s/{token}", launch=is_launch(link))
    _set_cookie(response, link, visit, visit_token)
    return response


def _set_cookie(response: Response, link: ShareLink, visit: ShareVisit, token: str | None) -> None:
    lifetime = max(int((as_utc(visit.expires_at) - datetime.now(UTC)).total_seconds()), 0)
    response.set_cookie(_cookie(link), token or "", max_age=lifetime, path="/", secure=True, httponly=True,
                        samesite="Lax")


@blueprint.get("/s/<token>")
def open_link(token: str) -> Response:
    session = get_session()
    try:
        link = find_link(session, token)
    except UnknownLink:
        _alert(session, None, "unknown share link")
        session.commit()
        return _not_found()
    if link.passcode_hash is not None and find_visit(session, link, request.cookies.get(_cookie(link))) is None:
        status = link_status(link)
        if status != ACTIVE:
            return _gone(link, status)
        return page("share_passcode.html", error=None)
    return _open_viewer(session, link, token)


@blueprint.post("/s/<token>")
def enter_passcode(token: str) -> Response:
    session = get_session()
    try:
        link = find_link(session, token, for_update=True)
    except UnknownLink:
        return _not_found()
    if not _same_origin():
        return page("share_passcode.html", 400, error="The form was not sent from this page. Try again.")
    try:
        check_passcode(link, request.form.get("passcode", ""), link_policy(get_settings()))
    except LinkGone as exc:
        return _gone(link, exc.status)
    except WrongPasscode as exc:
        _alert(session, link, "wrong share link passcode" + ("; link locked" if not exc.attempts_left else ""))
        session.commit()
        if not exc.attempts_left:
            return _gone(link, link_status(link))
        return page("share_passcode.html", 401, error=f"That passcode is not right. {exc.attempts_left} "
                                                       f"attempt(s) left before the link locks.")
    return _open_viewer(session, link, token)


# -- what the page loads --------------------------------------------------------------------------------------

def _visiting(token: str, **only: str) -> SharedStudy:
    """The shared study of a live visit of the link (read only), or its part `only` names
    (`content.shared_study`); 404 / 410 / 403 otherwise."""
    session = get_session()
    begin_read_only(session)
    try:
        link = find_link(session, token)
    except UnknownLink:
        abort(404, "no such link")
    status = link_status(link)
    if status not in (ACTIVE, USED_UP):
        abort(410, GONE_MESSAGES[status])
    if find_visit(session, link, request.cookies.get(_cookie(link))) is None:
        abort(403, "open the link itself first")
    study = shared_study(session, link, **only)
    session.commit()
    return study


def _instance(study: SharedStudy, sop_instance_uid: str) -> DicomInstance:
    row = study.instance(sop_instance_uid)
    if row is None:
        abort(404, "no such instance in this shared study")
    return row


def _cacheable(data: bytes, media_type: str = "image/jpeg") -> Response:
    """Content of a stored instance (a rendered frame, a document): the browser may keep it an hour."""
    return _secured(Response(data, content_type=media_type), "private, max-age=3600")


def _rendered(row: DicomInstance, number: int, options: render.RenderOptions) -> render.Rendered:
    return rendered_frame(wado.Held.of(row), number, options)


@blueprint.get("/s/<token>/study.json")
def study_json(token: str) -> Response:
    return _secured(jsonify(_visiting(token).summary()), "no-store")


@blueprint.get("/s/<token>/series/<series_uid>/thumbnail.jpg")
def thumbnail(token: str, series_uid: str) -> Response:
    images = [i for i in _visiting(token, series_uid=series_uid).instances if instance_kind(i) == IMAGE]
    if not images:
        abort(404, "no image in this series")
    middle = images[len(images) // 2]
    options = render.RenderOptions(viewport=THUMBNAIL, quality=80)
    return _cacheable(_rendered(middle, 1, options).image)


@blueprint.get("/s/<token>/instances/<sop_instance_uid>/frames/<int:number>.jpg")
def frame(token: str, sop_instance_uid: str, number: int) -> Response:
    row = _instance(_visiting(token, sop_instance_uid=sop_instance_uid), sop_instance_uid)
    if instance_kind(row) != IMAGE:
        abort(404, "this instance is not an image")
    if not 1 <= number <= (row.number_of_frames or 1):
        abort(404, f"the instance has {row.number_of_frames or 1} frame(s)")
    params = {k: v for k, v in request.args.items() if k in ("viewport", "quality")}
    if "window" in request.args:
        params["window"] = f"{request.args['window']},linear"
    options = render.parse_render_options(params, "image/jpeg")
    rendered = _rendered(row, number, options)
    response = _cacheable(rendered.image)
    if rendered.window is not None:     # where the viewer's window drag starts
        response.headers["X-Window"] = f"{rendered.window.center:g},{rendered.window.width:g}"
    return response


@blueprint.get("/s/<token>/instances/<sop_instance_uid>/media")
def media(token: str, sop_instance_uid: str) -> Response:
    row = _instance(_visiting(token, sop_instance_uid=sop_instance_uid), sop_instance_uid)
    kind = instance_kind(row)
    if kind not in MEDIA_TYPES:
        abort(404, "this instance is not a document or a video")
    dataset = wado.read_full(blob_store(), wado.Held.of(row))
    if kind == PDF:
        data = bytes(dataset.EncapsulatedDocument)
        length = int(dataset.get("EncapsulatedDocumentLength") or len(data))
        data = data[:length]
    else:
        from pydicom.encaps import generate_fragments
        data = b"".join(generate_fragments(dataset.PixelData))
    response = _cacheable(data, MEDIA_TYPES[kind])
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Content-Disposition"] = "inline"
    return response


@blueprint.get("/s/<token>/download")
def download(token: str) -> Response:
    study = _visiting(token)
    if not study.instances:
        abort(404, "nothing to download")
    session = get_session()
    _record(session, share_exported, study)
    session.commit()
    entries = [ArchiveEntry.from_instance(i) for i in study.instances]
    store = blob_store()

    def chunks() -> Iterator[bytes]:
        try:
            yield from study_zip(store, entries)
        except Exception:
            log.exception("the download of shared study %s broke off", study.link.study_instance_uid)
            raise
    response = _secured(Response(stream_with_context(chunks()), content_type="application/zip"), "no-store")
    response.headers["Content-Disposition"] = f'attachment; filename="{archive_name(study.link.study_instance_uid)}"'
    return response


def _json_error(status: int, detail: str) -> Response:
    """What the page's script shows instead of an image or the study."""
    response = jsonify({"status": status, "detail": detail})
    response.status_code = status
    return _secured(response, "no-store")


@blueprint.errorhandler(HTTPException)
def _error(exc: HTTPException) -> Response:
    return _json_error(exc.code or 500, exc.description or "")


@blueprint.errorhandler(DicomwebError)
def _undecodable(exc: DicomwebError) -> Response:
    """A frame that cannot be rendered here (406), or a bad parameter (400)."""
    return _json_error(exc.status, exc.message)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
