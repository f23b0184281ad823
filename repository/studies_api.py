"""`POST /api/studies/<uid>/publish` and `GET /api/inventory`: the imaging document source's JSON API.

Publish (scope xds:register) registers the study's manifest now (RAD-68),
replacing the previous one (RPLC); only an organisation that sent instances
of the study may, to anyone else the study does not exist (404). Answers 201
with the manifest's uniqueId and entryUUID and what it replaced.

Inventory (scope dicomweb:read) counts the caller's own instances by
`by=institution,department,station,modality,manufacturer,month` (any subset,
all by default), optionally `since` and `until` (months, YYYY-MM), as JSON
or, with `format=csv`, as a CSV download.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import select

from hub import get_settings
from hub.audit import events
from hub.audit.context import AuditDetails
from hub.audit.events import Party
from hub.audit.message import AuditEvent, Outcome
from hub.audit.web import record_failure
from hub.csvfile import csv_lines
from hub.db import get_session
from hub.errors import XdsError, XdsErrorList
from hub.problems import problem
from hub.security.identity import Caller
from hub.security.protect import authenticate
from repository.inventory import BadInventoryRequest, check_month, inventory, parse_dimensions
from repository.publishing import InconsistentStudy, UnknownStudy, publish_study
from repository.tables import DicomInstance
from repository.views import blob_store, registry

blueprint = Blueprint("studies_api", __name__)
ALLOWED_INVENTORY_PARAMETERS = frozenset({"by", "since", "until", "format"})


def _sent_by(caller: Caller, study_uid: str) -> bool:
    return get_session().scalar(select(DicomInstance.sop_instance_uid).where(
        DicomInstance.study_instance_uid == study_uid,
        DicomInstance.submitter_org_id == caller.organisation_id).limit(1)) is not None


def _publish_audit(study_uid: str, patient_id: str | None):  # type: ignore[no-untyped-def]
    def build(_details: AuditDetails, requestor: Party, hub: Party, outcome: Outcome, time: datetime, source: str,
              description: str | None) -> AuditEvent:
        return events.provide(requestor=requestor, hub=hub, outcome=outcome, time=time, source_id=source,
                              submission_set_uid=None, patient_id=patient_id, transaction="RAD-68",
                              description=description or f"manifest of study {study_uid} not published")
    return build


@blueprint.post("/api/studies/<study_uid>/publish")
def publish(study_uid: str) -> Response:
    caller = authenticate("xds:register")
    session = get_session()
    if not _sent_by(caller, study_uid):
        return problem(404, "Not Found", f"this organisation sent no instance of study {study_uid}")
    patient_id = session.scalar(select(DicomInstance.patient_id).where(
        DicomInstance.study_instance_uid == study_uid).limit(1))
    try:
        published = publish_study(session, blob_store(), registry(), get_settings(), study_uid, caller)
    except InconsistentStudy as exc:
        record_failure(_publish_audit(study_uid, patient_id), caller, str(exc))
        return problem(409, "Conflict", str(exc))
    except UnknownStudy as exc:
        return problem(404, "Not Found", str(exc))
    except (XdsError, XdsErrorList) as exc:
        record_failure(_publish_audit(study_uid, patient_id), caller, str(exc))
        raise
    response = jsonify({
        "study_uid": study_uid, "manifest_uid": published.unique_id, "entry_uuid": published.entry_uuid,
        "replaced": published.replaced, "instances": published.instance_count, "patient_id": published.patient_id,
    })
    response.status_code = 201
    return response


@blueprint.get("/api/inventory")
def acquisition_inventory() -> Response:
    caller = authenticate("dicomweb:read")
    unknown = sorted(set(request.args) - ALLOWED_INVENTORY_PARAMETERS)
    try:
        if unknown:
            raise BadInventoryRequest(f"unknown parameter(s) {', '.join(unknown)}; known: "
                                      f"{', '.join(sorted(ALLOWED_INVENTORY_PARAMETERS))}")
        by = parse_dimensions(request.args.get("by"))
        since, until = check_month("since", request.args.get("since")), check_month("until", request.args.get("until"))
        form = request.args.get("format", "json")
        if form not in ("json", "csv"):
            raise BadInventoryRequest(f"format must be json or csv, got {form!r}")
    except BadInventoryRequest as exc:
        return problem(400, "Bad Request", str(exc))
    rows = inventory(get_session(), caller.organisation_id, by, since, until)
    if form == "csv":
        lines = csv_lines([*by, "studies", "instances", "bytes"],
                          ([*r.group.values(), r.studies, r.instances, r.bytes] for r in rows))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(lines, mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="inventory-{stamp}.csv"'})
    return jsonify({
        "by": list(by),
        "rows": [{**r.group, "studies": r.studies, "instances": r.instances, "bytes": r.bytes} for r in rows],
        "totals": {"instances": sum(r.instances for r in rows), "bytes": sum(r.bytes for r in rows)},
    })


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
