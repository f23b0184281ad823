"""`/api/shares`: an organisation makes, lists and withdraws share links (scope share:create).

`POST /api/shares` takes JSON: `study_uid`, and optionally `expires_in`
(seconds; default `share_default_seconds`, cut to `share_max_seconds`),
`passcode`, `max_uses`, `recipient` (a label), `series_uids` (a subset of
the study's series) and `show_patient` (default true: the viewer shows the
patient's name and birth date). The organisation must be able to see the
study (and each series named): else 404, as for a study the hub does not
hold. Answers 201 with the link's `id` and its `url`, the only time the URL
is given out. `GET /api/shares` lists the organisation's links with their
use counts and status; `DELETE /api/shares/<id>` withdraws one at once (204).
Each change is audited (Security Alert, Object Security Attributes Changed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import select

from hub import get_settings
from hub.audit.events import share_changed
from hub.audit.web import hub_party, requestor_party, source_id, write_event
from hub.clock import as_utc
from hub.db import get_session
from hub.problems import problem
from hub.security.identity import Caller
from hub.security.protect import authenticate
from hub.settings import Settings
from hub.shares.links import (
    MAX_PASSCODE_LENGTH,
    LinkPolicy,
    ShareRequest,
    create_link,
    link_status,
    organisation_links,
    revoke,
)
from hub.shares.tables import LINK, ShareLink
from repository.dicomfile import is_valid_uid
from repository.tables import DicomInstance
from repository.visibility import visible_clause

blueprint = Blueprint("shares_api", __name__)

SCOPE = "share:create"
FIELDS = frozenset({"study_uid", "expires_in", "passcode", "max_uses", "recipient", "series_uids", "show_patient"})
MIN_PASSCODE_LENGTH = 4
MAX_SERIES = 1000


class BadShare(ValueError):
    """A share request that cannot be taken, with what to fix."""


def link_policy(settings: Settings) -> LinkPolicy:
    return LinkPolicy(settings.share_default_seconds, settings.share_max_seconds, settings.share_passcode_attempts,
                      settings.share_visit_seconds)


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadShare(f"{name} must be a whole number of at least 1, got {str(value)[:40]!r}")
    return value


def _uid(name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_valid_uid(value):
        raise BadShare(f"{name} must be a DICOM UID (digits and dots, at most 64 characters), "
                       f"got {str(value)[:80]!r}")
    return value


def parse_share_request(body: Any) -> ShareRequest:
    """The JSON body as a ShareRequest; BadShare naming what is wrong."""
    if not isinstance(body, dict):
        raise BadShare("the body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadShare(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    if "study_uid" not in body:
        raise BadShare("study_uid is required")
    study_uid = _uid("study_uid", body["study_uid"])
    series = body.get("series_uids") or []
    if not isinstance(series, list) or len(series) > MAX_SERIES:
        raise BadShare(f"series_uids must be a list of at most {MAX_SERIES} series UIDs")
    series_uids = tuple(dict.fromkeys(_uid("series_uids", s) for s in series))
    passcode = body.get("passcode")
    if passcode is not None and (not isinstance(passcode, str)
                                 or not MIN_PASSCODE_LENGTH <= len(passcode) <= MAX_PASSCODE_LENGTH):
        raise BadShare(f"passcode must be text of {MIN_PASSCODE_LENGTH} to {MAX_PASSCODE_LENGTH} characters")
    recipient = body.get("recipient", "")
    if not isinstance(recipient, str) or len(recipient) > 256 or any(ord(c) < 32 for c in recipient):
        raise BadShare("recipient must be a label of at most 256 printable characters")
    show_patient = body.get("show_patient", True)
    if not isinstance(show_patient, bool):
        raise BadShare("show_patient must be true or false")
    return ShareRequest(study_uid=study_uid, series_uids=series_uids, expires_in=_positive(body, "expires_in"),
                        passcode=passcode, max_uses=_positive(body, "max_uses"), recipient=recipient,
                        show_patient=show_patient)


def _visible_series(caller: Caller, study_uid: str) -> dict[str, str]:
    """The study's series the caller may see, with the patient id of each."""
    rows = get_session().execute(select(DicomInstance.series_instance_uid, DicomInstance.patient_id).where(
        visible_clause(caller), DicomInstance.study_instance_uid == study_uid).distinct())
    return {series: patient for series, patient in rows}


def _describe(link: ShareLink, now: datetime) -> dict[str, Any]:
    return {
        "id": link.id, "study_uid": link.study_instance_uid, "series_uids": link.series_uids.split(),
        "recipient": link.recipient, "status": link_status(link, now), "uses": link.uses, "max_uses": link.max_uses,
        "passcode": link.passcode_hash is not None, "show_patient": link.show_patient,
        "created_at": as_utc(link.created_at).isoformat(), "expires_at": as_utc(link.expires_at).isoformat(),
        "revoked_at": as_utc(link.revoked_at).isoformat() if link.revoked_at else None,
        "last_used_at": as_utc(link.last_used_at).isoformat() if link.last_used_at else None,
    }


def _audit(caller: Caller, link: ShareLink, patient_id: str | None, change: str) -> None:
    write_event(get_session(), share_changed(
        by=requestor_party(caller), hub=hub_party(), time=datetime.now(UTC), source_id=source_id(), link_id=link.id,
        study_uid=link.study_instance_uid, patient_id=patient_id, change=change))


@blueprint.post("/api/shares")
def create() -> Response:
    caller = authenticate(SCOPE)
    try:
        wanted = parse_share_request(request.get_json(silent=True))
    except BadShare as exc:
        return problem(400, "Bad Request", str(exc))
    series = _visible_series(caller, wanted.study_uid)
    if not series:
        return problem(404, "Not Found", f"no study {wanted.study_uid} here (or not one this organisation may see)")
    missing = [uid for uid in wanted.series_uids if uid not in series]
    if missing:
        return problem(404, "Not Found", f"study {wanted.study_uid} has no series {missing[0]} "
                                         "(or not one this organisation may see)")
    settings = get_settings()
    session = get_session()
    made = create_link(session, caller.organisation_id, caller.client_id, wanted, link_policy(settings), kind=LINK)
    _audit(caller, made.link, next(iter(series.values())), "created")
    session.commit()
    body = _describe(made.link, datetime.now(UTC))
    body["url"] = f"{settings.base_url}/s/{made.token}"
    response = jsonify(body)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/api/shares")
def listing() -> Response:
    caller = authenticate(SCOPE)
    now = datetime.now(UTC)
    return jsonify({"shares": [_describe(link, now) for link in organisation_links(get_session(),
                                                                                   caller.organisation_id)]})


@blueprint.delete("/api/shares/<link_id>")
def withdraw(link_id: str) -> Response:
    caller = authenticate(SCOPE)
    session = get_session()
    link = session.get(ShareLink, link_id[:32])
    if link is None or link.organisation_id != caller.organisation_id or link.kind != LINK:
        return problem(404, "Not Found", f"this organisation has no share link {link_id[:32]!r}")
    already = link.revoked_at is not None
    revoke(session, link)
    if not already:
        patient_id = session.scalar(select(DicomInstance.patient_id).where(
            DicomInstance.study_instance_uid == link.study_instance_uid).limit(1))
        _audit(caller, link, patient_id, "revoked")
    session.commit()
    return Response(status=204)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
