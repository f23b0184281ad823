"""`/api/patients`: an organisation links its local patient ids to the affinity domain's (scope xds:register).

`POST /api/patients` takes JSON `local_id` and `domain_id`, both XDS patient
ids `ID^^^&OID&ISO`, and records that the caller's `local_id` is the patient
`domain_id` of the affinity domain (`hub.federation.patients`). Answers 201
with the link, 200 with it when the same link was already recorded, 400 for
an id that is not in that form (or, with `affinity_domain_oid` set, a domain
id of another assigning authority), 409 when the local id is linked to
another domain id. Each new link is audited (Patient Record 110110).
`GET /api/patients` lists the caller's links, `?local_id=X` only that of X (none: an empty list).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import IntegrityError

from hub import get_settings
from hub.audit.events import patient_linked
from hub.audit.web import hub_party, requestor_party, source_id, write_event
from hub.clock import as_utc
from hub.db import get_session
from hub.federation.patients import PatientLinkConflict, PatientLinkError, check_cx, link_patient, links_of
from hub.federation.tables import PatientLink
from hub.problems import problem
from hub.security.protect import authenticate

blueprint = Blueprint("patients_api", __name__)

SCOPE = "xds:register"
FIELDS = frozenset({"local_id", "domain_id"})


def describe(link: PatientLink) -> dict[str, Any]:
    return {"local_id": link.local_id, "domain_id": link.domain_id, "created_at": as_utc(link.created_at).isoformat()}


@blueprint.post("/api/patients")
def create() -> Response:
    caller = authenticate(SCOPE)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(400, "Bad Request", 'the body must be a JSON object {"local_id": ..., "domain_id": ...}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return problem(400, "Bad Request", f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    session = get_session()
    try:
        local_id, domain_id = check_cx("local_id", body.get("local_id")), check_cx("domain_id", body.get("domain_id"))
        made = link_patient(session, caller.organisation_id, local_id, domain_id,
                            affinity_domain_oid=get_settings().affinity_domain_oid)
        if made.created:
            write_event(session, patient_linked(
                by=requestor_party(caller), hub=hub_party(), time=datetime.now(UTC), source_id=source_id(),
                organisation_oid=caller.organisation_oid, local_id=made.link.local_id,
                domain_id=made.link.domain_id, rehomed=made.rehomed))
        session.commit()
    except PatientLinkConflict as exc:
        session.rollback()
        return problem(409, "Conflict", str(exc))
    except PatientLinkError as exc:
        session.rollback()
        return problem(400, "Bad Request", str(exc))
    except IntegrityError:
        session.rollback()
        return problem(409, "Conflict", "the local id was linked by a concurrent request; read it with "
                                        "GET /api/patients?local_id=")
    response = jsonify(describe(made.link))
    response.status_code = 201 if made.created else 200
    return response


@blueprint.get("/api/patients")
def listing() -> Response:
    caller = authenticate(SCOPE)
    local_id = request.args.get("local_id")
    links = links_of(get_session(), caller.organisation_id, local_id)
    return jsonify({"patients": [describe(link) for link in links]})


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
